"""What `stats review` decides: list, explain, approve, discard.

The CLI only parses arguments and renders what these functions return, so a host
that mounts the Typer sub-apps, or calls this module directly, gets the same rules:

- *approve* moves held payloads to pending; only held ones qualify.
- *discard* deletes held, pending, failed or legacy payloads. Sent ones are refused:
  deleting the local copy of something already delivered would suggest the server
  forgot it too, and only :func:`consent.forget.forget` (which asks the server) can
  offer that.

No rich, typer or questionary here: this is library code.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from consent._exceptions import InvalidValueError, UnknownSessionError
from consent._fileio import read_bytes_nofollow
from consent._time import utc_stamp
from consent.policy import Policy
from consent.profile import Scope
from consent.spool import PAYLOAD_FILE, Entry, Receipt, Spool, State, StateFilter, filter_states

__all__ = [
    "APPROVABLE",
    "DISCARDABLE",
    "LEGACY_NOTE",
    "Change",
    "FieldView",
    "ReviewItem",
    "ReviewListing",
    "StateFilter",
    "approve",
    "describe_fields",
    "discard",
    "find_item",
    "list_review",
    "markers_in",
    "review_json",
    "send_approved",
    "unique_prefixes",
]


APPROVABLE = frozenset({State.HELD})
DISCARDABLE = frozenset({State.HELD, State.PENDING, State.FAILED, State.LEGACY})

# Skyplane 0.3.x wrote these (schema "0.2"). The current policy does not describe
# them, yet a user looking at an old payload deserves to know what each one meant.
_LEGACY_DESCRIPTIONS: Mapping[str, str] = {
    "skyplane_version": "Skyplane version that wrote this payload.",
    "python_version": "Python version.",
    "schema_version": "Version of Skyplane 0.3's payload format.",
    "client_id": "The client id Skyplane 0.3 used (derived from the machine's MAC address).",
    "session_id": "An id for this one transfer, with its start time.",
    "source_region": "Region the data came from.",
    "destination_region": "Region the data went to.",
    "destination_regions": "Regions the data went to.",
    "source_cloud_provider": "Cloud the data came from.",
    "destination_cloud_provider": "Cloud the data went to.",
    "destination_cloud_providers": "Clouds the data went to.",
    "os": "Operating system platform, e.g. linux.",
    "session_start_timestamp_ms": "When the transfer started, in milliseconds since 1970.",
    "arguments_dict": "The command's arguments as Skyplane 0.3 recorded them.",
    "transfer_stats": "Runtime, throughput and other figures of the finished transfer.",
    "error_dict": "Where the transfer failed and the first 150 characters of the error.",
    "sent_time_ms": "When Skyplane 0.3 sent this payload; empty if it never did.",
}
LEGACY_NOTE = "Written by Skyplane 0.3: shown read-only, never sent again."


# -- one payload -------------------------------------------------------------------------


def _utc_from_ms(value: object) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return utc_stamp(value / 1000)
    except (OverflowError, OSError, ValueError):
        return None


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _tag(provider: object, region: object) -> str | None:
    if not isinstance(region, str) or not region:
        return None
    if isinstance(provider, str) and provider and ":" not in region:
        return f"{provider}:{region}"
    return region


@dataclass(frozen=True)
class ReviewItem:
    """One spooled session with its payload, as `stats review` shows it."""

    entry: Entry
    payload: Mapping[str, Any] | None
    """The parsed payload; ``None`` when the file is not a JSON object (see ``problem``)."""
    raw: bytes
    problem: str | None = None

    @property
    def session_id(self) -> str:
        return self.entry.session_id

    @property
    def client_id(self) -> str:
        return self.entry.client_id

    @property
    def state(self) -> State:
        return self.entry.state

    @property
    def path(self) -> str:
        return os.path.join(str(self.entry.directory), PAYLOAD_FILE)

    @functools.cached_property
    def sha256(self) -> str:
        """The digest of the spooled bytes, to compare with each receipt's."""
        import hashlib  # loads OpenSSL: only the detail view pays for it

        return hashlib.sha256(self.raw).hexdigest()

    @property
    def receipt(self) -> Receipt | None:
        """The receipt of the first endpoint (the policy's, or its override)."""
        return self.entry.receipts[0] if self.entry.receipts else None

    def _get(self, name: str) -> Any:
        return None if self.payload is None else self.payload.get(name)

    @property
    def collected_at(self) -> str | None:
        collected = self._get("collected_at")
        if isinstance(collected, str):
            return collected
        return _utc_from_ms(self._get("session_start_timestamp_ms")) or self.entry.updated_at

    @property
    def source(self) -> str | None:
        return _tag(self._get("source_cloud_provider"), self._get("source_region"))

    @property
    def destinations(self) -> tuple[str, ...]:
        many = self._get("destination_regions")
        if isinstance(many, list):
            providers = self._get("destination_cloud_providers")
            if not isinstance(providers, list) or len(providers) != len(many):
                providers = [None] * len(many)
            tags = (_tag(p, r) for p, r in zip(providers, many, strict=True))
            return tuple(t for t in tags if t)
        one = _tag(self._get("destination_cloud_provider"), self._get("destination_region"))
        return (one,) if one else ()

    def _transfer_stat(self, name: str) -> float | None:
        stats = self._get("transfer_stats")
        return _number(stats.get(name)) if isinstance(stats, dict) else None

    @property
    def runtime_s(self) -> float | None:
        runtime = _number(self._get("runtime_s"))
        return runtime if runtime is not None else self._transfer_stat("total_runtime_s")

    @property
    def throughput_gbps(self) -> float | None:
        gbps = _number(self._get("throughput_gbps"))
        return gbps if gbps is not None else self._transfer_stat("throughput_gbits")

    @property
    def has_error(self) -> bool:
        return bool(self._get("error") or self._get("error_dict"))

    def to_json(self) -> dict[str, Any]:
        """The item shape of ``stats review --json`` (docs/architecture.md §3.8)."""
        receipts = self.entry.receipts
        item: dict[str, Any] = {
            "session_id": self.session_id,
            "client_id": self.client_id,
            "state": self.state.value,
            "path": self.path,
            "payload": self.payload,
            "withheld": list(self.entry.withheld),
            "receipt": receipts[0].to_dict() if receipts else None,
        }
        if len(receipts) > 1:
            item["receipts"] = [r.to_dict() for r in receipts]
        if self.entry.reason:
            item["reason"] = self.entry.reason
        if self.problem:
            item["problem"] = self.problem
        return item

    def json_text(self) -> str:
        """:meth:`to_json` as compact JSON text, with the payload's own bytes inside.

        The spooled bytes are spliced in rather than parsed and re-encoded: they are
        what is sent, and 10,000 of them must print within the review budget.
        """
        item = self.to_json()
        if self.payload is None:
            return json.dumps(item, ensure_ascii=False)
        try:
            # the payload was parsed strictly (no NaN), so valid UTF-8 text is valid JSON
            body = self.raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return json.dumps(item, ensure_ascii=False)
        item["payload"] = _PAYLOAD_SLOT
        # ids, state and path come first and cannot hold NUL, so the first match is ours
        return json.dumps(item, ensure_ascii=False).replace(_PAYLOAD_SLOT_JSON, body.strip(), 1)


