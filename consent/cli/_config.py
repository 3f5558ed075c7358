"""`consent config`: read and change the usage-statistics settings.

A host with a ``config`` command of its own routes the ``usage_stats*`` keys to
:func:`run_settings` (``HostApps.settings``): the same validation, the same atomic
write to every store, the same messages.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from consent.cli._context import current_scope
from consent.cli._terminal import (
    display_error,
    display_info,
    print_json,
    print_out,
    reports_errors,
)

if TYPE_CHECKING:
    from consent._exceptions import ConsentError
    from consent.actions import ConfigChange
    from consent.decision import Decision
    from consent.profile import AppProfile, Scope

config_app = typer.Typer(
    name="config",
    help="Read and change usage-statistics settings in ~/.skyplane/config.json.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _show(value: object) -> str:
    return "(unset)" if value is None else json.dumps(value)


def _source_words(decision: Decision, scope: Scope) -> str:
    """Where the value in force comes from, naming the variable or file."""
    source = decision.source
    if source == "env":
        return f"environment variable {scope.profile.enabled_env}"
    if source == "do_not_track":
        return "environment variable DO_NOT_TRACK"
    if source == "config":
        return str(scope.config_path)
    if source == "legacy_config":
        return f"{scope.legacy_ini_file} [flags]"
    if source == "invalid_config":
        return "a settings file that cannot be used (see `stats status`)"
    return "default"


def effective(key: str, scope: Scope) -> tuple[object, str]:
    """The value in force for ``key`` and where it comes from."""
    from consent._exceptions import ConsentError
    from consent.actions import config_get
    from consent.decision import decide_in

    stored = config_get(key, scope=scope)
    stored_in = str(scope.config_path) if stored is not None else "default"
    if key == "usage_stats":
        decision = decide_in(scope)
        return decision.enabled, _source_words(decision, scope)
    if key == "usage_stats_review":
        return decide_in(scope).review_before_upload, stored_in
    if key == "usage_stats_endpoint":
        from consent.policy import load_policy

        if scope.endpoint_override:
            return scope.endpoint_override, f"environment variable {scope.profile.endpoint_env}"
        if stored is not None:
            return stored, stored_in
        try:
            return load_policy(scope.policy_path).endpoint, "the policy"
        except ConsentError:
            return None, "the policy (which cannot be loaded)"
    return (stored or [], stored_in)


@config_app.command("get")
@reports_errors
def get(
    key: Annotated[str, typer.Argument(help="Setting name.")],
    effective_: Annotated[
        bool,
        typer.Option("--effective", help="Show the value in force and where it comes from."),
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Print one stored setting; exits 1 when it is unset (as `git config --get` does)."""
    from consent._exceptions import ExitCode
    from consent.actions import config_get

    scope = current_scope()
    if effective_:
        value, source = effective(key, scope)
        if json_:
            print_json({"key": key, "value": value, "source": source})
        else:
            from rich.markup import escape

            print_out(escape(f"{json.dumps(value)} (from {source})"))
        return
    value = config_get(key, scope=scope)
    if json_:
        print_json({key: value})
    elif value is not None:
        print_out(_show(value))
    if value is None:
        raise typer.Exit(int(ExitCode.FAILURE))


@config_app.command("list")
@reports_errors
def list_(json_: JsonOption = False) -> None:
    """Print every usage-statistics setting (keys the host owns are not shown)."""
    from consent.actions import config_list

    values = config_list(scope=current_scope())
    if json_:
        print_json(values)
        return
    width = max(len(name) for name in values)
    for name, value in values.items():
        print_out(f"{name.ljust(width)}  {_show(value)}")


def report_change(change: ConfigChange, profile: AppProfile, *, json_: bool = False) -> None:
    """What `config set`, `stats on/off` and a host's routed `config set` print."""
    key = change.key
    if json_:
        print_json(
            {"key": key, "before": change.before, "after": change.after, "dropped": change.dropped}
        )
    else:
        print_out(f"{key} = {_show(change.after)}")
    cli = profile.cli_name
    if key == "usage_stats" and change.after is False:
        if change.dropped:
            display_info(f"Deleted {change.dropped} unsent payload(s).")
        display_info(f"Usage statistics are off. Turn them back on with `{cli} stats on`.")
    decision = change.decision
    if key == "usage_stats" and decision and decision.source in ("env", "do_not_track"):
        overrider = profile.enabled_env if decision.source == "env" else "DO_NOT_TRACK"
        state = "on" if decision.enabled else "off"
        display_info(f"Note: {overrider} overrides this setting; usage statistics are {state}.")


def say_file_free_opt_outs(exc: ConsentError, profile: AppProfile, unsaved: str) -> NoReturn:
    """An opt-out that cannot be saved: the error, then the opt-outs that need no file."""
    from consent.notices import file_free_opt_outs

    display_error(str(exc))
    display_info(f"{unsaved} {file_free_opt_outs(profile)}")
    raise typer.Exit(int(exc.exit_code))


def set_and_report(key: str, value: str, scope: Scope, *, json_: bool = False) -> None:
    """`config set`, `stats on/off` and a host's routed `config set`: write, then report.

    An opt-out that cannot be written (an unwritable HOME, a damaged settings file)
    names the opt-outs that need no file, which still work.
    """
    from consent._exceptions import CorruptFileError, StorageError
    from consent.actions import config_set
    from consent.config import parse_switch

    try:
        change = config_set(key, value, scope=scope)
    except (StorageError, CorruptFileError) as exc:
        if key == "usage_stats" and parse_switch(value) is False:
            say_file_free_opt_outs(exc, scope.profile, "The setting was not saved.")
        raise
    report_change(change, scope.profile, json_=json_)


@config_app.command("set")
@reports_errors
def set_(
    key: Annotated[str, typer.Argument(help="Setting name, e.g. usage_stats.")],
    value: Annotated[str, typer.Argument(help="New value, e.g. true or false.")],
    json_: JsonOption = False,
) -> None:
    """Change one setting. `usage_stats` takes 1/true/yes/on or 0/false/no/off."""
    set_and_report(key, value, current_scope(), json_=json_)


@config_app.command("unset")
@reports_errors
def unset(
    key: Annotated[str, typer.Argument(help="Setting name.")], json_: JsonOption = False
) -> None:
    """Remove one setting, so its default applies."""
    from consent.actions import config_unset

    change = config_unset(key, scope=current_scope())
    if json_:
        print_json({"key": key, "before": change.before, "after": None})
    else:
        print_out(f"{key} unset (was {_show(change.before)})")


@reports_errors
def run_settings(key: str, value: str | None = None) -> None:
    """A host's own ``config set KEY VALUE`` (or ``config get KEY``) for a usage-stats key.

    Setting validates and writes exactly as ``config set`` does; getting prints the
    value in force and where it comes from. Bad input prints one sentence and raises
    ``typer.Exit(2)``, so a host command can call this and return.
    """
    scope = current_scope()
    if value is None:
        shown, source = effective(key, scope)
        from rich.markup import escape

        print_out(escape(f"{key} = {json.dumps(shown)} (from {source})"))
        return
    set_and_report(key, value, scope)
