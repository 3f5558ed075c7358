"""Deliver spooled payloads: Loki push or a JSON array, batched, retried, receipted.

Rules (DESIGN §3.7, §4), in the order a send applies them:

- Nothing is sent while collection is off: the decision is read at the start of a
  run and again before every request.
- Only ``pending`` sessions are sent; ``held``, ``sent``, ``failed`` and ``legacy``
  never are. Before a payload leaves, each of its keys is checked against the
  acknowledged schema in the consent record (and the policy in force); a payload
  with any other key is marked ``failed`` and never sent.
- Each endpoint gets its own receipt; a session becomes ``sent`` only when every
  endpoint of the run has answered 2xx for it.
- 5xx, 408, 425, 429 and network errors are retried with exponential backoff and
  jitter, a few times per run; then the payloads stay pending for the next run. Any
  other 4xx is the receiver's "never send this again": those payloads are marked
  ``failed`` with the reason (a 400, 413 or 422 on a batch is first split, so one
  bad payload does not condemn its neighbours).
- Exactly once: a whole run holds the spool's ``send`` lock (``fcntl`` on a lock
  file), so concurrent senders never send a session twice. A sender that dies after
  the receiver answered 2xx but before the receipt was written sends those sessions
  again on the next run: receivers deduplicate on ``session_id``, which every
  payload carries (and each request also carries an ``Idempotency-Key`` header).

The host never waits: :func:`start_background_flush` starts a detached child and
returns. This module is imported on the host's session path, so at import time it
uses the standard library only; httpx is imported inside the functions that send.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from consent._exceptions import ConsentError, InvalidValueError, UploadError
from consent.profile import DEFAULT_PROFILE, AppProfile
from consent.spool import Entry, Receipt, Spool, State

if TYPE_CHECKING:
    import subprocess

    import httpx

    from consent.decision import Decision
    from consent.policy import Policy

__all__ = [
    "DEFAULT_LIMITS",
    "EndpointOutcome",
    "Failure",
    "Limits",
    "Plan",
    "PlannedRequest",
    "SendResult",
    "last_error",
    "plan_send",
    "send_deletion_request",
    "send_pending",
    "start_background_flush",
]

Format = Literal["loki", "json"]

SEND_LOG = ".send.log"  # a dot-file: spool listings and wipes only touch id-named entries
_FLUSH_STAMP = ".flush.stamp"
_BACKOFF_FILE = ".flush.json"
FLUSH_INTERVAL_S = 10.0
_LOG_MAX_BYTES = 64 * 1024
_BACKGROUND_ALARM_S = 120
_BACKGROUND_BACKOFF_CAP_S = 3600.0
_SNIPPET = 200
# Receivers answer these when they are busy or early, not when the payload is bad.
_RETRY_4XX = frozenset({408, 425, 429})
# A batch refused with one of these may hold a single bad payload: split it first.
_SPLIT_4XX = frozenset({400, 413, 422})


@dataclass(frozen=True)
class Limits:
    """Timeouts, retries and batch sizes of one run; the defaults are the contract."""

    connect_timeout_s: float = 2.0
    request_timeout_s: float = 5.0
    attempts: int = 3
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 4.0
    retry_window_s: float = 10.0
    """A retry starts only if it can end (at its timeout) this soon after the first try."""
    max_body_bytes: int = 512 * 1024
    """Below nginx's default 1 MiB request cap, which often fronts Loki."""
    max_batch: int = 1000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Failure:
    """A payload marked failed (or, in a dry run, that would be), and why."""

    session_id: str
    reason: str


@dataclass(frozen=True)
class EndpointOutcome:
    url: str
    accepted: int = 0
    """Payloads this endpoint answered 2xx for in this run."""
    refused: int = 0
    """Payloads this endpoint refused with a 4xx (now failed)."""
    error: str | None = None
    """Why payloads due here stay pending, if they do."""


