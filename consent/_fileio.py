"""Durable, private file writes and advisory locks. Standard library only.

Every file this package writes goes through :func:`atomic_write`, so a reader sees
either the old bytes or the new bytes, never a torn file, and a crash leaves at
most a hidden ``.tmp`` file behind. Locks live on a separate ``.lock`` file so the
data file itself can be replaced atomically while the lock is held.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator

StrPath = str | os.PathLike[str]

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "atomic_write",
    "file_lock",
    "locked",
    "make_private_dir",
    "read_bytes_nofollow",
    "save_file",
]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dir(path: StrPath) -> None:
    """Create ``path`` (and parents) as 0700 directories; refuse a symlink at ``path``."""
    try:
        os.makedirs(path, mode=PRIVATE_DIR_MODE, exist_ok=True)
    except FileExistsError:
        # makedirs raises this when ``path`` exists but is not a directory
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", os.fspath(path)) from None
    if os.path.islink(path):
        raise OSError(errno.ELOOP, "refusing to use a symlinked directory", os.fspath(path))


def atomic_write(
    path: StrPath,
    data: bytes,
    mode: int = PRIVATE_FILE_MODE,
    *,
    durable: bool = True,
    sync_directory: bool = True,
) -> None:
    """Write ``data`` to ``path`` via temp file + fsync + ``os.replace``.

    Readers see the old bytes or the new, never a mix, whatever the options.
    ``sync_directory=False`` skips the directory fsync, for a caller that writes a
    second file in the same directory next and lets that write sync both renames.
    ``durable=False`` skips both fsyncs, for a file whose loss after a power cut is
    harmless (a receipt: losing it means the payload is sent again and the
    receiver deduplicates).

    The temporary file is created with ``O_EXCL | O_NOFOLLOW`` in the destination's
    directory, so a planted symlink can neither redirect the write nor be replaced.
    """
    directory, name = os.path.split(os.fspath(path))
    directory = directory or "."
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fchmod(fd, mode)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if not (durable and sync_directory):
        return
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_bytes_nofollow(path: StrPath) -> bytes:
    """Read a whole file, refusing to follow a symlink at its last component."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


@contextlib.contextmanager
def file_lock(path: StrPath, *, blocking: bool = True, shared: bool = False) -> Iterator[bool]:
    """Hold an ``fcntl`` lock on ``path`` (a dedicated ``.lock`` file), exclusive by default.

    Yields ``True`` when the lock is held. With ``blocking=False`` it yields
    ``False`` instead of waiting when another process holds it. ``shared=True``
    takes a shared lock: many holders at once, none while an exclusive one is held.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    kind = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(fd, kind | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: StrPath) -> Iterator[str]:
    """Hold the lock that serialises read-modify-write cycles of a file in the home.

    Yields the path to write: the symlink's target, so a dotfile manager's link
    survives. The lock lives beside the target as ``<name>.lock``. The config file
    and the consent record both use this one helper. Raises
    :class:`~consent._exceptions.StorageError` when the directory cannot be made or
    locked; errors inside the block pass through unchanged.
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    with contextlib.ExitStack() as stack:
        try:
            make_private_dir(directory)
            stack.enter_context(file_lock(target + ".lock"))
        except OSError as exc:
            from consent._exceptions import StorageError

            raise StorageError(f"Cannot write in {directory}: {exc.strerror or exc}.") from None
        yield target


def save_file(target: StrPath, data: bytes) -> None:
    """:func:`atomic_write` for a file the user owns (config, consent record).

    Raises :class:`~consent._exceptions.StorageError` with one sentence instead of
    ``OSError``; the file is unchanged then.
    """
    try:
        atomic_write(target, data)
    except OSError as exc:
        from consent._exceptions import StorageError

        raise StorageError(
            f"Could not save {os.fspath(target)}: {exc.strerror or exc}. The file is unchanged."
        ) from None
