"""The background spawner, and the detached child's ``main``.

The host never waits: :func:`start_background_flush` starts a detached
``python -m consent.upload`` and returns. This module is on the host's session
path, so it imports the standard library only (and the spool, which does too);
the child imports the sending machinery in :func:`main`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from consent.profile import DEFAULT_PROFILE, AppProfile

if TYPE_CHECKING:
    import subprocess

    from consent.spool import Spool

__all__ = ["FLUSH_INTERVAL_S", "main", "read_backoff", "start_background_flush"]

FLUSH_INTERVAL_S = 10.0
BACKGROUND_BACKOFF_CAP_S = 3600.0
_BACKGROUND_ALARM_S = 120


def read_backoff(spool: Spool) -> tuple[int, float]:
    """(failed background runs in a row, time before which no flush starts)."""
    failures, retry_at = spool.read_backoff() or (0, 0.0)
    if retry_at > time.time() + 1.2 * BACKGROUND_BACKOFF_CAP_S:
        return 0, 0.0  # written while the clock ran ahead: no backoff is ever that long
    return failures, retry_at


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
    started = spool.flush_started_at()
    if started is not None and 0 <= now - started < FLUSH_INTERVAL_S:
        return
    if now < read_backoff(spool)[1]:
        return
    with spool.lock("send", blocking=False) as free:
        if not free:
            return  # that sender lists the spool again before it ends
    spool.stamp_flush()

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
    import json

    return json.dumps({name: _plain(getattr(profile, name)) for name in _profile_args()})


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
    from consent.upload.send import run_background

    run_background(profile=profile, spool_root=args.spool_root)
    return 0
