"""`consent record`: record one transfer session, for hosts not written in Python."""

from __future__ import annotations

from typing import Annotated

import typer

from consent.cli._context import current_scope
from consent.cli._terminal import display_notice, display_warning, reports_errors


@reports_errors
def record(
    src: Annotated[
        str, typer.Option("--src", help="Source as provider:region (aws:us-east-1) or local.")
    ],
    dst: Annotated[
        list[str], typer.Option("--dst", help="Destination as provider:region; repeatable.")
    ],
    runtime_s: Annotated[
        float, typer.Option("--runtime-s", help="How long the transfer took, in seconds.")
    ],
    argv: Annotated[
        list[str] | None,
        typer.Argument(help="The host's own arguments, after `--`; they are scrubbed."),
    ] = None,
    gbps: Annotated[
        float | None, typer.Option("--gbps", help="Average throughput in Gbit/s.")
    ] = None,
    error: Annotated[
        str | None, typer.Option("--error", help="The error text, if the transfer failed.")
    ] = None,
    host_version: Annotated[
        str | None, typer.Option("--host-version", help="The host tool's version.")
    ] = None,
) -> None:
    """Record one transfer session and print its session id.

    Paths, bucket names, hosts and secrets in ARGV and --error are replaced by
    markers before anything is written. While usage statistics are off, nothing
    is written and nothing is printed.
    """
    from consent._session import record_strict

    outcome = record_strict(
        argv=argv or [],
        src=src,
        dst=dst,
        runtime_s=runtime_s,
        throughput_gbps=gbps,
        error=error,
        host_version=host_version,
        scope=current_scope(),
        show_notice=display_notice,
    )
    for warning in outcome.warnings:
        display_warning(warning)
    # stdout carries the id alone, so a shell host can capture it with $(...)
    if outcome.session_id is not None:
        typer.echo(outcome.session_id)
