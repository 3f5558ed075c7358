"""One quick pass over every command and the host factory.

``.ci/run`` runs this file again (``-m cli_smoke``) with the lowest and the newest
typer the package supports, so a typer release that changes how options, help or
errors behave is caught in CI rather than by a host.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from consent.cli import build, mount
from consent.cli._main import FAST_FORMS
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


FULL_PARSE = (
    "import sys; from consent.cli._app import app; "
    "app(args=sys.argv[1:], prog_name='consent', standalone_mode=True)"
)
"""The same command, parsed by the Typer app, without the entry point's fast path."""


@pytest.mark.parametrize("form", sorted(FAST_FORMS))
@pytest.mark.parametrize("state", ["fresh", "opted out by DO_NOT_TRACK", "damaged config.json"])
def test_fast_forms_answer_as_the_typer_app_does(
    sandbox: Sandbox, tmp_path: Path, form: tuple[str, ...], state: str
) -> None:
    runs = []
    for which in ("fast", "parsed"):
        home = tmp_path / "home"  # the same path for both, so paths wrap alike
        if home.exists():
            home.rename(tmp_path / "home-of-the-fast-run")
        (home / ".skyplane").mkdir(parents=True)
        env = {**sandbox.env, "HOME": str(home), "SKYPLANE_USAGE_STATS_DIR": str(home / "spool")}
        if state == "opted out by DO_NOT_TRACK":
            env["DO_NOT_TRACK"] = "1"
        elif state == "damaged config.json":
            (home / ".skyplane" / "config.json").write_text("{not json")
        if which == "fast":
            argv = [sys.executable, "-m", "consent", *form]
        else:
            argv = [sys.executable, "-c", FULL_PARSE, *form]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        runs.append((proc.returncode, proc.stdout, proc.stderr))
    (fast_code, *fast_out), (parsed_code, *parsed_out) = runs
    assert fast_code == parsed_code
    for fast, parsed in zip(fast_out, parsed_out, strict=True):
        assert fast.splitlines() == parsed.splitlines()


def test_stats_status_does_not_build_typers_pydantic_adapters(sandbox: Sandbox) -> None:
    # typer 0.27+ coerces every parsed parameter through pydantic; the hot read-only
    # forms are not parsed, so a fresh `consent stats status` never imports it
    probe = (
        "import sys; sys.argv = ['consent', *sys.argv[1:]]\n"
        "from consent.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('pydantic' in sys.modules, code, file=sys.stderr)"
    )
    for form in FAST_FORMS:
        proc = subprocess.run(
            [sys.executable, "-c", probe, *form],
            env=sandbox.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.stderr.splitlines()[-1] == "False 0", (form, proc.stderr)
