"""Spooling one new session, light enough for the host's cold path.

A host that records one transfer per process pays for every module it imports
(bench/cold.py), and :mod:`consent.spool` with ``pathlib``, ``dataclasses``,
``enum`` and ``re`` costs more than the rest of the session path together. This
module does the two things that path needs, on plain string paths and ``os``
calls only: choose and vet the spool root (:func:`open_root`, the same rules as
:meth:`consent.spool.Spool.open`) and write a new session (:func:`write_new`, the
same files and order as :meth:`consent.spool.Spool.write`). A refused root is left
to :meth:`Spool.open`. ``tests/test_spool_light.py`` checks that both agree with
:mod:`consent.spool`, which owns the layout.
"""

from __future__ import annotations

import fcntl
import os
import stat

from consent._exceptions import InvalidValueError, StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

    from consent.profile import Scope

__all__ = [
    "BACKOFF_FILE",
    "FLUSH_STAMP",
    "PAYLOAD_FILE",
    "RETIRED_FILE",
    "SEND_LOG",
    "STATE_FILE",
    "flush_started_at",
    "lock_is_free",
    "open_root",
    "read_backoff",
    "stamp_flush",
    "vet_configured_root",
    "write_new",
]

PAYLOAD_FILE = "usage_stats.json"
STATE_FILE = "state.json"
# Dot-files in the root: listings and wipes only touch id-named entries.
SEND_LOG = ".send.log"
FLUSH_STAMP = ".flush.stamp"
BACKOFF_FILE = ".flush.json"
RETIRED_FILE = ".retired"
FORGET_LOCK = "forget"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_DIR_OPEN_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ID_FIRST | frozenset("._-")


class _Refusal:
    __slots__ = ("missing", "path", "reason")

    def __init__(self, path: str, reason: str, missing: bool = False) -> None:
        self.path = path
        self.reason = reason
        self.missing = missing

    def __str__(self) -> str:
        return f"{self.path} {self.reason}"


def _unsafe_reason(st: os.stat_result) -> str | None:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid != os.getuid():
        return f"is owned by another user (uid {st.st_uid})"
    if mode & 0o022:
        return f"is writable by group or others (mode {mode:04o})"
    if mode & 0o700 != 0o700:
        return f"is not fully accessible to its owner (mode {mode:04o})"
    return None