@dataclass(frozen=True)
class SendResult:
    """What one run did. ``due`` counts the pending sessions it considered."""

    enabled: bool
    due: int = 0
    sent: int = 0
    failed: int = 0
    pending: int = 0
    held: int = 0
    endpoints: tuple[EndpointOutcome, ...] = ()
    failures: tuple[Failure, ...] = ()
    note: str | None = None
    """Why nothing was attempted: collection off, another sender busy, no acknowledgement."""

    @property
    def ok(self) -> bool:
        """True when everything due was sent (or nothing was due)."""
        return self.failed == 0 and self.pending == 0

    @property
    def error(self) -> str | None:
        """One sentence for the send log and ``stats status``, or None when all went well."""
        if self.ok:
            return None
        problems = [f"{e.url}: {e.error}" for e in self.endpoints if e.error]
        if self.note:
            problems.insert(0, self.note)
        if self.failed:
            problems.append(f"{self.failed} payload(s) refused and marked failed")
        if self.pending:
            problems.append(f"{self.pending} payload(s) stay pending")
        return "; ".join(problems)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


@dataclass(frozen=True)
class PlannedRequest:
    """One request exactly as it would be sent (the Loki timestamp is the time of sending)."""

    endpoint: str
    format: Format
    session_ids: tuple[str, ...]
    headers: Mapping[str, str]
    body: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "format": self.format,
            "session_ids": list(self.session_ids),
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8"),
        }


@dataclass(frozen=True)
class Plan:
    """What a send would do now; nothing is changed to compute it."""

    enabled: bool
    requests: tuple[PlannedRequest, ...] = ()
    refused: tuple[Failure, ...] = ()
    note: str | None = None


# -- preparing payloads -----------------------------------------------------------------


@dataclass
class _Item:
    entry: Entry
    data: bytes
    text: str
    kind: str  # the Loki "type" label
    schema: str  # the Loki "schema" label
    escaped_len: int
    done: bool = False  # sent or failed in this run: no further endpoint gets it

    def cost(self, fmt: Format) -> int:
        # Bytes this payload adds to a body; ``["<19 digits>",<line>],`` for Loki.
        return self.escaped_len + 25 if fmt == "loki" else len(self.data) + 1


def _check_payload(
    entry: Entry, data: bytes, allowed: frozenset[str]
) -> tuple[dict[str, Any] | None, str]:
    """The parsed payload, or None and the reason it may never be sent."""
    try:
        text = data.decode("utf-8")
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, "the spooled payload is not valid JSON; it is never sent."
    if not isinstance(payload, dict):
        return None, "the spooled payload is not a JSON object; it is never sent."
    outside = sorted(key for key in payload if key not in allowed)
    if outside:
        return None, (
            f"it holds fields outside the acknowledged schema ({', '.join(outside)}); "
            "it is never sent."
        )
    if payload.get("session_id", entry.session_id) != entry.session_id:
        return None, "its session_id does not match its place in the spool; it is never sent."
    return payload, text


def _make_item(entry: Entry, data: bytes, payload: dict[str, Any], text: str) -> _Item:
    schema = payload.get("schema_version")
    return _Item(
        entry=entry,
        data=data,
        text=text,
        kind="error" if "error" in payload else "usage",
        schema="unknown" if schema is None else str(schema),
        escaped_len=len(json.dumps(text, ensure_ascii=False).encode()),
    )


# -- request bodies ---------------------------------------------------------------------

_BODY_OVERHEAD = 256  # the Loki envelope and per-stream labels, generously


