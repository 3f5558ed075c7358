"""`consent stats status [--json]`: the shape of docs/architecture.md §3.8, and its manners."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from consent.policy import load_policy
from consent.profile import Scope
from tests.conftest import CLOSED_ENDPOINT, Sandbox, run_cli

TOP_KEYS = {
    "enabled",
    "source",
    "client_id",
    "review_before_upload",
    "policy",
    "spool_dir",
    "counts",
    "endpoints",
    "warnings",
}
POLICY_KEYS = {
    "version",
    "fingerprint",
    "acknowledged_version",
    "acknowledged_fingerprint",
    "up_to_date",
}
COUNT_KEYS = {"pending", "held", "sent", "failed", "legacy"}
SOURCES = {"env", "do_not_track", "config", "legacy_config", "invalid_config", "default"}


def _status(**env: str) -> dict[str, Any]:
    result = run_cli("stats", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    data = result.json()
    assert isinstance(data, dict)
    return data


def _check_shape(data: dict[str, Any]) -> None:
    assert set(data) == TOP_KEYS
    assert isinstance(data["enabled"], bool)
    assert data["source"] in SOURCES
    assert data["client_id"] is None or isinstance(data["client_id"], str)
    assert isinstance(data["review_before_upload"], bool)

    policy = data["policy"]
    assert set(policy) == POLICY_KEYS
    assert type(policy["version"]) is int
    assert isinstance(policy["fingerprint"], str)
    assert policy["acknowledged_version"] is None or isinstance(policy["acknowledged_version"], int)
    assert policy["acknowledged_fingerprint"] is None or isinstance(
        policy["acknowledged_fingerprint"], str
    )
    assert isinstance(policy["up_to_date"], bool)

    assert isinstance(data["spool_dir"], str)
    assert set(data["counts"]) == COUNT_KEYS
    for value in data["counts"].values():
        assert type(value) is int
        assert value >= 0
    assert isinstance(data["endpoints"], list)
    assert all(isinstance(url, str) for url in data["endpoints"])
    assert isinstance(data["warnings"], list)
    assert all(isinstance(w, str) for w in data["warnings"])


def test_fresh_status_json_shape(sandbox: Sandbox) -> None:
    data = _status()
    _check_shape(data)
    policy = load_policy(Scope().policy_path)
    assert (data["enabled"], data["source"]) == (True, "default")
    assert data["review_before_upload"] is False
    assert data["policy"]["version"] == policy.version
    assert data["policy"]["fingerprint"] == policy.fingerprint
    assert data["policy"]["acknowledged_version"] is None
    assert data["policy"]["acknowledged_fingerprint"] is None
    assert data["policy"]["up_to_date"] is False
    assert data["counts"] == dict.fromkeys(COUNT_KEYS, 0)
    assert data["spool_dir"] == str(sandbox.spool)
    assert data["endpoints"] == [CLOSED_ENDPOINT]


def test_status_creates_nothing(sandbox: Sandbox) -> None:
    _status()
    human = run_cli("stats", "status")
    assert human.returncode == 0, human.stderr
    assert not sandbox.spool.exists(), "status must not create the spool"
    assert not sandbox.record.exists(), "status must not mint a client id"
    assert not sandbox.config.exists()


def test_status_after_init(sandbox: Sandbox) -> None:
    assert run_cli("init", "--review").returncode == 0
    data = _status()
    _check_shape(data)
    policy = load_policy(Scope().policy_path)
    assert (data["enabled"], data["source"]) == (True, "config")
    assert data["review_before_upload"] is True
    assert data["policy"]["acknowledged_version"] == policy.version
    assert data["policy"]["acknowledged_fingerprint"] == policy.fingerprint
    assert data["policy"]["up_to_date"] is True
    record = tomllib.loads(sandbox.record.read_text())
    assert data["client_id"] == record["client_id"]
    assert data["counts"] == dict.fromkeys(COUNT_KEYS, 0)
    assert not sandbox.spool.exists()


def test_status_endpoints_from_config(sandbox: Sandbox) -> None:
    sandbox.write_config(
        {
            "usage_stats_endpoint": "https://primary.example/push",
            "usage_stats_extra_endpoints": ["https://extra.example/push"],
        }
    )
    data = _status(SKYPLANE_USAGE_STATS_ENDPOINT="")
    assert data["endpoints"] == ["https://primary.example/push", "https://extra.example/push"]


def test_status_insecure_endpoint_env_is_a_warning(sandbox: Sandbox) -> None:
    data = _status(SKYPLANE_USAGE_STATS_ENDPOINT="http://collector.example.com/push")
    _check_shape(data)
    assert "http://collector.example.com/push" not in data["endpoints"]
    assert any("collector.example.com" in w for w in data["warnings"])


def test_status_with_broken_policy_still_answers(sandbox: Sandbox) -> None:
    policy = sandbox.home / "broken.toml"
    policy.write_text("name = [\n")
    result = run_cli("stats", "status", "--json", env={"SKYPLANE_USAGE_STATS_POLICY": str(policy)})
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert set(data) == TOP_KEYS
    assert any(str(policy) in w for w in data["warnings"])


# -- human output ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "env", "state", "source_words"),
    [
        (None, {}, "on", "default"),
        ({"usage_stats": False}, {}, "off", "config"),
        (
            {"usage_stats": True},
            {"SKYPLANE_USAGE_STATS_ENABLED": "0"},
            "off",
            "SKYPLANE_USAGE_STATS_ENABLED=0",
        ),
        (None, {"DO_NOT_TRACK": "1"}, "off", "DO_NOT_TRACK"),
    ],
    ids=["default", "config", "env", "dnt"],
)
def test_human_status(
    sandbox: Sandbox,
    config: dict[str, Any] | None,
    env: dict[str, str],
    state: str,
    source_words: str,
) -> None:
    if config is not None:
        sandbox.write_config(config)
    result = run_cli("stats", "status", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    first = next(line for line in out.splitlines() if "Usage statistics" in line and "(" in line)
    assert f" {state} " in first, first
    assert source_words in out
    for line in out.splitlines():
        assert len(line) <= 100, repr(line)
    assert "\x1b[" not in out, "NO_COLOR is set"
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_warnings_go_to_stderr(sandbox: Sandbox) -> None:
    result = run_cli("stats", "status", env={"SKYPLANE_USAGE_STATS_ENABLED": "perhaps"})
    assert result.returncode == 0, result.stderr
    assert "perhaps" in result.stderr
    assert "perhaps" not in result.stdout
    assert "Warning" not in result.stdout

    as_json = run_cli("stats", "status", "--json", env={"SKYPLANE_USAGE_STATS_ENABLED": "perhaps"})
    assert as_json.returncode == 0
    data = as_json.json()  # stdout is clean JSON even with warnings
    assert any("perhaps" in w for w in data["warnings"])


def test_corrupt_config_status_human(sandbox: Sandbox) -> None:
    sandbox.write_config("{broken")
    before = sandbox.config.read_bytes()
    result = run_cli("stats", "status")
    assert result.returncode == 0, result.stderr
    assert " off " in result.stdout
    assert str(sandbox.config) in result.stderr.replace("\n", "")
    # the hint names the file, and a fix that works (tests/test_hints.py runs it)
    assert "Turn them on" in result.stdout
    flat = re.sub(r"[\s│]", "", result.stdout)
    assert f"mv{sandbox.config}{sandbox.config}.broken" in flat
    assert sandbox.config.read_bytes() == before


def test_corrupt_record_status_json(sandbox: Sandbox) -> None:
    raw = b'client_id = "0b5a3c1e"\n[acknowledgement\x00'
    sandbox.record.parent.mkdir(parents=True)
    sandbox.record.write_bytes(raw)
    result = run_cli("stats", "status", "--json")
    assert result.returncode == 0, result.stderr
    data = result.json()
    _check_shape(data)
    assert data["client_id"] is None
    assert any(str(sandbox.record) in w for w in data["warnings"])
    assert sandbox.record.read_bytes() == raw
    assert sorted(p.name for p in sandbox.record.parent.iterdir() if "damaged" in p.name) == []


def test_status_warns_about_a_hostile_spool_root_before_anything_is_spooled(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A symlinked root would never be used; status says so, and creates nothing."""
    real = tmp_path / "elsewhere"
    real.mkdir()
    sandbox.spool.symlink_to(real)

    result = run_cli("stats", "status", "--json")

    assert result.returncode == 0, result.stderr
    warnings = result.json()["warnings"]
    assert any("symbolic link" in w and str(sandbox.spool) in w for w in warnings), warnings
    assert list(real.iterdir()) == []


def test_no_pager_in_ci_even_on_a_terminal(sandbox: Sandbox) -> None:
    # a CI job's pseudo-terminal has nobody to press q: a pager there would wait forever
    from tests.test_screens import Terminal, on_screen

    session = run_cli(
        "record", "--src", "aws:us-east-1", "--dst", "gcp:us-central1", "--runtime-s", "3"
    ).stdout.strip()
    paged = Terminal(
        sandbox, ["stats", "review", session[:8]], 24, 80, PAGER="sed s/^/PAGED:/", CI="true"
    )
    code, screen = paged.finish()
    assert code == 0
    assert not on_screen(screen, "PAGED:")
    assert on_screen(screen, "Not sent yet")
