"""Which host a command serves: the scope the factory built for the running command.

``consent.cli.build(profile)`` builds the Typer apps for one host. It passes the
profile to click as the context object (``ctx.obj`` of every command it built, for
commands that take a ``typer.Context``) and wraps each command so that every run
builds one :class:`~consent.profile.Scope` from that profile and ``os.environ``.
A command reads it with :func:`current_scope`, without a ``ctx`` parameter and
without importing click, which typer 0.27+ vendors privately, and passes it to
everything it calls.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from consent.profile import AppProfile, Scope

__all__ = ["bind_profile", "current_cli_name", "current_profile", "current_scope"]

P = ParamSpec("P")
R = TypeVar("R")

_SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("consent_scope", default=None)


def current_scope() -> Scope:
    """The scope of the command running now.

    Outside a command the factory built, a new scope of the default profile.
    """
    scope = _SCOPE.get()
    return Scope() if scope is None else scope


def current_profile() -> AppProfile:
    """The profile of the app running this command; the default profile outside one."""
    return current_scope().profile


def current_cli_name() -> str:
    """The command the hints name: ``consent``, or the host's own (``skyplane``)."""
    return current_profile().cli_name


def bind_profile(profile: AppProfile, command: Callable[P, R]) -> Callable[P, R]:
    """``command``, run in a scope of its own built from ``profile``, once per call.

    Typer reads the signature of the result, which is ``command``'s.
    """

    @functools.wraps(command)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _SCOPE.set(Scope(profile))
        try:
            return command(*args, **kwargs)
        finally:
            _SCOPE.reset(token)

    return bound
