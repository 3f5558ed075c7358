"""`consent stats send`: deliver pending payloads now, or show exactly what would go."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated

import typer

from consent.cli._context import current_profile
from consent.cli._stats import JsonOption, announce_policy_change, stats_app
from consent.cli._terminal import (
    display_info,
    display_warning,
    err_console,
    print_json,
    print_out,
    reports_errors,
)

if TYPE_CHECKING:
    from consent.upload import Plan, SendResult


def _plural(n: int, word: str = "payload") -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _show_plan(plan: Plan, json_: bool) -> None:
    if json_:
        print_json([request.to_dict() for request in plan.requests])
    for failure in plan.refused:
        display_warning(
            f"Session {failure.session_id} would be marked failed instead: {failure.reason}"
        )
    if plan.note:
        display_info(plan.note)
    if json_:
        return
    if not plan.requests:
        if plan.enabled and not plan.note:
            display_info("Nothing is due: no request would be sent.")
        return
    for request in plan.requests:
        display_info(
            f"POST {request.endpoint} ({request.format}, {_plural(len(request.session_ids))}, "
            f"{len(request.body)} bytes):"
        )
        typer.echo(request.body.decode("utf-8"))
    display_info("Dry run: nothing was sent.")


def _show_result(result: SendResult, json_: bool) -> None:
    if json_:
        print_json(result.to_dict())
    for failure in result.failures:
        display_warning(f"Session {failure.session_id} failed: {failure.reason}")
    for outcome in result.endpoints:
        if outcome.error:
            display_warning(f"{outcome.url}: {outcome.error}")
    if json_:
        return
    if not result.enabled:
        display_info(result.note or "Usage statistics are off; nothing was sent.")
        return
    if result.note:
        display_info(result.note)
    if result.due == 0 and not result.note:
        print_out("Nothing to send.")
    elif result.sent:
        where = ", ".join(outcome.url for outcome in result.endpoints)
        print_out(f"Sent {_plural(result.sent)} to {where}.")
    if result.held:
        display_info(
            f"{_plural(result.held)} held for your review are not sent; "
            f"see them with `{current_profile().cli_name} stats review`."
        )


@stats_app.command("send")
@reports_errors
def send(
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            metavar="URL",
            help="Send to this https URL instead of the configured endpoint.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the exact request bodies; send nothing."),
    ] = False,
    json_: JsonOption = False,
    background: Annotated[bool, typer.Option("--background", hidden=True)] = False,
) -> None:
    """Send pending usage statistics now; held payloads are never sent.

    Exits 1 when anything that was due could not be sent: it stays pending (or is
    marked failed when the receiver refused it) and `stats status` says why.
    """
    from consent._exceptions import ConsentError, ExitCode, UploadError
    from consent.upload import main as background_main
    from consent.upload import plan_send, send_pending

    if background:
        background_main([])  # detached and silent: everything goes to the send log
        return
    if dry_run:
        _show_plan(plan_send(endpoint=endpoint, profile=current_profile()), json_)
        return
    with contextlib.suppress(ConsentError):  # the send itself reports a broken policy
        announce_policy_change()
    try:
        result = send_pending(endpoint=endpoint, profile=current_profile())
    except KeyboardInterrupt:
        err_console().print(
            "Interrupted. Every payload that was delivered has its receipt; the rest stays pending."
        )
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    _show_result(result, json_)
    if not result.ok:
        raise UploadError(
            f"{_plural(result.pending + result.failed)} could not be sent "
            f"({result.pending} still pending, {result.failed} refused). Pending payloads "
            "are retried by the next send."
        )
