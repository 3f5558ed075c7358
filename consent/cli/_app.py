"""The `consent` command: the main Typer app and its entry point."""

from __future__ import annotations

import typer

import consent.cli._review  # noqa: F401  (registers stats review/forget)
from consent.cli import _send  # noqa: F401  (registers stats send)
from consent.cli._config import config_app
from consent.cli._init import init
from consent.cli._policy import policy_app
from consent.cli._record import record
from consent.cli._stats import stats_app

app = typer.Typer(
    name="consent",
    help="Ask-first anonymous usage statistics for Skyplane: see, review, send or delete them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("init")(init)
app.command("record")(record)
app.add_typer(config_app)
app.add_typer(stats_app)
app.add_typer(policy_app)


def main() -> None:
    """Entry point: click's own usage errors become one line and exit 2, like ours."""
    import sys

    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    from consent._exceptions import ExitCode
    from consent.cli._terminal import display_error

    try:
        code = app(prog_name="consent", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        sys.stdout.write(exc.format_message() + "\n")
        code = ExitCode.OK
    except ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" See `{ctx.command_path} --help`." if ctx is not None else ""
        message = exc.format_message().rstrip(".")
        # "Did you mean 'stats'?" already ends a sentence
        stop = "" if message.endswith(("?", "!")) else "."
        display_error(f"{message}{stop}{hint}")
        code = exc.exit_code
    except typer.Abort:
        code = ExitCode.INTERRUPTED
    sys.exit(code if isinstance(code, int) else ExitCode.OK)
