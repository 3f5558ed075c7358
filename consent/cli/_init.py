"""`consent init`: the first-run moment of choice, embeddable in a host's own init."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from consent._exceptions import ConsentError
from consent.cli._context import current_scope
from consent.cli._terminal import (
    ask,
    display_info,
    display_notice,
    display_warning,
    in_ci,
    is_interactive,
    out_console,
    print_out,
    reports_errors,
)
from consent.profile import DEFAULT_PROFILE, AppProfile, Scope

if TYPE_CHECKING:
    from consent.decision import Decision
    from consent.policy import Policy
    from consent.record import Choice, Via

__all__ = ["ANSWERS", "INSTRUCTION", "QUESTION", "init", "init_flow", "run_init_flow"]

QUESTION = "Share anonymous usage statistics?"
ANSWERS: dict[Choice, str] = {
    "share": "Yes, share them",
    "review": "Yes, but let me review each upload first",
    "dont-share": "No, don't share",
}
# Short enough that question and instruction fit on one line of an 80-column terminal.
INSTRUCTION = "(arrow keys, Enter; Esc cancels)"


def _ask(policy: Policy, default: Choice, scope: Scope) -> Choice:
    """Show what is collected, where it goes and what each answer means, then ask.

    The panel is short enough that it, the question and its answers fit on an
    80x24 terminal with the summary's first line still in view. Ctrl-C and Esc
    exit 130 (see ``ask``).
    """
    import questionary

    from consent.notices import choice_notice
    from consent.render import notice_panel

    out_console().print(notice_panel(choice_notice(policy, scope)))
    question = questionary.select(
        QUESTION,
        choices=[questionary.Choice(title, value=value) for value, title in ANSWERS.items()],
        default=default,
        instruction=INSTRUCTION,
    )
    answer: Choice = ask(question)
    return answer


def _current_choice(decision: Decision, scope: Scope) -> Choice:
    """The answer to pre-select: what the user chose before, else "share" (upstream's default).

    Read from the config file rather than the decision, so an environment override
    (``DO_NOT_TRACK`` in this shell) does not pass for the user's own earlier answer.
    """
    from consent.actions import choice_of
    from consent.config import load_config

    if decision.source in ("config", "legacy_config"):
        return choice_of(decision)
    try:
        config = load_config(scope.config_path)
    except ConsentError:
        return "share"
    stored = config.get("usage_stats")
    if stored is False:
        return "dont-share"
    if stored is True:
        return "review" if config.get("usage_stats_review") is True else "share"
    return "share"


def _outcome_lines(choice: Choice, dropped: int, profile: AppProfile) -> list[str]:
    """What the answer does from now on, true for the answer given."""
    from consent.notices import plural

    # Kept under 80 columns: the terminal would otherwise break a command mid-word.
    cli = profile.cli_name
    change = f"To change it: {cli} init"
    if choice == "share":
        lines = ["Sharing usage statistics: each transfer sends one payload when it ends."]
    elif choice == "review":
        lines = [f"Sharing after your review: each payload waits for `{cli} stats review`."]
    else:
        lines = ["Not sharing usage statistics: nothing is collected, and nothing is sent."]
        if dropped:
            lines.append(f"Deleted {plural(dropped, 'unsent payload')}.")
    return [*lines, change]


def _override(decision: Decision, profile: AppProfile) -> str | None:
    """The environment variable that decides instead of the user's answer, in words."""
    if decision.source == "env":
        return f"{profile.enabled_env} is set"
    if decision.source == "do_not_track":
        return "DO_NOT_TRACK is set"
    return None


def _unset_hint(decision: Decision, profile: AppProfile) -> str:
    name = profile.enabled_env if decision.source == "env" else "DO_NOT_TRACK"
    return f"Unset {name} to let your answer count."


def _why_not_asked(non_interactive: bool) -> str:
    if non_interactive:
        return "--non-interactive"
    if in_ci():
        return "CI is set"
    return "not an interactive terminal"


def _damaged_backup(scope: Scope) -> str | None:
    """The newest copy ``update_record`` set aside for a damaged consent.toml."""
    path = scope.record_path
    copies = sorted(path.parent.glob(f"{path.name}.damaged-*"))
    return str(copies[-1]) if copies else None


def run_init_flow(
    answer: Choice | None = None,
    *,
    non_interactive: bool = False,
    profile: AppProfile = DEFAULT_PROFILE,
) -> Choice | None:
    """The first-run flow, for ``consent init`` and for a host's own ``init`` command.

    With ``answer`` it decides without asking (``via = "init-flag"``). On a terminal
    it shows the policy and asks (``via = "init-prompt"``). Otherwise it prints the
    notice on stderr, records that it was shown, and leaves the default in force
    (returns ``None``). Ctrl-C or Esc at the prompt writes nothing and raises
    ``typer.Exit(130)``. Library errors (a damaged file) raise :class:`ConsentError`.
    """
    return init_flow(answer, non_interactive=non_interactive, scope=Scope(profile))


def init_flow(answer: Choice | None, *, non_interactive: bool, scope: Scope) -> Choice | None:
    """:func:`run_init_flow` in the scope of the command running it."""
    from consent._exceptions import StorageError
    from consent.actions import announce, apply_choice
    from consent.decision import decide_in
    from consent.notices import first_notice
    from consent.policy import load_policy
    from consent.record import read_record

    profile = scope.profile
    policy = load_policy(scope.policy_path)
    cli = profile.cli_name
    _, damaged = read_record(scope.record_path)
    if answer is None and (non_interactive or not is_interactive()):
        told = announce(policy, include_first=True, scope=scope)
        _say_if_moved_aside(damaged, scope)
        decision = decide_in(scope)
        if told.notice is not None and told.notice.kind != "first":
            # a policy change the user has not heard of: the diff says more than the list
            display_notice(told.notice)
        else:
            display_notice(first_notice(policy, scope, held=False, decision=decision))
        state = "on" if decision.enabled else "off"
        override = _override(decision, profile)
        if override:
            state += f" ({override})"
        display_info(
            f"Not asked ({_why_not_asked(non_interactive)}); usage statistics stay {state}."
        )
        if override:
            display_info(_unset_hint(decision, profile))
        display_info(f"Choose: {cli} stats on, {cli} stats off, or {cli} init on a terminal.")
        return None

    via: Via = "init-flag"
    if answer is None:
        default = _current_choice(decide_in(scope), scope)
        answer = _ask(policy, default, scope)
        via = "init-prompt"
    try:
        result = apply_choice(answer, via, scope=scope, policy=policy)
    except StorageError as exc:
        if answer == "dont-share":
            from consent.cli._config import say_file_free_opt_outs

            say_file_free_opt_outs(exc, profile, "Your answer was not saved.")
        raise
    _say_if_moved_aside(damaged, scope)
    for line in _outcome_lines(answer, result.dropped, profile):
        print_out(line)
    decision = result.decision
    override = _override(decision, profile)
    if override and decision.enabled != (answer != "dont-share"):
        state = "on" if decision.enabled else "off"
        display_info(f"For now usage statistics stay {state}, because {override}.")
        display_info(_unset_hint(decision, profile))
    return answer


def _say_if_moved_aside(damaged: str | None, scope: Scope) -> None:
    if damaged is None:
        return
    backup = _damaged_backup(scope)
    if backup is None:
        return
    display_warning(
        f"{scope.record_path} was damaged, so it was moved aside to {backup} and a new "
        "record (with a new client id) was started."
    )


@reports_errors
def init(
    yes: Annotated[bool, typer.Option("--yes", help="Share anonymous usage statistics.")] = False,
    no: Annotated[bool, typer.Option("--no", help="Don't share.")] = False,
    review: Annotated[
        bool, typer.Option("--review", help="Share, but hold each upload for your review.")
    ] = False,
    non_interactive: Annotated[
        bool,
        typer.Option(
            "--non-interactive", help="Never prompt: show the notice and keep the default."
        ),
    ] = False,
) -> None:
    """Choose whether to share anonymous usage statistics (asks on a terminal)."""
    from consent._exceptions import BadInputError

    flags: tuple[tuple[bool, Choice], ...] = (
        (yes, "share"),
        (review, "review"),
        (no, "dont-share"),
    )
    chosen = [choice for flag, choice in flags if flag]
    if len(chosen) > 1:
        raise BadInputError("Give at most one of --yes, --review and --no.")
    try:
        init_flow(
            chosen[0] if chosen else None,
            non_interactive=non_interactive,
            scope=current_scope(),
        )
    except typer.Exit as exc:
        # typer.Exit is an Exception, which reports_errors would turn into an
        # "internal error"; SystemExit passes through it with the intended code.
        raise SystemExit(exc.exit_code) from None
