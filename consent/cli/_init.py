"""`consent init`: the first-run moment of choice, embeddable in a host's own init."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from consent._exceptions import ExitCode
from consent.cli._terminal import (
    display_info,
    display_notice,
    err_console,
    is_interactive,
    out_console,
    print_out,
    reports_errors,
)
from consent.profile import DEFAULT_PROFILE, AppProfile

if TYPE_CHECKING:
    from consent.policy import Policy
    from consent.record import Choice

__all__ = ["init", "run_init_flow"]

ANSWERS: dict[Choice, str] = {
    "share": "Share anonymous usage statistics",
    "review": "Share, but let me review each upload first",
    "dont-share": "Don't share",
}


def _outcome_line(choice: Choice, dropped: int, cli: str) -> str:
    if choice == "share":
        line = f"Usage statistics are on. Turn them off with `{cli} config set usage_stats false`."
    elif choice == "review":
        line = (
            "Usage statistics are on, held for your review: approve uploads with "
            f"`{cli} stats review`. Turn them off with `{cli} config set usage_stats false`."
        )
    else:
        line = f"Usage statistics are off. Turn them on with `{cli} config set usage_stats true`."
        if dropped:
            line += f" Deleted {dropped} unsent payload(s)."
    return line


def _ask(policy: Policy, default: Choice) -> Choice:
    """Show the policy and ask. Ctrl-C and Esc raise KeyboardInterrupt."""
    import questionary
    from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings

    from consent.render import policy_panel

    out_console().print(policy_panel(policy))
    question = questionary.select(
        "Share anonymous usage statistics?",
        choices=[questionary.Choice(title, value=value) for value, title in ANSWERS.items()],
        default=default,
        instruction="(arrow keys, Enter to choose, Esc to cancel)",
    )
    escape = KeyBindings()

    @escape.add("escape", eager=True)
    def _cancel(event: object) -> None:
        event.app.exit(exception=KeyboardInterrupt, style="class:aborting")  # type: ignore[attr-defined]

    app = question.application
    app.key_bindings = merge_key_bindings([app.key_bindings or KeyBindings(), escape])
    # unsafe_ask lets Ctrl-C raise; plain ask() would swallow it and return None
    answer: Choice = question.unsafe_ask()
    return answer


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
    (returns ``None``). Ctrl-C or Esc at the prompt exits 130 and writes nothing.
    """
    from consent.actions import announce, apply_choice, choice_of
    from consent.config import load_config
    from consent.decision import decide
    from consent.notices import first_notice
    from consent.policy import load_policy

    policy = load_policy(profile=profile)
    cli = profile.cli_name
    if answer is None and (non_interactive or not is_interactive()):
        display_notice(first_notice(policy, profile, held=False))
        announce(policy, include_first=True, profile=profile)
        decision = decide(profile)
        state = "on" if decision.enabled else "off"
        display_info(
            f"No question asked (not an interactive terminal); usage statistics stay {state}. "
            f"Choose with `{cli} init --yes`, `--review` or `--no`."
        )
        return None

    via: Via = "init-flag"
    if answer is None:
        decision = decide(profile)
        asked_before = "usage_stats" in _safe_config(load_config, profile)
        default: Choice = choice_of(decision) if asked_before else "share"
        try:
            answer = _ask(policy, default)
        except (KeyboardInterrupt, EOFError):
            err_console().print("Cancelled; nothing was changed.")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        via = "init-prompt"
    result = apply_choice(answer, via, profile=profile, policy=policy)
    print_out(_outcome_line(answer, result.dropped, cli))
    if result.decision.source in ("env", "do_not_track") and result.decision.enabled != (
        answer != "dont-share"
    ):
        display_info(
            "Note: the environment overrides this choice for now; usage statistics are "
            f"{'on' if result.decision.enabled else 'off'} ({result.decision.source})."
        )
    return answer


def _safe_config(load: object, profile: AppProfile) -> dict[str, object]:
    from consent._exceptions import ConsentError
    from consent.config import load_config

    try:
        return load_config(profile.config_path())
    except ConsentError:
        return {}


if TYPE_CHECKING:
    from consent.record import Via


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
    run_init_flow(chosen[0] if chosen else None, non_interactive=non_interactive)
