"""A small stand-in for Skyplane, showing how a Typer host embeds `consent`.

    python examples/skyplane_host.py --help
    python examples/skyplane_host.py init            # asks on a terminal
    python examples/skyplane_host.py cp a.txt b.txt  # records one session
    python examples/skyplane_host.py stats review    # the mounted sub-apps

Three things are borrowed from `consent`: the first-run flow inside the host's own
``init``, the ``stats``/``config``/``policy`` sub-apps, and one session per transfer.
Everything else is the host's own business.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

import consent
from consent.cli import config_app, policy_app, run_init_flow, stats_app
from consent.record import Choice

HOST_VERSION = "0.0.1-example"

app = typer.Typer(
    name="skyplane-host",
    help="A stand-in for Skyplane that embeds consent's usage statistics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(stats_app, name="stats")
app.add_typer(config_app, name="config")
app.add_typer(policy_app, name="policy")


class CopyError(RuntimeError):
    """The host's own error type: consent records it, scrubbed, and re-raises it as is."""


@app.command()
def init(
    yes: Annotated[bool, typer.Option("--yes", help="Share anonymous usage statistics.")] = False,
    review: Annotated[
        bool, typer.Option("--review", help="Share, but hold each upload for your review.")
    ] = False,
    no: Annotated[bool, typer.Option("--no", help="Don't share usage statistics.")] = False,
    non_interactive: Annotated[
        bool, typer.Option("--non-interactive", help="Never prompt; keep the defaults.")
    ] = False,
) -> None:
    """Set up the host: its own settings first, then the usage-statistics question."""
    typer.echo("Checking cloud credentials... none needed for this example.")
    flags: dict[Choice, bool] = {"share": yes, "review": review, "dont-share": no}
    chosen = [answer for answer, given in flags.items() if given]
    if len(chosen) > 1:
        typer.echo("Give at most one of --yes, --review and --no.", err=True)
        raise typer.Exit(2)
    # Ctrl-C or Esc at the question raises typer.Exit(130); Typer makes it the exit code.
    run_init_flow(chosen[0] if chosen else None, non_interactive=non_interactive)
    typer.echo("skyplane-host is ready.")


@app.command()
def cp(
    src: Annotated[Path, typer.Argument(help="The file to copy.")],
    dst: Annotated[Path, typer.Argument(help="Where to copy it.")],
    src_region: Annotated[
        str, typer.Option("--src-region", help="Where SRC lives, as provider:region.")
    ] = "local",
    dst_region: Annotated[
        str, typer.Option("--dst-region", help="Where DST lives, as provider:region.")
    ] = "local",
    fail: Annotated[bool, typer.Option("--fail", help="Fail on purpose, after starting.")] = False,
) -> None:
    """Copy a local file (standing in for a cloud transfer) and record the session."""
    # argv is scrubbed before it is written: the two paths become <path> markers.
    with consent.session(
        argv=sys.argv[1:], src=src_region, dst=[dst_region], host_version=HOST_VERSION
    ) as session:
        if fail:
            raise CopyError(f"cannot write {dst}: permission denied")
        shutil.copyfile(src, dst)
        session.transferred(dst.stat().st_size)
    typer.echo(f"Copied {dst.stat().st_size} bytes.")


def main() -> None:
    try:
        app()
    except CopyError as exc:
        # The host's own error handling sees its own exception, unchanged by consent.
        typer.echo(f"skyplane-host: copy failed: {exc}", err=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
