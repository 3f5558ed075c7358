"""The one terminal wrapper: rich consoles for stdout and stderr, errors, JSON.

rich is imported on first use, so commands that print JSON never pay for it.
Errors, warnings and notices go to stderr; stdout carries only the command's
result, so ``--json`` output stays clean.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

from consent._exceptions import ConsentError, ExitCode

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from consent.notices import NoticeText

__all__ = [
    "abort",
    "display_error",
    "display_notice",
    "display_warning",
    "err_console",
    "out_console",
    "print_json",
    "reports_errors",
]

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def out_console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


@functools.cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def print_out(renderable: RenderableType | str) -> None:
    # plain sentences are left to the terminal to wrap, so commands in them stay whole
    out_console().print(renderable, soft_wrap=isinstance(renderable, str))


def display_error(message: str) -> None:
    err_console().print(f"[bold red]Error:[/] {_escape(message)}", soft_wrap=True)


def display_warning(message: str) -> None:
    err_console().print(f"[yellow]Warning:[/] {_escape(message)}", soft_wrap=True)


def display_info(message: str) -> None:
    err_console().print(_escape(message), soft_wrap=True)


def display_notice(notice: NoticeText) -> None:
    from consent.render import notice_panel

    err_console().print(notice_panel(notice))


def abort(message: str, code: int = ExitCode.BAD_INPUT) -> NoReturn:
    import typer

    display_error(message)
    raise typer.Exit(int(code))


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors and Ctrl-C into a message and an exit code, never a traceback.

    Applied to each command rather than around ``main()``, so the commands behave
    the same when a host mounts the sub-apps in its own Typer app.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import typer

        try:
            return command(*args, **kwargs)
        except ConsentError as exc:
            display_error(str(exc))
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            err_console().print("Interrupted; nothing was changed.")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            display_error(f"{exc.strerror or exc}{where}.")
            raise typer.Exit(int(ExitCode.FAILURE)) from None
        except Exception as exc:
            if os.environ.get("CONSENT_DEBUG"):
                raise
            display_error(
                f"Unexpected internal error ({type(exc).__name__}). Nothing else was changed; "
                "run again with CONSENT_DEBUG=1 for details, and please report it."
            )
            raise typer.Exit(int(ExitCode.FAILURE)) from None

    return wrapper


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def is_interactive() -> bool:
    """Prompt only on a real terminal, and never in CI."""
    if os.environ.get("CI"):
        return False
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
