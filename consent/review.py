"""What `stats review` and `stats forget` decide: list, explain, approve, discard, forget.

The CLI only parses arguments and renders what these functions return, so a host
that mounts the Typer sub-apps, or calls this module directly, gets the same rules:

- *approve* moves held payloads to pending; only held ones qualify.
- *discard* deletes held, pending, failed or legacy payloads. Sent ones are refused:
  deleting the local copy of something already delivered would suggest the server
  forgot it too, and only :func:`forget` (which asks the server) can offer that.
- *forget* wipes every payload of this user, under every client id they had, in the
  spool and in the per-user fallback spool, rotates the client id, and asks the
  server to delete the old ids, or returns the e-mail that asks for it.

No rich, typer or questionary here: this is library code.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import json
import os
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from consent._exceptions import ConsentError, InvalidValueError, UnknownSessionError
from consent._fileio import read_bytes_nofollow
from consent.policy import Policy
from consent.profile import DEFAULT_PROFILE, AppProfile
from consent.record import ConsentRecord, new_client_id, read_record, update_record
from consent.spool import PAYLOAD_FILE, Entry, Receipt, Spool, State

__all__ = [
    "APPROVABLE",
    "DISCARDABLE",
    "LEGACY_NOTE",
    "Change",
    "DeletionEmail",
    "FieldView",
    "ForgetPlan",
    "ForgetResult",
    "ReviewItem",
    "ReviewListing",
    "StateFilter",
    "approve",
    "deletion_email",
    "describe_fields",
    "discard",
    "find_item",
    "forget",
    "list_review",
    "markers_in",
    "plan_forget",
    "review_json",
    "send_approved",
    "unique_prefixes",
]


class StateFilter(enum.StrEnum):
    """The ``--state`` choices: one spool state, or ``all``."""

    PENDING = "pending"
    HELD = "held"
    SENT = "sent"
    FAILED = "failed"
    LEGACY = "legacy"
    ALL = "all"

    def states(self) -> tuple[State, ...] | None:
        """The spool states this filter keeps; ``None`` keeps every state."""
        return None if self is StateFilter.ALL else (State(self.value),)


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
        moment = dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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
        """The item shape of ``stats review --json`` (DESIGN §3.8)."""
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


def list_review(
    state: StateFilter | str = StateFilter.ALL,
    *,
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
) -> ReviewListing:
    """Every spooled payload in ``state`` (or all), with the counts of every state."""
    from consent.decision import decide

    env = os.environ if environ is None else environ
    wanted = _as_filter(state).states()
    decision = decide(profile, env)
    spool = Spool.existing(profile, env)
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
        spool_dir=str(spool.root if spool else profile.spool_root(env)),
        spool_exists=spool is not None,
        enabled=decision.enabled,
        review_mode=decision.review_before_upload,
        warnings=[*decision.warnings, *(spool.warnings if spool else [])],
        short_ids=unique_prefixes(every_id),
    )


def _as_filter(value: StateFilter | str) -> StateFilter:
    try:
        return StateFilter(value)
    except ValueError:
        words = ", ".join(f.value for f in StateFilter)
        raise InvalidValueError(
            f"{value!r} is not a state to review: use one of {words}."
        ) from None


def _spool_or_unknown(profile: AppProfile, env: Mapping[str, str], wanted: str) -> Spool:
    spool = Spool.existing(profile, env)
    if spool is None:
        raise UnknownSessionError(f"No session in the spool matches {wanted!r}: it is empty.")
    return spool


def find_item(
    id_or_prefix: str,
    *,
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
) -> ReviewItem:
    """The one session whose id starts with ``id_or_prefix``; exit-2 errors otherwise."""
    env = os.environ if environ is None else environ
    entry = _spool_or_unknown(profile, env, id_or_prefix).find(id_or_prefix)
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


def approve(
    ids: Sequence[str] | None,
    *,
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
) -> list[Change]:
    """Move held payloads to pending: the ones named by id or prefix, or all when ``None``.

    Every id is checked first; an unknown, ambiguous or non-held one raises and
    nothing changes. A payload that is already pending is left as it is, without
    complaint, so approving twice is harmless.
    """
    env = os.environ if environ is None else environ
    if ids is None:
        spool = Spool.existing(profile, env)
        if spool is None:
            return []
        with spool.lock():
            targets = spool.entries((State.HELD,))
            return [_approve_one(spool, entry) for entry in targets]
    spool = _spool_or_unknown(profile, env, ids[0] if ids else "")
    with spool.lock():
        targets = _resolve(spool, ids)
        for entry in targets:
            if entry.state not in APPROVABLE and entry.state is not State.PENDING:
                raise _refuse(entry, "approve")
        return [_approve_one(spool, e) for e in targets if e.state is State.HELD]


def send_approved(
    *, profile: AppProfile = DEFAULT_PROFILE, environ: Mapping[str, str] | None = None
) -> bool:
    """Start a background send for newly approved payloads; False if none can start.

    In review mode no transfer ever queues a send (its payload is held), so without
    this an approved payload would wait for an explicit `stats send`.
    """
    from consent.decision import decide

    env = os.environ if environ is None else environ
    if not decide(profile, env).enabled:
        return False
    spool = Spool.existing(profile, env)
    if spool is None:
        return False
    try:
        from consent.upload import start_background_flush
    except ImportError:
        return False
    start_background_flush(spool, profile=profile, environ=env)
    return True


def _approve_one(spool: Spool, entry: Entry) -> Change:
    changed = spool.set_state(entry, State.PENDING)
    return Change(entry.session_id, entry.client_id, entry.state, changed.state)


def discard(
    ids: Sequence[str] | None,
    *,
    states: Collection[State] = (State.HELD,),
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
) -> list[Change]:
    """Delete payloads that were not sent: by id or prefix, or every one in ``states``.

    Held, pending, failed and legacy payloads may be discarded; sent ones may not
    (see the module docstring). Every id is checked before anything is deleted.
    """
    env = os.environ if environ is None else environ
    if ids is None:
        refused = sorted(s.value for s in set(states) - DISCARDABLE)
        if refused:
            raise InvalidValueError(
                f"Only held, pending, failed or legacy payloads can be discarded, not "
                f"{', '.join(refused)}; `stats forget` deletes everything."
            )
        spool = Spool.existing(profile, env)
        if spool is None:
            return []
        with spool.lock():
            return [_discard_one(spool, e) for e in spool.entries(tuple(states))]
    spool = _spool_or_unknown(profile, env, ids[0] if ids else "")
    with spool.lock():
        targets = _resolve(spool, ids)
        for entry in targets:
            if entry.state not in DISCARDABLE:
                raise _refuse(entry, "discard")
        return [_discard_one(spool, e) for e in targets]


def _discard_one(spool: Spool, entry: Entry) -> Change:
    spool.delete(entry)
    return Change(entry.session_id, entry.client_id, entry.state, None)


# -- forget --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletionEmail:
    """The e-mail that asks the maintainers to delete the data of some client ids."""

    to: str
    subject: str
    body: str

    def text(self) -> str:
        return f"To: {self.to}\nSubject: {self.subject}\n\n{self.body}"


def deletion_email(
    client_ids: Sequence[str], contact: str, *, tool: str, on: dt.date | None = None
) -> DeletionEmail:
    day = (on or dt.datetime.now(dt.UTC).date()).isoformat()
    ids = "\n".join(f"    {cid}" for cid in client_ids)
    body = (
        "Hello,\n\n"
        f"Please delete all {tool} usage statistics stored for these client ids:\n\n"
        f"{ids}\n\n"
        f"On {day} I deleted my local copy of this data and replaced the client id,\n"
        "so no new data will arrive under these ids.\n\n"
        "Thank you.\n"
    )
    return DeletionEmail(contact, f"Please delete my {tool} usage statistics", body)


def _wipe_roots(profile: AppProfile, env: Mapping[str, str]) -> list[Spool]:
    """The spools that may hold this user's payloads: the one in use, and the fallback.

    The per-user fallback is looked at only when the spool root is not overridden:
    with an override the user said where their data lives, and if that place is
    refused ``Spool.existing`` already answers with the fallback.
    """
    spools: list[Spool] = []
    main = Spool.existing(profile, env)
    if main is not None:
        spools.append(main)
    if not env.get(profile.spool_dir_env):
        fallback = Spool.existing_fallback(profile)
        if fallback is not None and all(fallback.root != s.root for s in spools):
            spools.append(fallback)
    return spools


def _client_ids(entries: Iterable[Entry]) -> list[str]:
    return _unique(entry.client_id for entry in entries if _is_personal_id(entry.client_id))


def _is_personal_id(client_id: str) -> bool:
    """A uuid, with or without dashes (Skyplane 0.3 wrote bare hex).

    Skyplane 0.3 filed payloads without an id under ``unknown``; asking the server to
    delete "unknown" would delete other people's data, so such names are left out.
    """
    try:
        uuid.UUID(client_id)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ForgetPlan:
    """What :func:`forget` would delete, for the confirmation question."""

    payloads: int
    spool_dirs: tuple[str, ...]
    client_ids: tuple[str, ...]
    """Every id the deletion request would name."""
    current_client_id: str | None
    """The id the consent record holds now, which is replaced; ``None`` without one."""


def plan_forget(
    *, profile: AppProfile = DEFAULT_PROFILE, environ: Mapping[str, str] | None = None
) -> ForgetPlan:
    env = os.environ if environ is None else environ
    spools = _wipe_roots(profile, env)
    record_path = profile.record_path(env)
    record, _ = read_record(record_path)
    entries = [entry for spool in spools for entry in spool.entries()]
    ids = _unique([record.client_id] if record else [], _client_ids(entries))
    return ForgetPlan(
        payloads=len(entries),
        spool_dirs=tuple(str(s.root) for s in spools),
        client_ids=tuple(ids),
        current_client_id=record.client_id if record else None,
    )


@dataclass(frozen=True)
class ForgetResult:
    removed: int
    """Payloads deleted, in every state."""
    spool_dirs: tuple[str, ...]
    old_client_ids: tuple[str, ...]
    new_client_id: str | None
    """``None`` when there was no consent record: an id is made when one is needed."""
    accepted_by: tuple[str, ...]
    """Endpoints that accepted the deletion request; empty when it was not sent."""
    send_problem: str | None
    email: DeletionEmail | None
    """The e-mail to send when the request was not accepted; ``None`` otherwise."""
    rotation_problem: str | None = None
    """Why the client id could not be replaced (say, a full disk); ``None`` when it was."""


def _unique(*groups: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        for value in group:
            seen.setdefault(value, None)
    return list(seen)


def _rotate_client_id(record_path: Path) -> tuple[str | None, str | None]:
    """Give the record a fresh client id; (old id, new id), both ``None`` without a record."""
    if not os.path.lexists(record_path):
        return None, None  # nothing to rotate; creating a record here would be a new trace
    old: list[str] = []

    def rotate(current: ConsentRecord) -> ConsentRecord:
        old.append(current.client_id)
        return replace(current, client_id=new_client_id())

    new = update_record(record_path, rotate)
    # a damaged record was set aside by update_record: its id is unknown, not "old"
    return (old[-1] if old and old[-1] != new.client_id else None), new.client_id


def _contact(profile: AppProfile, env: Mapping[str, str]) -> str:
    from consent.policy import load_policy

    try:
        return load_policy(profile=profile, environ=env).contact
    except ConsentError:
        # the policy in force is broken; the shipped one still names who to write to
        return load_policy(profile.policy_file).contact


def _request_deletion(
    client_ids: Sequence[str], profile: AppProfile, env: Mapping[str, str]
) -> tuple[tuple[str, ...], str | None]:
    """(endpoints that accepted, problem); the upload module may not exist yet."""
    try:
        from consent import upload  # type: ignore[attr-defined,unused-ignore]

        send = upload.send_deletion_request
    except (ImportError, AttributeError):
        return (), "This version cannot send deletion requests."
    try:
        accepted = send(list(client_ids), profile=profile, environ=env)
    except ConsentError as exc:
        return (), str(exc)
    except Exception as exc:  # a sender bug must not cost the user the e-mail fallback
        return (), f"The deletion request failed ({type(exc).__name__}: {exc})."
    endpoints = tuple(str(e) for e in accepted)
    if not endpoints:
        return (), "No endpoint accepted the deletion request."
    return endpoints, None


def forget(
    *, profile: AppProfile = DEFAULT_PROFILE, environ: Mapping[str, str] | None = None
) -> ForgetResult:
    """Delete every local payload, rotate the client id, and ask the server to delete.

    Local deletion happens first and does not depend on the network. The deletion
    request names every client id this user had (the record's and every client
    directory in the spool). When it cannot be sent, :attr:`ForgetResult.email`
    holds the exact e-mail to send to the policy's contact instead.
    """
    env = os.environ if environ is None else environ
    spools = _wipe_roots(profile, env)
    record_path = profile.record_path(env)
    record, _ = read_record(record_path)
    spool_ids = _client_ids(entry for spool in spools for entry in spool.entries())
    removed = sum(spool.wipe() for spool in spools)
    from consent.upload import forget_history

    for spool in spools:
        forget_history(spool)  # send times and errors are local data too
    rotation_problem = None
    try:
        old_record_id, new_id = _rotate_client_id(record_path)
    except ConsentError as exc:
        # the local data is gone already; the server must still be asked to delete
        old_record_id, new_id, rotation_problem = None, None, str(exc)
    old_ids = _unique(
        [record.client_id] if record else [], [old_record_id] if old_record_id else [], spool_ids
    )
    old_ids = [cid for cid in old_ids if cid != new_id]
    if not old_ids:
        return ForgetResult(removed, _roots(spools), (), new_id, (), None, None, rotation_problem)
    accepted, problem = _request_deletion(old_ids, profile, env)
    email = None
    if not accepted:
        email = deletion_email(old_ids, _contact(profile, env), tool=profile.display_name)
    return ForgetResult(
        removed, _roots(spools), tuple(old_ids), new_id, accepted, problem, email, rotation_problem
    )


def _roots(spools: Sequence[Spool]) -> tuple[str, ...]:
    return tuple(str(s.root) for s in spools)
