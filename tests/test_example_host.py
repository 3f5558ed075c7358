"""examples/skyplane_host.py, a Typer host that embeds consent, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from consent.cli._init import ANSWERS
from tests.conftest import REPO, Result, Sandbox
from tests.pty_screen import Terminal
from tests.test_policy_change import reword_runtime, write_policy

HOST = REPO / "examples" / "skyplane_host.py"


def host(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
    proc = subprocess.run(
        [sys.executable, str(HOST), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def payloads(sandbox: Sandbox) -> list[tuple[dict[str, Any], dict[str, Any], bytes]]:
    """Every stored session as (state, payload, the exact payload bytes)."""
    found = []
    for path in sandbox.spool.glob("*/*/usage_stats.json"):
        raw = path.read_bytes()
        state = json.loads((path.parent / "state.json").read_text())
        found.append((state, json.loads(raw), raw))
    return found


def via(sandbox: Sandbox) -> str:
    return str(tomllib.loads(sandbox.record.read_text())["acknowledgement"]["via"])


def test_help_lists_the_host_and_the_mounted_commands() -> None:
    result = host("--help")
    assert result.returncode == 0
    for command in ("init", "cp", "stats", "config", "policy"):
        assert command in result.stdout
    # mounting never replaced the host's own config command
    assert "The host's own settings." in host("config", "--help").stdout


def test_init_y_shows_the_notice_once_then_one_line(sandbox: Sandbox) -> None:
    first = host("init", "-y")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0].startswith("Checking cloud credentials")
    assert "Skyplane anonymous usage statistics" in first.stderr
    assert "Not asked (--non-interactive)" in first.stderr
    assert via(sandbox) == "notice"

    assert host("stats", "off").returncode == 0
    again = host("init", "-y")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "Checking cloud credentials... none needed for this example.",
        "Usage statistics are off. To share them: skyplane-host stats on",
        "skyplane-host is ready.",
    ]
    assert again.stderr == ""


def test_init_without_a_terminal_shows_the_notice(sandbox: Sandbox) -> None:
    result = host("init")
    assert result.returncode == 0
    assert "Skyplane anonymous usage statistics" in result.stderr
    assert "Not asked (not an interactive terminal)" in result.stderr
    assert via(sandbox) == "notice"


def _init_terminal(sandbox: Sandbox) -> Terminal:
    env = {k: v for k, v in sandbox.env.items() if k not in ("CI", "COLUMNS")}
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"  # pexpect never answers the cursor-position request
    term = Terminal([sys.executable, str(HOST), "init"], env, rows=50, cols=80, timeout=15)
    term.wait_for_pointer(ANSWERS["share"])  # the question is up, "share" pre-selected
    return term


def test_init_prompt_inside_the_host(sandbox: Sandbox) -> None:
    term = _init_terminal(sandbox)
    term.child.send("\r")  # the pre-selected answer: share
    assert term.finish() == 0
    assert "skyplane-host is ready." in term.transcript
    assert via(sandbox) == "init-prompt"


def test_ctrl_c_inside_the_host_exits_130(sandbox: Sandbox) -> None:
    term = _init_terminal(sandbox)
    term.child.sendcontrol("c")
    assert term.finish() == 130
    assert "Cancelled; nothing was changed." in term.transcript
    assert "Traceback" not in term.transcript
    assert "skyplane-host is ready." not in term.transcript
    assert not sandbox.record.exists()


def test_cp_records_a_scrubbed_session(sandbox: Sandbox, tmp_path: Path) -> None:
    assert host("stats", "on").returncode == 0
    private = tmp_path / "acme-payroll"
    private.mkdir()
    (private / "salaries.csv").write_bytes(b"x" * 4096)
    result = host(
        "cp",
        str(private / "salaries.csv"),
        str(private / "copy.csv"),
        "--src-region",
        "aws:us-east-1",
        "--dst-region",
        "gcp:us-central1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Copied 4096 bytes.\n"
    assert result.stderr == ""

    ((state, payload, raw),) = payloads(sandbox)
    assert state["state"] == "pending"
    assert payload["source_region"] == "aws:us-east-1"
    assert payload["destination_regions"] == ["gcp:us-central1"]
    assert payload["host_version"] == "0.0.1-example"
    assert payload["arguments"]["_positional"] == ["<path>", "<path>"]
    assert payload["arguments"]["src_region"] == "aws:us-east-1"
    assert payload["throughput_gbps"] >= 0
    assert "error" not in payload
    for secret in (b"acme", b"payroll", b"salaries", str(tmp_path).encode()):
        assert secret not in raw


def test_a_failing_cp_reraises_the_host_error_and_records_it_scrubbed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    assert host("stats", "on").returncode == 0
    source = tmp_path / "acme-payroll.csv"
    source.write_text("x")
    target = tmp_path / "out" / "acme-copy.csv"
    result = host("cp", str(source), str(target), "--fail")
    # the host's own handler saw its own exception, message and all
    assert result.returncode == 3
    expected = f"skyplane-host: copy failed: cannot write {target}: permission denied\n"
    assert result.stderr == expected
    assert "consent" not in result.stderr

    ((state, payload, raw),) = payloads(sandbox)
    assert state["state"] == "pending"
    assert payload["error"].startswith("CopyError: cannot write <path>")
    assert payload["arguments"]["fail"] is True
    assert b"acme" not in raw
    assert str(tmp_path).encode() not in raw


def test_the_first_session_prints_the_notice_and_is_held(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("abc")
    result = host("cp", str(tmp_path / "a"), str(tmp_path / "b"))
    assert result.returncode == 0
    assert result.stdout == "Copied 3 bytes.\n"
    assert "Skyplane anonymous usage statistics" in result.stderr
    assert "Nothing is sent from this run." in result.stderr
    ((state, _, _),) = payloads(sandbox)
    assert state["state"] == "held"

    again = host("cp", str(tmp_path / "a"), str(tmp_path / "c"))
    assert again.stderr == ""
    assert sorted(state["state"] for state, _, _ in payloads(sandbox)) == ["held", "pending"]


def test_a_description_only_change_is_one_plain_line(sandbox: Sandbox, tmp_path: Path) -> None:
    assert host("stats", "on").returncode == 0
    (tmp_path / "a").write_text("abc")
    env = {"SKYPLANE_USAGE_STATS_POLICY": str(write_policy(tmp_path, reword_runtime))}
    result = host("cp", str(tmp_path / "a"), str(tmp_path / "b"), env=env)
    assert result.returncode == 0
    assert result.stderr == (
        "Usage-statistics policy updated to version 4. "
        "Only descriptions were reworded; nothing new is collected.\n"
    )
    assert host("cp", str(tmp_path / "a"), str(tmp_path / "c"), env=env).stderr == ""


def test_nothing_is_recorded_after_dont_share(sandbox: Sandbox, tmp_path: Path) -> None:
    assert host("stats", "off").returncode == 0
    (tmp_path / "a").write_text("abc")
    result = host("cp", str(tmp_path / "a"), str(tmp_path / "b"))
    assert (result.returncode, result.stderr) == (0, "")
    assert payloads(sandbox) == []


def test_a_failure_reported_by_return_code_is_recorded(sandbox: Sandbox, tmp_path: Path) -> None:
    assert host("stats", "on").returncode == 0
    (tmp_path / "a").write_text("abc")
    result = host("cp", str(tmp_path / "a"), str(tmp_path / "b"), "--exit-code", "4")
    assert result.returncode == 4
    ((_, payload, _),) = payloads(sandbox)
    assert "exit status 4" in payload["error"]


def test_the_mounted_sub_apps_work(sandbox: Sandbox, tmp_path: Path) -> None:
    assert host("stats", "on").returncode == 0
    status = host("stats", "status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert (data["enabled"], data["source"]) == (True, "config")
    assert data["policy"]["up_to_date"] is True

    shown = host("policy", "show")
    assert shown.returncode == 0
    assert "usage-statistics policy, version 3" in shown.stdout
    assert "destination_regions" in shown.stdout
    assert json.loads(host("policy", "show", "--json").stdout)["version"] == 3

    # the host's own config command routes usage_stats* to consent, and keeps its own keys
    off = host("config", "set", "usage_stats", "false")
    assert off.returncode == 0, off.stderr
    assert "skyplane-host stats on" in " ".join(off.stderr.split())
    got = host("config", "get", "usage_stats")
    assert got.returncode == 0
    assert got.stdout.startswith("usage_stats = false (from ")
    assert host("config", "set", "usage_stats", "maybe").returncode == 2
    assert host("config", "set", "max_instances", "4").returncode == 0
    assert host("config", "get", "max_instances").stdout == "4\n"
    ini = (sandbox.home / ".skyplane" / "config").read_text()
    assert "max_instances = 4" in ini
    # the host INI exists now: the next switch writes it too
    assert host("stats", "on").returncode == 0
    assert "usage_stats = True" in (sandbox.home / ".skyplane" / "config").read_text()
    status = json.loads(host("stats", "status", "--json").stdout)
    assert (status["enabled"], status["warnings"]) == (True, [])