def _check_chain(base: str, parts: Sequence[str], *, create: bool = True) -> _Refusal | None:
    """Walk ``base/parts...`` by directory fd, creating and checking each part.

    ``base`` itself is trusted (a sticky shared temp dir, or the parent the user
    chose). Working relative to the fd of the directory just checked means a rename
    or symlink swap after a check cannot redirect the next step.
    """
    try:
        fd = os.open(base, _DIR_OPEN_FLAGS)
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError)
        return _Refusal(base, f"cannot be opened ({exc.strerror})", missing=missing)
    try:
        path = base
        for name in parts:
            path = os.path.join(path, name)
            created = False
            if create:
                try:
                    os.mkdir(name, PRIVATE_DIR_MODE, dir_fd=fd)
                    created = True
                except FileExistsError:
                    pass
                except OSError as exc:
                    return _Refusal(path, f"cannot be created ({exc.strerror})")
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return _Refusal(path, "does not exist", missing=True)
            except OSError as exc:
                return _Refusal(path, f"cannot be inspected ({exc.strerror})")
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
                return _Refusal(path, _unsafe_reason(st) or "is not a directory")
            try:
                child = os.open(name, _DIR_OPEN_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                return _Refusal(path, f"cannot be opened ({exc.strerror})")
            os.close(fd)
            fd = child
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                return _Refusal(path, "was replaced while being checked")
            if created and stat.S_IMODE(now.st_mode) != PRIVATE_DIR_MODE:
                # Only a directory made a moment ago: a restrictive umask can strip our
                # own bits. An existing directory is never "fixed"; it is refused.
                os.fchmod(fd, PRIVATE_DIR_MODE)
                now = os.fstat(fd)
            reason = _unsafe_reason(now)
            if reason is not None:
                return _Refusal(path, reason)
        return None
    finally:
        os.close(fd)


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _prepare_root(
    root: str, shared: str, *, whole_chain: bool, create: bool = True
) -> _Refusal | None:
    """Why ``root`` is refused, or None once it is (made, with ``create``, and) vetted."""
    if whole_chain and root != shared and _inside(root, shared):
        # Every directory between the shared temp root and the spool is ours to vouch for.
        parts = root[len(shared) :].strip("/").split("/")
        return _check_chain(shared, parts, create=create)
    parent = os.path.dirname(root)
    if parent == root:
        return _Refusal(root, "is not a usable spool directory")
    if create:
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            return _Refusal(parent, f"cannot be created ({exc.strerror})")
    return _check_chain(parent, (os.path.basename(root),), create=create)


def override_refused(refusal: _Refusal, env_name: str) -> str:
    # An explicit choice is never swapped for the shared fallback: the user said
    # where their data lives, and the fallback may hold other people's sessions.
    return (
        f"No safe directory for usage statistics: {refusal}; {env_name} names it, so "
        "nothing is recorded until it names a private directory of yours (or is unset)."
    )


def fallback_warning(candidate: str, refusal: _Refusal, fallback: str) -> str:
    if refusal.path == candidate:
        return f"{refusal}; using {fallback} instead."
    return f"{candidate} is not safe to use because {refusal}; using {fallback} instead."


def vet_configured_root(scope: Scope, *, create: bool = True) -> _Refusal | None:
    """Why the spool root ``scope`` names is refused, or None once it is (made and) vetted.

    The shared default is vetted from the shared temp root down; a root the user
    named, from its parent.
    """
    return _prepare_root(
        scope.spool_dir,
        scope.shared_temp_dir,
        whole_chain=scope.spool_override is None,
        create=create,
    )


def open_root(scope: Scope) -> tuple[str, list[str], bool]:
    """Create (0700, one level at a time) and vet the spool root, falling back once:
    ``(root, warnings, durable)``. :meth:`consent.spool.Spool.open` is this.

    Raises :class:`StorageError` when neither the configured root nor the
    per-user fallback is a private directory of ours, and when the root named
    by the spool-directory variable is refused: that one never falls back.
    """
    candidate, shared = scope.spool_dir, scope.shared_temp_dir
    refusal = vet_configured_root(scope)
    if refusal is None:
        return candidate, [], not _inside(candidate, shared)
    if scope.spool_override is not None:
        raise StorageError(override_refused(refusal, scope.profile.spool_dir_env))
    fallback = scope.fallback_spool_dir
    second = _prepare_root(fallback, shared, whole_chain=True)
    if second is None:
        warning = fallback_warning(candidate, refusal, fallback)
        return fallback, [warning], not _inside(fallback, shared)
    raise StorageError(
        f"No safe directory for usage statistics: {refusal}, and {second}. "
        f"Set {scope.profile.spool_dir_env} to a private directory of yours."
    )


def is_id(name: str) -> bool:
    """Whether ``name`` may be a client or session id (and so a spool directory's name)."""
    return 0 < len(name) <= 128 and name[0] in _ID_FIRST and all(c in _ID_REST for c in name)


def check_id(kind: str, value: str) -> str:
    """``value``, when it is a valid client or session id; ``InvalidValueError`` if not.

    Uuids for new sessions; the wider set admits Skyplane 0.3.x ids such as
    "20230322_171911-1a2b3c4d" and "unknown". A leading alphanumeric keeps ".", ".."
    and our own dot-files (locks, temp files) out.
    """
    if not (isinstance(value, str) and is_id(value)):
        raise InvalidValueError(
            f"{value!r} is not a valid {kind}: use letters, digits, '.', '_' or '-' "
            "(at most 128, starting with a letter or digit)."
        )
    return value


def _make_real_dir(path: str) -> None:
    """Make ``path`` 0700 unless it exists; refuse anything but a real directory."""
    try:
        os.mkdir(path, PRIVATE_DIR_MODE)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise NotADirectoryError(20, "not a real directory", path) from None
    else:
        _fix_new_dir_mode(path)


def _fix_new_dir_mode(path: str) -> None:
    # Only for a directory made a moment ago, inside our private root: a restrictive
    # umask can strip our own bits.
    fd = os.open(path, _DIR_OPEN_FLAGS | os.O_NOFOLLOW)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_DIR_MODE:
            os.fchmod(fd, PRIVATE_DIR_MODE)
    finally:
        os.close(fd)


def _make_session_dir(directory: str) -> None:
    client = os.path.dirname(directory)
    # A concurrent wipe may remove the client dir between our two mkdirs: retry once.
    for attempt in range(2):
        _make_real_dir(client)
        try:
            os.mkdir(directory, PRIVATE_DIR_MODE)
        except FileNotFoundError:
            if attempt:
                raise
            continue
        except FileExistsError:
            if os.path.lexists(os.path.join(directory, PAYLOAD_FILE)):
                raise InvalidValueError(
                    f"Session {os.path.basename(directory)} is already in the spool."
                ) from None
            _make_real_dir(directory)  # an earlier write died before its payload
            return
        _fix_new_dir_mode(directory)
        return


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes,
    mode: int = PRIVATE_FILE_MODE,
    *,
    durable: bool = True,
    sync_directory: bool = True,
) -> None:
    """Write ``data`` to ``path`` via temp file + fsync + ``os.replace``.

    The package's one atomic write (:mod:`consent._fileio` serves it too), here
    because it needs no ``contextlib``: the host's cold path imports this module.
    Readers see the old bytes or the new, never a mix, whatever the options.
    ``sync_directory=False`` skips the directory fsync, for a caller that writes a
    second file in the same directory next and lets that write sync both renames.
    ``durable=False`` skips both fsyncs, for a file whose loss after a power cut is
    harmless (a receipt: losing it means the payload is sent again and the
    receiver deduplicates).

    The temporary file is created with ``O_EXCL | O_NOFOLLOW`` in the destination's
    directory, so a planted symlink can neither redirect the write nor be replaced.
    """
    path = os.fspath(path)
    directory, name = os.path.split(path)
    directory = directory or "."
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 - contextlib (and what it imports) stays off the host path
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if not (durable and sync_directory):
        return
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def state_bytes(
    state: str,
    updated_at: str | None,
    withheld: Sequence[str],
    receipts: Sequence[Mapping[str, object]] = (),
    reason: str | None = None,
) -> bytes:
    """A session's ``state.json``, on one line.

    ``json.dumps`` of the document, written by the same C encoder without importing
    ``json``; one line because a sender rewrites thousands of these.
    """
    from consent.payload import dumps_json

    doc = {
        "state": state,
        "updated_at": updated_at,
        "receipts": list(receipts),
        "reason": reason,
        "withheld": list(withheld),
    }
    return (dumps_json(doc, ensure_ascii=True) + "\n").encode()


