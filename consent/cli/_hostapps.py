"""What ``consent.cli.build(profile)`` gives a host.

In a module of its own so that the dataclass resolves its annotations however
``consent.cli._app`` is loaded (``typer consent.cli._app utils docs`` executes that
file without registering it in ``sys.modules``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

    from consent.profile import AppProfile
    from consent.record import Choice

__all__ = ["HostApps"]


@dataclass(frozen=True)
class HostApps:
    """Everything a host mounts or calls, bound to its profile (see docs/host-guide.md)."""

    profile: AppProfile
    stats_app: typer.Typer
    """status, review, send, forget, on, off."""
    policy_app: typer.Typer
    """show, diff, accept."""
    config_app: typer.Typer
    """get, set, unset, list: for a host without a ``config`` command of its own."""
    init: Callable[..., Choice | None]
    """``init(answer=None, *, non_interactive=False)``: the consent step of the host's init."""
    settings: Callable[..., None]
    """``settings(key, value=None)``: what the host's own ``config set/get`` calls for
    the keys of :meth:`owns`; prints the outcome, raises ``typer.Exit`` on bad input."""

    def owns(self, key: str) -> bool:
        """Whether ``key`` is a usage-statistics setting (``usage_stats*``)."""
        from consent.config import CONFIG_KEYS

        return key in CONFIG_KEYS or key.startswith("usage_stats")
