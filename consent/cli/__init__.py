"""The Typer CLI. Hosts mount ``stats_app``, ``config_app`` and ``policy_app``,
and call ``run_init_flow`` from their own ``init`` command."""

from consent.cli._app import app, main
from consent.cli._config import config_app
from consent.cli._init import run_init_flow
from consent.cli._policy import policy_app
from consent.cli._stats import stats_app

__all__ = ["app", "config_app", "main", "policy_app", "run_init_flow", "stats_app"]
