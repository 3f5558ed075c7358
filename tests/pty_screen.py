"""A program in a real pseudo-terminal, and the screen a person would see of it.

pexpect runs the program; pyte, a terminal emulator, keeps the screen. Tests wait
for what the screen shows, never for a fixed time: prompt_toolkit switches the
terminal to raw mode before it first draws the question, so a key pressed once the
question is on the screen is read as a key, and after a key the test waits until
the pointer has moved before it presses the next one. A busy machine makes this
slower, never wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pexpect
import pyte

DOWN = "\x1b[B"
UP = "\x1b[A"
POINTER = "\u00bb"  # questionary's pointer, before the highlighted answer
TICKED = "\u25cf"  # questionary's checkbox, ticked


class Terminal:
    """``argv`` in a pty of ``rows`` x ``cols``, with the screen pyte keeps of it."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        rows: int = 24,
        cols: int = 80,
        cwd: str | None = None,
        timeout: float = 60,
    ) -> None:
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.Stream(self.screen)
        self.transcript = ""
        self.child = pexpect.spawn(
            argv[0],
            list(argv[1:]),
            env=dict(env),
            cwd=cwd,
            dimensions=(rows, cols),
            encoding="utf-8",
            timeout=timeout,
        )

    def read(self) -> None:
        """Take in what the program wrote next (waits for it); EOF if it has ended."""
        chunk = self.child.read_nonblocking(65536, timeout=self.child.timeout)
        self.transcript += chunk
        self.stream.feed(chunk)

    def rows(self) -> list[str]:
        return list(self.screen.display)

    def on_screen(self, text: str) -> bool:
        return any(text in row for row in self.screen.display)

    def wait_until(self, shown: Callable[[], bool]) -> None:
        """Read until ``shown()`` holds of the screen."""
        while not shown():
            self.read()

    def wait_for(self, text: str) -> None:
        self.wait_until(lambda: self.on_screen(text))

    def pointer_row(self) -> int | None:
        """The row questionary's pointer is on, if it is on the screen."""
        for index, row in enumerate(self.screen.display):
            if row.lstrip().startswith(POINTER):
                return index
        return None

    def pointer_on(self, answer: str) -> bool:
        """Whether questionary's pointer is on the row of ``answer``."""
        return any(
            answer in row and row.lstrip().startswith(POINTER) for row in self.screen.display
        )

    def wait_for_pointer(self, answer: str) -> None:
        """Wait until the question is up with its pointer on ``answer``."""
        self.wait_until(lambda: self.pointer_on(answer))

    def move_pointer(self, key: str, to: str) -> None:
        """Press ``key`` (an arrow) and wait until the pointer is on ``to``."""
        self.child.send(key)
        self.wait_for_pointer(to)

    def finish(self) -> int:
        """Wait for the program to end; its exit status (None if a signal ended it)."""
        self.child.expect(pexpect.EOF)
        rest = self.child.before or ""
        self.transcript += rest
        self.stream.feed(rest)
        self.child.close()
        status: int = self.child.exitstatus
        return status
