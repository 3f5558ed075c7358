"""Orchestration and receipts: one send run over the spool, and what it reports.

Rules (docs/architecture.md §3.7, §4), in the order a send applies them:

- Nothing is sent while collection is off: the decision is read at the start of a
  run and again before every request.
- Only ``pending`` sessions are sent; ``held``, ``sent``, ``failed`` and ``legacy``
  never are. Before a payload leaves, each of its keys is checked against the
  acknowledged schema in the consent record (and the policy in force); a payload
  with any other key is marked ``failed`` and never sent. A payload under a client
  id that ``stats forget`` retired is deleted, never sent.
- Each endpoint gets its own receipt; a session becomes ``sent`` only when every
  endpoint of the run has answered 2xx for it.
- Retries and their limits are :mod:`consent.upload.transport`'s. Any 4xx that is
  not retried is the receiver's "never send this again": those payloads are marked
  ``failed`` with the reason (a 400, 413 or 422 on a batch is first split, so one
  bad payload does not condemn its neighbours).
- Exactly once: a whole run holds the spool's ``send`` lock, so concurrent senders
  never send a session twice. A sender that dies after the receiver answered 2xx
  but before the receipt was written sends those sessions again on the next run:
  receivers deduplicate on ``session_id``, which every payload carries (and each
  request also carries an ``Idempotency-Key`` header).
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consent._exceptions import ConsentError
from consent.profile import Scope
from consent.spool import Entry, Receipt, Spool, State
from consent.upload.spawn import BACKGROUND_BACKOFF_CAP_S, read_backoff
from consent.upload.transport import DEFAULT_LIMITS, Limits, _client, _deliver
from consent.upload.wire import (
    Format,
    PlannedRequest,
    _batches,
    _body,
    _check_payload,
    _halves,
    _headers,
    _Item,
    _make_item,
)

if TYPE_CHECKING:
    from consent.decision import Decision
    from consent.policy import Policy

__all__ = [
    "EndpointOutcome",
    "Failure",
    "Plan",
    "SendResult",
    "last_error",
    "plan_send",
    "run_background",
    "send_pending",
]

# A batch refused with one of these may hold a single bad payload: split it first.
_SPLIT_4XX = frozenset({400, 413, 422})


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
class Plan:
    """What a send would do now; nothing is changed to compute it."""

    enabled: bool
    requests: tuple[PlannedRequest, ...] = ()
    refused: tuple[Failure, ...] = ()
    note: str | None = None


@dataclass
class _Context:
    scope: Scope
    decision: Decision
    policy: Policy
    endpoints: list[str]
    fmt: Format
    allowed: frozenset[str] | None  # None: no acknowledgement to check against
    record_problem: str | None


def _decide(scope: Scope, endpoint: str | None) -> Decision:
    """The decision, after checking ``endpoint``: bad input is refused whatever the state."""
    from consent._urls import check_endpoint
    from consent.decision import decide_in

    if endpoint is not None:
        check_endpoint(endpoint, source="--endpoint")
    return decide_in(scope)


def _context(scope: Scope, endpoint: str | None, decision: Decision) -> _Context:
    from consent._urls import resolve_endpoints
    from consent.config import load_config
    from consent.policy import load_policy
    from consent.record import read_record

    policy = load_policy(scope.policy_path)
    try:
        config = load_config(scope.config_file)
    except ConsentError:
        config = {}  # the decision warns about it; the extras are unknown, the primary is not
    endpoints = resolve_endpoints(policy.endpoint, config, scope, endpoint)
    record, warning = read_record(scope.record_path)
    ack = record.acknowledgement if record else None
    allowed = None if ack is None else frozenset(ack.schema) & frozenset(policy.fields)
    problem = None
    if allowed is None:
        problem = warning or (
            f"No policy has been acknowledged in {scope.record_path}, so nothing can be "
            f"checked and sent; run `{scope.profile.cli_name} init`."
        )
    return _Context(scope, decision, policy, endpoints, policy.format, allowed, problem)


def _disabled_note(decision: Decision) -> str:
    return f"Usage statistics are off (decided by {decision.source}); nothing was sent."


def _prepare(
    spool: Spool, entries: Sequence[Entry], allowed: frozenset[str], *, mark: bool
) -> tuple[list[_Item], list[Failure]]:
    items: list[_Item] = []
    failures: list[Failure] = []
    retired = spool.retired_ids()
    for entry in entries:
        if entry.client_id in retired:
            # written under an id `stats forget` replaced: its deletion request
            # promised that nothing more arrives under it (the writer drops these
            # too; this catches one from a version that did not)
            if mark:
                with contextlib.suppress(ConsentError):
                    spool.delete(entry)
            continue
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
    from consent.decision import decide_in

    return decide_in(ctx.scope).enabled


@dataclass
class _Tally:
    sent: int = 0
    failures: list[Failure] = field(default_factory=list)
    outcomes: dict[str, EndpointOutcome] = field(default_factory=dict)
    transient: bool = False
    retry_after: float | None = None
    stop: str | None = None  # set when collection was turned off mid-run
    delivered: set[str] = field(default_factory=set)  # client ids an endpoint accepted

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
    t.delivered.update(item.entry.client_id for item in batch)
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
    scope: Scope,
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
    decision = _decide(scope, endpoint)
    if not decision.enabled:
        return SendResult(enabled=False, note=_disabled_note(decision))
    ctx = _context(scope, endpoint, decision)
    if spool is None:
        spool = Spool.existing(scope)
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
        _log_run(spool, "background" if background else "manual", result, result.error, tally)
        _remember_backoff(spool, tally)
    return result


def plan_send(
    spool: Spool | None = None,
    *,
    scope: Scope,
    endpoint: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Plan:
    """The exact requests a send would make now (``--dry-run``); sends and changes nothing."""
    decision = _decide(scope, endpoint)
    if not decision.enabled:
        return Plan(enabled=False, note=_disabled_note(decision))
    ctx = _context(scope, endpoint, decision)
    if spool is None:
        spool = Spool.existing(scope=scope)
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


# -- the send log and the background backoff (files the spool keeps) --------------------


def _log_run(
    spool: Spool,
    mode: str,
    result: SendResult | None,
    error: str | None,
    tally: _Tally | None = None,
) -> None:
    line: dict[str, Any] = {"mode": mode, "error": error}
    if result is not None:
        line.update(due=result.due, sent=result.sent, failed=result.failed, pending=result.pending)
    if tally is not None and tally.delivered:
        # `stats forget` asks for deletion only of ids that ever reached an endpoint;
        # a receipt says so too, but not for a sender killed before writing it
        line["delivered_client_ids"] = sorted(tally.delivered)
    spool.log_send(line)


def last_error(spool: Spool) -> str | None:
    """The error of the last send run, or None if it went well (or none ran)."""
    return spool.last_send_error()


def _remember_backoff(spool: Spool, tally: _Tally) -> None:
    """After a run: background flushes wait longer after each run that met a down endpoint."""
    import random

    failures, _ = read_backoff(spool)
    if tally.transient:
        failures += 1
        delay = min(BACKGROUND_BACKOFF_CAP_S, 30.0 * 2.0 ** (failures - 1))
        delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
        delay = max(delay, tally.retry_after or 0.0)
        spool.write_backoff(failures, time.time() + delay)
    elif failures or spool.read_backoff() is not None:
        spool.write_backoff(0, 0.0)  # also clears one from a clock run ahead


def run_background(*, scope: Scope, spool_root: Path | None = None) -> SendResult | None:
    """One background send: never waits for the lock, never raises, logs in the spool."""
    spool = Spool(spool_root) if spool_root is not None else None
    try:
        result = send_pending(spool, scope=scope, background=True)
        with contextlib.suppress(Exception):
            # sessions whose writer died before the payload, and temp files of killed
            # writers, go once they are an hour old; nobody else would remove them
            tidy = spool or Spool.existing(scope=scope)
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
        spool = spool or Spool.existing(scope=scope)
        if spool is not None:
            _log_run(spool, "background", None, error)
    return None
