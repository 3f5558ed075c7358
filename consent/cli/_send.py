"""`consent stats send`: deliver pending payloads now, or show exactly what would go."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Annotated

import typer

from consent.cli._context import current_cli_name, current_scope
from consent.cli._stats import JsonOption, announce_policy_change, stats_app
from consent.cli._terminal import (
    display_info,
    display_warning,
    err_console,
    print_json,
    print_out,
    reports_errors,
)


def plural(count: int, word: str = "payload") -> str:
    from consent.notices import plural as words  # notices loads the policy code: not at --help

    return words(count, word)


if TYPE_CHECKING:
    from consent.upload import Plan, SendResult


# rows of pretty-printed JSON shown per request in a dry run; --json gives every byte
PREVIEW_LINES = 40
PREVIEW_REQUESTS = 5


def _pretty(body: bytes) -> list[str]:
    """The body as indented JSON, the payload text inside a Loki line unpacked to read."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").splitlines()
    if isinstance(doc, dict) and isinstance(doc.get("streams"), list):
        for stream in doc["streams"]:
            for value in stream.get("values", []) if isinstance(stream, dict) else []:
                if isinstance(value, list) and len(value) == 2 and isinstance(value[1], str):
                    with contextlib.suppress(ValueError):
                        value[1] = json.loads(value[1])
    return json.dumps(doc, indent=2, ensure_ascii=False).splitlines()


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
    for index, request in enumerate(plan.requests):
        if index == PREVIEW_REQUESTS:
            rest = len(plan.requests) - index
            print_out(f"... and {plural(rest, 'more request')}.")
            break
        unpacked = " (each line's payload text unpacked)" if request.format == "loki" else ""
        print_out(
            f"POST {request.endpoint} ({request.format}, {plural(len(request.session_ids))}, "
            f"{len(request.body):,} bytes){unpacked if index == 0 else ''}:"
        )
        lines = _pretty(request.body)
        shown = lines[:PREVIEW_LINES] if index == 0 else []
        for line in shown:
            typer.echo("  " + line)
        if len(lines) > len(shown):
            print_out(f"  ({len(lines) - len(shown):,} more lines of JSON not shown)")
    payloads = len({sid for request in plan.requests for sid in request.session_ids})
    size = sum(len(request.body) for request in plan.requests)
    endpoints = len({request.endpoint for request in plan.requests})
    print_out(
        f"Dry run: nothing was sent. {plural(len(plan.requests), 'request')} to "
        f"{plural(endpoints, 'endpoint')} would carry {plural(payloads)} "
        f"({size:,} bytes); `{current_cli_name()} stats send --dry-run --json` prints every "
        "body whole."
    )


def _timeout_words(text: str) -> str:
    from consent.status import timeout_words

    return timeout_words(text)


def _show_result(result: SendResult, json_: bool) -> None:
    if json_:
        print_json(result.to_dict())
    for failure in result.failures:
        display_warning(f"Session {failure.session_id} failed: {failure.reason}")
    for outcome in result.endpoints:
        if outcome.error:
            display_warning(f"{outcome.url}: {_timeout_words(outcome.error)}")
    if json_:
        return
    if not result.enabled:
        display_info(result.note or "Usage statistics are off; nothing was sent.")
        _say_how_to_turn_on()
        return
    if result.note:
        display_info(result.note)
    if result.due == 0 and not result.note:
        print_out("Nothing to send.")
    elif result.sent:
        where = ", ".join(outcome.url for outcome in result.endpoints)
        print_out(f"Sent {plural(result.sent)} to {where}.")
    if result.held:
        verb = "is" if result.held == 1 else "are"
        display_info(
            f"{plural(result.held)} held for your review {verb} not sent; "
            f"see {'it' if result.held == 1 else 'them'} with `{current_cli_name()} stats review`."
        )


def _say_how_to_turn_on() -> None:
    from consent.decision import decide_in
    from consent.notices import turn_on_hint

    scope = current_scope()
    decision = decide_in(scope)
    if not decision.enabled:
        display_info(f"Turn them on: {turn_on_hint(decision, scope)}")


def _send_with_progress(endpoint: str | None) -> SendResult:
    """Send; on a terminal, a spinner appears once the send has taken over a second."""
    import threading

    from consent.upload import DEFAULT_LIMITS, send_pending

    scope = current_scope()  # read here: the worker thread does not inherit it
    console = err_console()
    if not console.is_terminal:
        return send_pending(endpoint=endpoint, scope=scope)
    results: list[SendResult] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(send_pending(endpoint=endpoint, scope=scope))
        except BaseException as exc:  # handed to the main thread, which reports it
            errors.append(exc)

    worker = threading.Thread(target=work, name="consent-send", daemon=True)
    worker.start()
    worker.join(1.0)
    if worker.is_alive():
        timeout = f"{DEFAULT_LIMITS.request_timeout_s:g}"
        with console.status(f"Sending… (each endpoint gets {timeout} s to answer; Ctrl-C stops)"):
            while worker.is_alive():
                worker.join(0.1)
    if errors:
        raise errors[0]
    return results[0]


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
        typer.Option(
            "--dry-run",
            help="Preview the requests a send would make; send nothing. With --json, every "
            "request whole.",
        ),
    ] = False,
    json_: JsonOption = False,
    background: Annotated[bool, typer.Option("--background", hidden=True)] = False,
) -> None:
    """Send pending usage statistics now; held payloads are never sent.

    Exits 1 when anything that was due could not be sent: it stays pending (or is
    marked failed when the receiver refused it) and `stats status` says why.
    """
    from consent._exceptions import ConsentError, ExitCode, UploadError
    from consent.upload import plan_send
    from consent.upload.spawn import run_detached

    if background:
        run_detached(current_scope())  # silent: everything goes to the send log
        return
    if dry_run:
        _show_plan(plan_send(endpoint=endpoint, scope=current_scope()), json_)
        return
    with contextlib.suppress(ConsentError):  # the send itself reports a broken policy
        announce_policy_change()
    try:
        result = _send_with_progress(endpoint)
    except KeyboardInterrupt:
        err_console().print(
            "Interrupted. Every payload that was delivered has its receipt; the rest stays pending."
        )
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    _show_result(result, json_)
    if not result.ok:
        raise UploadError(
            f"{plural(result.pending + result.failed)} could not be sent "
            f"({result.pending:,} still pending, {result.failed:,} refused). Retry the "
            f"pending ones with `{current_cli_name()} stats send`; the next transfer retries "
            "them too."
        )
