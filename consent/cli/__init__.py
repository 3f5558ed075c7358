"""The Typer CLI, and the factory a host builds its own commands with.

``build(profile)`` returns the ``stats``, ``policy`` and ``config`` apps bound to the
host's :class:`~consent.profile.AppProfile`, with the ``init`` and ``settings``
functions its own commands call; ``mount(host_app, profile)`` adds the apps to the
host's Typer app without replacing any command it has. See docs/host-guide.md.

Only ``main`` is imported eagerly: the entry point runs the hottest read-only
commands without building the Typer app (see :mod:`consent.cli._main`), and the
other names load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from consent.cli._main import main

if TYPE_CHECKING:
    from consent.cli._app import HostApps, app, build, mount
    from consent.cli._config import config_app
    from consent.cli._context import current_profile, current_scope
    from consent.cli._init import run_init_flow
    from consent.cli._policy import policy_app
    from consent.cli._stats import stats_app

__all__ = [
    "HostApps",
    "app",
    "build",
    "config_app",
    "current_profile",
    "current_scope",
    "main",
    "mount",
    "policy_app",
    "run_init_flow",
    "stats_app",
]

_LAZY = {
    "HostApps": "consent.cli._app",
    "app": "consent.cli._app",
    "build": "consent.cli._app",
    "mount": "consent.cli._app",
    "config_app": "consent.cli._config",
    "current_profile": "consent.cli._context",
    "current_scope": "consent.cli._context",
    "run_init_flow": "consent.cli._init",
    "policy_app": "consent.cli._policy",
    "stats_app": "consent.cli._stats",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # _app first: importing it registers every command (stats review, send, ...)
    importlib.import_module("consent.cli._app")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