_PAYLOAD_SLOT = "\0payload\0"
_PAYLOAD_SLOT_JSON = json.dumps(_PAYLOAD_SLOT)


def review_json(items: Iterable[ReviewItem]) -> str:
    """The whole ``stats review --json`` document: a list, one item per line."""
    return "[\n" + ",\n".join(item.json_text() for item in items) + "\n]"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# One strict decoder for every payload: NaN and Infinity are Python's extension, not
# JSON, so a file holding them is reported rather than passed on to --json readers.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _item(entry: Entry) -> ReviewItem | None:
    """Read the payload of ``entry``; ``None`` when it vanished since the listing."""
    try:
        raw = read_bytes_nofollow(os.path.join(str(entry.directory), PAYLOAD_FILE))
    except FileNotFoundError:
        return None  # sent-and-forgotten or discarded by a concurrent command
    except OSError as exc:
        return ReviewItem(entry, None, b"", f"cannot be read ({exc.strerror})")
    try:
        doc = _DECODER.decode(raw.decode("utf-8-sig"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return ReviewItem(entry, None, raw, "is not valid JSON in UTF-8")
    if not isinstance(doc, dict):
        return ReviewItem(entry, None, raw, "is not a JSON object")
    return ReviewItem(entry, doc, raw)


# -- listing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewListing:
    """What `stats review` shows: the items of one filter and the counts of all."""

    items: list[ReviewItem]
    """Oldest collected first."""
    counts: dict[str, int]
    spool_dir: str
    spool_exists: bool
    enabled: bool
    review_mode: bool
    warnings: list[str]
    short_ids: Mapping[str, str]
    """Session id → its shortest unique prefix (at least 8 characters) in the spool."""

    def short_id(self, session_id: str) -> str:
        return self.short_ids.get(session_id, session_id)


SHORT_ID_MIN = 8


def unique_prefixes(session_ids: Iterable[str], minimum: int = SHORT_ID_MIN) -> dict[str, str]:
    """The shortest prefix of each id that no other id shares, as ``Spool.find`` matches.

    Most uuids differ in their first 8 characters; Skyplane 0.3's ids start with the
    date, so two transfers on one day need more.
    """
    ordered = sorted(session_ids, key=str.lower)
    lowered = [sid.lower() for sid in ordered]

    def shared(a: str, b: str) -> int:
        length = 0
        for x, y in zip(a, b, strict=False):
            if x != y:
                break
            length += 1
        return length

    result: dict[str, str] = {}
    for index, sid in enumerate(ordered):
        before = shared(lowered[index - 1], lowered[index]) if index else 0
        after = shared(lowered[index], lowered[index + 1]) if index + 1 < len(ordered) else 0
        result[sid] = sid[: max(minimum, before + 1, after + 1)]
    return result


def _sort_key(item: ReviewItem) -> tuple[str, str]:
    return (item.collected_at or "", item.session_id)


def list_review(state: StateFilter | str = "all", *, scope: Scope) -> ReviewListing:
    """Every spooled payload in ``state`` (or all), with the counts of every state."""
    from consent.decision import decide_in

    wanted = filter_states(state)
    decision = decide_in(scope)
    spool = Spool.existing(scope=scope)
    counts = {s.value: 0 for s in State}
    items: list[ReviewItem] = []
    every_id: list[str] = []
    if spool is not None:
        for entry in spool.entries():
            counts[entry.state.value] += 1
            every_id.append(entry.session_id)
            if wanted is None or entry.state in wanted:
                item = _item(entry)
                if item is not None:
                    items.append(item)
        items.sort(key=_sort_key)
    return ReviewListing(
        items=items,
        counts=counts,
        spool_dir=str(spool.root if spool else scope.spool_root),
        spool_exists=spool is not None,
        enabled=decision.enabled,
        review_mode=decision.review_before_upload,
        warnings=[*decision.warnings, *_spool_warnings(spool, scope)],
        short_ids=unique_prefixes(every_id),
    )


def _spool_warnings(spool: Spool | None, scope: Scope) -> list[str]:
    if spool is not None:
        return list(spool.warnings)
    refusal = Spool.refusal(scope)  # a refused root lists as empty: say why
    return [refusal] if refusal else []


def _spool_or_unknown(scope: Scope, wanted: str) -> Spool:
    spool = Spool.existing(scope=scope)
    if spool is None:
        raise UnknownSessionError(f"No session in the spool matches {wanted!r}: it is empty.")
    return spool


def find_item(id_or_prefix: str, *, scope: Scope) -> ReviewItem:
    """The one session whose id starts with ``id_or_prefix``; exit-2 errors otherwise."""
    entry = _spool_or_unknown(scope, id_or_prefix).find(id_or_prefix)
    item = _item(entry)
    if item is None:
        raise UnknownSessionError(f"Session {entry.session_id} is no longer in the spool.")
    return item


# -- detail --------------------------------------------------------------------------------

FieldStatus = Literal["included", "absent", "withheld", "undeclared", "legacy"]


@dataclass(frozen=True)
class FieldView:
    """One row of the detail view: a field, its value, and why it is collected."""

    name: str
    status: FieldStatus
    """``included``: in the payload; ``absent``: declared but not in this payload (for
    example ``error`` on a transfer that worked); ``withheld``: kept out because not
    acknowledged; ``undeclared``: in the payload but not in the policy in force;
    ``legacy``: a Skyplane 0.3 field."""
    value: Any
    description: str | None
    markers: tuple[str, ...] = ()


def markers_in(value: Any) -> tuple[str, ...]:
    """The redaction markers (``<path>``, ``<uri:s3>``, ...) found anywhere in ``value``."""
    from consent.scrub import MARKERS

    found: set[str] = set()
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            if "<" in current:
                found.update(m for m in MARKERS if m in current)
        elif isinstance(current, dict):
            stack.extend(current.keys())
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return tuple(m for m in MARKERS if m in found)


def describe_fields(item: ReviewItem, policy: Policy | None) -> list[FieldView]:
    """Every field of the payload with the policy's reason, in the policy's order.

    Withheld fields and declared fields missing from this payload are listed too, so
    the user sees the whole policy against this one payload.
    """
    payload = dict(item.payload or {})
    if item.state is State.LEGACY:
        return [
            FieldView(name, "legacy", value, _LEGACY_DESCRIPTIONS.get(name), markers_in(value))
            for name, value in payload.items()
        ]
    withheld = set(item.entry.withheld)
    rows: list[FieldView] = []
    declared = policy.fields if policy is not None else {}
    for name, spec in declared.items():
        if name in payload:
            value = payload.pop(name)
            rows.append(FieldView(name, "included", value, spec.description, markers_in(value)))
        elif name in withheld:
            rows.append(FieldView(name, "withheld", None, spec.description))
        else:
            rows.append(FieldView(name, "absent", None, spec.description))
    for name, value in payload.items():
        rows.append(FieldView(name, "undeclared", value, None, markers_in(value)))
    for name in sorted(withheld - set(declared) - {r.name for r in rows}):
        rows.append(FieldView(name, "withheld", None, None))
    return rows


# -- approve and discard ---------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What approve or discard did to one session; ``after`` is ``None`` once deleted."""

    session_id: str
    client_id: str
    before: State
    after: State | None

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "client_id": self.client_id,
            "before": self.before.value,
            "after": None if self.after is None else self.after.value,
        }


def _resolve(spool: Spool, ids: Iterable[str]) -> list[Entry]:
    """Every id resolved before anything changes, so one bad id changes nothing."""
    resolved: dict[tuple[str, str], Entry] = {}
    for wanted in ids:
        entry = spool.find(wanted)
        resolved.setdefault((entry.client_id, entry.session_id), entry)
    return list(resolved.values())


def _refuse(entry: Entry, verb: str) -> InvalidValueError:
    sid = entry.session_id
    if entry.state is State.LEGACY:
        why = "is a Skyplane 0.3 payload, kept read-only and never sent"
    elif entry.state is State.SENT:
        why = "was already sent; `stats forget` deletes it here and asks the server to"
    else:
        why = f"is {entry.state.value}; only held payloads wait for approval"
    return InvalidValueError(f"Cannot {verb} session {sid}: it {why}.")


def approve(ids: Sequence[str] | None, *, scope: Scope) -> list[Change]:
    """Move held payloads to pending: the ones named by id or prefix, or all when ``None``.

    Every id is checked first; an unknown, ambiguous or non-held one raises and
    nothing changes. A payload that is already pending is left as it is, without
    complaint, so approving twice is harmless.
    """
    if ids is None:
        spool = Spool.existing(scope=scope)
        if spool is None:
            return []
        with spool.lock():
            targets = spool.entries((State.HELD,))
            return [_approve_one(spool, entry) for entry in targets]
    spool = _spool_or_unknown(scope, ids[0] if ids else "")
    with spool.lock():
        targets = _resolve(spool, ids)
        for entry in targets:
            if entry.state not in APPROVABLE and entry.state is not State.PENDING:
                raise _refuse(entry, "approve")
        return [_approve_one(spool, e) for e in targets if e.state is State.HELD]


def send_approved(*, scope: Scope) -> bool:
    """Start a background send for newly approved payloads; False if none can start.

    In review mode no transfer ever queues a send (its payload is held), so without
    this an approved payload would wait for an explicit `stats send`.
    """
    from consent.decision import decide_in

    if not decide_in(scope).enabled:
        return False
    spool = Spool.existing(scope=scope)
    if spool is None:
        return False
    from consent.upload.spawn import start_background_flush

    start_background_flush(spool, scope=scope)
    return True


def _approve_one(spool: Spool, entry: Entry) -> Change:
    changed = spool.set_state(entry, State.PENDING)
    return Change(entry.session_id, entry.client_id, entry.state, changed.state)


def discard(
    ids: Sequence[str] | None,
    *,
    states: Collection[State] = (State.HELD,),
    scope: Scope,
) -> list[Change]:
    """Delete payloads that were not sent: by id or prefix, or every one in ``states``.

    Held, pending, failed and legacy payloads may be discarded; sent ones may not
    (see the module docstring). Every id is checked before anything is deleted.
    """
    if ids is None:
        refused = sorted(s.value for s in set(states) - DISCARDABLE)
        if refused:
            raise InvalidValueError(
                f"Only held, pending, failed or legacy payloads can be discarded, not "
                f"{', '.join(refused)}; `stats forget` deletes everything."
            )
        spool = Spool.existing(scope=scope)
        if spool is None:
            return []
        with spool.lock():
            return [_discard_one(spool, e) for e in spool.entries(tuple(states))]
    spool = _spool_or_unknown(scope, ids[0] if ids else "")
    with spool.lock():
        targets = _resolve(spool, ids)
        for entry in targets:
            if entry.state not in DISCARDABLE:
                raise _refuse(entry, "discard")
        return [_discard_one(spool, e) for e in targets]


def _discard_one(spool: Spool, entry: Entry) -> Change:
    spool.delete(entry)
    return Change(entry.session_id, entry.client_id, entry.state, None)