def _loki_body(items: Sequence[_Item], now_ns: int) -> bytes:
    # The send time, not collected_at: Loki refuses lines far behind the newest in a
    # stream, and every client shares a stream. +i keeps the lines of a push ordered.
    streams: dict[tuple[str, str], list[list[str]]] = {}
    for i, item in enumerate(items):
        streams.setdefault((item.kind, item.schema), []).append([str(now_ns + i), item.text])
    doc = {
        "streams": [
            {"stream": {"type": kind, "schema": schema}, "values": values}
            for (kind, schema), values in streams.items()
        ]
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _json_body(items: Sequence[_Item]) -> bytes:
    return b"[" + b",".join(item.data for item in items) + b"]"


def _body(items: Sequence[_Item], fmt: Format) -> bytes:
    return _loki_body(items, time.time_ns()) if fmt == "loki" else _json_body(items)


def _idempotency_key(ids: Sequence[str]) -> str:
    import hashlib

    # A digest, not the joined ids: a 1,000-session batch would exceed the 8 KiB
    # header limit of common proxies, which answer 4xx. Sorted, so the key names the
    # set of sessions whatever their order in the body.
    return hashlib.sha256(",".join(sorted(ids)).encode()).hexdigest()


def _headers(ids: Sequence[str]) -> dict[str, str]:
    return {"Content-Type": "application/json", "Idempotency-Key": _idempotency_key(ids)}


def _batches(items: Sequence[_Item], fmt: Format, limits: Limits) -> Iterator[list[_Item]]:
    batch: list[_Item] = []
    size = _BODY_OVERHEAD
    for item in items:
        cost = item.cost(fmt)
        if batch and (size + cost > limits.max_body_bytes or len(batch) >= limits.max_batch):
            yield batch
            batch, size = [], _BODY_OVERHEAD
        batch.append(item)
        size += cost
    if batch:
        yield batch


def _halves(batch: list[_Item]) -> list[list[_Item]]:
    middle = len(batch) // 2
    return [batch[:middle], batch[middle:]]


# -- HTTP -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    status: int | None  # None: no HTTP answer (network error or timeout)
    detail: str
    retry_after: float | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500 or self.status in _RETRY_4XX

    @property
    def refused(self) -> bool:
        return self.status is not None and 400 <= self.status < 500 and not self.retryable


def _client(url: str, limits: Limits) -> httpx.Client:
    import httpx

    from consent import __version__
    from consent._urls import is_loopback_host

    host = httpx.URL(url).host
    return httpx.Client(
        timeout=httpx.Timeout(limits.request_timeout_s, connect=limits.connect_timeout_s),
        follow_redirects=False,  # a redirect could lead to plain http or elsewhere
        # proxies and CA settings from the environment matter to enterprises, never
        # to a receiver on this machine
        trust_env=not is_loopback_host(host),
        headers={"User-Agent": f"consent/{__version__}"},
    )


def _printable(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(cleaned.split())[:_SNIPPET]


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # the HTTP-date form: fall back to our own backoff
    return seconds if 0 <= seconds < 86400 else None


def _post(
    client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], limits: Limits
) -> _Answer:
    """One POST, bounded in wall time.

    httpx's timeouts bound each read, not the whole answer: a server that sends its
    headers a byte at a time would keep a send alive for ever. So the request runs in
    a worker thread and is abandoned at the deadline; a timed-out endpoint is not
    used again in this run, and the daemon thread ends with the process.
    """
    import threading

    answers: list[_Answer] = []

    def post() -> None:
        try:
            answers.append(_post_now(client, url, body, headers, limits))
        except Exception as exc:  # reported as the endpoint's failure, never raised
            answers.append(_Answer(None, _network_detail(exc)))

    worker = threading.Thread(target=post, name="consent-post", daemon=True)
    worker.start()
    worker.join(limits.request_timeout_s + 1.0)
    return answers[0] if answers else _Answer(None, "no answer in time")


def _post_now(
    client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], limits: Limits
) -> _Answer:
    import httpx

    deadline = time.monotonic() + limits.request_timeout_s
    try:
        with client.stream("POST", url, content=body, headers=headers) as response:
            status = response.status_code
            # Read a 2xx body to the end so the connection can be kept alive, and only
            # the start of any other: it is shown to the user, never trusted.
            cap = 64 * 1024 if 200 <= status < 300 else 2 * _SNIPPET
            seen = b""
            # raw bytes: the body is never used, so never inflate a compressed one
            for chunk in response.iter_raw():
                seen += chunk
                if len(seen) >= cap or time.monotonic() > deadline:
                    break
            retry_after = _retry_after(response.headers.get("Retry-After"))
    except httpx.TimeoutException:
        return _Answer(None, "no answer in time")
    except httpx.HTTPError as exc:
        return _Answer(None, _network_detail(exc))
    except OSError as exc:
        return _Answer(None, exc.strerror or type(exc).__name__)
    if 300 <= status < 400:
        location = response.headers.get("Location", "elsewhere")
        return _Answer(status, f"HTTP {status}, a redirect to {_printable(location.encode())}")
    snippet = _printable(seen) if status >= 400 else ""
    return _Answer(status, f"HTTP {status}" + (f": {snippet}" if snippet else ""), retry_after)


