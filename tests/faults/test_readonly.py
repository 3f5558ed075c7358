"""A read-only HOME and an unwritable /tmp.

Root ignores ``chmod 0555``, so a read-only HOME is a read-only bind mount where
mounting is permitted; everywhere, ``~/.skyplane`` as a regular file makes every
write fail with ENOTDIR. An unwritable ``/tmp`` is a private mount namespace whose
``/tmp`` is an empty read-only tmpfs: the real ``/tmp`` is never touched, and
neither ``/tmp/skyplane`` nor the spool's fallback (``/tmp/skyplane-{uid}``) exists
or can be made there, whatever the machine's own ``/tmp`` holds.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from consent import record_session
from consent.actions import apply_choice
from consent.profile import AppProfile, Scope
from consent.review import list_review
from consent.spool import Spool
from tests.conftest import Sandbox
from tests.faults.support import (
    RECORD_ARGS,
    assert_clear_error,
    assert_no_traceback,
    bind_readonly,
    block_background_flush,
    consent_argv,
    consent_lines,
    data_files,
    mount_tmpfs,
    newer_policy,
    readonly_tmp_argv,
    readonly_tmp_available,
    run,
    run_host,
    scan_spool,
    snapshot_files,
    umount,
)

HOST_KEYS = {"host_key": "kept", "nested": {"a": [1, 2, 3]}}


@pytest.fixture(params=["ro-mount", "ro-mount-fresh", "home-file"])
def readonly_home(request: pytest.FixtureRequest, sandbox: Sandbox) -> Iterator[str]:
    """A HOME nothing can be written in: acknowledged before, fresh, or ~/.skyplane a file."""
    mode = str(request.param)
    if mode == "home-file":
        (sandbox.home / ".skyplane").write_bytes(b"not a directory\n")
        yield mode
        return
    if mode == "ro-mount":
        sandbox.write_config(HOST_KEYS)
        apply_choice("share", "init-flag", scope=Scope())
    block_background_flush()
    if not bind_readonly(sandbox.home):
        pytest.skip("bind mounts are not permitted here; the home-file case runs")
    try:
        yield mode
    finally:
        umount(sandbox.home)


@pytest.mark.parametrize(
    "args",
    [
        ("config", "set", "usage_stats", "false"),
        ("config", "set", "usage_stats_endpoint", "https://collector.example.org/push"),
        ("config", "unset", "usage_stats"),
        ("init", "--yes"),
        ("init", "--no"),
        ("policy", "accept"),
    ],
    ids=["opt-out", "endpoint", "unset", "init-yes", "init-no", "accept"],
)
def test_cli_writes_fail_clearly(
    sandbox: Sandbox, readonly_home: str, args: tuple[str, ...], tmp_path: Path
) -> None:
    before = snapshot_files(sandbox.home)
    env = {"SKYPLANE_USAGE_STATS_POLICY": str(newer_policy(tmp_path))}
    result = run(consent_argv(*args), env=env)
    message = assert_clear_error(result, 1)
    assert str(sandbox.home) in message
    assert snapshot_files(sandbox.home) == before


def test_reads_work(sandbox: Sandbox, readonly_home: str) -> None:
    before = snapshot_files(sandbox.home)
    status = run(consent_argv("stats", "status", "--json"))
    assert status.returncode == 0, status.describe()
    assert_no_traceback(status)
    data = status.json()
    if readonly_home == "home-file":
        # the settings cannot be read, so collection fails closed and says why
        assert (data["enabled"], data["source"]) == (False, "invalid_config")
        assert any("Not a directory" in w for w in data["warnings"]), data["warnings"]
    else:
        assert data["enabled"] is True
    for args in (("stats", "review", "--json"), ("policy", "show", "--json")):
        result = run(consent_argv(*args))
        assert result.returncode == 0, result.describe()
        assert_no_traceback(result)
    listing = run(consent_argv("config", "list", "--json"))
    if readonly_home == "home-file":
        assert_clear_error(listing, 1)
    else:
        assert listing.returncode == 0, listing.describe()
    assert snapshot_files(sandbox.home) == before


def test_host_session(sandbox: Sandbox, readonly_home: str) -> None:
    before = snapshot_files(sandbox.home)
    host = run_host()
    scan = scan_spool(sandbox.spool)
    if readonly_home == "ro-mount":
        # acknowledged earlier: nothing in HOME needs writing, the spool is elsewhere
        assert all(host.ids), host.run.describe()
        assert scan.ids() == set(host.ids)
        assert consent_lines(host.run.stderr) == []
    else:
        assert host.ids == [None, None, None]
        assert scan.states == {}
        lines = consent_lines(host.run.stderr)
        assert lines, host.run.describe()
        assert all(str(sandbox.home) in line for line in lines), lines
    assert snapshot_files(sandbox.home) == before


# -- an unwritable /tmp ---------------------------------------------------------------------


@pytest.fixture
def readonly_tmp(sandbox: Sandbox, tmp_path: Path) -> Iterator[None]:
    """Commands run with an empty read-only /tmp; HOME is a tmpfs of its own, writable."""
    if not readonly_tmp_available():
        pytest.skip("private mount namespaces are not permitted here")
    if not mount_tmpfs(sandbox.home, "1m"):
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        apply_choice("share", "init-flag", scope=Scope())
        yield
    finally:
        umount(sandbox.home)


@pytest.mark.parametrize("where", ["default", "under-a-file"])
def test_unwritable_tmp(sandbox: Sandbox, readonly_tmp: None, tmp_path: Path, where: str) -> None:
    if where == "default":
        env = {"SKYPLANE_USAGE_STATS_DIR": ""}  # empty: the default /tmp/skyplane/usage
    else:
        (tmp_path / "a-file").write_bytes(b"")
        env = {"SKYPLANE_USAGE_STATS_DIR": str(tmp_path / "a-file" / "usage")}
    home_before = data_files(snapshot_files(sandbox.home))

    wrap = functools.partial(readonly_tmp_argv, keep=tmp_path)
    record = run(wrap(consent_argv(*RECORD_ARGS)), env=env)
    message = assert_clear_error(record, 1)
    assert "No safe directory for usage statistics" in message
    assert "SKYPLANE_USAGE_STATS_DIR" in message  # the way out
    assert record.stdout == ""

    host = run_host(env=env, wrap=wrap)
    assert host.ids == [None, None, None]
    lines = consent_lines(host.run.stderr)
    assert lines, host.run.describe()
    assert all("No safe directory" in line for line in lines), lines

    for args in (("stats", "status", "--json"), ("stats", "review", "--json"), ("stats", "send")):
        result = run(wrap(consent_argv(*args)), env=env)
        assert result.returncode == 0, result.describe()
        assert_no_traceback(result)
    assert data_files(snapshot_files(sandbox.home)) == home_before


def test_unusable_override_is_refused_not_replaced_by_the_fallback(
    sandbox: Sandbox,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The override is unusable but the shared temp dir is fine: still refused, with a
    warning; the shared per-user fallback may hold other homes' sessions (issue 12)."""
    monkeypatch.setattr("consent._reported", set())  # "once per process": ours
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    profile = AppProfile(shared_temp_root=shared)
    (tmp_path / "a-file").write_bytes(b"")
    env = dict(os.environ, SKYPLANE_USAGE_STATS_DIR=str(tmp_path / "a-file" / "usage"))
    apply_choice("review", "init-flag", scope=Scope())  # held: no detached sender

    sid = record_session(
        src="local", dst=["aws:us-east-1"], runtime_s=1.0, profile=profile, environ=env
    )
    assert sid is None
    err = capfd.readouterr().err
    assert [line for line in err.splitlines() if "SKYPLANE_USAGE_STATS_DIR" in line], err
    assert not (shared / f"skyplane-{os.getuid()}").exists()
    # the listing says why it is empty
    listing = list_review(scope=Scope(profile, env))
    assert listing.items == []
    assert any("SKYPLANE_USAGE_STATS_DIR" in w for w in listing.warnings), listing.warnings


def test_no_safe_spool_in_process(
    sandbox: Sandbox, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Neither the spool nor the fallback can be made: the host API returns None, once."""
    shared = tmp_path / "shared-is-a-file"
    shared.write_bytes(b"")
    profile = AppProfile(shared_temp_root=shared)
    env = {k: v for k, v in os.environ.items() if k != "SKYPLANE_USAGE_STATS_DIR"}
    apply_choice("share", "init-flag", scope=Scope())

    for _ in range(3):
        assert (
            record_session(
                src="local", dst=["aws:us-east-1"], runtime_s=1.0, profile=profile, environ=env
            )
            is None
        )
    err = capfd.readouterr().err
    lines = consent_lines(err)
    assert len(lines) == 1, err
    assert "No safe directory" in lines[0], err
    assert "Traceback" not in err
    assert Spool.existing(Scope(profile, env)) is None
