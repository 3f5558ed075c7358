"""`consent stats review` and `consent stats forget`; the rules live in :mod:`consent.review`.

Importing this module registers both commands on ``stats_app``. The library modules
are imported inside the commands, so `consent --help` and `stats status` stay fast.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Annotated

import typer

from consent._exceptions import BadInputError
from consent.cli._context import current_cli_name, current_scope
from consent.cli._stats import JsonOption, stats_app
from consent.cli._terminal import (
    ask,
    display_info,
    display_warning,
    is_interactive,
    out_console,
    print_json,
    print_long,
    print_out,
    reports_errors,
)
from consent.spool import StateFilter

if TYPE_CHECKING:
    from consent.forget import ForgetPlan, ForgetResult
    from consent.render import Situation
    from consent.review import Change, ReviewItem, ReviewListing

__all__ = ["forget", "review"]


# The --state words, derived from the spool's states (consent.spool is stdlib-only).
StateOption = StateFilter


DEFAULT_LIMIT = 50
# a checkbox of thousands of lines helps nobody; the flags handle the rest
CHECKBOX_LIMIT = 50


# -- review ------------------------------------------------------------------------------


def _report_changes(changes: list[Change], verb: str, nothing: str) -> None:
    from consent.notices import plural

    if not changes:
        print_out(nothing)
        return
    ids = ", ".join(change.session_id for change in changes[:10])
    more = f" and {len(changes) - 10:,} more" if len(changes) > 10 else ""
    print_out(f"{verb} {plural(len(changes))}: {ids}{more}.")


def _say_when_sent(sending: bool) -> None:
    cli = current_cli_name()
    if sending:
        print_out(f"Sending in the background; `{cli} stats send` sends and reports right away.")
    else:
        print_out(f"They are sent once usage statistics are on (`{cli} stats status` says how).")


def _ask_approval(held: list[ReviewItem], listing: ReviewListing) -> list[str]:
    """Ask which held payloads to approve; Ctrl-C or Esc raise KeyboardInterrupt."""
    import questionary

    from consent.render import review_choice_title

    offered = held[-CHECKBOX_LIMIT:]
    message = "Approve which held payloads?"
    if len(offered) < len(held):
        message = f"Approve which of the newest {len(offered)} held payloads?"
    # room for the pointer and the box in front of each title, which must not wrap
    width = min(shutil.get_terminal_size().columns, 120) - 8
    question = questionary.checkbox(
        message,
        choices=[
            questionary.Choice(
                review_choice_title(item, listing.short_id(item.session_id), width),
                value=item.session_id,
            )
            for item in offered
        ],
        instruction="(Space selects, Enter confirms, Esc cancels)",
    )
    chosen = ask(question)
    assert isinstance(chosen, list)
    return [str(value) for value in chosen]


def _interactive_approval(listing: ReviewListing) -> None:
    from consent.review import approve, send_approved

    held = [item for item in sorted(listing.items, key=_time_order) if item.state.value == "held"]
    if not held:
        return
    print_out("")
    chosen = _ask_approval(held, listing)
    changes = approve(chosen, scope=current_scope()) if chosen else []
    left = len(held) - len(changes)
    _report_changes(changes, "Approved", "Nothing approved.")
    if changes:
        _say_when_sent(send_approved(scope=current_scope()))
    if left:
        from consent.notices import plural

        verb = "stays" if left == 1 else "stay"
        print_out(
            f"{plural(left)} {verb} held: `{current_cli_name()} stats review` offers them again."
        )


def _check_flags(
    *,
    approve: list[str],
    approve_all: bool,
    discard: list[str],
    discard_all: bool,
    session: str | None,
) -> None:
    approving = bool(approve) or approve_all
    discarding = bool(discard) or discard_all
    if approve and approve_all:
        raise BadInputError("Give either --approve ID or --approve-all, not both.")
    if discard and discard_all:
        raise BadInputError("Give either --discard ID or --discard-all, not both.")
    if approving and discarding:
        raise BadInputError("Approve and discard in two separate runs, so each is deliberate.")
    if session is not None and (approving or discarding):
        raise BadInputError(
            "--session shows one payload; use --approve ID or --discard ID to change it."
        )


def _discard_states(state: str | None) -> tuple[str, ...]:
    """What --discard-all removes: held payloads, or those of the --state given."""
    if state in (None, "held"):
        return ("held",)
    if state in ("pending", "failed", "legacy"):
        return (state,)
    raise BadInputError(
        f"--discard-all removes held payloads, or with --state pending, failed or legacy "
        f"those; not {state} ones. `{current_cli_name()} stats forget` deletes everything."
    )


def _act(
    *,
    approve: list[str],
    approve_all: bool,
    discard: list[str],
    discard_all: bool,
    state: str | None,
    json_: bool,
) -> None:
    from consent import review as lib
    from consent.spool import State

    if approve or approve_all:
        if state not in (None, "held", "all"):
            raise BadInputError("Only held payloads can be approved; drop --state or use held.")
        changes = lib.approve(approve or None, scope=current_scope())
        sending = bool(changes) and lib.send_approved(scope=current_scope())
        if json_:
            print_json([change.to_json() for change in changes])
            return
        _report_changes(changes, "Approved", "No held payload to approve.")
        if changes:
            _say_when_sent(sending)
        return
    states = tuple(State(s) for s in _discard_states(state)) if discard_all else ()
    changes = lib.discard(discard or None, states=states, scope=current_scope())
    if json_:
        print_json([change.to_json() for change in changes])
        return
    what = "/".join(s.value for s in states) or "matching"
    _report_changes(changes, "Deleted", f"No {what} payload to delete.")


@stats_app.command("review")
@reports_errors
def review(
    state: Annotated[
        StateOption | None,
        typer.Option("--state", help="Show only payloads in this state (default: all)."),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            "--session", metavar="ID", help="Show one payload field by field (id or prefix)."
        ),
    ] = None,
    json_: JsonOption = False,
    approve: Annotated[
        list[str] | None,
        typer.Option(
            "--approve", metavar="ID", help="Approve a held payload for sending; repeatable."
        ),
    ] = None,
    approve_all: Annotated[
        bool, typer.Option("--approve-all", help="Approve every held payload.")
    ] = False,
    discard: Annotated[
        list[str] | None,
        typer.Option(
            "--discard",
            metavar="ID",
            help="Delete a held (or pending, failed, legacy) payload; repeatable.",
        ),
    ] = None,
    discard_all: Annotated[
        bool,
        typer.Option("--discard-all", help="Delete every held payload (or every one of --state)."),
    ] = False,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", min=0, metavar="N", help="Rows in the summary, newest last; 0 for all."
        ),
    ] = DEFAULT_LIMIT,
    no_pager: Annotated[
        bool, typer.Option("--no-pager", help="Print long views straight to the terminal.")
    ] = False,
    more_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[ID]...",
            help="An id (or prefix) to show that payload; after --approve or --discard, "
            "more ids: `--approve ID1 ID2` approves both.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """See every payload, field by field; approve or discard held ones.

    `stats review ID` shows one payload (a unique prefix of its id is enough). On a
    terminal, held payloads are offered for approval in a checkbox, and long views
    open in a pager ($PAGER, else less).
    """
    if more_ids and not approve and not discard:
        # `stats review ID` shows that payload, as `gh pr view ID` does
        if len(more_ids) > 1 or session is not None:
            raise BadInputError(
                "Give one id to show one payload; to act on several, put them after "
                "--approve or --discard."
            )
        session, more_ids = more_ids[0], None
    if more_ids:
        # click options take one value each; the contract's `--approve ID...` takes
        # the ids that follow as well
        if approve and discard:
            raise BadInputError(
                f"Unexpected argument {more_ids[0]!r}: ids follow --approve or --discard."
            )
        if approve:
            approve = [*approve, *more_ids]
        else:
            discard = [*(discard or []), *more_ids]
    _check_flags(
        approve=approve or [],
        approve_all=approve_all,
        discard=discard or [],
        discard_all=discard_all,
        session=session,
    )
    if approve or approve_all or discard or discard_all:
        _act(
            approve=approve or [],
            approve_all=approve_all,
            discard=discard or [],
            discard_all=discard_all,
            state=state,
            json_=json_,
        )
        return
    if session is not None:
        _show_session(session, json_, pager=not no_pager)
        return

    from consent.review import list_review, review_json

    listing = list_review(state or "all", scope=current_scope())
    items = sorted(listing.items, key=_time_order)
    if json_:
        typer.echo(review_json(items))
        return
    from consent.render import review_summary

    shown = items[-limit:] if limit else items
    turn_on = None
    if not listing.enabled:
        from consent.decision import decide_in
        from consent.notices import turn_on_hint

        scope = current_scope()
        turn_on = turn_on_hint(decide_in(scope), scope)
    summary = review_summary(
        listing, shown, current_cli_name(), width=out_console().width, turn_on=turn_on
    )
    # the checkbox follows on a terminal: a pager would hide the table it refers to
    offers = state in (None, "all", "held") and listing.enabled and listing.counts["held"]
    print_long(summary, pager=not no_pager and not (offers and is_interactive()))
    for warning in listing.warnings:
        display_warning(warning)
    if (
        state in (None, "all", "held")
        and listing.enabled
        and listing.counts["held"]
        and is_interactive()
    ):
        _interactive_approval(listing)


def _time_order(item: ReviewItem) -> tuple[str, int, str]:
    """Collection time, then the file's own time: rows from one second keep their order."""
    import os

    try:
        mtime = os.stat(item.path).st_mtime_ns
    except OSError:
        mtime = 0
    return (item.collected_at or "", mtime, item.session_id)


