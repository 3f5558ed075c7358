"""The entry point of the `consent` command, with a fast path for the hottest read-only forms.

Since typer 0.27 every parameter that click hands ``None`` (the ``--help`` option of
each command level, for one) is coerced through a pydantic ``TypeAdapter``, so any
command typer parses imports pydantic and builds adapters: ~40-70 ms, more than
the rest of ``consent stats status``. The few exact forms in :data:`FAST_FORMS`
take no options a parser could help with, so :func:`main` calls those commands
itself, bound to the default profile exactly as the Typer app binds them; every
other form (``--help``, typos, options in another order) goes through the app.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["FAST_FORMS", "main"]


def _status(json_: bool) -> Callable[[], None]:
    def run() -> None:
        from consent.cli._stats import status

        status(json_=json_)

    return run


def _review_json() -> None:
    from consent.cli._review import review

    review(json_=True)


FAST_FORMS: dict[tuple[str, ...], Callable[[], None]] = {
    ("stats", "status"): _status(False),
    ("stats", "status", "--json"): _status(True),
    ("stats", "review", "--json"): _review_json,
}
"""argv (after the program name) -> the command call the Typer app would make for it."""


def _run_fast(command: Callable[[], None]) -> int:
    import typer

    from consent._exceptions import ExitCode
    from consent.cli._context import bind_profile
    from consent.profile import DEFAULT_PROFILE

    try:
        bind_profile(DEFAULT_PROFILE, command)()
    except typer.Exit as exc:  # what the app returns for it with standalone_mode=False
        return int(exc.exit_code)
    except typer.Abort:
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK)


def _is_click_exception(exc: BaseException) -> bool:
    # typer 0.27+ vendors click privately and older typer uses click itself, so the
    # exception classes differ by version; their shape does not
    return callable(getattr(exc, "format_message", None)) and isinstance(
        getattr(exc, "exit_code", None), int
    )


def _run_app() -> int:
    import sys

    import typer

    from consent._exceptions import ExitCode
    from consent.cli._app import app
    from consent.cli._terminal import display_error

    try:
        code = app(prog_name="consent", standalone_mode=False)
    except typer.Abort:
        code = ExitCode.INTERRUPTED
    except Exception as exc:
        if not _is_click_exception(exc):
            raise
        message: str = exc.format_message()  # type: ignore[attr-defined]
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stdout.write(message + "\n")  # click 8.2+: `consent` alone shows the help
            code = ExitCode.OK
        else:
            ctx = getattr(exc, "ctx", None)
            hint = f" See `{ctx.command_path} --help`." if ctx is not None else ""
            message = message.rstrip(".")
            # "Did you mean 'stats'?" already ends a sentence
            stop = "" if message.endswith(("?", "!")) else "."
            display_error(f"{message}{stop}{hint}")
            code = exc.exit_code  # type: ignore[attr-defined]
    return int(code) if isinstance(code, int) else int(ExitCode.OK)


def main() -> None:
    """Entry point: click's own usage errors become one line and exit 2, like ours."""
    import sys

    fast = FAST_FORMS.get(tuple(sys.argv[1:]))
    sys.exit(_run_fast(fast) if fast is not None else _run_app())
