"""The real ``skyplane`` at 80x24, as a new user meets it, and ``skyplane cp`` end to end.

pexpect drives the patched ``skyplane`` in a pty of 24 rows by 80 columns; pyte
replays what it wrote, so the assertions are about the rows left on the screen.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from typing import Any

import pytest

from consent.cli._init import ANSWERS, QUESTION
from consent.policy import load_policy
from consent.profile import AppProfile, Scope
from tests.conftest import Sandbox
from tests.integration.skyplane_venv import SkyplaneVenv, skyplane_venv
from tests.integration.test_skyplane import _env, skyplane
from tests.pty_screen import DOWN, Terminal

pytestmark = pytest.mark.integration

ROWS, COLS = 24, 80
# Skyplane's own cloud questions, all answered "no" (no cloud is configured)
CLOUD_QUESTION = re.compile(r"\[[Yy]/[Nn]\]: ?$")


@pytest.fixture(scope="session")
def venv() -> SkyplaneVenv:
    return skyplane_venv()


class SkyplaneTerminal(Terminal):
    """``skyplane ARGS`` in a pty of ROWS x COLS, and the screen pyte keeps of it."""

    def __init__(self, venv: SkyplaneVenv, sandbox: Sandbox, *args: str) -> None:
        env = _env(sandbox, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
        for name in ("COLUMNS", "LINES"):
            env.pop(name, None)
        super().__init__(
            [str(venv.skyplane), *args], env, rows=ROWS, cols=COLS, cwd=str(sandbox.home)
        )

    def answer_cloud_questions_until(self, text: str) -> int:
        """Answer Skyplane's [Y/n] questions "n" until ``text`` is on the screen."""
        answered = 0
        while not self.on_screen(text):
            self.read()
            cursor_row = self.screen.display[self.screen.cursor.y]
            if CLOUD_QUESTION.search(cursor_row.rstrip() + " "):
                self.child.sendline("n")
                answered += 1
                # wait for the echo, so the same prompt is not answered twice
                while CLOUD_QUESTION.search(self.screen.display[self.screen.cursor.y] + " "):
                    self.read()
        return answered


def first_summary_line() -> str:
    # the panel's text is 80 columns less the border and padding
    policy = load_policy(Scope(AppProfile(cli_name="skyplane")).policy_path)
    return textwrap.wrap(policy.summary, 76)[0]


DOWNS = {"share": 0, "review": 1, "dont-share": 2}
OUTCOME = {"share": (True, False), "review": (True, True), "dont-share": (False, False)}


@pytest.mark.parametrize("choice", ["share", "review", "dont-share"])
def test_init_at_80x24_shows_the_summary_and_the_question_after_skyplanes_own(
    venv: SkyplaneVenv, sandbox: Sandbox, choice: str
) -> None:
    term = SkyplaneTerminal(venv, sandbox, "init")
    answered = term.answer_cloud_questions_until(ANSWERS["dont-share"])
    screen = term.rows()
    assert answered >= 2, term.transcript  # Skyplane's own questions came first
    assert "Config file saved to" in term.transcript
    # one screen holds the summary's first line, the question and every answer
    assert term.on_screen(first_summary_line()), "\n".join(screen)
    assert term.on_screen(QUESTION), "\n".join(screen)
    assert all(term.on_screen(answer) for answer in ANSWERS.values()), "\n".join(screen)
    assert term.on_screen("skyplane policy show"), "\n".join(screen)
    assert not term.on_screen("consent "), "\n".join(screen)
    # the consent step is the only word about usage statistics: none of Skyplane's own
    before_panel = term.transcript.split("\u256d")[0]  # up to the panel's top-left corner
    assert not re.search(r"usage stat|performance logging", before_panel, re.I), before_panel

    order = list(ANSWERS.values())
    term.wait_for_pointer(order[0])
    for answer in order[1 : DOWNS[choice] + 1]:
        term.move_pointer(DOWN, answer)
    term.child.send("\r")
    assert term.finish() == 0, term.transcript
    after = term.transcript.split(QUESTION)[-1]
    assert "performance logging" not in after.lower()
    assert "skyplane " in after and "consent " not in after
    config = json.loads(sandbox.config.read_text())
    assert (config["usage_stats"], config.get("usage_stats_review", False)) == OUTCOME[choice]
    ini = (sandbox.home / ".skyplane" / "config").read_text()
    assert f"usage_stats = {OUTCOME[choice][0]}" in ini


def _init_y(venv: SkyplaneVenv, sandbox: Sandbox) -> list[str]:
    result = skyplane(venv, sandbox, "init", "-y", "--disable-config-cloudflare", COLUMNS="80")
    assert result.returncode == 0, result.stderr
    return [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if re.search("usage stat", line, re.I) or "skyplane stats" in line
    ]