def _network_detail(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return _printable(text.encode())


def _backoff_delay(attempt: int, limits: Limits, retry_after: float | None) -> float:
    import random

    if retry_after is not None:
        return retry_after
    ceiling = min(limits.backoff_cap_s, limits.backoff_base_s * 2.0**attempt)
    # "equal jitter": never less than half the ceiling, so retries stay spread out
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret


def _deliver(
    client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], limits: Limits
) -> _Answer:
    """POST with retries; the last answer, whose detail says how often it was tried."""
    first = time.monotonic()
    tries = 0
    while True:
        answer = _post(client, url, body, headers, limits)
        tries += 1
        if not answer.retryable or tries >= limits.attempts:
            break
        delay = _backoff_delay(tries - 1, limits, answer.retry_after)
        # Only a retry that can end inside the window starts: a black hole that eats
        # the whole timeout is tried once per run, a fast 5xx several times.
        if time.monotonic() + delay + limits.request_timeout_s - first > limits.retry_window_s:
            break
        time.sleep(delay)
    if answer.retryable and tries > 1:
        return _Answer(answer.status, f"{answer.detail} (tried {tries} times)", answer.retry_after)
    return answer


# -- one run ----------------------------------------------------------------------------


@dataclass
class _Context:
    env: Mapping[str, str]
    profile: AppProfile
    decision: Decision
    policy: Policy
    endpoints: list[str]
    fmt: Format
    allowed: frozenset[str] | None  # None: no acknowledgement to check against
    record_problem: str | None


def _decide(
    profile: AppProfile, environ: Mapping[str, str] | None, endpoint: str | None
) -> Decision:
    """The decision, after checking ``endpoint``: bad input is refused whatever the state."""
    from consent._urls import check_endpoint
    from consent.decision import decide

    if endpoint is not None:
        check_endpoint(endpoint, source="--endpoint")
    return decide(profile, os.environ if environ is None else environ)


def _context(
    profile: AppProfile, environ: Mapping[str, str] | None, endpoint: str | None, decision: Decision
) -> _Context:
    from consent._urls import resolve_endpoints
    from consent.config import load_config
    from consent.policy import load_policy
    from consent.record import read_record

    env = os.environ if environ is None else environ
    policy = load_policy(profile=profile, environ=env)
    try:
        config = load_config(profile.config_path(env))
    except ConsentError:
        config = {}  # the decision warns about it; the extras are unknown, the primary is not
    endpoints = resolve_endpoints(policy.endpoint, config, env, profile.endpoint_env, endpoint)
    record, warning = read_record(profile.record_path(env))
    ack = record.acknowledgement if record else None
    allowed = None if ack is None else frozenset(ack.schema) & frozenset(policy.fields)
    problem = None
    if allowed is None:
        problem = warning or (
            f"No policy has been acknowledged in {profile.record_path(env)}, so nothing can be "
            f"checked and sent; run `{profile.cli_name} init`."
        )
    return _Context(env, profile, decision, policy, endpoints, policy.format, allowed, problem)


def _disabled_note(decision: Decision) -> str:
    return f"Usage statistics are off (decided by {decision.source}); nothing was sent."


def _prepare(
    spool: Spool, entries: Sequence[Entry], allowed: frozenset[str], *, mark: bool
) -> tuple[list[_Item], list[Failure]]:
    items: list[_Item] = []
    failures: list[Failure] = []
    for entry in entries:
        try:
            data = spool.read_payload(entry)
        except ConsentError:
            continue  # removed by the user meanwhile, or unreadable: left as it is
        payload, text = _check_payload(entry, data, allowed)
        if payload is None:
            failures.append(Failure(entry.session_id, text))
            if mark:
                spool.set_state(entry, State.FAILED, reason=text)
            continue
        items.append(_make_item(entry, data, payload, text))
    return items, failures


def _still_enabled(ctx: _Context) -> bool:
    from consent.decision import decide

    return decide(ctx.profile, ctx.env).enabled


@dataclass
class _Tally:
    sent: int = 0
    failures: list[Failure] = field(default_factory=list)
    outcomes: dict[str, EndpointOutcome] = field(default_factory=dict)
    transient: bool = False
    retry_after: float | None = None
    stop: str | None = None  # set when collection was turned off mid-run

    def outcome(self, url: str) -> EndpointOutcome:
        return self.outcomes.setdefault(url, EndpointOutcome(url))

    def bump(self, url: str, *, accepted: int = 0, refused: int = 0) -> None:
        o = self.outcome(url)
        self.outcomes[url] = EndpointOutcome(
            url, o.accepted + accepted, o.refused + refused, o.error
        )

    def fail_endpoint(self, url: str, error: str) -> None:
        o = self.outcome(url)
        self.outcomes[url] = EndpointOutcome(url, o.accepted, o.refused, error)


