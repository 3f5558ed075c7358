"""The Scope: a profile in one environment, built at the edge and passed below."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import consent
from consent.cli import _context, build, current_scope, mount
from consent.decision import decide_in
from consent.profile import DEFAULT_PROFILE, AppProfile, Scope
from consent.status import snapshot
from tests.conftest import Sandbox

ACME = AppProfile(
    name="acme",
    display_name="Acme",
    env_prefix="ACME_STATS",
    home_dir_name=".acme",
    cli_name="acme",
    config_env="ACME_CONFIG",
    policy_file=DEFAULT_PROFILE.policy_file,
)


class _Untouchable(Mapping[str, str]):
    """Stands in for ``os.environ``: any read fails the test."""

    def __getitem__(self, key: str) -> str:
        raise AssertionError(f"os.environ[{key!r}] was read")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("os.environ was listed")

    def __len__(self) -> int:
        raise AssertionError("os.environ was measured")


def test_paths_follow_the_home_of_the_scopes_environment(sandbox: Sandbox, tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"
    scope = Scope(ACME, {"HOME": str(home)})
    assert str(sandbox.home) != str(home), "os.environ must name another home"
    assert scope.home_dir == str(home)
    assert scope.config_dir == str(home / ".acme")
    assert scope.config_file == str(home / ".acme" / "config.json")
    assert scope.record_file == str(home / ".acme" / "consent.toml")
    assert scope.legacy_ini_file == str(home / ".acme" / "config")
    assert scope.config_path == home / ".acme" / "config.json"
    assert scope.record_path == home / ".acme" / "consent.toml"
    assert scope.home == home


def test_without_an_environment_the_scope_reads_the_process_one(sandbox: Sandbox) -> None:
    scope = Scope()
    assert scope.profile is DEFAULT_PROFILE
    assert scope.environ is os.environ
    assert scope.config_file == str(sandbox.config)
    assert scope.spool_dir == str(sandbox.spool)


def test_overrides_come_from_the_scopes_environment(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "ACME_STATS_DIR": str(tmp_path / "spool"),
        "ACME_STATS_POLICY": str(tmp_path / "policy.toml"),
        "ACME_STATS_ENDPOINT": "https://stats.example.org/push",
        "ACME_CONFIG": "~/settings.ini",
    }
    scope = Scope(ACME, env)
    assert scope.spool_override == str(tmp_path / "spool")
    assert scope.spool_dir == str(tmp_path / "spool")
    assert scope.spool_root == tmp_path / "spool"
    assert scope.policy_file == str(tmp_path / "policy.toml")
    assert scope.policy_path == tmp_path / "policy.toml"
    assert scope.endpoint_override == "https://stats.example.org/push"
    assert scope.legacy_ini_file == str(tmp_path / "settings.ini")
    # the process's own SKYPLANE_* settings name another profile's variables
    assert os.environ["SKYPLANE_USAGE_STATS_DIR"] == str(sandbox.spool)


def test_empty_overrides_count_as_unset(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "ACME_STATS_DIR": "", "ACME_STATS_ENDPOINT": ""}
    scope = Scope(ACME, env)
    assert scope.spool_override is None
    assert scope.endpoint_override is None
    assert scope.spool_dir == os.path.join(ACME.shared_temp_root, "acme", "usage")
    assert scope.policy_path == ACME.policy_file


def test_spool_directories_are_absolute_and_the_fallback_is_per_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shared = tmp_path / "tmp"
    scope = Scope(AppProfile(shared_temp_root=shared), {"SKYPLANE_USAGE_STATS_DIR": "rel/spool"})
    assert scope.spool_dir == str(tmp_path / "rel" / "spool")
    assert scope.spool_root == Path("rel/spool"), "shown as configured"
    assert scope.shared_temp_dir == str(shared)
    assert scope.fallback_spool_dir == str(shared / f"skyplane-{os.getuid()}" / "usage")


def test_an_explicit_environment_never_reads_os_environ(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"HOME": str(tmp_path), "ACME_STATS_DIR": str(tmp_path / "spool"), "DO_NOT_TRACK": "1"}
    (tmp_path / ".acme").mkdir()
    (tmp_path / ".acme" / "config.json").write_text('{"usage_stats": true}')
    with monkeypatch.context() as patched:
        patched.setattr(os, "environ", _Untouchable())
        scope = Scope(ACME, env)
        decision = decide_in(scope)
        assert (decision.enabled, decision.source) == (False, "do_not_track")
        assert consent.decide(ACME, env) == decision
        assert consent.is_enabled(ACME, env) is False
        # every path, and what `stats status` reads through them
        assert scope.fallback_spool_dir.endswith(f"acme-{os.getuid()}/usage")
        snap = snapshot(scope)
        assert snap.spool_dir == scope.spool_dir == str(tmp_path / "spool")
        assert snap.policy is not None and snap.policy.path == ACME.policy_file


def test_paths_are_resolved_once_and_switches_read_live(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "first")}
    scope = Scope(ACME, env)
    assert decide_in(scope).enabled
    env["HOME"] = str(tmp_path / "second")
    env["ACME_STATS_ENABLED"] = "0"
    assert scope.config_file == str(tmp_path / "first" / ".acme" / "config.json")
    # turning collection off during a long transfer still takes effect for it
    assert (decide_in(scope).enabled, decide_in(scope).source) == (False, "env")


def test_without_unsets_variables_in_a_new_scope(tmp_path: Path) -> None:
    scope = Scope(ACME, {"HOME": str(tmp_path), "ACME_STATS_ENABLED": "0", "DO_NOT_TRACK": "1"})
    rest = scope.without("ACME_STATS_ENABLED")
    assert rest.profile is ACME
    assert dict(rest.environ) == {"HOME": str(tmp_path), "DO_NOT_TRACK": "1"}
    assert decide_in(rest).source == "do_not_track"
    assert "ACME_STATS_ENABLED" in scope.environ, "the scope itself is unchanged"


def test_a_scope_does_not_show_the_environment() -> None:
    shown = repr(Scope(ACME, {"HOME": "/home/u", "AWS_SECRET_ACCESS_KEY": "hunter2"}))
    assert "acme" in shown and "/home/u" in shown
    assert "hunter2" not in shown


# -- the CLI: one scope per command run, from the profile the factory bound -------------------


@pytest.fixture
def scopes_built(monkeypatch: pytest.MonkeyPatch) -> list[Scope]:
    """Every Scope the CLI's per-command binding builds, in order."""
    built: list[Scope] = []

    class Recorded(Scope):
        __slots__ = ()

        def __init__(self, profile: AppProfile = DEFAULT_PROFILE) -> None:
            super().__init__(profile)
            built.append(self)

    monkeypatch.setattr(_context, "Scope", Recorded)
    return built