def lock_file(root: str, name: str) -> str:
    """The file behind the spool's lock ``name``."""
    return os.path.join(root, f".{name}.lock")


def read_nofollow(path: str) -> bytes:
    """A whole file, refusing to follow a symlink at its last component."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def retired_ids(root: str) -> frozenset[str]:
    """Client ids ``stats forget`` retired (``.retired``, one per line); fail closed."""
    try:
        raw = read_nofollow(os.path.join(root, RETIRED_FILE))
    except FileNotFoundError:
        return frozenset()
    except OSError as exc:
        # fail closed: a writer that cannot tell whether its id was retired must not
        # write, and the caller reports the storage problem
        raise OSError(exc.errno, f"cannot read {RETIRED_FILE}: {exc.strerror}") from exc
    return frozenset(raw.decode("utf-8", "replace").split())


# -- the background sender's files: what the spawner checks before it starts one ---------


def flush_started_at(root: str) -> float | None:
    """When a background flush was last started in ``root`` (epoch seconds), if ever."""
    try:
        return os.lstat(os.path.join(root, FLUSH_STAMP)).st_mtime
    except OSError:
        return None


def stamp_flush(root: str) -> None:
    """Note that a background flush starts now; raises ``OSError`` if it cannot."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(os.path.join(root, FLUSH_STAMP), flags, PRIVATE_FILE_MODE)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def read_backoff(root: str) -> tuple[int, float] | None:
    """(failed runs in a row, epoch time before which no flush starts), if recorded.

    An unreadable or malformed file reads as ``(0, 0.0)``: no backoff.
    """
    from consent.config import parse_json  # json.loads without importing json

    try:
        data = parse_json(read_nofollow(os.path.join(root, BACKOFF_FILE)))
        return int(data["failures"]), float(data["retry_at"])  # type: ignore[index]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return 0, 0.0