def _accept(
    spool: Spool, ctx: _Context, url: str, batch: list[_Item], status: int, t: _Tally
) -> None:
    deliveries = [(item.entry, Receipt.for_payload(url, status, item.data)) for item in batch]
    try:
        updated = spool.record_deliveries(deliveries, required_endpoints=ctx.endpoints)
    except ConsentError as exc:
        # delivered but not recorded: the next run sends it again (idempotency rule)
        t.fail_endpoint(url, f"could not record a receipt: {exc}")
        return
    for item, entry in zip(batch, updated, strict=True):
        item.entry = entry
        if entry.state is State.SENT:
            item.done = True
            t.sent += 1


def _refuse(spool: Spool, url: str, item: _Item, detail: str, t: _Tally) -> None:
    reason = f"{url} refused it ({detail}); it is not sent again."
    try:
        item.entry = spool.set_state(item.entry, State.FAILED, reason=reason)
    except ConsentError as exc:
        t.fail_endpoint(url, f"could not mark a refused payload failed: {exc}")
        return
    item.done = True
    t.failures.append(Failure(item.entry.session_id, reason))


def _send_to(
    spool: Spool, ctx: _Context, url: str, items: list[_Item], limits: Limits, t: _Tally
) -> None:
    todo = [i for i in items if not i.done and not _has_ok_receipt(i.entry, url)]
    if not todo:
        return
    queue = deque(_batches(todo, ctx.fmt, limits))
    try:
        client = _client(url, limits)
    except Exception as exc:  # httpx's own URL checks are stricter than ours in places
        t.fail_endpoint(url, f"cannot send to this URL ({type(exc).__name__}: {exc})")
        return
    with client:
        while queue:
            batch = queue.popleft()
            if not _still_enabled(ctx):
                t.stop = "collection was turned off during the send"
                return
            body = _body(batch, ctx.fmt)
            if len(body) > limits.max_body_bytes and len(batch) > 1:
                queue.extendleft(reversed(_halves(batch)))
                continue
            ids = [i.entry.session_id for i in batch]
            answer = _deliver(client, url, body, _headers(ids), limits)
            if answer.accepted:
                assert answer.status is not None
                _accept(spool, ctx, url, batch, answer.status, t)
                t.bump(url, accepted=len(batch))
            elif answer.refused and answer.status in _SPLIT_4XX and len(batch) > 1:
                queue.extendleft(reversed(_halves(batch)))
            elif answer.refused:
                for item in batch:
                    _refuse(spool, url, item, answer.detail, t)
                t.bump(url, refused=len(batch))
            else:
                # the endpoint is down or misconfigured: the rest waits for the next run
                t.fail_endpoint(url, answer.detail)
                if answer.retryable:
                    t.transient = True
                    if answer.retry_after is not None:
                        t.retry_after = max(t.retry_after or 0.0, answer.retry_after)
                return


def _has_ok_receipt(entry: Entry, url: str) -> bool:
    return any(r.endpoint == url and r.ok for r in entry.receipts)


def _settle_delivered(spool: Spool, ctx: _Context, items: list[_Item], t: _Tally) -> None:
    """A pending session every endpoint already has (the extras changed): mark it sent."""
    for item in items:
        if item.done:
            continue
        receipts = [r for r in item.entry.receipts if r.ok and r.endpoint in ctx.endpoints]
        if {r.endpoint for r in receipts} >= set(ctx.endpoints):
            try:
                item.entry = spool.add_receipt(
                    item.entry, receipts[0], required_endpoints=ctx.endpoints
                )
            except ConsentError:
                continue
            if item.entry.state is State.SENT:
                item.done = True
                t.sent += 1


def _run(spool: Spool, ctx: _Context, limits: Limits, *, rounds: int) -> tuple[SendResult, _Tally]:
    """The body of a send; the caller holds the send lock."""
    assert ctx.allowed is not None
    t = _Tally()
    seen: set[str] = set()
    due = held = 0
    # A background sender lists again for sessions written while it sent: their own
    # flush found the lock busy and started nothing. (A listing of 10,000 sessions
    # costs a few hundred ms, which a manual send does not spend.)
    for _round in range(rounds):
        listed = spool.entries((State.PENDING, State.HELD))
        held = sum(1 for e in listed if e.state is State.HELD)
        fresh = [e for e in listed if e.state is State.PENDING and e.session_id not in seen]
        if not fresh:
            break
        seen.update(e.session_id for e in fresh)
        items, refused = _prepare(spool, fresh, ctx.allowed, mark=True)
        due += len(items) + len(refused)  # not those the user removed meanwhile
        t.failures.extend(refused)
        _settle_delivered(spool, ctx, items, t)
        for url in ctx.endpoints:
            if t.stop:
                break
            if t.outcome(url).error is None:
                _send_to(spool, ctx, url, items, limits, t)
        if t.stop or any(o.error for o in t.outcomes.values()):
            break
    failed = len(t.failures)
    return SendResult(
        enabled=True,
        due=due,
        sent=t.sent,
        failed=failed,
        pending=due - t.sent - failed,
        held=held,
        endpoints=tuple(t.outcome(url) for url in ctx.endpoints),
        failures=tuple(t.failures),
        note=t.stop,
    ), t


