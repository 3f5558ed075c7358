"""The screens as a user sees them: a real pseudo-terminal, read through a terminal emulator.

pexpect drives the program at 80x24 and 120x40; pyte replays what it wrote, cursor
moves and all, so the assertions are about the rows left on the screen, not about
a byte stream that scrolled away.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pexpect
import pyte
import pytest

from consent.cli._init import ANSWERS, QUESTION
from consent.policy import load_policy
from consent.profile import Scope
from tests.conftest import CLOSED_ENDPOINT, Sandbox, run_cli
from tests.test_policy_change import add_gpu_count, write_policy

SIZES = [(24, 80), (40, 120)]
EXTRAS = ["https://a.example/push", "https://b.example/push"]


def first_summary_line(width: int = 76) -> str:
    return textwrap.wrap(load_policy(Scope().policy_path).summary, width)[0]


class Terminal:
    """A program in a pty of ``rows`` x ``cols``, and the screen pyte keeps of it."""

    def __init__(self, sandbox: Sandbox, args: list[str], rows: int, cols: int, **env: str):
        child_env = {k: v for k, v in sandbox.env.items() if k not in ("CI", "COLUMNS", "LINES")}
        child_env.update(TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", **env)
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.Stream(self.screen)
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "consent", *args],
            env=child_env,
            dimensions=(rows, cols),
            encoding="utf-8",
            timeout=20,
        )

    def wait_for(self, text: str) -> list[str]:
        """Feed output to the emulator until ``text`` is on the screen; the screen's rows."""
        while not any(text in row for row in self.screen.display):
            # read straight from the pty (never through expect's buffer) to keep the order
            self.stream.feed(self.child.read_nonblocking(65536, timeout=20))
        return list(self.screen.display)

    def finish(self) -> tuple[int, list[str]]:
        self.child.expect(pexpect.EOF)
        self.stream.feed(self.child.before or "")
        self.child.close()
        return self.child.exitstatus, list(self.screen.display)

    def cancel(self) -> None:
        self.child.sendcontrol("c")
        self.finish()


def on_screen(rows: list[str], text: str) -> bool:
    return any(text in row for row in rows)


@pytest.mark.parametrize(("rows", "cols"), SIZES, ids=["80x24", "120x40"])
def test_init_question_and_summary_share_the_screen(sandbox: Sandbox, rows: int, cols: int) -> None:
    term = Terminal(sandbox, ["init"], rows, cols)
    screen = term.wait_for(ANSWERS["dont-share"])
    term.cancel()
    assert on_screen(screen, QUESTION)
    assert all(on_screen(screen, answer) for answer in ANSWERS.values())
    assert on_screen(screen, first_summary_line()), "\n".join(screen)
    assert on_screen(screen, "Collected: system, IDs, regions, arguments, performance, error")
    assert on_screen(screen, f"Sent to:   {CLOSED_ENDPOINT}")
    assert on_screen(screen, "consent policy show")
    for meaning in ("Yes:", "Review:", "No:"):
        assert on_screen(screen, meaning)


def test_init_at_80x24_with_every_endpoint_and_an_override(sandbox: Sandbox) -> None:
    """The tallest first screen: two extra endpoints and DO_NOT_TRACK's own line."""
    sandbox.write_config({"usage_stats_extra_endpoints": EXTRAS})
    term = Terminal(sandbox, ["init"], 24, 80, DO_NOT_TRACK="1")
    screen = term.wait_for(ANSWERS["dont-share"])
    term.cancel()
    assert on_screen(screen, first_summary_line()), "\n".join(screen)
    assert on_screen(screen, QUESTION)
    for url in (CLOSED_ENDPOINT, *EXTRAS):
        assert on_screen(screen, url)
    assert on_screen(screen, "DO_NOT_TRACK=1 is set, so usage statistics stay off")


def test_init_shows_the_endpoint_from_the_config_not_the_policys(sandbox: Sandbox) -> None:
    env = {k: v for k, v in sandbox.env.items() if k != "SKYPLANE_USAGE_STATS_ENDPOINT"}
    sandbox.env.clear()
    sandbox.env.update(env)
    sandbox.write_config({"usage_stats_endpoint": "https://mine.example/push"})
    term = Terminal(sandbox, ["init"], 24, 80)
    screen = term.wait_for(ANSWERS["dont-share"])
    term.cancel()
    assert on_screen(screen, "Sent to:   https://mine.example/push")
    assert not on_screen(screen, load_policy(Scope().policy_path).endpoint)