def _first_notice_run(item: ReviewItem) -> bool:
    """Whether ``item`` was recorded on the run that showed the first notice.

    That run acknowledges the policy with ``via = "notice"`` a moment before it
    collects its payload.
    """
    import datetime as dt

    from consent.record import read_record

    record, _ = read_record(current_scope().record_path)
    if record is None or item.collected_at is None:
        return False
    try:
        collected = dt.datetime.fromisoformat(item.collected_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    acks = [*record.history, *([record.acknowledgement] if record.acknowledgement else [])]
    return any(
        ack.via == "notice" and dt.timedelta(0) <= collected - ack.at <= dt.timedelta(minutes=5)
        for ack in acks
    )


def _situation(item: ReviewItem) -> Situation:
    from consent.decision import decide_in
    from consent.notices import why_off
    from consent.render import Situation

    scope = current_scope()
    decision = decide_in(scope)
    last: str | None = None
    if item.state.value == "pending":
        from consent.status import snapshot

        last = snapshot(scope).last_send_error
    return Situation(
        enabled=decision.enabled,
        review_mode=decision.review_before_upload,
        first_notice_run=item.state.value == "held" and _first_notice_run(item),
        last_send_error=last,
        why_off="" if decision.enabled else why_off(decision, scope),
    )


def _show_session(session: str, json_: bool, *, pager: bool = True) -> None:
    from consent._exceptions import ConsentError
    from consent.policy import load_policy
    from consent.review import describe_fields, find_item, list_review

    item = find_item(session, scope=current_scope())
    if json_:
        print_json([item.to_json()])
        return
    from consent.render import review_detail

    try:
        policy = load_policy(current_scope().policy_path)
    except ConsentError as exc:
        display_warning(f"{exc} Field descriptions are not shown.")
        policy = None
    width = out_console().width
    short = list_review("all", scope=current_scope()).short_id(item.session_id)
    detail = review_detail(
        item,
        describe_fields(item, policy),
        current_cli_name(),
        width=width,
        situation=_situation(item),
        short=short,
    )
    print_long(detail, pager=pager)


# -- forget ------------------------------------------------------------------------------


def _confirm_forget(plan: ForgetPlan) -> bool:
    import questionary

    from consent.render import forget_plan_view

    print_out(forget_plan_view(plan))
    answer = ask(questionary.confirm("Delete your usage statistics?", default=False))
    return answer is True


def _report_forget(result: ForgetResult) -> None:
    from rich.markup import escape

    from consent.render import forget_result_view

    print_out(forget_result_view(result))
    if result.email is not None:
        if result.send_problem:
            display_info(result.send_problem)
        # plain text, apart from the table, so it can be copied into a mail program as is
        print_out("\n" + escape(result.email.text()))
    if result.rotation_problem:
        from consent._exceptions import StorageError

        raise StorageError(
            "Your client id was not replaced, because the consent record could not be "
            f"saved; free some space and run `{current_cli_name()} stats forget` again."
        )


@stats_app.command("forget")
@reports_errors
def forget(
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask for confirmation (needed without a TTY).")
    ] = False,
) -> None:
    """Delete every local payload, replace your client id, and ask the server to delete.

    Without a working connection it prints the e-mail to send instead.
    """
    from consent.forget import forget as forget_all
    from consent.forget import plan_forget

    if not yes:
        if not is_interactive():
            raise BadInputError(
                "`stats forget` deletes all your usage statistics and asks before it does; "
                f"without a terminal to ask on, run `{current_cli_name()} stats forget --yes`."
            )
        if not _confirm_forget(plan_forget(scope=current_scope())):
            print_out("Nothing was deleted.")
            return
    _report_forget(forget_all(scope=current_scope()))
