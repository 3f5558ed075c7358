"""`consent init` in a real pseudo-terminal, driven the way a person would drive it."""

from __future__ import annotations

import os
import re
import stat
import sys
import tomllib
from typing import Any

import pexpect
import pytest

from consent.cli._init import ANSWERS, INSTRUCTION, QUESTION
from tests.conftest import Sandbox
from tests.pty_screen import DOWN, UP, Terminal

ORDER = list(ANSWERS.values())
# CSI sequences (colours, cursor moves, modes) and OSC sequences (titles).
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>]")
# Cursor moves and erases: after one, the next text may land anywhere on the screen.
_MOVES = re.compile(r"\x1b\[[0-9;]*[ABCDEFGHJKf]")


def spawn(sandbox: Sandbox, *args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    child_env = {k: v for k, v in sandbox.env.items() if k not in ("CI", "COLUMNS", "LINES")}
    child_env["TERM"] = "xterm"
    # pexpect is no terminal emulator: it never answers prompt_toolkit's cursor-position
    # request, which on a slow machine ends in a "terminal doesn't support CPR" warning.
    child_env["PROMPT_TOOLKIT_NO_CPR"] = "1"
    child_env.update(env or {})
    return pexpect.spawn(
        sys.executable,
        ["-m", "consent", "init", *args],
        env=child_env,
        dimensions=(50, 80),
        encoding="utf-8",
        timeout=15,
    )


def visible(text: str) -> str:
    return _ESCAPES.sub("", text).replace("\r", "")


def finish(child: pexpect.spawn, *, raw: bool = False) -> tuple[int, str]:
    """Wait for the exit; the exit code and what the terminal showed (or the raw bytes)."""
    child.expect(pexpect.EOF)
    child.close()
    assert child.signalstatus is None, "killed by a signal"
    out = child.before or ""
    return child.exitstatus, out if raw else visible(out)


def terminal(sandbox: Sandbox, *args: str) -> Terminal:
    """`consent init ARGS` on a screen of 50 rows by 80 columns."""
    env = {k: v for k, v in sandbox.env.items() if k not in ("CI", "COLUMNS", "LINES")}
    env["TERM"] = "xterm"
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"  # as in spawn()
    return Terminal(
        [sys.executable, "-m", "consent", "init", *args], env, rows=50, cols=80, timeout=15
    )


def choose(sandbox: Sandbox, downs: int) -> tuple[int, str]:
    """Pick the answer ``downs`` rows below the first; the exit code and the raw output."""
    term = terminal(sandbox)
    term.wait_for_pointer(ORDER[0])
    for answer in ORDER[1 : downs + 1]:
        term.move_pointer(DOWN, answer)
    term.child.send("\r")
    code = term.finish()
    return code, term.transcript


def read_toml(sandbox: Sandbox) -> dict[str, Any]:
    return tomllib.loads(sandbox.record.read_text())


def read_config(sandbox: Sandbox) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(sandbox.config.read_text())
    return data


def mode(path: os.PathLike[str]) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_panel_fits(raw: str) -> None:
    """The policy, the question and the answers, in lines an 80-column terminal shows whole.

    rich prints the panel as plain lines. prompt_toolkit then redraws in place, so
    its output is cut at every cursor move: each piece is written on one row, and a
    piece longer than 80 characters would wrap.
    """
    screen = visible(raw)
    for needle in (
        "Skyplane anonymous usage statistics",
        "policy version 3",
        "Collected: system, IDs, regions, arguments, performance, error",
        "Sent to:   http://127.0.0.1:",
        "Every field, and why:  consent policy show",
        QUESTION,
        "Yes, share them",
        "Yes, but let me review each upload first",
        "No, don't share",
    ):
        assert needle in screen, needle
    panel, _, prompt = raw.partition("\x1b[?")
    prompt_rows = visible(_MOVES.sub("\n", prompt)).split("\n")
    rows = visible(panel).split("\n") + prompt_rows
    assert [row for row in rows if len(row) > 80] == []
    # prompt_toolkit breaks an overlong row itself, mid-word; so each must appear whole
    whole = [f"? {QUESTION} {INSTRUCTION}", *ANSWERS.values()]
    assert [line for line in whole if not any(line in row for row in prompt_rows)] == []


@pytest.mark.parametrize(
    ("downs", "choice", "config"),
    [
        (0, "share", {"usage_stats": True, "usage_stats_review": False}),
        (1, "review", {"usage_stats": True, "usage_stats_review": True}),
        (2, "dont-share", {"usage_stats": False}),
    ],
)
def test_each_answer_is_recorded(
    sandbox: Sandbox, downs: int, choice: str, config: dict[str, Any]
) -> None:
    code, raw = choose(sandbox, downs)
    screen = visible(raw)
    assert code == 0, screen
    assert read_config(sandbox) == config
    ack = read_toml(sandbox)["acknowledgement"]
    assert ack["decision"] == choice
    assert ack["via"] == "init-prompt"
    assert ack["version"] == 3
    assert mode(sandbox.config) == 0o600
    assert mode(sandbox.record) == 0o600
    # one closing line says what was decided and how to change it
    assert "To change it: consent init" in screen
    assert "Traceback" not in screen
    assert_panel_fits(raw)


@pytest.mark.parametrize("key", ["\x03", "\x1b"], ids=["ctrl-c", "esc"])
def test_cancel_exits_130_and_writes_nothing(sandbox: Sandbox, key: str) -> None:
    term = terminal(sandbox)
    term.wait_for_pointer(ORDER[0])
    term.move_pointer(DOWN, ORDER[1])
    term.child.send(key)
    code = term.finish()
    screen = visible(term.transcript)
    assert code == 130
    assert "Cancelled; nothing was changed." in screen
    assert "Traceback" not in screen
    assert not sandbox.config.exists()
    assert not sandbox.record.exists()


def test_rerun_preselects_the_current_answer(sandbox: Sandbox) -> None:
    code, _ = choose(sandbox, 2)
    assert code == 0
    first_client = read_toml(sandbox)["client_id"]

    term = terminal(sandbox)
    term.wait_for("Esc cancels")
    # the pointer sits on the earlier answer before any key is pressed
    term.wait_for_pointer(ANSWERS["dont-share"])
    assert not term.pointer_on(ANSWERS["share"])
    term.child.send("\r")
    code = term.finish()
    assert code == 0
    assert read_config(sandbox) == {"usage_stats": False}
    record = read_toml(sandbox)
    assert record["client_id"] == first_client
    assert record["acknowledgement"]["decision"] == "dont-share"
    assert [h["decision"] for h in record["history"]] == ["dont-share"]


def test_rerun_after_review_preselects_review(sandbox: Sandbox) -> None:
    sandbox.write_config({"usage_stats": True, "usage_stats_review": True})
    term = terminal(sandbox)
    term.wait_for("Esc cancels")
    term.wait_for_pointer(ANSWERS["review"])
    assert not term.pointer_on(ANSWERS["share"])
    term.move_pointer(UP, ANSWERS["share"])  # from review, up is "share"
    term.child.send("\r")
    code = term.finish()
    assert code == 0
    assert read_config(sandbox) == {"usage_stats": True, "usage_stats_review": False}


def test_ci_on_a_terminal_never_prompts(sandbox: Sandbox) -> None:
    # a prompt would wait for a key until pexpect's timeout: finish() would fail
    child = spawn(sandbox, env={"CI": "true"})
    code, screen = finish(child)
    assert code == 0
    assert QUESTION not in screen
    assert "Skyplane anonymous usage statistics" in screen
    assert "consent stats off" in screen
    assert "Not asked (CI is set); usage statistics stay on." in screen
    assert read_toml(sandbox)["acknowledgement"]["via"] == "notice"
    assert not sandbox.config.exists()


def test_non_interactive_flag_on_a_terminal_never_prompts(sandbox: Sandbox) -> None:
    code, screen = finish(spawn(sandbox, "--non-interactive"))
    assert code == 0
    assert QUESTION not in screen
    assert "Not asked (--non-interactive)" in screen
    assert read_toml(sandbox)["acknowledgement"]["via"] == "notice"


def test_a_flag_on_a_terminal_decides_without_asking(sandbox: Sandbox) -> None:
    code, screen = finish(spawn(sandbox, "--review"))
    assert code == 0
    assert QUESTION not in screen
    assert read_toml(sandbox)["acknowledgement"]["via"] == "init-flag"
