"""`consent init` without a terminal, and with --yes / --review / --no."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import tomllib
from typing import Any

import pytest

from consent.policy import load_policy
from consent.profile import Scope
from tests.conftest import Result, Sandbox, run_cli


def record_of(sandbox: Sandbox) -> dict[str, Any]:
    return tomllib.loads(sandbox.record.read_text())


def config_of(sandbox: Sandbox) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(sandbox.config.read_text())
    return data


def mode(path: os.PathLike[str]) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_notice(result: Result) -> None:
    """The non-interactive notice: what is collected, how to turn it off, where to look."""
    assert "Skyplane anonymous usage statistics" in result.stderr
    assert "Collected: system, IDs, regions" in result.stderr
    assert "consent policy show" in result.stderr
    assert "consent stats off" in result.stderr
    assert "DO_NOT_TRACK=1" in result.stderr
    assert "performance_stats_collection.html" in result.stderr
    assert result.stdout == ""


def test_no_terminal_shows_the_notice_and_keeps_the_default(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = run_cli("init")  # stdin is /dev/null
    assert time.monotonic() - started < 5
    assert result.returncode == 0, result.stderr
    assert_notice(result)
    assert "Not asked (not an interactive terminal); usage statistics stay on." in result.stderr
    assert "Traceback" not in result.stderr

    record = record_of(sandbox)
    policy = load_policy(Scope().policy_path)
    ack = record["acknowledgement"]
    assert ack["via"] == "notice"
    assert (ack["version"], ack["fingerprint"]) == (policy.version, policy.fingerprint)
    assert ack["decision"] == "share"
    assert mode(sandbox.record) == 0o600
    # the default stays in force: nothing was decided for the user
    assert not sandbox.config.exists()
    status = run_cli("stats", "status", "--json").json()
    assert (status["enabled"], status["source"]) == (True, "default")
    assert status["policy"]["up_to_date"] is True


def test_closed_stdin_returns_at_once(sandbox: Sandbox) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        ["/bin/sh", "-c", 'exec "$0" -m consent init <&-', sys.executable],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert time.monotonic() - started < 5
    assert proc.returncode == 0, proc.stderr
    assert "Skyplane anonymous usage statistics" in proc.stderr
    assert record_of(sandbox)["acknowledgement"]["via"] == "notice"


def test_ci_without_a_flag_never_waits(sandbox: Sandbox) -> None:
    result = run_cli("init", env={"CI": "1"}, input="")
    assert result.returncode == 0
    assert "Not asked (CI is set)" in result.stderr


def test_non_interactive_keeps_an_earlier_choice(sandbox: Sandbox) -> None:
    assert run_cli("init", "--no").returncode == 0
    result = run_cli("init", "--non-interactive")
    assert result.returncode == 0
    assert "usage statistics stay off" in result.stderr
    # no promise of sending while collection is off
    assert "nothing is sent" in result.stderr
    assert config_of(sandbox) == {"usage_stats": False}
    ack = record_of(sandbox)["acknowledgement"]
    assert (ack["via"], ack["decision"]) == ("init-flag", "dont-share")


def test_non_interactive_names_an_environment_override(sandbox: Sandbox) -> None:
    result = run_cli("init", "--non-interactive", env={"DO_NOT_TRACK": "1"})
    assert result.returncode == 0
    assert "usage statistics stay off (DO_NOT_TRACK is set)" in result.stderr


@pytest.mark.parametrize(
    ("flag", "decision", "config"),
    [
        ("--yes", "share", {"usage_stats": True, "usage_stats_review": False}),
        ("--review", "review", {"usage_stats": True, "usage_stats_review": True}),
        ("--no", "dont-share", {"usage_stats": False}),
    ],
)
def test_flags_decide_without_asking(
    sandbox: Sandbox, flag: str, decision: str, config: dict[str, Any]
) -> None:
    result = run_cli("init", flag)
    assert result.returncode == 0, result.stderr
    assert "consent init" in result.stdout
    assert len(result.stdout.splitlines()) <= 2
    assert config_of(sandbox) == config

    record = record_of(sandbox)
    policy = load_policy(Scope().policy_path)
    ack = record["acknowledgement"]
    assert ack["via"] == "init-flag"
    assert ack["decision"] == decision
    assert (ack["version"], ack["fingerprint"]) == (policy.version, policy.fingerprint)
    assert set(ack["schema"]) == set(policy.fields)
    assert "history" not in record or record["history"] == []
    assert mode(sandbox.record) == 0o600
    assert mode(sandbox.config) == 0o600
    assert mode(sandbox.record.parent) & 0o077 == 0

    status = run_cli("stats", "status", "--json").json()
    assert status["enabled"] is (decision != "dont-share")
    assert status["review_before_upload"] is (decision == "review")


def test_changing_the_answer_keeps_history_client_id_and_foreign_keys(sandbox: Sandbox) -> None:
    sandbox.write_config({"gcp_project_id": "kept", "usage_stats_review": True})
    assert run_cli("init", "--yes").returncode == 0
    first = record_of(sandbox)
    assert run_cli("init", "--no").returncode == 0
    second = record_of(sandbox)
    assert second["client_id"] == first["client_id"]
    assert second["acknowledgement"]["decision"] == "dont-share"
    assert [h["decision"] for h in second["history"]] == ["share"]
    # opting out keeps the review preference for when the user opts back in
    assert config_of(sandbox) == {
        "gcp_project_id": "kept",
        "usage_stats": False,
        "usage_stats_review": False,
    }


@pytest.mark.parametrize("flags", [("--yes", "--no"), ("--yes", "--review"), ("--review", "--no")])
def test_two_flags_are_bad_usage(sandbox: Sandbox, flags: tuple[str, str]) -> None:
    result = run_cli("init", *flags)
    assert result.returncode == 2
    assert "Give at most one of --yes, --review and --no." in result.stderr
    assert "Traceback" not in result.stderr
    assert not sandbox.config.exists()
    assert not sandbox.record.exists()


def test_environment_override_is_mentioned(sandbox: Sandbox) -> None:
    result = run_cli("init", "--yes", env={"DO_NOT_TRACK": "1"})
    assert result.returncode == 0
    assert config_of(sandbox)["usage_stats"] is True
    assert "For now usage statistics stay off, because DO_NOT_TRACK is set." in result.stderr


def test_a_damaged_config_is_a_clear_error(sandbox: Sandbox) -> None:
    sandbox.write_config("{not json")
    result = run_cli("init", "--yes")
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr
    assert str(sandbox.config) in result.stderr
    assert sandbox.config.read_text() == "{not json"
