"""What `stats forget` decides: delete this user's payloads, retire their client id,
and ask the server to delete what it holds, or hand back the e-mail that asks.

Whose data: the sessions filed under the consent record's client id, and Skyplane
0.3's payloads (read-only leftovers of this machine), in the spool in use and in
the per-user fallback. A spool root may be shared by several homes of one user
account (CI jobs, containers); the sessions of their client ids are theirs, so they
are neither deleted nor named.

What is asked for: the deletion request names this user's client ids. The e-mail,
the fallback when the request cannot be delivered, names only the ids that ever
reached an endpoint (a 2xx receipt, the send log, or Skyplane 0.3's
``sent_time_ms``): an e-mail about an id the server never saw would tie the user's
address to it for nothing, so with nothing ever sent there is no e-mail.

Final under concurrency: the wipe, the retiring of the old id in each spool and the
new client id all happen inside :meth:`Spool.forgetting`. A recorder that read the
old id before that finds it retired when it writes and drops its payload, and the
sender deletes any payload under a retired id, so nothing arrives under an old id
after its deletion request.

No rich, typer or questionary here: this is library code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from consent._exceptions import ConsentError, StorageError
from consent._fileio import read_bytes_nofollow
from consent.profile import Scope
from consent.record import ConsentRecord, new_client_id, read_record, update_record
from consent.spool import PAYLOAD_FILE, Entry, Spool, State

__all__ = [
    "DeletionEmail",
    "ForgetPlan",
    "ForgetResult",
    "deletion_email",
    "finish_stopped_forget",
    "forget",
    "plan_forget",
]


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


def _spools(scope: Scope) -> list[Spool]:
    """The spools that may hold this user's payloads: the one in use, and the fallback.

    The per-user fallback is looked at only when the spool root is not set
    explicitly: a refused explicit root is never replaced by the fallback.
    """
    spools: list[Spool] = []
    main = Spool.existing(scope=scope)
    if main is not None:
        spools.append(main)
    if scope.spool_override is None:
        fallback = Spool.existing_fallback(scope)
        if fallback is not None and all(fallback.root != s.root for s in spools):
            spools.append(fallback)
    return spools


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


def _unique(*groups: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        for value in group:
            seen.setdefault(value, None)
    return list(seen)


def _legacy_was_sent(entry: Entry) -> bool:
    try:
        doc = json.loads(read_bytes_nofollow(os.path.join(entry.directory, PAYLOAD_FILE)))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and bool(doc.get("sent_time_ms"))


@dataclass(frozen=True)
class _Mine:
    """This user's sessions in some spools, their client ids, and those that ever sent."""

    entries: list[Entry]
    ids: list[str]
    sent_ids: list[str]


def _mine(spools: Sequence[Spool], own_id: str | None) -> _Mine:
    entries: list[Entry] = []
    ids: list[str] = [own_id] if own_id else []
    sent: list[str] = []
    for spool in spools:
        logged = spool.logged_client_ids()
        if own_id is not None and own_id in logged:
            sent.append(own_id)
        for entry in spool.entries():
            if entry.state is State.LEGACY:
                if _legacy_was_sent(entry):
                    sent.append(entry.client_id)
            elif entry.client_id != own_id:
                continue  # another home's session in a shared root: not ours
            elif any(r.ok for r in entry.receipts):
                sent.append(entry.client_id)
            entries.append(entry)
            ids.append(entry.client_id)
    return _Mine(
        entries,
        [cid for cid in _unique(ids) if _is_personal_id(cid)],
        [cid for cid in _unique(sent) if _is_personal_id(cid)],
    )


@dataclass(frozen=True)
class ForgetPlan:
    """What :func:`forget` would delete, for the confirmation question."""

    payloads: int
    spool_dirs: tuple[str, ...]
    client_ids: tuple[str, ...]
    """Every id the deletion request would name: the record's and Skyplane 0.3's."""
    current_client_id: str | None
    """The id the consent record holds now, which is replaced; ``None`` without one."""


def plan_forget(*, scope: Scope) -> ForgetPlan:
    spools = _spools(scope)
    record, _ = read_record(scope.record_path)
    mine = _mine(spools, record.client_id if record else None)
    return ForgetPlan(
        payloads=len(mine.entries),
        spool_dirs=_roots(spools),
        client_ids=tuple(mine.ids),
        current_client_id=record.client_id if record else None,
    )


@dataclass(frozen=True)
class ForgetResult:
    removed: int
    """Payloads deleted, in every state."""
    spool_dirs: tuple[str, ...]
    old_client_ids: tuple[str, ...]
    """The ids the deletion request named."""
    new_client_id: str | None
    """``None`` when there was no consent record: an id is made when one is needed."""
    accepted_by: tuple[str, ...]
    """Endpoints that accepted the deletion request; empty when it was not sent."""
    send_problem: str | None
    email: DeletionEmail | None
    """The e-mail to send when the request was not accepted, naming the ids that ever
    sent something; ``None`` when it was accepted or nothing was ever sent."""
    rotation_problem: str | None = None
    """Why the client id could not be replaced (say, a full disk); ``None`` when it was."""


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


