"""`consent config`: read and change the usage-statistics settings."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from consent.cli._terminal import display_info, print_json, print_out, reports_errors

config_app = typer.Typer(
    name="config",
    help="Read and change usage-statistics settings in ~/.skyplane/config.json.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _show(value: object) -> str:
    return "(unset)" if value is None else json.dumps(value)


@config_app.command("get")
@reports_errors
def get(
    key: Annotated[str, typer.Argument(help="Setting name.")], json_: JsonOption = False
) -> None:
    """Print one setting."""
    from consent.actions import config_get

    value = config_get(key)
    if json_:
        print_json({key: value})
    else:
        print_out(_show(value))


@config_app.command("list")
@reports_errors
def list_(json_: JsonOption = False) -> None:
    """Print every usage-statistics setting (keys the host owns are not shown)."""
    from consent.actions import config_list

    values = config_list()
    if json_:
        print_json(values)
        return
    width = max(len(name) for name in values)
    for name, value in values.items():
        print_out(f"{name.ljust(width)}  {_show(value)}")


@config_app.command("set")
@reports_errors
def set_(
    key: Annotated[str, typer.Argument(help="Setting name, e.g. usage_stats.")],
    value: Annotated[str, typer.Argument(help="New value, e.g. true or false.")],
    json_: JsonOption = False,
) -> None:
    """Change one setting. `usage_stats` takes 1/true/yes/on or 0/false/no/off."""
    from consent.actions import config_set

    change = config_set(key, value)
    if json_:
        print_json(
            {"key": key, "before": change.before, "after": change.after, "dropped": change.dropped}
        )
    else:
        print_out(f"{key} = {_show(change.after)}")
    if key == "usage_stats" and change.after is False:
        if change.dropped:
            display_info(f"Deleted {change.dropped} unsent payload(s).")
        display_info(
            "Usage statistics are off. Turn them back on with "
            "`consent config set usage_stats true`."
        )
    decision = change.decision
    if key == "usage_stats" and decision and decision.source in ("env", "do_not_track"):
        overrider = "the environment variable" if decision.source == "env" else "DO_NOT_TRACK"
        state = "on" if decision.enabled else "off"
        display_info(f"Note: {overrider} overrides this setting; usage statistics are {state}.")


@config_app.command("unset")
@reports_errors
def unset(
    key: Annotated[str, typer.Argument(help="Setting name.")], json_: JsonOption = False
) -> None:
    """Remove one setting, so its default applies."""
    from consent.actions import config_unset

    change = config_unset(key)
    if json_:
        print_json({"key": key, "before": change.before, "after": None})
    else:
        print_out(f"{key} unset (was {_show(change.before)})")
