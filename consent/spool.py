"""The on-disk outbox of usage payloads. This module alone knows the layout.

``{root}/{client_id}/{session_id}/usage_stats.json`` holds exactly the bytes that will
be sent; ``state.json`` beside it says where the session stands. A directory with a
payload but no state file was written by Skyplane 0.3.x and is ``legacy``: shown,
never changed or sent, removed only on the user's word (:meth:`Spool.delete` of that
one session, or :meth:`Spool.wipe`), never by :meth:`Spool.delete_unsent` or cleanup.

Crash safety comes from ordering, not locks: a new session writes ``state.json``
first and the payload last, and deletion removes the payload first, so a torn
session is always "state without payload", which listings skip and
:meth:`Spool.cleanup_incomplete` removes later. A torn session can therefore never
look like a legacy payload, nor like a payload waiting to be sent.

The spool owns every file under its root: besides the sessions, the dot-files of
the sender (its log, the flush stamp, the backoff state), the list of client ids
``stats forget`` retired, and the lock files. Other modules reach them only
through :class:`Spool` methods.

Locking rule: writing a *new* session takes only a shared lock, which waits just
while ``stats forget`` clears the spool (:meth:`Spool.forgetting`); writers then
see the retired ids and drop a payload under one of them. Every change to an
*existing* session (:meth:`Spool.set_state`,
:meth:`Spool.add_receipt`, :meth:`Spool.delete` and the bulk removals) runs under
the spool's ``send`` lock. The methods take it themselves; it is re-entrant per
:class:`Spool` object, so a sender that holds ``with spool.lock():`` for a whole
batch calls them freely inside it. A :class:`Spool` object is not thread-safe.

Standard library only: this module is on the host's recording path.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import re
import stat
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from consent import _spoolwrite
from consent._exceptions import InvalidValueError, StorageError, UnknownSessionError
from consent._fileio import atomic_write, file_lock, read_bytes_nofollow
from consent._spoolwrite import (
    BACKOFF_FILE,
    FLUSH_STAMP,
    FORGET_LOCK,
    PAYLOAD_FILE,
    RETIRED_FILE,
    SEND_LOG,
    STATE_FILE,
    _prepare_root,
    check_id,
    fallback_warning,
    is_id,
    open_root,
    override_refused,
    state_bytes,
    vet_configured_root,
    write_new,
)
from consent._time import utc_stamp
from consent.profile import Scope

__all__ = [
    "PAYLOAD_FILE",
    "SEND_LOG",
    "STATE_FILE",
    "Entry",
    "Receipt",
    "Spool",
    "State",
    "StateFilter",
    "filter_states",
]

# The file names, and the low-level reads and writes the host's cold path needs,
# live in consent._spoolwrite; this module builds on them.
_SEND_LOG_MAX_BYTES = 64 * 1024

_LOCK_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MIN_PREFIX = 4
_UNREADABLE = "unreadable state file"
_DIR_OPEN_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class State(enum.StrEnum):
    """Where a session stands; the one list of states (filters and screens derive theirs)."""

    PENDING = "pending"
    HELD = "held"
    SENT = "sent"
    FAILED = "failed"
    LEGACY = "legacy"


# The ``--state`` choices: every state, or ``all``. Built from State so that a new
# state reaches the CLI, the review library and the screens without a second list.
StateFilter = enum.StrEnum(  # type: ignore[misc]
    "StateFilter", [*((s.name, s.value) for s in State), ("ALL", "all")]
)


def filter_states(value: StateFilter | str) -> tuple[State, ...] | None:
    """The states a filter keeps (``None``: every state); ``InvalidValueError`` if unknown."""
    try:
        chosen = StateFilter(value)
    except ValueError:
        words = ", ".join(f.value for f in StateFilter)
        raise InvalidValueError(
            f"{value!r} is not a state to review: use one of {words}."
        ) from None
    return None if chosen.value == "all" else (State(chosen.value),)


# SENT is reached only through add_receipt, so a sent session always has its receipts.
_TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.PENDING: frozenset({State.HELD, State.FAILED}),
    State.HELD: frozenset({State.PENDING}),
}
_RECEIPT_STATES = frozenset({State.PENDING, State.SENT, State.FAILED})


def _sha256_hex(data: bytes) -> str:
    import hashlib  # loads OpenSSL; only the sending side needs it

    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Receipt:
    """Proof of one delivery attempt to one endpoint."""

    endpoint: str
    at: str
    status: int
    sha256: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @classmethod
    def for_payload(
        cls, endpoint: str, status: int, payload: bytes, *, at: str | None = None
    ) -> Receipt:
        """A receipt for ``payload`` (the spooled bytes), stamped now unless ``at`` is given."""
        return cls(endpoint, utc_stamp() if at is None else at, status, _sha256_hex(payload))

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "at": self.at,
            "status": self.status,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: object) -> Receipt:
        """Parse one receipt; raise ``ValueError`` when the shape is wrong."""
        if not isinstance(data, dict):
            raise ValueError("receipt is not an object")
        endpoint, at, status, sha = (data.get(k) for k in ("endpoint", "at", "status", "sha256"))
        if not (isinstance(endpoint, str) and isinstance(at, str) and isinstance(sha, str)):
            raise ValueError("receipt fields must be strings")
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError("receipt status must be an integer")
        return cls(endpoint, at, status, sha)


@dataclass(frozen=True)
class Entry:
    """One complete session in the spool, as it was when listed."""

    client_id: str
    session_id: str
    state: State
    directory: Path
    receipts: tuple[Receipt, ...] = ()
    reason: str | None = None
    updated_at: str | None = None  # None for legacy payloads, which have no state file
    withheld: tuple[str, ...] = ()  # fields kept out of the payload as not yet acknowledged

    @property
    def payload_path(self) -> Path:
        return self.directory / PAYLOAD_FILE


# -- root selection ---------------------------------------------------------------------


# -- state files ------------------------------------------------------------------------


def _parse_state(raw: bytes, client_id: str, session_id: str, directory: Path) -> Entry:
    """Build the entry from a state file; ``ValueError`` when it has the wrong shape."""
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError("state file is not an object")
    value = doc.get("state")
    if not isinstance(value, str):
        raise ValueError("state must be a string")
    state = State(value)
    if state is State.LEGACY:
        raise ValueError("legacy is never written to a state file")
    updated_at, reason, receipts = doc.get("updated_at"), doc.get("reason"), doc.get("receipts")
    if not isinstance(updated_at, str):
        raise ValueError("updated_at must be a string")
    if reason is not None and not isinstance(reason, str):
        raise ValueError("reason must be a string or null")
    if not isinstance(receipts, list):
        raise ValueError("receipts must be a list")
    withheld = doc.get("withheld", [])
    if not isinstance(withheld, list) or not all(isinstance(w, str) for w in withheld):
        raise ValueError("withheld must be a list of strings")
    return Entry(
        client_id,
        session_id,
        state,
        directory,
        tuple(Receipt.from_dict(r) for r in receipts),
        reason,
        updated_at,
        tuple(withheld),
    )


def _state_bytes(entry: Entry) -> bytes:
    return state_bytes(
        entry.state.value,
        entry.updated_at,
        entry.withheld,
        [r.to_dict() for r in entry.receipts],
        entry.reason,
    )


def _as_state(value: State | str) -> State:
    try:
        return State(value)
    except ValueError:
        words = ", ".join(s.value for s in State)
        raise InvalidValueError(f"{value!r} is not a spool state: use one of {words}.") from None


def _remove_session_dir(path: str) -> bool:
    """Remove a session directory without following links; True if it held a payload.

    The payload goes first so that a crash part-way leaves an incomplete session,
    never a stateless payload that would pass for legacy.
    """
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        os.unlink(path)  # a planted link goes; what it points to is never touched
        return False
    had_payload = False
    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
        os.unlink(os.path.join(path, PAYLOAD_FILE))
        had_payload = True
    _remove_tree(path)
    return had_payload


def _remove_tree(path: str) -> None:
    try:
        it = os.scandir(path)
    except FileNotFoundError:
        return
    with it:
        for child in it:
            if child.is_dir(follow_symlinks=False):
                _remove_tree(child.path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(child.path)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(path)


def _list_dir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StorageError(f"Could not list {path}: {exc.strerror}.") from exc


def _remove_stale_temp_files(directory: str, cutoff: float) -> None:
    """Drop temp files left by a writer that died mid-``atomic_write``."""
    with contextlib.suppress(OSError), os.scandir(directory) as it:
        for child in it:
            if child.name.startswith(".") and child.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    if child.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(child.path)


_R = TypeVar("_R")


def _storage_guard(func: Callable[[str], _R], path: str, gone: _R) -> _R:
    """Run one removal step: a path already gone yields ``gone``, other failures raise."""
    try:
        return func(path)
    except FileNotFoundError:
        return gone
    except OSError as exc:
        raise StorageError(f"Could not remove {path}: {exc.strerror}.") from exc


def _lstat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


# -- the spool --------------------------------------------------------------------------


def _with_receipt(entry: Entry, receipt: Receipt, required: frozenset[str]) -> Entry:
    """``entry`` with ``receipt`` replacing any for its endpoint; sent once all have one."""
    if entry.state not in _RECEIPT_STATES:
        raise InvalidValueError(f"Session {entry.session_id} is {entry.state} and is never sent.")
    receipts = (*(r for r in entry.receipts if r.endpoint != receipt.endpoint), receipt)
    delivered = {r.endpoint for r in receipts if r.ok}
    state = entry.state
    if state is State.PENDING and required <= delivered:
        state = State.SENT
    return replace(entry, state=state, receipts=receipts)


_PARALLEL_REWRITES_FROM = 64


class Spool:
    """The outbox at ``root``. Build it with :meth:`open` or :meth:`existing`.

    The constructor trusts ``root`` as given; the class methods choose and vet it.
    ``warnings`` holds at most one sentence when a fallback directory was chosen.

    ``durable`` says whether new payloads are fsynced. Every write is atomic (temp
    file and rename) either way, so no reader or crashed writer ever leaves a torn
    file. A spool in the shared temporary directory is not durable: ``/tmp`` is
    emptied at boot (or is RAM), so an fsync there could only protect a payload
    from a power cut that deletes it anyway, and it would cost the host several
    milliseconds per transfer on a disk-backed ``/tmp`` (bench/record.py).
    """

    def __init__(self, root: Path, warnings: Sequence[str] = (), *, durable: bool = True) -> None:
        self.root = Path(os.path.abspath(root))
        self.warnings: list[str] = list(warnings)
        self.durable = durable
        self._held_locks: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Spool({str(self.root)!r})"

    # -- choosing the root --------------------------------------------------------------
    @classmethod
    def open(cls, scope: Scope) -> Spool:
        """Create (0700, one level at a time) and vet the spool root, falling back once.

        Raises :class:`StorageError` when neither the configured root nor the
        per-user fallback is a private directory of ours, and when the root named
        by the spool-directory variable is refused: that one never falls back.
        """
        root, warnings, durable = open_root(scope)
        return cls(Path(root), warnings, durable=durable)

    @classmethod
    def existing(cls, scope: Scope) -> Spool | None:
        """The spool :meth:`open` would use, if it already exists; creates nothing.

        A hostile default root leads to the fallback when that exists (with a
        warning); otherwise, and always for a refused explicit root (see
        :meth:`refusal`), the answer is ``None``, meaning "nothing spooled".
        """
        candidate = scope.spool_dir
        refusal = vet_configured_root(scope, create=False)
        if refusal is None:
            return cls(Path(candidate))
        if refusal.missing or scope.spool_override is not None:
            return None
        fallback = cls.existing_fallback(scope)
        if fallback is not None:
            warning = fallback_warning(candidate, refusal, str(fallback.root))
            return cls(fallback.root, [warning])
        return None

    @staticmethod
    def refusal(scope: Scope) -> str | None:
        """Why the configured root would be refused, or ``None`` (fine, or not made yet).

        For ``stats status``: before anything is spooled there is no fallback to
        report, but a hostile root is worth a warning all the same.
        """
        refused = vet_configured_root(scope, create=False)
        if refused is None or refused.missing:
            return None
        if scope.spool_override is not None:
            return override_refused(refused, scope.profile.spool_dir_env)
        fallback = scope.fallback_spool_root
        return f"{refused}; usage statistics will be kept in {fallback} instead."

    @classmethod
    def existing_fallback(cls, scope: Scope) -> Spool | None:
        """The per-user fallback spool, if it exists and passes the checks; creates nothing."""
        fallback = scope.fallback_spool_dir
        if _prepare_root(fallback, scope.shared_temp_dir, whole_chain=True, create=False) is None:
            return cls(Path(fallback))
        return None

    # -- writing --------------------------------------------------------------------------
    def session_dir(self, client_id: str, session_id: str) -> Path:
        """Where a session lives (validated ids; nothing is created)."""
        return self.root / check_id("client id", client_id) / check_id("session id", session_id)

    def write(
        self,
        client_id: str,
        session_id: str,
        payload: bytes,
        state: State,
        *,
        withheld: Collection[str] = (),
    ) -> Entry:
        """Spool a new session's payload as ``pending`` or ``held``.

        The payload bytes are final: nothing here or later rewrites them. ``withheld``
        names the fields kept out of it (shown by review, kept in the state file).

        Takes the shared side of the ``forget`` lock, so it waits only while
        ``stats forget`` clears this spool. A payload under a client id that forget
        retired is dropped, not written: the recorder read that id before forget
        replaced it, and its deletion request promised no new data under it.
        """
        state = _as_state(state)
        if state not in (State.PENDING, State.HELD):
            raise InvalidValueError(f"A new session must be pending or held, not {state}.")
        updated_at = utc_stamp()
        write_new(
            str(self.root),
            client_id,
            session_id,
            payload,
            state.value,
            durable=self.durable,
            withheld=withheld,
            updated_at=updated_at,
            lock=not self._held_locks.get(FORGET_LOCK),
        )
        directory = self.session_dir(client_id, session_id)
        return Entry(client_id, session_id, state, directory, (), None, updated_at, tuple(withheld))

    # -- reading --------------------------------------------------------------------------
    def _scan(self) -> Iterator[tuple[str, str, str]]:
        """(client_id, session_id, dir) for every real session directory; no links."""
        try:
            clients = os.scandir(self.root)
        except (FileNotFoundError, NotADirectoryError):
            return
        with clients:
            for client in clients:
                if not is_id(client.name) or not client.is_dir(follow_symlinks=False):
                    continue
                try:
                    sessions = os.scandir(client.path)
                except OSError:
                    continue
                with sessions:
                    for session in sessions:
                        if is_id(session.name) and session.is_dir(follow_symlinks=False):
                            yield client.name, session.name, session.path

    @staticmethod
    def _load(client_id: str, session_id: str, directory: str) -> tuple[Entry, str] | None:
        """The entry and its sort time, or None for an incomplete or refused session."""
        try:
            payload_st = os.lstat(os.path.join(directory, PAYLOAD_FILE))
        except OSError:
            return None  # not written yet, or already being deleted
        if not stat.S_ISREG(payload_st.st_mode):
            return None  # a symlink or other oddity is never read, let alone sent
        path = Path(directory)
        try:
            raw = read_bytes_nofollow(os.path.join(directory, STATE_FILE))
        except FileNotFoundError:
            entry = Entry(client_id, session_id, State.LEGACY, path)
            return entry, utc_stamp(payload_st.st_mtime)
        except OSError:
            raw = None
        if raw is not None:
            try:
                entry = _parse_state(raw, client_id, session_id, path)
            except (ValueError, RecursionError):
                pass
            else:
                return entry, entry.updated_at or ""
        entry = Entry(client_id, session_id, State.FAILED, path, reason=_UNREADABLE)
        return entry, utc_stamp(payload_st.st_mtime)

    def entries(self, states: Collection[State] | None = None) -> list[Entry]:
        """Complete sessions, oldest change first (ties by session id), optionally filtered."""
        wanted = None if states is None else frozenset(_as_state(s) for s in states)
        found: list[tuple[str, str, Entry]] = []
        for client_id, session_id, directory in self._scan():
            loaded = self._load(client_id, session_id, directory)
            if loaded is None:
                continue
            entry, when = loaded
            if wanted is None or entry.state in wanted:
                found.append((when, session_id, entry))
        found.sort(key=lambda item: (item[0], item[1]))
        return [entry for _, _, entry in found]

    def counts(self) -> dict[str, int]:
        """Number of sessions per state; every state is a key, even at zero."""
        result = {state.value: 0 for state in State}
        for entry in self.entries():
            result[entry.state.value] += 1
        return result

    def find(self, id_or_prefix: str) -> Entry:
        """The one session whose id is, or starts with, ``id_or_prefix`` (any case)."""
        wanted = id_or_prefix.strip().lower()
        if len(wanted) < _MIN_PREFIX:
            raise UnknownSessionError(
                f"Session id {id_or_prefix!r} is too short: give at least {_MIN_PREFIX} characters."
            )
        matches: list[Entry] = []
        for client_id, session_id, directory in self._scan():
            if session_id.lower().startswith(wanted):
                loaded = self._load(client_id, session_id, directory)
                if loaded is not None:
                    matches.append(loaded[0])
        exact = [e for e in matches if e.session_id.lower() == wanted]
        if len(exact) == 1:
            return exact[0]
        if not matches:
            raise UnknownSessionError(f"No session in the spool matches {id_or_prefix!r}.")
        if len(matches) > 1:
            shown = ", ".join(sorted(e.session_id for e in matches)[:3])
            more = ", ..." if len(matches) > 3 else ""
            raise UnknownSessionError(
                f"Session id {id_or_prefix!r} is ambiguous: it matches {len(matches)} sessions "
                f"({shown}{more}). Give more characters."
            )
        return matches[0]

    def read_payload(self, entry: Entry) -> bytes:
        """The exact spooled bytes; a symlinked payload is refused, never followed."""
        path = self.session_dir(entry.client_id, entry.session_id) / PAYLOAD_FILE
        try:
            return read_bytes_nofollow(path)
        except FileNotFoundError:
            raise UnknownSessionError(
                f"Session {entry.session_id} is no longer in the spool."
            ) from None
        except OSError as exc:
            raise StorageError(f"Could not read the payload {path}: {exc.strerror}.") from exc

    def _reload(self, entry: Entry) -> Entry:
        directory = self.session_dir(entry.client_id, entry.session_id)
        loaded = self._load(entry.client_id, entry.session_id, str(directory))
        if loaded is None:
            raise UnknownSessionError(f"Session {entry.session_id} is no longer in the spool.")
        return loaded[0]

    # -- changing existing sessions (always under the send lock) -----------------------
    def set_state(self, entry: Entry, state: State, *, reason: str | None = None) -> Entry:
        """Move a session between states; the state on disk, not ``entry.state``, counts.

        Legal: pending -> held, pending -> failed (``reason`` required), held -> pending.
        Setting the current state again changes nothing. ``sent`` comes only from
        :meth:`add_receipt`; ``legacy`` sessions never change.
        """
        state = _as_state(state)
        with self.lock():
            current = self._reload(entry)
            if current.state is state:
                return current
            if current.state is State.LEGACY:
                raise InvalidValueError(
                    f"Session {entry.session_id} is a Skyplane 0.3 payload; it is never changed."
                )
            if state not in _TRANSITIONS.get(current.state, frozenset()):
                hint = " Record a receipt instead." if state is State.SENT else ""
                raise InvalidValueError(
                    f"Session {entry.session_id} cannot go from {current.state} to {state}.{hint}"
                )
            if state is State.FAILED and not reason:
                raise InvalidValueError("A failed session needs a reason.")
            return self._rewrite(replace(current, state=state, reason=reason))

    def add_receipt(
        self, entry: Entry, receipt: Receipt, *, required_endpoints: Collection[str]
    ) -> Entry:
        """Record ``receipt`` (replacing any earlier one for its endpoint).

        A pending session becomes ``sent`` once every endpoint in ``required_endpoints``
        has a 2xx receipt. ``receipt.sha256`` must be the digest of the spooled payload,
        which is checked. Held and legacy sessions take no receipts: they are never sent.
        """
        required = frozenset(required_endpoints)
        if not required:
            raise InvalidValueError("At least one required endpoint is needed.")
        if not _SHA256_RE.fullmatch(receipt.sha256):
            raise InvalidValueError("A receipt's sha256 must be 64 lowercase hex digits.")
        with self.lock():
            current = self._reload(entry)
            if current.state in _RECEIPT_STATES and receipt.sha256 != _sha256_hex(
                self.read_payload(current)
            ):
                raise InvalidValueError(
                    f"The receipt for session {entry.session_id} does not match its payload."
                )
            return self._rewrite(_with_receipt(current, receipt, required))

    def record_deliveries(
        self, deliveries: Sequence[tuple[Entry, Receipt]], *, required_endpoints: Collection[str]
    ) -> list[Entry]:
        """:meth:`add_receipt` for a whole accepted batch, for a sender holding the send lock.

        The sender read each payload from this spool and hashed those very bytes, and
        no one else changes a session while the lock is held, so nothing is re-read.
        Receipts are not fsynced: a receipt lost to a power cut only means the
        payload is sent again, which receivers deduplicate on ``session_id``. This is
        what lets 10,000 payloads go out in seconds rather than minutes.
        """
        required = frozenset(required_endpoints)
        if not required:
            raise InvalidValueError("At least one required endpoint is needed.")
        if not self._held_locks.get("send"):
            raise InvalidValueError("record_deliveries needs the send lock held.")
        changed = [_with_receipt(entry, receipt, required) for entry, receipt in deliveries]
        if len(changed) < _PARALLEL_REWRITES_FROM:
            return [self._rewrite(entry, durable=False) for entry in changed]
        from concurrent.futures import ThreadPoolExecutor

        # Creating a file is a slow system call on some file systems (0.2-0.4 ms on
        # this project's CI disk); each session has its own directory, so the
        # rewrites overlap safely while one thread waits on the kernel.
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="consent-receipts") as pool:
            return list(pool.map(lambda entry: self._rewrite(entry, durable=False), changed))

    @staticmethod
    def _rewrite(changed: Entry, *, durable: bool = True) -> Entry:
        changed = replace(changed, updated_at=utc_stamp())
        try:
            atomic_write(changed.directory / STATE_FILE, _state_bytes(changed), durable=durable)
        except OSError as exc:
            raise StorageError(
                f"Could not update the state of session {changed.session_id}: "
                f"{exc.strerror or exc}."
            ) from exc
        return changed

    def delete(self, entry: Entry) -> None:
        """Remove one session, whatever its state. Removing a missing session is a no-op."""
        directory = self.session_dir(entry.client_id, entry.session_id)
        with self.lock():
            _storage_guard(_remove_session_dir, str(directory), False)

    def delete_unsent(self) -> int:
        """Remove every pending and held session (opting out); return how many."""
        with self.lock():
            unsent = self.entries((State.PENDING, State.HELD))
            for entry in unsent:
                _storage_guard(_remove_session_dir, str(entry.directory), False)
            return len(unsent)

    def wipe(self) -> int:
        """Remove every session in every state, and the client dirs; keep the root.

        Returns the number of sessions that held a payload.
        """
        with self.lock():
            removed = 0
            for client in _list_dir(str(self.root)):
                if not is_id(client.name):
                    continue  # our lock files, and anything we did not make
                if not client.is_dir(follow_symlinks=False):
                    _storage_guard(os.unlink, client.path, None)
                    continue
                for session in _list_dir(client.path):
                    if session.is_dir(follow_symlinks=False):
                        removed += _storage_guard(_remove_session_dir, session.path, False)
                    else:
                        _storage_guard(os.unlink, session.path, None)
                with contextlib.suppress(OSError):
                    os.rmdir(client.path)  # not empty when a new session raced in: keep it
            return removed

    def cleanup_incomplete(self, older_than_s: float = 3600) -> int:
        """Remove sessions whose write died before the payload, once ``older_than_s`` old.

        Stale temp files in complete sessions go too. Returns the sessions removed.
        """
        cutoff = time.time() - older_than_s
        removed = 0
        with self.lock():
            for _client_id, _session_id, directory in list(self._scan()):
                payload_st = _lstat_or_none(os.path.join(directory, PAYLOAD_FILE))
                if payload_st is not None and stat.S_ISREG(payload_st.st_mode):
                    _remove_stale_temp_files(directory, cutoff)
                    continue
                dir_st = _lstat_or_none(directory)
                if dir_st is not None and dir_st.st_mtime < cutoff:
                    _storage_guard(_remove_session_dir, directory, False)
                    removed += 1
        return removed

    # -- locking --------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str = "send", *, blocking: bool = True) -> Iterator[bool]:
        """Hold ``{root}/.{name}.lock``; yields False if ``blocking=False`` and it is busy.

        Re-entrant for this object, so spool methods that take it work inside it.
        """
        if not _LOCK_NAME_RE.fullmatch(name):
            raise InvalidValueError(f"{name!r} is not a valid lock name.")
        if self._held_locks.get(name):
            self._held_locks[name] += 1
            try:
                yield True
            finally:
                self._held_locks[name] -= 1
            return
        with contextlib.ExitStack() as stack:
            try:
                got = stack.enter_context(file_lock(self._lock_path(name), blocking=blocking))
            except OSError as exc:
                raise StorageError(
                    f"Could not lock the usage spool at {self.root}: {exc.strerror}."
                ) from exc
            if not got:
                yield False
                return
            self._held_locks[name] = 1
            try:
                yield True
            finally:
                del self._held_locks[name]

    def _lock_path(self, name: str) -> str:
        return _spoolwrite.lock_file(str(self.root), name)

    # -- forgetting -----------------------------------------------------------------------
    @contextlib.contextmanager
    def forgetting(self) -> Iterator[None]:
        """Hold off every writer and sender while ``stats forget`` clears client ids.

        A writer already past the lock finishes first; one that arrives later waits,
        then sees the ids retired inside this block. Hold it across the wipe, the
        :meth:`retire` and the replacement of the client id.
        """
        with self.lock(FORGET_LOCK), self.lock("send"):
            yield

    def retired_ids(self) -> frozenset[str]:
        """Client ids ``stats forget`` retired here: nothing is written or sent under them."""
        return _spoolwrite.retired_ids(str(self.root))

    def retire(self, client_ids: Collection[str]) -> None:
        """Record ``client_ids`` as retired; only inside :meth:`forgetting`."""
        if not self._held_locks.get(FORGET_LOCK):
            raise InvalidValueError("retire needs the forget lock held.")
        ids = sorted(self.retired_ids() | {check_id("client id", c) for c in client_ids})
        try:
            atomic_write(self.root / RETIRED_FILE, "".join(f"{c}\n" for c in ids).encode())
        except OSError as exc:
            raise StorageError(
                f"Could not record the retired client ids in {self.root}: {exc.strerror or exc}."
            ) from exc

    def remove_clients(self, client_ids: Collection[str], *, legacy: bool = False) -> int:
        """Remove every session of ``client_ids`` (any state, complete or not), and with
        ``legacy`` every Skyplane 0.3 payload; other client ids are left alone.

        Returns the number of sessions that held a payload.
        """
        wanted = frozenset(client_ids)
        removed = 0
        with self.lock():
            for client in _list_dir(str(self.root)):
                if not is_id(client.name) or not client.is_dir(follow_symlinks=False):
                    continue
                mine = client.name in wanted
                for session in _list_dir(client.path):
                    if not mine and not (legacy and self._is_legacy_dir(session.path)):
                        continue
                    if session.is_dir(follow_symlinks=False):
                        removed += _storage_guard(_remove_session_dir, session.path, False)
                    else:
                        _storage_guard(os.unlink, session.path, None)
                with contextlib.suppress(OSError):
                    os.rmdir(client.path)  # kept while it holds someone else's sessions
        return removed

    @staticmethod
    def _is_legacy_dir(directory: str) -> bool:
        payload = _lstat_or_none(os.path.join(directory, PAYLOAD_FILE))
        return (
            payload is not None
            and stat.S_ISREG(payload.st_mode)
            and _lstat_or_none(os.path.join(directory, STATE_FILE)) is None
        )

    # -- the sender's files ----------------------------------------------------------------
    def log_send(self, fields: Mapping[str, Any]) -> None:
        """Append one line, stamped now, to the send log; never raises (the log only informs).

        One older generation is kept once the log passes 64 KiB.
        """
        path = self.root / SEND_LOG
        line = json.dumps({"at": utc_stamp(), **fields}) + "\n"
        with contextlib.suppress(OSError):
            if os.lstat(path).st_size > _SEND_LOG_MAX_BYTES:
                os.replace(path, self.root / (SEND_LOG + ".1"))
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        with contextlib.suppress(OSError):
            fd = os.open(path, flags, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def _send_log_lines(self, *, older: bool = False) -> list[dict[str, Any]]:
        """The log's lines, newest last; unreadable lines are skipped."""
        names = (SEND_LOG + ".1", SEND_LOG) if older else (SEND_LOG,)
        lines: list[dict[str, Any]] = []
        for name in names:
            try:
                raw = read_bytes_nofollow(self.root / name)
            except OSError:
                continue
            for text in raw.splitlines():
                with contextlib.suppress(ValueError, RecursionError):
                    doc = json.loads(text)
                    if isinstance(doc, dict):
                        lines.append(doc)
        return lines

    def last_send_error(self) -> str | None:
        """The error of the last send run, or ``None`` if it went well (or none ran)."""
        try:
            raw = read_bytes_nofollow(self.root / SEND_LOG)
        except OSError:
            return None
        for line in reversed(raw[-8192:].splitlines()):
            if not line.strip():
                continue
            try:
                error = json.loads(line).get("error")
            except (ValueError, AttributeError, RecursionError):
                return None
            return error if isinstance(error, str) else None
        return None

    def logged_client_ids(self) -> frozenset[str]:
        """Client ids the send log names as having reached an endpoint."""
        found: set[str] = set()
        for line in self._send_log_lines(older=True):
            ids = line.get("delivered_client_ids")
            if isinstance(ids, list):
                found.update(i for i in ids if isinstance(i, str))
        return frozenset(found)

    def flush_started_at(self) -> float | None:
        """When a background flush was last started here (epoch seconds), if ever."""
        return _spoolwrite.flush_started_at(str(self.root))

    def stamp_flush(self) -> None:
        """Note that a background flush starts now; raises ``OSError`` if it cannot."""
        _spoolwrite.stamp_flush(str(self.root))

    def read_backoff(self) -> tuple[int, float] | None:
        """(failed runs in a row, epoch time before which no flush starts), if recorded."""
        return _spoolwrite.read_backoff(str(self.root))

    def write_backoff(self, failures: int, retry_at: float) -> None:
        """Record the background backoff; never raises (a lost backoff only retries sooner)."""
        doc = {"failures": failures, "retry_at": retry_at}
        with contextlib.suppress(OSError):
            atomic_write(self.root / BACKOFF_FILE, json.dumps(doc).encode())

    def forget_history(self) -> None:
        """Delete the send log and the flush and backoff state; the locks stay."""
        for name in (SEND_LOG, SEND_LOG + ".1", FLUSH_STAMP, BACKOFF_FILE):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / name)
