"""The background spawner, and the detached child's ``main``.

The host never waits: :func:`start_background_flush` starts a detached
``python -m consent.upload`` and returns. This module is on the host's session
path, which records one transfer per process and pays for every import
(bench/cold.py): it reads the spool's stamp, backoff and lock with the plain
``os`` calls of :mod:`consent._spoolwrite` (the spool's own low-level helpers),
and starts the child with ``os.posix_spawn`` rather than ``subprocess``. The
child imports the sending machinery in :func:`main`.
"""

from __future__ import annotations

import os
import sys
import time

from consent import _spoolwrite
from consent.profile import DEFAULT_PROFILE, AppProfile, Scope

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from consent.spool import Spool

__all__ = [
    "FLUSH_INTERVAL_S",
    "main",
    "read_backoff",
    "run_detached",
    "start_background_flush",
]

FLUSH_INTERVAL_S = 10.0
BACKGROUND_BACKOFF_CAP_S = 3600.0
_BACKGROUND_ALARM_S = 120
# the sender yields to the transfer that started it, and to whatever runs next
_CHILD_NICENESS = 10


def read_backoff(spool: Spool | str | os.PathLike[str]) -> tuple[int, float]:
    """(failed background runs in a row, time before which no flush starts)."""
    failures, retry_at = _spoolwrite.read_backoff(_root_of(spool)) or (0, 0.0)
    if retry_at > time.time() + 1.2 * BACKGROUND_BACKOFF_CAP_S:
        return 0, 0.0  # written while the clock ran ahead: no backoff is ever that long
    return failures, retry_at


def _root_of(spool: Spool | str | os.PathLike[str]) -> str:
    root = spool.root if hasattr(spool, "root") else spool  # a Spool, or its root
    return os.fspath(root)


# -- the detached flush -----------------------------------------------------------------


class _Child:
    """A detached sender this process started: ``poll`` and ``wait`` as on ``Popen``.

    ``poll`` reaps it once it has exited, so a long-lived host keeps no zombies.
    """

    __slots__ = ("pid", "returncode")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def __repr__(self) -> str:
        return f"_Child(pid={self.pid}, returncode={self.returncode})"

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else (a SIGCHLD handler)
                self.returncode = 0
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit code; ``TimeoutError`` if it is still running after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"sender {self.pid} still runs after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        assert self.returncode is not None
        return self.returncode


_children: list[_Child] = []


def start_background_flush(
    spool: Spool | str | os.PathLike[str],
    *,
    scope: Scope,
) -> None:
    """Start a detached sender for ``spool`` (a :class:`Spool` or its root) and return
    at once. Never raises.

    At most one start per :data:`FLUSH_INTERVAL_S`, none while a sender runs, and
    none before the backoff after a failed run has passed.
    """
    try:  # noqa: SIM105 - contextlib is not loaded on the host path
        _start_flush(spool, scope)
    except Exception:  # noqa: S110 - the host must never fail because of telemetry
        pass


def _start_flush(spool: Spool | str | os.PathLike[str], scope: Scope) -> None:
    # Children that have exited are reaped here, so a long-lived host keeps no zombies.
    _children[:] = [child for child in _children if child.poll() is None]
    if getattr(sys, "frozen", False) or not sys.executable:
        return  # a frozen host has no interpreter to run `-m consent.upload`
    root = _root_of(spool)
    now = time.time()
    started = _spoolwrite.flush_started_at(root)
    if started is not None and 0 <= now - started < FLUSH_INTERVAL_S:
        return
    if now < read_backoff(root)[1]:
        return
    # a Spool object holding the send lock itself would have let the sender queue on it
    held = getattr(spool, "_held_locks", None) or {}
    if not held.get("send") and not _spoolwrite.lock_is_free(root, "send"):
        return  # that sender lists the spool again before it ends
    _spoolwrite.stamp_flush(root)

    # -P: the host's working directory must not shadow the consent package.
    command = [sys.executable, "-P", "-m", "consent.upload", "--spool-root", root]
    if scope.profile != DEFAULT_PROFILE:
        command += ["--profile", _profile_json(scope.profile)]
    _children.append(_launch(command, _child_env(scope)))


