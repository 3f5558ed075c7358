"""The factory that builds the Typer apps for one host, and the `consent` app.

``build(profile)`` gives a host its own copies of the ``stats``, ``policy`` and
``config`` apps, bound to its profile, plus the init and settings functions its own
commands call; ``mount(host_app, profile)`` adds the apps the host does not already
have. The `consent` command itself is built the same way, with the default profile.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Annotated

import typer

import consent.cli._review  # noqa: F401  (registers stats review/forget)
from consent.cli import _send  # noqa: F401  (registers stats send)
from consent.cli._config import config_app, run_settings
from consent.cli._context import bind_profile, current_scope
from consent.cli._hostapps import HostApps
from consent.cli._init import init, init_flow
from consent.cli._policy import policy_app
from consent.cli._record import record
from consent.cli._stats import stats_app
from consent.cli._terminal import is_interactive, print_out, reports_errors
from consent.profile import DEFAULT_PROFILE, AppProfile

if TYPE_CHECKING:
    from consent.profile import Scope
    from consent.record import Choice

__all__ = ["HostApps", "app", "build", "mount"]


def _clone(template: typer.Typer, profile: AppProfile) -> typer.Typer:
    """A copy of ``template`` whose commands run with ``profile`` in force."""
    info = template.info
    clone = typer.Typer(
        name=info.name if isinstance(info.name, str) else None,
        help=info.help if isinstance(info.help, str) else None,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        # the click way to hand a command its host: ctx.obj
        context_settings={"obj": profile},
    )
    for command in template.registered_commands:
        bound = copy.copy(command)
        if command.callback is not None:
            bound.callback = bind_profile(profile, command.callback)
        clone.registered_commands.append(bound)
    return clone


def build(profile: AppProfile = DEFAULT_PROFILE) -> HostApps:
    """The Typer apps and functions for one host, every hint naming ``profile.cli_name``."""

    @reports_errors  # a damaged file is one sentence and an exit code inside the host too
    def init_(answer: Choice | None = None, *, non_interactive: bool = False) -> Choice | None:
        return bind_profile(profile, run_host_init)(answer, non_interactive=non_interactive)

    def settings(key: str, value: str | None = None) -> None:
        bind_profile(profile, run_settings)(key, value)

    return HostApps(
        profile=profile,
        stats_app=_clone(stats_app, profile),
        policy_app=_clone(policy_app, profile),
        config_app=_clone(config_app, profile),
        init=init_,
        settings=settings,
    )


def run_host_init(answer: Choice | None = None, *, non_interactive: bool = False) -> Choice | None:
    """The consent step of a host's ``init``: it runs after the host's own questions.

    The host's non-interactive flag means "don't ask; keep the current answer". Once
    the user has chosen, a non-interactive run prints one line (the choice in force
    and how to change it) instead of the notice; before that it shows the notice as
    :func:`~consent.cli._init.run_init_flow` does.
    """
    scope = current_scope()
    if answer is None and (non_interactive or not is_interactive()):
        line = _chosen_line(scope)
        if line is not None:
            print_out(line)
            return None
    return init_flow(answer, non_interactive=non_interactive, scope=scope)


def _chosen_line(scope: Scope) -> str | None:
    """One line for a user who has chosen: what is in force and how to change it."""
    from consent._exceptions import ConsentError
    from consent.decision import decide_in
    from consent.notices import policy_status
    from consent.policy import load_policy
    from consent.record import read_record

    record, _ = read_record(scope.record_path)
    ack = record.acknowledgement if record else None
    decision = decide_in(scope)
    if (ack is None or ack.via == "notice") and decision.source not in (
        "config",
        "legacy_config",
    ):
        return None
    try:
        if not policy_status(load_policy(scope.policy_path), record).up_to_date:
            return None  # a policy change: init_flow tells it in full
    except ConsentError:
        return None  # init_flow reports it
    profile = scope.profile
    cli = profile.cli_name
    if not decision.enabled:
        line = f"Usage statistics are off. To share them: {cli} stats on"
    elif decision.review_before_upload:
        line = f"Review mode: payloads wait for {cli} stats review. Stop: {cli} stats off"
    else:
        line = f"Usage statistics are shared anonymously. To stop: {cli} stats off"
    if decision.source == "env":
        line += f" ({profile.enabled_env} is set)"
    elif decision.source == "do_not_track":
        line += " (DO_NOT_TRACK is set)"
    return line


def _command_names(host_app: typer.Typer) -> set[str]:
    names: set[str] = set()
    for command in host_app.registered_commands:
        if isinstance(command.name, str):
            names.add(command.name)
        elif command.callback is not None:
            # Typer's own rule for a command registered without a name
            names.add(command.callback.__name__.lower().replace("_", "-"))
    for group in host_app.registered_groups:
        name = group.name if isinstance(group.name, str) else None
        if name is None and group.typer_instance is not None:
            sub = group.typer_instance.info.name
            name = sub if isinstance(sub, str) else None
        if name:
            names.add(name)
    return names


def mount(
    host_app: typer.Typer, profile: AppProfile = DEFAULT_PROFILE, *, config: bool = False
) -> HostApps:
    """Add ``stats`` and ``policy`` (and ``config`` when asked) to ``host_app``.

    A name the host already uses is never replaced: Typer would let the last one win,
    and the host's own command would silently stop working. A host with its own
    ``config`` command routes the ``usage_stats*`` keys to ``apps.settings`` instead.
    Returns the apps, for the host's ``init`` and ``config`` to call.
    """
    apps = build(profile)
    taken = _command_names(host_app)
    wanted = [("stats", apps.stats_app), ("policy", apps.policy_app)]
    if config:
        wanted.append(("config", apps.config_app))
    for name, sub_app in wanted:
        if name not in taken:
            host_app.add_typer(sub_app, name=name)
    return apps


def _show_version(show: object) -> None:
    if show is True:  # old typer on click 8.3+ hands an "unset" marker, which is truthy
        from consent import __version__

        typer.echo(f"consent {__version__}")
        raise typer.Exit()


def _build_main(profile: AppProfile) -> typer.Typer:
    apps = build(profile)
    main_app = typer.Typer(
        name=profile.cli_name,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"obj": profile, "help_option_names": ["-h", "--help"]},
    )

    @main_app.callback(
        help=f"Ask-first anonymous usage statistics for {profile.display_name}: "
        "see, review, send or delete them."
    )
    def _root(
        version: Annotated[
            bool,
            typer.Option(
                "--version",
                is_eager=True,
                callback=_show_version,
                help="Show the version and exit.",
            ),
        ] = False,
    ) -> None:
        pass

    main_app.command("init")(bind_profile(profile, init))
    main_app.command("record")(bind_profile(profile, record))
    main_app.add_typer(apps.config_app, name="config")
    main_app.add_typer(apps.stats_app, name="stats")
    main_app.add_typer(apps.policy_app, name="policy")
    return main_app


app = _build_main(DEFAULT_PROFILE)
