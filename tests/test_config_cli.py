"""`consent config get | set | unset | list` through the real CLI.

See docs/architecture.md §3.1 (paths) and §3.8 (CLI).
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Sandbox, run_cli


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _snapshot(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def _assert_clean_error(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert stderr.strip(), "an error must say what went wrong"


def _leftover_temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- set usage_stats: accepted words ---------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "stored"),
    [
        ("1", True),
        ("true", True),
        ("yes", True),
        ("on", True),
        ("TRUE", True),
        ("On", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
        ("FALSE", False),
    ],
)
def test_set_usage_stats_stores_json_boolean(sandbox: Sandbox, word: str, stored: bool) -> None:
    result = run_cli("config", "set", "usage_stats", word)
    assert result.returncode == 0, result.stderr
    data = _load(sandbox.config)
    assert data["usage_stats"] is stored
    # and the decision follows it
    status = run_cli("stats", "status", "--json").json() if word in ("On", "off") else None
    if status is not None:
        assert (status["enabled"], status["source"]) == (stored, "config")


# -- set usage_stats: rejected values --------------------------------------------------------


@pytest.mark.parametrize("value", ["maybe", "", "2"])
@pytest.mark.parametrize("existing", [None, '{"aws_enabled": true, "usage_stats": true}\n'])
def test_set_usage_stats_invalid_value(sandbox: Sandbox, value: str, existing: str | None) -> None:
    if existing is not None:
        sandbox.write_config(existing)
    before = _snapshot(sandbox.config)
    result = run_cli("config", "set", "usage_stats", value)
    assert result.returncode == 2
    _assert_clean_error(result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "usage_stats" in result.stderr
    assert json.dumps(value) in result.stderr  # names the bad value
    assert result.stdout == ""
    assert _snapshot(sandbox.config) == before
    if existing is None:
        assert not sandbox.config.exists()
        assert not sandbox.record.exists()


def test_set_unknown_key(sandbox: Sandbox) -> None:
    sandbox.write_config('{"usage_stats": false}')
    before = sandbox.config.read_bytes()
    result = run_cli("config", "set", "usage_statz", "true")
    assert result.returncode == 2
    _assert_clean_error(result.stderr)
    assert "usage_statz" in result.stderr
    assert sandbox.config.read_bytes() == before


def test_set_foreign_key_is_refused(sandbox: Sandbox) -> None:
    # keys owned by the host are not ours to change
    result = run_cli("config", "set", "aws_enabled", "false")
    assert result.returncode == 2
    _assert_clean_error(result.stderr)
    assert not sandbox.config.exists()


def test_get_unknown_key(sandbox: Sandbox) -> None:
    result = run_cli("config", "get", "nope")
    assert result.returncode == 2
    _assert_clean_error(result.stderr)
    assert result.stdout == ""


@pytest.mark.parametrize("text", ["{broken", "[1, 2]", "null"])
def test_set_never_overwrites_corrupt_config(sandbox: Sandbox, text: str) -> None:
    sandbox.write_config(text)
    before = sandbox.config.read_bytes()
    result = run_cli("config", "set", "usage_stats", "false")
    assert result.returncode == 2
    _assert_clean_error(result.stderr)
    assert str(sandbox.config) in result.stderr.replace("\n", "")
    assert sandbox.config.read_bytes() == before
    assert _leftover_temp_files(sandbox.config.parent) == []


def test_set_endpoint_on_corrupt_config_leaves_it(sandbox: Sandbox) -> None:
    sandbox.write_config("{broken")
    before = sandbox.config.read_bytes()
    result = run_cli("config", "set", "usage_stats_endpoint", "https://example.com/x")
    assert result.returncode == 2
    assert sandbox.config.read_bytes() == before


# -- foreign keys survive --------------------------------------------------------------------

FOREIGN: dict[str, Any] = {
    "aws_enabled": True,
    "gcp_project_id": "x",
    "nested": {"a": [1, 2], "b": {"c": None, "d": 1.5}},
    "unicode": "é ☃",
}


def test_foreign_keys_survive_set(sandbox: Sandbox) -> None:
    sandbox.write_config(FOREIGN)
    assert run_cli("config", "set", "usage_stats", "false").returncode == 0
    assert run_cli("config", "set", "usage_stats_review", "yes").returncode == 0
    assert run_cli("config", "set", "usage_stats", "true").returncode == 0
    data = _load(sandbox.config)
    assert {k: data[k] for k in FOREIGN} == FOREIGN
    # host keys keep their order, ahead of ours
    assert list(data)[: len(FOREIGN)] == list(FOREIGN)
    assert data["usage_stats"] is True
    assert data["usage_stats_review"] is True


def test_foreign_keys_survive_set_unset_round_trip(sandbox: Sandbox) -> None:
    sandbox.write_config(FOREIGN)
    original = sandbox.config.read_bytes()
    assert run_cli("config", "set", "usage_stats", "off").returncode == 0
    result = run_cli("config", "unset", "usage_stats")
    assert result.returncode == 0, result.stderr
    data = _load(sandbox.config)
    assert "usage_stats" not in data
    assert list(data)[: len(FOREIGN)] == list(FOREIGN)
    assert {k: data[k] for k in FOREIGN} == FOREIGN
    assert json.loads(original) == {k: data[k] for k in FOREIGN}


def test_unset(sandbox: Sandbox) -> None:
    sandbox.write_config({"aws_enabled": True, "usage_stats": False})
    result = run_cli("config", "unset", "usage_stats")
    assert result.returncode == 0, result.stderr
    assert _load(sandbox.config) == {"aws_enabled": True}
    status = run_cli("stats", "status", "--json").json()
    assert status["source"] == "default"
    # unsetting something that is not set is fine and changes nothing
    before = sandbox.config.read_bytes()
    again = run_cli("config", "unset", "usage_stats_endpoint")
    assert again.returncode == 0, again.stderr
    assert sandbox.config.read_bytes() == before


def test_unset_unknown_key(sandbox: Sandbox) -> None:
    sandbox.write_config({"aws_enabled": True})
    before = sandbox.config.read_bytes()
    result = run_cli("config", "unset", "aws_enabled")
    assert result.returncode == 2
    assert "No such command" not in result.stderr
    assert "aws_enabled" in result.stderr
    assert sandbox.config.read_bytes() == before


# -- get / list ------------------------------------------------------------------------------


def test_get_and_list(sandbox: Sandbox) -> None:
    sandbox.write_config(
        {"aws_enabled": True, "usage_stats": False, "usage_stats_endpoint": "https://e.example/p"}
    )
    got = run_cli("config", "get", "usage_stats", "--json")
    assert got.returncode == 0, got.stderr
    assert got.json() == {"usage_stats": False}

    unset = run_cli("config", "get", "usage_stats_review", "--json")
    assert unset.json() == {"usage_stats_review": None}

    listed = run_cli("config", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.json() == {
        "usage_stats": False,
        "usage_stats_review": None,
        "usage_stats_endpoint": "https://e.example/p",
        "usage_stats_extra_endpoints": None,
    }

    human = run_cli("config", "list")
    assert human.returncode == 0
    assert "usage_stats" in human.stdout
    assert "aws_enabled" not in human.stdout  # the host's keys are not ours to show


def test_get_plain_output(sandbox: Sandbox) -> None:
    sandbox.write_config({"usage_stats": True})
    result = run_cli("config", "get", "usage_stats")
    assert result.returncode == 0
    assert result.stdout.strip() == "true"


def test_get_on_corrupt_config(sandbox: Sandbox) -> None:
    sandbox.write_config("{broken")
    result = run_cli("config", "get", "usage_stats", "--json")
    assert result.returncode == 2
    _assert_clean_error(result.stderr)
    assert result.stdout == ""


# -- opting out is easy ----------------------------------------------------------------------


def test_set_false_says_how_to_turn_back_on(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = run_cli("config", "set", "usage_stats", "false", timeout=20)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 15
    assert "consent stats on" in " ".join(result.stderr.split())
    assert "sure" not in (result.stdout + result.stderr).lower()
    assert _load(sandbox.config)["usage_stats"] is False


def test_set_false_with_env_override_notes_it(sandbox: Sandbox) -> None:
    result = run_cli(
        "config", "set", "usage_stats", "false", env={"SKYPLANE_USAGE_STATS_ENABLED": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert "overrides" in result.stderr
    assert _load(sandbox.config)["usage_stats"] is False


def test_set_json_output(sandbox: Sandbox) -> None:
    sandbox.write_config({"usage_stats": True})
    result = run_cli("config", "set", "usage_stats", "no", "--json")
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert data["key"] == "usage_stats"
    assert data["before"] is True
    assert data["after"] is False


# -- endpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/x",
        "ftp://example.com/x",
        "https://user:pw@example.com/x",
        "not a url",
    ],
)
def test_set_endpoint_refused(sandbox: Sandbox, url: str) -> None:
    result = run_cli("config", "set", "usage_stats_endpoint", url)
    assert result.returncode == 2
    _assert_clean_error(result.stderr)
    assert not sandbox.config.exists()


@pytest.mark.parametrize(
    "url", ["https://example.com/x", "http://127.0.0.1:3100/push", "http://localhost/x"]
)
def test_set_endpoint_accepted(sandbox: Sandbox, url: str) -> None:
    result = run_cli("config", "set", "usage_stats_endpoint", url)
    assert result.returncode == 0, result.stderr
    assert _load(sandbox.config) == {"usage_stats_endpoint": url}


def test_extra_endpoints_stored_as_list(sandbox: Sandbox) -> None:
    sandbox.write_config({"aws_enabled": False})
    value = "https://a.example/x, https://b.example/y,https://a.example/x"
    result = run_cli("config", "set", "usage_stats_extra_endpoints", value)
    assert result.returncode == 0, result.stderr
    data = _load(sandbox.config)
    stored = data["usage_stats_extra_endpoints"]
    assert isinstance(stored, list)
    assert stored[:2] == ["https://a.example/x", "https://b.example/y"]
    assert all(isinstance(item, str) and item == item.strip() for item in stored)
    assert data["aws_enabled"] is False


def test_extra_endpoints_one_insecure_refuses_all(sandbox: Sandbox) -> None:
    value = "https://a.example/x,http://b.example/y"
    result = run_cli("config", "set", "usage_stats_extra_endpoints", value)
    assert result.returncode == 2
    _assert_clean_error(result.stderr)
    assert not sandbox.config.exists()


# -- how the file is written -----------------------------------------------------------------


def test_written_file_is_private_and_atomic(sandbox: Sandbox) -> None:
    result = run_cli("config", "set", "usage_stats", "true")
    assert result.returncode == 0, result.stderr
    mode = stat.S_IMODE(sandbox.config.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(sandbox.config.parent.stat().st_mode) == 0o700
    assert _leftover_temp_files(sandbox.config.parent) == []
    assert sandbox.config.read_text().endswith("\n")


def test_rewrite_makes_loose_file_private(sandbox: Sandbox) -> None:
    sandbox.write_config({"aws_enabled": True})
    sandbox.config.chmod(0o644)
    inode = sandbox.config.stat().st_ino
    result = run_cli("config", "set", "usage_stats_review", "true")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(sandbox.config.stat().st_mode) == 0o600
    # a new file replaced the old one (temp file + rename), not an in-place rewrite
    assert sandbox.config.stat().st_ino != inode
    assert _leftover_temp_files(sandbox.config.parent) == []


def test_symlinked_config_is_followed_and_kept(sandbox: Sandbox) -> None:
    """Dotfile managers symlink config files into the home: read through, write to the target."""
    dotfiles = sandbox.home / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "skyplane-config.json"
    target.write_text(json.dumps({"aws_enabled": True}))
    sandbox.config.parent.mkdir(parents=True, exist_ok=True)
    sandbox.config.symlink_to(target)

    result = run_cli("config", "set", "usage_stats", "false")

    assert result.returncode == 0, result.stderr
    assert sandbox.config.is_symlink()
    assert json.loads(target.read_text()) == {"aws_enabled": True, "usage_stats": False}
    status = run_cli("stats", "status", "--json").json()
    assert (status["enabled"], status["source"]) == (False, "config")


HOST_SETTINGS = (
    "import sys, typer\n"
    "from consent.cli import build\n"
    "from consent.profile import AppProfile\n"
    "apps = build(AppProfile(cli_name='sky'))\n"
    "host = typer.Typer()\n"
    "@host.command('set')\n"
    "def config_set(key: str, value: str) -> None:\n"
    "    apps.settings(key, value)\n"
    "@host.command('other')\n"
    "def other() -> None:\n"
    "    pass\n"
    "host(prog_name='sky')\n"
)
"""A host whose own ``config set`` routes the usage_stats keys to ``apps.settings``."""


@pytest.fixture(params=["home-file", "ro-mount"])
def unwritable_home(request: pytest.FixtureRequest, sandbox: Sandbox) -> Iterator[Sandbox]:
    """A HOME nothing can be written in: ``~/.skyplane`` a file, or a read-only bind mount."""
    from tests.faults.support import bind_readonly, umount

    if request.param == "home-file":
        (sandbox.home / ".skyplane").write_bytes(b"not a directory\n")
        yield sandbox
        return
    sandbox.write_config({"usage_stats": True})
    if not bind_readonly(sandbox.home):
        pytest.skip("bind mounts are not permitted here; the home-file case runs")
    try:
        yield sandbox
    finally:
        umount(sandbox.home)


@pytest.mark.parametrize(
    "argv",
    [
        ("config", "set", "usage_stats", "false"),
        ("config", "set", "usage_stats", "Off"),
        ("stats", "off"),
        ("host", "set", "usage_stats", "0"),
    ],
    ids=["config-set", "config-set-word", "stats-off", "host-config-set"],
)
def test_an_opt_out_that_cannot_be_saved_names_the_ones_that_still_work(
    unwritable_home: Sandbox, argv: tuple[str, ...]
) -> None:
    if argv[0] == "host":
        proc = subprocess.run(
            [sys.executable, "-c", HOST_SETTINGS, *argv[1:]],
            env=unwritable_home.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        result_code, stderr = proc.returncode, proc.stderr
    else:
        result = run_cli(*argv)
        result_code, stderr = result.returncode, result.stderr
    assert result_code == 1
    _assert_clean_error(stderr)
    assert "not saved" in stderr
    assert "DO_NOT_TRACK=1" in stderr and "SKYPLANE_USAGE_STATS_ENABLED=0" in stderr
    # and they do work in this very HOME, with nothing written
    for variable in ("DO_NOT_TRACK=1", "SKYPLANE_USAGE_STATS_ENABLED=0"):
        name, value = variable.split("=")
        status = run_cli("stats", "status", "--json", env={name: value})
        assert status.returncode == 0, status.stderr
        assert status.json()["enabled"] is False, variable


def test_an_opt_in_that_cannot_be_saved_names_no_opt_outs(unwritable_home: Sandbox) -> None:
    result = run_cli("stats", "on")
    assert result.returncode == 1
    _assert_clean_error(result.stderr)
    assert "DO_NOT_TRACK" not in result.stderr


def test_an_opt_out_into_a_damaged_settings_file_names_the_ones_that_still_work(
    sandbox: Sandbox,
) -> None:
    sandbox.config.parent.mkdir(parents=True)
    sandbox.config.write_text("{not json")
    result = run_cli("config", "set", "usage_stats", "false")
    assert result.returncode == 2  # the file is the user's to fix: bad input
    assert "not valid JSON" in result.stderr
    assert "DO_NOT_TRACK=1" in result.stderr
    assert sandbox.config.read_text() == "{not json"
