"""The Typer CLI, and the factory a host builds its own commands with.

``build(profile)`` returns the ``stats``, ``policy`` and ``config`` apps bound to the
host's :class:`~consent.profile.AppProfile`, with the ``init`` and ``settings``
functions its own commands call; ``mount(host_app, profile)`` adds the apps to the
host's Typer app without replacing any command it has. See docs/host-guide.md.
"""

from consent.cli._app import HostApps, app, build, main, mount
from consent.cli._config import config_app
from consent.cli._context import current_profile
from consent.cli._init import run_init_flow
from consent.cli._policy import policy_app
from consent.cli._stats import stats_app

__all__ = [
    "HostApps",
    "app",
    "build",
    "config_app",
    "current_profile",
    "main",
    "mount",
    "policy_app",
    "run_init_flow",
    "stats_app",
]