def _rotate_despite_interrupts(record_path: Path) -> tuple[str | None, str | None]:
    """:func:`_rotate_client_id`, finished even when Ctrl-C arrives during it.

    The old id is retired by then, and writers drop every payload under a retired id:
    a forget stopped here would leave the record naming a retired id, and every later
    session would be dropped. So the rotation is finished first, and the interrupt
    raised after it: the local data is gone and the id replaced, but the deletion
    request is not sent (as with a Ctrl-C during the request itself).
    """
    interrupted: BaseException | None = None
    for _ in range(3):
        try:
            result = _rotate_client_id(record_path)
        except KeyboardInterrupt as exc:
            interrupted = exc
            continue
        if interrupted is not None:
            raise interrupted
        return result
    assert interrupted is not None
    raise interrupted


def _contact(scope: Scope) -> str:
    from consent.policy import load_policy

    try:
        return load_policy(scope.policy_path).contact
    except ConsentError:
        # the policy in force is broken; the shipped one still names who to write to
        return load_policy(scope.profile.policy_file).contact


def _request_deletion(
    client_ids: Sequence[str], scope: Scope
) -> tuple[tuple[str, ...], str | None]:
    """(endpoints that accepted, problem)."""
    from consent.upload.deletion import send_deletion_request

    try:
        accepted = send_deletion_request(list(client_ids), scope=scope)
    except ConsentError as exc:
        return (), str(exc)
    except Exception as exc:  # a sender bug must not cost the user the e-mail fallback
        return (), f"The deletion request failed ({type(exc).__name__}: {exc})."
    endpoints = tuple(str(e) for e in accepted)
    if not endpoints:
        return (), "No endpoint accepted the deletion request."
    return endpoints, None


def finish_stopped_forget(root: str, scope: Scope) -> bool:
    """Replace the record's client id if a killed ``stats forget`` left it retired.

    Forget retires the old id in the spool, then replaces it in the record; a SIGKILL
    between the two leaves the record naming an id whose payloads every writer drops.
    Under the exclusive forget lock no forget is running, so a retired id found there
    was left by a dead one. Returns whether the id was replaced.
    """
    spool = Spool(Path(root))
    record_path = scope.record_path
    with spool.forgetting():
        record, _ = read_record(record_path)
        if record is None or record.client_id not in spool.retired_ids():
            return False
        _rotate_despite_interrupts(record_path)
    return True


def forget(*, scope: Scope) -> ForgetResult:
    """Delete this user's local payloads, rotate the client id, and ask the server to delete.

    Local deletion happens first and does not depend on the network. The deletion
    request names this user's client ids; when no endpoint accepts it,
    :attr:`ForgetResult.email` holds the exact e-mail to send to the policy's
    contact instead, naming the ids that ever sent something (none: no e-mail).
    If the client id cannot be replaced, it stays retired in the spool all the same:
    nothing more is written or sent under an id whose deletion was requested.
    """
    record_path = scope.record_path
    spools = _spools(scope)
    if not spools and os.path.lexists(record_path):
        # No spool yet, but a recorder may have read the id and be about to make one:
        # make it now, so the old id can be retired where that recorder will write.
        with contextlib.suppress(ConsentError):  # refused: no recorder can write there
            spools.append(Spool.open(scope))
    rotation_problem = None
    with contextlib.ExitStack() as stack:
        for spool in spools:
            stack.enter_context(spool.forgetting())
        # read inside the locks: no writer or sender moves while we decide
        record, _ = read_record(record_path)
        own_id = record.client_id if record else None
        mine = _mine(spools, own_id)
        removed = 0
        for spool in spools:
            removed += spool.remove_clients([own_id] if own_id else [], legacy=True)
            spool.forget_history()  # send times and errors are local data too
            if own_id is not None:
                # After the wipe, which frees space. If even this small write fails, the
                # disk is full for writers too; the deletion request must go out anyway.
                with contextlib.suppress(StorageError):
                    spool.retire([own_id])
        try:
            old_record_id, new_id = _rotate_despite_interrupts(record_path)
        except ConsentError as exc:
            # the local data is gone already; the server must still be asked to delete
            old_record_id, new_id, rotation_problem = None, None, str(exc)
        if old_record_id and old_record_id != own_id:
            # the record changed between our read and the rotation (another forget)
            for spool in spools:
                with contextlib.suppress(StorageError):
                    spool.retire([old_record_id])
    old_ids = [cid for cid in _unique(mine.ids, [old_record_id or ""]) if cid and cid != new_id]
    old_ids = [cid for cid in old_ids if _is_personal_id(cid)]
    if not old_ids:
        return ForgetResult(removed, _roots(spools), (), new_id, (), None, None, rotation_problem)
    accepted, problem = _request_deletion(old_ids, scope)
    email = None
    ever_sent = [cid for cid in old_ids if cid in mine.sent_ids]
    if not accepted and ever_sent:
        email = deletion_email(ever_sent, _contact(scope), tool=scope.profile.display_name)
    return ForgetResult(
        removed, _roots(spools), tuple(old_ids), new_id, accepted, problem, email, rotation_problem
    )


def _roots(spools: Sequence[Spool]) -> tuple[str, ...]:
    return tuple(str(s.root) for s in spools)