def test_each_command_run_gets_one_scope_of_its_bound_profile(
    sandbox: Sandbox, scopes_built: list[Scope]
) -> None:
    seen: list[Scope] = []

    def probe() -> None:
        seen.extend([current_scope(), current_scope()])

    bound = _context.bind_profile(ACME, probe)
    for _ in range(2):
        bound()
    assert len(scopes_built) == 2 and scopes_built[0] is not scopes_built[1]
    assert seen == [scopes_built[0], scopes_built[0], scopes_built[1], scopes_built[1]]
    host = typer.Typer()
    host.add_typer(build(ACME).stats_app, name="stats")
    result = CliRunner().invoke(host, ["stats", "status", "--json"])
    assert result.exit_code == 0, result.output
    assert len(scopes_built) == 3 and scopes_built[2].profile is ACME
    assert current_scope().profile is DEFAULT_PROFILE, "nothing leaks out of a command"


def test_two_hosts_mounted_in_one_process_keep_their_own_files(
    sandbox: Sandbox, scopes_built: list[Scope]
) -> None:
    sky, acme = typer.Typer(name="sky"), typer.Typer(name="acme")
    for host, profile in ((sky, AppProfile(cli_name="sky")), (acme, ACME)):

        @host.command("version")
        def version() -> None:
            pass

        mount(host, profile, config=True)
    runner = CliRunner()
    for host, url in ((acme, "https://acme.example.org/push"), (sky, "https://sky.example.org/p")):
        result = runner.invoke(host, ["config", "set", "usage_stats_endpoint", url])
        assert result.exit_code == 0, result.output
    assert [s.profile.cli_name for s in scopes_built] == ["acme", "sky"]
    acme_config = json.loads((sandbox.home / ".acme" / "config.json").read_text())
    assert acme_config["usage_stats_endpoint"] == "https://acme.example.org/push"
    assert json.loads(sandbox.config.read_text())["usage_stats_endpoint"] == (
        "https://sky.example.org/p"
    )
    status = runner.invoke(acme, ["stats", "off"])
    assert status.exit_code == 0, status.output
    assert "acme stats on" in " ".join(status.output.split())