def send_pending(
    spool: Spool | None = None,
    *,
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
    endpoint: str | None = None,
    background: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> SendResult:
    """Send every pending payload now, to every endpoint, and report what happened.

    ``endpoint`` replaces the primary endpoint (``--endpoint``); the extras from the
    config still apply. A manual send waits for a running sender to finish; a
    ``background`` one returns at once instead. Raises :class:`InsecureEndpointError`
    (and other :class:`BadInputError`) for a bad endpoint or policy; network trouble
    is reported in the result, never raised.
    """
    decision = _decide(profile, environ, endpoint)
    if not decision.enabled:
        return SendResult(enabled=False, note=_disabled_note(decision))
    ctx = _context(profile, environ, endpoint, decision)
    if spool is None:
        spool = Spool.existing(profile, ctx.env)
        if spool is None:
            return SendResult(enabled=True)  # nothing was ever spooled
    with spool.lock("send", blocking=not background) as got:
        if not got:
            return SendResult(enabled=True, note="another sender is running")
        if ctx.allowed is None:
            # nothing can be checked against an acknowledgement: keep it all pending
            waiting = len(spool.entries((State.PENDING,)))
            note = ctx.record_problem if waiting else None
            result = SendResult(enabled=True, due=waiting, pending=waiting, note=note)
            tally = _Tally()
        else:
            result, tally = _run(spool, ctx, limits, rounds=3 if background else 1)
        _log_run(spool, "background" if background else "manual", result, result.error)
        _remember_backoff(spool, tally)
    return result


def plan_send(
    spool: Spool | None = None,
    *,
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
    endpoint: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Plan:
    """The exact requests a send would make now (``--dry-run``); sends and changes nothing."""
    decision = _decide(profile, environ, endpoint)
    if not decision.enabled:
        return Plan(enabled=False, note=_disabled_note(decision))
    ctx = _context(profile, environ, endpoint, decision)
    if spool is None:
        spool = Spool.existing(profile, ctx.env)
    if spool is None:
        return Plan(enabled=True)
    entries = spool.entries((State.PENDING,))
    if ctx.allowed is None:
        return Plan(enabled=True, note=ctx.record_problem if entries else None)
    items, refused = _prepare(spool, entries, ctx.allowed, mark=False)
    requests: list[PlannedRequest] = []
    for url in ctx.endpoints:
        todo = [i for i in items if not _has_ok_receipt(i.entry, url)]
        pending_batches = deque(_batches(todo, ctx.fmt, limits))
        while pending_batches:
            batch = pending_batches.popleft()
            body = _body(batch, ctx.fmt)
            if len(body) > limits.max_body_bytes and len(batch) > 1:
                pending_batches.extendleft(reversed(_halves(batch)))
                continue
            ids = tuple(i.entry.session_id for i in batch)
            requests.append(PlannedRequest(url, ctx.fmt, ids, _headers(ids), body))
    return Plan(enabled=True, requests=tuple(requests), refused=tuple(refused))


# -- deletion requests ------------------------------------------------------------------


def send_deletion_request(
    client_ids: Sequence[str],
    *,
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Ask every endpoint to delete what it holds for ``client_ids``; the ones that accepted.

    Sent whatever the on/off decision: deleting is the user's own request. Raises
    :class:`UploadError` when no endpoint answered 2xx, for any reason.
    """
    from consent._urls import resolve_endpoints
    from consent.config import load_config
    from consent.policy import load_policy

    ids = [str(cid) for cid in client_ids]
    if not ids:
        raise InvalidValueError("A deletion request needs at least one client id.")
    env = os.environ if environ is None else environ
    try:
        policy = load_policy(profile=profile, environ=env)
        try:
            config = load_config(profile.config_path(env))
        except ConsentError:
            config = {}
        endpoints = resolve_endpoints(policy.endpoint, config, env, profile.endpoint_env)
    except ConsentError as exc:
        raise UploadError(f"The deletion request was not sent: {exc}") from exc
    record = {
        "type": "deletion_request",
        "client_ids": ids,
        "requested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(record, separators=(",", ":"))
    if policy.format == "loki":
        doc: object = {
            "streams": [
                {"stream": {"type": "deletion_request"}, "values": [[str(time.time_ns()), text]]}
            ]
        }
    else:
        doc = [record]
    body = json.dumps(doc, separators=(",", ":")).encode()
    headers = _headers([*ids, str(record["requested_at"])])
    accepted: list[str] = []
    problems: list[str] = []
    for url in endpoints:
        with _client(url, DEFAULT_LIMITS) as client:
            answer = _deliver(client, url, body, headers, DEFAULT_LIMITS)
        if answer.accepted:
            accepted.append(url)
        else:
            problems.append(f"{url}: {answer.detail}")
    if not accepted:
        raise UploadError(f"The deletion request could not be delivered ({'; '.join(problems)}).")
    return accepted


# -- the send log and the background backoff ---------------------------------------------


def _log_run(spool: Spool, mode: str, result: SendResult | None, error: str | None) -> None:
    line: dict[str, Any] = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": mode,
        "error": error,
    }
    if result is not None:
        line.update(due=result.due, sent=result.sent, failed=result.failed, pending=result.pending)
    path = spool.root / SEND_LOG
    with contextlib.suppress(OSError):
        if os.lstat(path).st_size > _LOG_MAX_BYTES:
            os.replace(path, spool.root / (SEND_LOG + ".1"))  # keep one older generation
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    with contextlib.suppress(OSError):
        fd = os.open(path, flags, 0o600)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)


def forget_history(spool: Spool) -> None:
    """Delete the sender's log and backoff state (for ``stats forget``); keep the locks."""
    for name in (SEND_LOG, SEND_LOG + ".1", _FLUSH_STAMP, _BACKOFF_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spool.root / name)


def last_error(spool: Spool) -> str | None:
    """The error of the last send run, or None if it went well (or none ran)."""
    from consent._fileio import read_bytes_nofollow

    try:
        raw = read_bytes_nofollow(spool.root / SEND_LOG)
    except OSError:
        return None
    for line in reversed(raw[-8192:].splitlines()):
        if not line.strip():
            continue
        try:
            error = json.loads(line).get("error")
        except (ValueError, AttributeError):
            return None
        return error if isinstance(error, str) else None
    return None


def _read_backoff(spool: Spool) -> tuple[int, float]:
    from consent._fileio import read_bytes_nofollow

    try:
        data = json.loads(read_bytes_nofollow(spool.root / _BACKOFF_FILE))
        failures, retry_at = int(data["failures"]), float(data["retry_at"])
    except (OSError, ValueError, TypeError, KeyError):
        return 0, 0.0
    if retry_at > time.time() + 1.2 * _BACKGROUND_BACKOFF_CAP_S:
        return 0, 0.0  # written while the clock ran ahead: no backoff is ever that long
    return failures, retry_at


def _remember_backoff(spool: Spool, tally: _Tally) -> None:
    """After a run: background flushes wait longer after each run that met a down endpoint."""
    import random

    from consent._fileio import atomic_write

    failures, _ = _read_backoff(spool)
    if tally.transient:
        failures += 1
        delay = min(_BACKGROUND_BACKOFF_CAP_S, 30.0 * 2.0 ** (failures - 1))
        delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
        delay = max(delay, tally.retry_after or 0.0)
        state = {"failures": failures, "retry_at": time.time() + delay}
    elif failures == 0 and not os.path.lexists(spool.root / _BACKOFF_FILE):
        return
    else:
        state = {"failures": 0, "retry_at": 0.0}  # also clears one from a clock run ahead
    with contextlib.suppress(OSError):
        atomic_write(spool.root / _BACKOFF_FILE, json.dumps(state).encode())


# -- the detached flush -----------------------------------------------------------------

_children: list[subprocess.Popen[bytes]] = []


def start_background_flush(
    spool: Spool,
    *,
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Start a detached sender for ``spool`` and return at once. Never raises.

    At most one start per :data:`FLUSH_INTERVAL_S`, none while a sender runs, and
    none before the backoff after a failed run has passed.
    """
    with contextlib.suppress(Exception):  # the host must never fail because of telemetry
        _start_flush(spool, profile, environ)


def _start_flush(spool: Spool, profile: AppProfile, environ: Mapping[str, str] | None) -> None:
    # Children that have exited are reaped here, so a long-lived host keeps no zombies.
    _children[:] = [child for child in _children if child.poll() is None]
    if getattr(sys, "frozen", False) or not sys.executable:
        return  # a frozen host has no interpreter to run `-m consent.upload`
    now = time.time()
    stamp = spool.root / _FLUSH_STAMP
    with contextlib.suppress(FileNotFoundError):
        started = os.lstat(stamp).st_mtime
        if 0 <= now - started < FLUSH_INTERVAL_S:
            return
    if now < _read_backoff(spool)[1]:
        return
    with spool.lock("send", blocking=False) as free:
        if not free:
            return  # that sender lists the spool again before it ends
    fd = os.open(stamp, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.utime(fd)
    finally:
        os.close(fd)

    import subprocess

    # -P: the host's working directory must not shadow the consent package.
    command = [sys.executable, "-P", "-m", "consent.upload", "--spool-root", str(spool.root)]
    if profile != DEFAULT_PROFILE:
        command += ["--profile", _profile_json(profile)]
    _children.append(
        subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,  # the host's Ctrl-C and hangup are not the sender's
            env=_child_env(profile, environ),
        )
    )


def _child_env(profile: AppProfile, environ: Mapping[str, str] | None) -> dict[str, str] | None:
    if environ is None:
        return None
    # The host decided with ``environ``; its own process settings (PATH, proxies)
    # still apply, but no decision input may leak in from outside ``environ``.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(profile.env_prefix + "_") and name != "DO_NOT_TRACK"
    }
    env.update(environ)
    return env


# The constructor's keyword arguments: enough to rebuild a host's profile in the child.
_PROFILE_ARGS = (
    "name",
    "display_name",
    "env_prefix",
    "home_dir_name",
    "shared_temp_root",
    "policy_file",
    "cli_name",
    "host_package",
)


def _profile_json(profile: AppProfile) -> str:
    return json.dumps({name: str(getattr(profile, name)) for name in _PROFILE_ARGS})


def _profile_from_json(text: str) -> AppProfile:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("profile must be a JSON object")
    return AppProfile(**{name: str(data[name]) for name in _PROFILE_ARGS if name in data})


def run_background(
    *,
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
    spool_root: Path | None = None,
) -> SendResult | None:
    """One background send: never waits for the lock, never raises, logs in the spool."""
    spool = Spool(spool_root) if spool_root is not None else None
    try:
        result = send_pending(spool, profile=profile, environ=environ, background=True)
        with contextlib.suppress(Exception):
            # sessions whose writer died before the payload, and temp files of killed
            # writers, go once they are an hour old; nobody else would remove them
            tidy = spool or Spool.existing(profile, environ)
            if tidy is not None:
                with tidy.lock(blocking=False) as held:
                    if held:
                        tidy.cleanup_incomplete()
        return result
    except ConsentError as exc:
        error = str(exc)  # a bad endpoint or policy: nobody is watching but the log
    except Exception as exc:
        error = f"internal error ({type(exc).__name__}: {exc})"
    with contextlib.suppress(Exception):
        spool = spool or Spool.existing(profile, environ)
        if spool is not None:
            _log_run(spool, "background", None, error)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m consent.upload``: the detached flush. Always exits 0, silently.

    Only for a process of its own: it arms an alarm that ends the process.
    """
    import argparse
    import signal

    signal.alarm(_BACKGROUND_ALARM_S)  # a detached sender that is somehow stuck ends
    with contextlib.suppress(OSError):
        os.nice(10)  # the transfer that started us comes first

    parser = argparse.ArgumentParser(prog="python -m consent.upload", add_help=False)
    parser.add_argument("--spool-root", type=Path)
    parser.add_argument("--profile")
    try:
        args = parser.parse_args(argv)
        profile = DEFAULT_PROFILE if args.profile is None else _profile_from_json(args.profile)
    except (SystemExit, ValueError, TypeError):
        return 0
    run_background(profile=profile, spool_root=args.spool_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