def _launch(command: list[str], env: Mapping[str, str]) -> _Child:
    """Start ``command`` detached: its own session, no terminal, nothing inherited.

    ``os.posix_spawn`` (a vfork and an exec) instead of ``subprocess``, whose import
    and fork cost the host more than the rest of the spawn. The sender lowers its
    own priority (:func:`run_detached`): made from here, right after the spawn, the
    same two calls stalled the host's session for 1.5-5 ms in about a third of the
    spawns, waiting in the kernel on the child's exec.
    """
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(
            command[0],
            command,
            env,
            # the child gets /dev/null as 0, 1 and 2; every other descriptor of the
            # host is close-on-exec (Python opens them so) and does not reach it
            file_actions=[(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)],
            setsid=True,  # the host's Ctrl-C and hangup are not the sender's
        )
    except NotImplementedError:  # a platform without POSIX_SPAWN_SETSID
        pid = _spawn_with_subprocess(command, env)
    finally:
        os.close(devnull)
    return _Child(pid)


def _spawn_with_subprocess(command: list[str], env: Mapping[str, str]) -> int:
    import subprocess

    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        start_new_session=True,
        env=env,
    ).pid


def _child_env(scope: Scope) -> Mapping[str, str]:
    if scope.environ is os.environ:
        return os.environ
    # The host decided with its own mapping; the process's settings (PATH, proxies)
    # still apply, but no decision input may leak in from outside that mapping.
    prefix = scope.profile.env_prefix + "_"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(prefix) and name != "DO_NOT_TRACK"
    }
    env.update(scope.environ)
    return env


def _profile_args() -> tuple[str, ...]:
    """The constructor's keyword arguments: enough to rebuild a host's profile in the child.

    Read off the constructor, so an argument added to AppProfile reaches the child
    without a second list to keep in step (and without importing inspect).
    """
    code = AppProfile.__init__.__code__
    first = code.co_argcount  # "self"; the rest are keyword-only
    return code.co_varnames[first : first + code.co_kwonlyargcount]


def _plain(value: object) -> object:
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def _profile_json(profile: AppProfile) -> str:
    from consent.payload import dumps_json  # json.dumps without importing json

    return dumps_json(
        {name: _plain(getattr(profile, name)) for name in _profile_args()}, ensure_ascii=True
    )


def _profile_from_json(text: str) -> AppProfile:
    import json

    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("profile must be a JSON object")
    return AppProfile(**{name: data[name] for name in _profile_args() if name in data})


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m consent.upload``: the detached flush. Always exits 0, silently.

    Only for a process of its own: it arms an alarm that ends the process.
    """
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m consent.upload", add_help=False)
    parser.add_argument("--spool-root", type=Path)
    parser.add_argument("--profile")
    try:
        args = parser.parse_args(argv)
        profile = DEFAULT_PROFILE if args.profile is None else _profile_from_json(args.profile)
    except (SystemExit, ValueError, TypeError):
        return 0
    # the sender's own edge: its scope is the profile it was handed, in its environment
    run_detached(Scope(profile), args.spool_root)
    return 0


def run_detached(scope: Scope, spool_root: Path | None = None) -> None:
    """One background send in a process of its own, which it ends if the send is stuck.

    The detached sender runs this, and so does a host's hidden ``stats send
    --background``, with the scope of the host whose command it is.
    """
    import signal

    _yield_to_the_host()
    from consent.upload.send import run_background

    signal.alarm(_BACKGROUND_ALARM_S)
    run_background(scope=scope, spool_root=spool_root)


def _yield_to_the_host() -> None:
    """Run niced and as a batch job: a host that starts its next transfer at once, or a
    busy machine, is not slowed by a sender."""
    try:
        own = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, min(own + _CHILD_NICENESS, 19))
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (OSError, AttributeError):
        pass  # only a courtesy: the sender runs all the same