@pytest.mark.parametrize(("rows", "cols"), SIZES, ids=["80x24", "120x40"])
def test_non_interactive_notice_fits(sandbox: Sandbox, rows: int, cols: int) -> None:
    sandbox.write_config({"usage_stats_extra_endpoints": EXTRAS})
    term = Terminal(sandbox, ["init", "--non-interactive"], rows, cols)
    code, screen = term.finish()
    assert code == 0
    assert on_screen(screen, "anonymous usage statistics (policy version 3)")
    assert on_screen(screen, first_summary_line()), "\n".join(screen)
    assert on_screen(screen, "Not asked (--non-interactive)")
    assert on_screen(screen, "consent policy show")
    for url in (CLOSED_ENDPOINT, *EXTRAS):
        assert on_screen(screen, url)


def test_policy_change_notice_alone_fits_80x24(sandbox: Sandbox, tmp_path: Path) -> None:
    """The change notice, shown by `init --non-interactive`, with the rows it needs."""
    assert run_cli("init", "--yes").returncode == 0
    policy = write_policy(tmp_path, add_gpu_count)
    sandbox.write_config({"usage_stats": True, "usage_stats_extra_endpoints": EXTRAS})
    term = Terminal(
        sandbox,
        ["init", "--non-interactive"],
        24,
        80,
        SKYPLANE_USAGE_STATS_POLICY=str(policy),
    )
    code, screen = term.finish()
    assert code == 0
    assert on_screen(screen, "The usage-statistics policy changed (version 4)"), "\n".join(screen)
    assert on_screen(screen, "New, not sent until you accept: gpu_count")
    assert on_screen(screen, "consent policy accept")
    for url in (CLOSED_ENDPOINT, *EXTRAS):
        assert on_screen(screen, url)
    assert on_screen(screen, "Each transfer sends one payload when it ends.")


def test_the_review_mode_notice_promises_no_sending(sandbox: Sandbox) -> None:
    """After `init --review`, no screen says a payload is sent at the end of a transfer."""
    assert run_cli("init", "--review").returncode == 0
    term = Terminal(sandbox, ["init", "--non-interactive"], 24, 80)
    code, screen = term.finish()
    text = " ".join(" ".join(screen).split())
    assert code == 0
    assert "Review mode is on: each payload is held" in text
    assert "sends one payload" not in text
    assert "sent at the end" not in text


@pytest.mark.parametrize(
    ("flag", "env", "sentence", "state"),
    [
        ("--yes", {}, "Each transfer sends one payload when it ends.", "pending"),
        ("--review", {}, "Review mode is on: each payload is held", "held"),
        ("--no", {}, "Usage statistics are off (usage_stats is false in", None),
        ("--yes", {"DO_NOT_TRACK": "1"}, "Usage statistics are off (DO_NOT_TRACK=1 is set)", None),
        (
            "--yes",
            {"SKYPLANE_USAGE_STATS_ENABLED": "0"},
            "Usage statistics are off (SKYPLANE_USAGE_STATS_ENABLED=0 is set)",
            None,
        ),
    ],
    ids=["share", "review", "dont-share", "do-not-track", "env-off"],
)
def test_the_notice_says_what_the_next_transfer_does(
    sandbox: Sandbox, flag: str, env: dict[str, str], sentence: str, state: str | None
) -> None:
    """Each mode's sentence, checked against what recording a transfer then does."""
    assert run_cli("init", flag).returncode == 0
    notice = run_cli("init", "--non-interactive", env={**env, "COLUMNS": "200"}).stderr
    assert sentence in " ".join(notice.replace("│", " ").split()), notice
    recorded = run_cli(
        "record", "--src", "local", "--dst", "local", "--runtime-s", "1", env=env
    ).stdout.strip()
    listing = run_cli("stats", "review", "--json", env=env).json()
    if state is None:
        assert recorded == ""
        assert listing == []
    else:
        assert [(item["session_id"], item["state"]) for item in listing] == [(recorded, state)]