def test_init_y_after_a_choice_prints_one_line_that_fits_80_columns(
    venv: SkyplaneVenv, sandbox: Sandbox
) -> None:
    assert skyplane(venv, sandbox, "init", "-y", "--disable-config-cloudflare").returncode == 0
    assert skyplane(venv, sandbox, "config", "set", "usage_stats_review", "true").returncode == 0
    assert skyplane(venv, sandbox, "stats", "on").returncode == 0
    lines = _init_y(venv, sandbox)
    assert len(lines) == 1, lines
    assert len(lines[0]) <= COLS, lines


def test_init_y_before_a_choice_fits_80_columns(venv: SkyplaneVenv, sandbox: Sandbox) -> None:
    result = skyplane(venv, sandbox, "init", "-y", "--disable-config-cloudflare", COLUMNS="80")
    assert result.returncode == 0, result.stderr
    # consent's lines: the notice panel and what follows it (Skyplane's own are longer)
    ours = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line[:1] in ("\u256d", "\u2502", "\u2570")
        or re.search("usage stat|skyplane stats", line, re.I)
    ]
    assert ours, result.stdout + result.stderr
    too_long = [line for line in ours if len(line) > COLS]
    assert not too_long, too_long


def test_stats_forget_without_a_terminal_names_the_skyplane_command(
    venv: SkyplaneVenv, sandbox: Sandbox
) -> None:
    result = skyplane(venv, sandbox, "stats", "forget")
    assert result.returncode == 2
    assert "skyplane stats forget --yes" in result.stderr, result.stderr


def test_the_consent_record_names_the_skyplane_command(
    venv: SkyplaneVenv, sandbox: Sandbox
) -> None:
    assert skyplane(venv, sandbox, "stats", "on").returncode == 0
    assert skyplane(venv, sandbox, "policy", "accept").returncode == 0
    text = sandbox.record.read_text()
    assert "`consent " not in text, text


# `skyplane cp` writes /tmp/skyplane/transfer_logs whatever HOME is: it runs only in a
# private mount namespace whose /tmp is its own tmpfs, and reports back on stdout.
CP_SCRIPT = r"""
set -eu
mount -t tmpfs tmpfs /tmp
export HOME="$(mktemp -d)"
export SKYPLANE_USAGE_STATS_DIR="$HOME/spool"
cd "$HOME"
skyplane init -y --disable-config-aws --disable-config-azure --disable-config-gcp \
  --disable-config-cloudflare >/dev/null 2>&1
skyplane stats on >/dev/null 2>&1
mkdir -p src/acme-payroll && echo 1 > src/acme-payroll/q1-salaries.csv
set +e
skyplane cp -r -y "$HOME/src/acme-payroll" "$HOME/dst/acme-copy" >cp.out 2>&1
echo "cp-returncode=$?" >&2
set -e
skyplane stats review --json
# Skyplane 0.3.2 wrote its own usage files under /tmp/skyplane/usage
find /tmp -path "$HOME" -prune -o -name usage_stats.json -print | sed 's/^/old-format: /' >&2
"""


def _unshare() -> list[str] | None:
    """The unshare prefix that gives this user a private mount namespace, if any."""
    if shutil.which("unshare") is None:
        return None
    prefix = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
    probe = subprocess.run(
        [*prefix, "sh", "-c", "mount -t tmpfs tmpfs /tmp"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return prefix if probe.returncode == 0 else None


def test_skyplane_cp_records_one_scrubbed_payload(venv: SkyplaneVenv, sandbox: Sandbox) -> None:
    prefix = _unshare()
    if prefix is None:
        pytest.skip("no private mount namespace here (unshare -m), and skyplane cp writes /tmp")
    env = _env(sandbox)
    env["PATH"] = f"{venv.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [*prefix, "sh", "-c", CP_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # Skyplane 0.3.2 does not copy local -> local: it raises, and its command fails
    assert "cp-returncode=1" in proc.stderr, proc.stderr
    assert "old-format:" not in proc.stderr, proc.stderr
    items: list[dict[str, Any]] = json.loads(proc.stdout)
    assert len(items) == 1, items  # the CLI's session and the error path: one payload
    payload = items[0]["payload"]
    assert payload["source_region"] == "local"
    assert payload["destination_regions"] == ["local"]
    assert payload["error"].startswith("NotImplementedError: Local->local")
    assert payload["arguments"]["_command"] == "cp"
    raw = json.dumps(payload)
    for secret in ("acme", "payroll", "salaries", "/tmp/"):
        assert secret not in raw, raw
