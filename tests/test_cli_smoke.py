"""One quick pass over every command and the host factory.

``.ci/run`` runs this file again (``-m cli_smoke``) with the lowest and the newest
typer the package supports, so a typer release that changes how options, help or
errors behave is caught in CI rather than by a host.
"""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from consent.cli import build, mount
from consent.profile import AppProfile
from tests.conftest import Sandbox, run_cli

pytestmark = pytest.mark.cli_smoke


def test_every_command_answers_help() -> None:
    for args in (
        (),
        ("-h",),
        ("init", "--help"),
        ("record", "--help"),
        ("config", "--help"),
        ("stats", "--help"),
        ("stats", "status", "-h"),
        ("stats", "review", "-h"),
        ("stats", "send", "-h"),
        ("stats", "forget", "-h"),
        ("stats", "on", "-h"),
        ("stats", "off", "-h"),
        ("policy", "show", "-h"),
    ):
        result = run_cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage:" in result.stdout, args


def test_flags_default_off_and_errors_are_one_line(sandbox: Sandbox) -> None:
    status = run_cli("stats", "status")
    assert status.returncode == 0, status.stderr
    assert not status.stdout.startswith("{")  # --json was not given, so no JSON
    assert run_cli("stats", "status", "--json").json()["enabled"] is True
    bad = run_cli("stats", "nope")
    assert bad.returncode == 2
    assert bad.stderr.startswith("Error: ") and "Traceback" not in bad.stderr
    assert run_cli("--version").stdout.startswith("consent ")


def test_switch_and_settings_round_trip(sandbox: Sandbox) -> None:
    assert run_cli("stats", "off").returncode == 0
    assert run_cli("config", "get", "usage_stats").stdout == "false\n"
    assert run_cli("stats", "on").returncode == 0
    assert run_cli("config", "set", "usage_stats", "maybe").returncode == 2
    assert run_cli("policy", "show", "--json").json()["version"] >= 1
    assert run_cli("stats", "review", "--json").json() == []
    assert run_cli("init", "--non-interactive").returncode == 0


def _host() -> typer.Typer:
    host = typer.Typer(name="sky", no_args_is_help=True)
    own = typer.Typer(name="config", help="The host's own config.")

    @own.command("set")
    def config_set(key: str, value: str) -> None:
        if apps.owns(key):
            apps.settings(key, value)
            return
        typer.echo(f"host sets {key}")

    host.add_typer(own, name="config")
    apps = mount(host, AppProfile(cli_name="sky"))
    return host


def test_mount_keeps_the_hosts_commands_and_names_the_host(sandbox: Sandbox) -> None:
    runner = CliRunner()
    host = _host()
    assert "The host's own config." in runner.invoke(host, ["config", "--help"]).output
    assert runner.invoke(host, ["config", "set", "max_instances", "4"]).output == (
        "host sets max_instances\n"
    )
    off = runner.invoke(host, ["config", "set", "usage_stats", "false"])
    assert off.exit_code == 0, off.output
    assert json.loads(sandbox.config.read_text())["usage_stats"] is False
    bad = runner.invoke(host, ["config", "set", "usage_stats", "maybe"])
    assert bad.exit_code == 2
    status = runner.invoke(host, ["stats", "status"])
    assert status.exit_code == 0, status.output
    assert "sky stats" in status.output and "consent " not in status.output


def test_build_binds_each_app_to_its_profile(sandbox: Sandbox) -> None:
    runner = CliRunner()
    for name in ("alpha", "beta"):
        apps = build(AppProfile(cli_name=name))
        result = runner.invoke(apps.stats_app, ["off"])
        assert result.exit_code == 0, result.output
        assert f"{name} stats on" in " ".join(result.output.split())