def lock_is_free(root: str, name: str) -> bool:
    """Whether no process holds the spool's lock ``name`` (taken and released at once).

    Raises ``OSError`` when the lock file cannot be opened (a planted link).
    """
    fd = os.open(lock_file(root, name), _LOCK_FLAGS, PRIVATE_FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_new(
    root: str,
    client_id: str,
    session_id: str,
    payload: bytes,
    state: str,
    *,
    durable: bool,
    withheld: Collection[str] = (),
    updated_at: str | None = None,
    lock: bool = True,
    still_wanted: Callable[[], bool] | None = None,
) -> str | None:
    """Spool a new session as ``pending`` or ``held``; its directory. :meth:`Spool.write`
    is this.

    Takes only the shared side of the ``forget`` lock (``lock=False``: the caller
    holds that lock itself). A payload under a client id ``stats forget`` retired is
    dropped, not written, and so is one that ``still_wanted()`` (asked under the lock)
    turns down: an opt-out drops unsent payloads under the exclusive side of that lock,
    so a payload is either written before the drop or refused after it. Returns the
    session's directory, or ``None`` when the payload was dropped. ``state.json`` goes
    first and the payload last, so a crash leaves an incomplete session, never a
    stateless payload that would pass for legacy.
    """
    if updated_at is None:
        from consent._time import utc_stamp

        updated_at = utc_stamp()
    if state not in ("pending", "held"):
        raise InvalidValueError(f"A new session must be pending or held, not {state}.")
    if isinstance(withheld, str) or not all(isinstance(w, str) for w in withheld):
        raise InvalidValueError("withheld must be a collection of field names.")
    directory = os.path.join(
        root, check_id("client id", client_id), check_id("session id", session_id)
    )
    try:
        fd = os.open(lock_file(root, FORGET_LOCK), _LOCK_FLAGS, PRIVATE_FILE_MODE) if lock else -1
        try:
            # The shared side of ``stats forget``'s lock: wait only while it clears the
            # spool, then drop a payload under a client id it retired.
            if fd >= 0:
                fcntl.flock(fd, fcntl.LOCK_SH)
            if client_id in retired_ids(root) or (still_wanted is not None and not still_wanted()):
                return None
            _make_session_dir(directory)
            # one directory fsync, after the second rename, makes both durable
            atomic_write(
                os.path.join(directory, STATE_FILE),
                state_bytes(state, updated_at, tuple(withheld)),
                durable=durable,
                sync_directory=False,
            )
            atomic_write(os.path.join(directory, PAYLOAD_FILE), payload, durable=durable)
        finally:
            if fd >= 0:
                os.close(fd)  # closing the descriptor releases the lock
    except OSError as exc:
        raise StorageError(
            f"Could not write usage statistics to {directory}: {exc.strerror or exc}."
        ) from exc
    return directory
