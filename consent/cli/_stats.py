"""`consent stats`: status, on and off here; review, forget and send register themselves."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from consent.cli._context import current_scope
from consent.cli._terminal import (
    display_notice,
    display_warning,
    print_json,
    print_out,
    reports_errors,
)

stats_app = typer.Typer(
    name="stats",
    help="See, review, send and delete usage statistics.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def announce_policy_change() -> None:
    """Tell the user, once, that the policy in force changed since they acknowledged it."""
    from consent.actions import announce
    from consent.policy import load_policy

    scope = current_scope()
    notice = announce(load_policy(scope.policy_path), include_first=False, scope=scope).notice
    if notice is not None:
        display_notice(notice)


@stats_app.command("status")
@reports_errors
def status(json_: JsonOption = False) -> None:
    """Show whether usage statistics are on and why, the policy, and what is stored."""
    from consent._exceptions import ConsentError
    from consent.status import snapshot, status_json

    scope = current_scope()
    with contextlib.suppress(ConsentError):  # the snapshot reports it as a warning
        announce_policy_change()
    snap = snapshot(scope)
    if json_:
        print_json(status_json(snap))
        return
    from consent.render import status_panel

    print_out(status_panel(snap, scope))
    for warning in snap.warnings:
        display_warning(warning)


def _switch(value: str, json_: bool) -> None:
    from consent.cli._config import set_and_report

    set_and_report("usage_stats", value, current_scope(), json_=json_)


@stats_app.command("on")
@reports_errors
def on(json_: JsonOption = False) -> None:
    """Turn usage statistics on (review mode, if chosen before, stays as it was)."""
    _switch("true", json_)


@stats_app.command("off")
@reports_errors
def off(json_: JsonOption = False) -> None:
    """Turn usage statistics off, in every settings file, and delete unsent payloads."""
    _switch("false", json_)
