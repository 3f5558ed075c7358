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

# The one atomic write lives with the spool's light writer, which the host's cold
# path imports without contextlib; every other file goes through it from here.
from consent._spoolwrite import atomic_write

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
