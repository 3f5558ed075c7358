"""An opt-out always holds: every store the host keeps the flag in is read and written.

The stores are ``config.json`` and the host's INI file (Skyplane's
``~/.skyplane/config``, moved by ``SKYPLANE_CONFIG``), read with ``[flags] usage_stats``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import decide
from tests.conftest import Sandbox, run_cli

INI_TEXT = (
    "; written by hand\n"
    "[aws]\n"
    "aws_enabled = False\n"
    "\n"
    "[flags]\n"
    "max_instances = 4\n"
    "usage_stats = True\n"
    "native_cmd_enabled = True\n"
)


def _ini(sandbox: Sandbox, text: str = INI_TEXT, path: Path | None = None) -> Path:
    path = path or sandbox.home / ".skyplane" / "config"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("json_value", [True, False])
def test_disagreeing_stores_the_opt_out_wins_and_the_warning_names_the_file(
    sandbox: Sandbox, json_value: bool
) -> None:
    ini = _ini(sandbox, INI_TEXT.replace("usage_stats = True", f"usage_stats = {not json_value}"))
    sandbox.write_config({"usage_stats": json_value})
    status = run_cli("stats", "status", "--json")
    assert status.returncode == 0, status.stderr
    data = status.json()
    off_file = sandbox.config if json_value is False else ini
    assert data["enabled"] is False
    assert data["source"] == ("config" if json_value is False else "legacy_config")
    assert any(
        str(off_file) in warning and "opt-out wins" in warning for warning in data["warnings"]
    )


def test_skyplane_config_moves_the_ini_file(sandbox: Sandbox, tmp_path: Path) -> None:
    _ini(sandbox)  # the default place says "on"; the override is the file in force
    moved = _ini(sandbox, "[flags]\nusage_stats = false\n", tmp_path / "elsewhere.ini")
    env = {**sandbox.env, "SKYPLANE_CONFIG": str(moved)}
    decision = decide(environ=env)
    assert (decision.enabled, decision.source) == (False, "legacy_config")
    assert decide(environ=sandbox.env).enabled is True


def test_skyplane_config_with_a_tilde_means_the_home(sandbox: Sandbox) -> None:
    _ini(sandbox, "[flags]\nusage_stats = false\n", sandbox.home / "sky.ini")
    decision = decide(environ={**sandbox.env, "SKYPLANE_CONFIG": "~/sky.ini"})
    assert (decision.enabled, decision.source) == (False, "legacy_config")


def test_stats_off_writes_every_store_and_keeps_everything_else(sandbox: Sandbox) -> None:
    ini = _ini(sandbox)
    sandbox.write_config({"usage_stats": True, "host_key": [1, 2]})
    result = run_cli("stats", "off")
    assert result.returncode == 0, result.stderr
    assert ini.read_text() == INI_TEXT.replace("usage_stats = True", "usage_stats = False")
    assert json.loads(sandbox.config.read_text()) == {"usage_stats": False, "host_key": [1, 2]}
    status = run_cli("stats", "status", "--json").json()
    assert (status["enabled"], status["source"], status["warnings"]) == (False, "config", [])


def test_stats_on_after_a_hand_edited_ini_opt_out(sandbox: Sandbox) -> None:
    ini = _ini(sandbox, INI_TEXT.replace("usage_stats = True", "usage_stats = false"))
    sandbox.write_config({"usage_stats": True})
    assert decide(environ=sandbox.env).enabled is False
    result = run_cli("stats", "on")
    assert result.returncode == 0, result.stderr
    assert "usage_stats = True\n" in ini.read_text()
    assert decide(environ=sandbox.env).enabled is True


def test_a_store_that_does_not_exist_is_not_created(sandbox: Sandbox) -> None:
    assert run_cli("stats", "off").returncode == 0
    assert json.loads(sandbox.config.read_text())["usage_stats"] is False
    assert not (sandbox.home / ".skyplane" / "config").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[aws]\naws_enabled = True\n",
            "[aws]\naws_enabled = True\n\n[flags]\nusage_stats = False\n",
        ),
        ("[flags]\nbbr = True", "[flags]\nusage_stats = False\nbbr = True"),
        ("[flags]\nUsage_Stats: yes\n", "[flags]\nusage_stats = False\n"),
        ("", "[flags]\nusage_stats = False\n"),
    ],
)
def test_init_no_writes_the_ini_flag_in_place(sandbox: Sandbox, text: str, expected: str) -> None:
    ini = _ini(sandbox, text)
    assert run_cli("init", "--no").returncode == 0
    assert ini.read_text() == expected


def test_config_set_and_unset_write_the_ini_file(sandbox: Sandbox) -> None:
    ini = _ini(sandbox)
    assert run_cli("config", "set", "usage_stats", "no").returncode == 0
    assert "usage_stats = False\n" in ini.read_text()
    assert run_cli("config", "unset", "usage_stats").returncode == 0
    assert "usage_stats" not in ini.read_text()
    assert "max_instances = 4" in ini.read_text()
    assert decide(environ=sandbox.env).source == "default"


def test_a_damaged_ini_file_never_blocks_an_opt_out(sandbox: Sandbox) -> None:
    ini = _ini(sandbox, "[flags]\nusage_stats = True\n[flags]\nbbr = 1\n")  # duplicate section
    result = run_cli("stats", "off")
    assert result.returncode == 0, result.stderr
    assert ini.read_text() == "[flags]\nusage_stats = True\n[flags]\nbbr = 1\n"
    assert json.loads(sandbox.config.read_text())["usage_stats"] is False
    assert decide(environ=sandbox.env).enabled is False
    # turning them on needs a file that can be read: refused, and nothing changed
    refused = run_cli("stats", "on")
    assert refused.returncode == 2
    assert str(ini) in " ".join(refused.stderr.split())
    assert json.loads(sandbox.config.read_text())["usage_stats"] is False


def test_config_get_exits_1_when_unset_and_effective_names_the_source(sandbox: Sandbox) -> None:
    unset = run_cli("config", "get", "usage_stats")
    assert (unset.returncode, unset.stdout) == (1, "")
    assert run_cli("config", "get", "usage_stats", "--effective").stdout == "true (from default)\n"
    ini = _ini(sandbox, "[flags]\nusage_stats = False\n")
    shown = run_cli("config", "get", "usage_stats", "--effective")
    assert shown.returncode == 0
    assert " ".join(shown.stdout.split()) == f"false (from {ini} [flags])"
    env = {"SKYPLANE_USAGE_STATS_ENABLED": "1"}
    data = run_cli("config", "get", "usage_stats", "--effective", "--json", env=env).json()
    assert data == {
        "key": "usage_stats",
        "value": True,
        "source": "environment variable SKYPLANE_USAGE_STATS_ENABLED",
    }
    endpoint = run_cli("config", "get", "usage_stats_endpoint", "--effective")
    assert endpoint.returncode == 0
    assert "from environment variable SKYPLANE_USAGE_STATS_ENDPOINT" in endpoint.stdout


def test_version_and_short_help() -> None:
    from consent import __version__

    version = run_cli("--version")
    assert (version.returncode, version.stdout) == (0, f"consent {__version__}\n")
    short = run_cli("-h")
    assert short.returncode == 0
    assert "Usage: consent" in short.stdout
    assert run_cli("stats", "-h").stdout == run_cli("stats", "--help").stdout


_INI_LINES = [
    "[flags]",
    "[aws]",
    "[DEFAULT]",
    "[flags] trailing",
    "[]",
    "usage_stats = True",
    "usage_stats=false",
    "Usage_Stats : yes",
    "usage_stats = false # not a comment in configparser",
    "usage_stats",
    "usage_stats = ",
    "usage_stats = on\r",
    "  continued = 1",
    "\x0bvertical = 1",
    "# comment",
    "; comment",
    " # indented comment",
    "",
    "bbr = 1",
    "= no key",
    "x: y = z",
]


@given(lines=st.lists(st.sampled_from(_INI_LINES), max_size=8))
@settings(max_examples=300, deadline=None)
def test_the_quick_ini_reader_agrees_with_configparser(lines: list[str]) -> None:
    import configparser

    from consent.decision import _scan_ini_flag

    text = "\n".join(lines)
    plain, value = _scan_ini_flag(text)
    if not plain:
        return  # configparser itself reads this one
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)  # the quick reader accepts only what configparser accepts
    assert value == parser.get("flags", "usage_stats", fallback=None)


def test_a_plain_skyplane_ini_file_is_read_without_configparser(sandbox: Sandbox) -> None:
    import subprocess
    import sys

    _ini(sandbox, INI_TEXT.replace("usage_stats = True", "usage_stats = False"))
    code = (
        "import sys, consent; d = consent.decide(); "
        "print(d.enabled, d.source, 'configparser' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=sandbox.env, capture_output=True, text=True, check=True
    )
    assert out.stdout == "False legacy_config False\n"
