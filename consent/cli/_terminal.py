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
    "ask",
    "display_error",
    "display_info",
    "display_notice",
    "display_warning",
    "err_console",
    "in_ci",
    "is_interactive",
    "out_console",
    "print_json",
    "print_long",
    "print_out",
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


def print_long(renderable: RenderableType, *, pager: bool = True) -> None:
    """Print; through a pager (``$PAGER``, else less) when a terminal would scroll it away.

    Only where a prompt would be shown (:func:`is_interactive`): never in CI, whose
    pseudo-terminal would leave a pager waiting for a key.
    """
    console = out_console()
    if pager and console.is_terminal and is_interactive():
        lines = console.render_lines(renderable, console.options, pad=False)
        if len(lines) > console.height - 1:
            # -R keeps colours, -F quits at once should it fit after all, -X leaves it on screen
            os.environ.setdefault("LESS", "-FRX")
            with console.pager(styles=not console.no_color):
                console.print(renderable)
            return
    console.print(renderable)


def print_out(renderable: RenderableType | str) -> None:
    # a plain line of output (a value, an id) must reach pipes unbroken
    out_console().print(renderable, soft_wrap=isinstance(renderable, str))


def _say(markup: str) -> None:
    console = err_console()
    # a log file or a pipe gets the message on one line, to grep; a terminal wraps it
    console.print(markup, soft_wrap=not console.is_terminal)


def display_error(message: str) -> None:
    _say(f"[bold red]Error:[/] {_escape(message)}")


def display_warning(message: str) -> None:
    _say(f"[yellow]Warning:[/] {_escape(message)}")


def display_info(message: str) -> None:
    _say(_escape(message))


def display_notice(notice: NoticeText) -> None:
    """A policy notice: a panel, or one line when only descriptions changed."""
    if notice.kind == "description":
        display_info(f"{notice.title}. {' '.join(notice.lines)}")
        return
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
        except (typer.Exit, typer.Abort):
            raise  # a command's own deliberate exit
        except ConsentError as exc:
            display_error(str(exc))
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            err_console().print("Interrupted.")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            display_error(f"{exc.strerror or exc}{where}.")
            raise typer.Exit(int(ExitCode.FAILURE)) from None
        except Exception as exc:
            if os.environ.get("CONSENT_DEBUG"):
                raise
            display_error(
                f"Unexpected internal error ({type(exc).__name__}). Run again with "
                "CONSENT_DEBUG=1 for details, and please report it."
            )
            raise typer.Exit(int(ExitCode.FAILURE)) from None

    return wrapper


def ask(question: Any) -> Any:
    """Ask a questionary question. Ctrl-C, Esc or end of input cancel: exit 130.

    Every command asks before it changes anything, so a cancelled question means
    nothing was changed.
    """
    import typer
    from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings

    escape = KeyBindings()

    # questionary has no Esc binding; without one Esc does nothing and the user is stuck
    @escape.add("escape", eager=True)
    def _cancel(event: Any) -> None:
        event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    app = question.application
    app.key_bindings = merge_key_bindings([app.key_bindings or KeyBindings(), escape])
    try:
        # unsafe_ask lets Ctrl-C raise; plain ask() would swallow it and return None
        return question.unsafe_ask()
    except (KeyboardInterrupt, EOFError):
        err_console().print("Cancelled; nothing was changed.")
        raise typer.Exit(ExitCode.INTERRUPTED) from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def in_ci() -> bool:
    """``CI`` set to anything but an empty, ``0``, ``false``, ``no`` or ``off`` value."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def is_interactive() -> bool:
    """Prompt only on a real terminal, and never in CI."""
    if in_ci():
        return False
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
