"""Which host a command serves: the profile the factory bound to the running command.

``consent.cli.build(profile)`` builds the Typer apps for one host. It passes the
profile to click as the context object (``ctx.obj`` of every command it built, for
commands that take a ``typer.Context``) and binds it around each command it wraps,
so a command reads it with :func:`current_profile` without a ``ctx`` parameter and
without importing click, which typer 0.27+ vendors privately.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from consent.profile import DEFAULT_PROFILE, AppProfile

__all__ = ["bind_profile", "current_cli_name", "current_profile"]

P = ParamSpec("P")
R = TypeVar("R")

_PROFILE: contextvars.ContextVar[AppProfile] = contextvars.ContextVar(
    "consent_profile", default=DEFAULT_PROFILE
)


def current_profile() -> AppProfile:
    """The profile of the app running this command; the default profile outside one."""
    return _PROFILE.get()


def current_cli_name() -> str:
    """The command the hints name: ``consent``, or the host's own (``skyplane``)."""
    return _PROFILE.get().cli_name


def bind_profile(profile: AppProfile, command: Callable[P, R]) -> Callable[P, R]:
    """``command``, run with ``profile`` in force; the signature Typer reads is kept."""

    @functools.wraps(command)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _PROFILE.set(profile)
        try:
            return command(*args, **kwargs)
        finally:
            _PROFILE.reset(token)

    return bound
