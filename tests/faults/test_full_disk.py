"""A full disk under the spool, config.json, consent.toml and the receipts.

Each case runs twice: on a 64 KiB tmpfs filled to the last byte (where mounting is
permitted), and with ``RLIMIT_FSIZE`` = 0 in the child (every file write fails with
EFBIG). Either way the host finishes normally, the CLI exits 1 with one clear
sentence or two, and every file that was there is byte-for-byte unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from consent.actions import apply_choice
from consent.profile import Scope
from consent.spool import Spool, State
from tests.conftest import Sandbox
from tests.faults.support import (
    PUSH_PATH,
    RECORD_ARGS,
    FullDisk,
    assert_clear_error,
    assert_no_traceback,
    block_background_flush,
    check_home,
    check_listings,
    consent_argv,
    consent_lines,
    data_files,
    loki_session_ids,
    newer_policy,
    run_host,
    scan_spool,
    snapshot_files,
    spool_payloads,
    visible_temp_files,
)


def full_spool(
    sandbox: Sandbox, disk: FullDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Spool:
    """Acknowledged (share), the spool on the full disk, no detached sender."""
    apply_choice("share", "init-flag", scope=Scope())
    area = disk.area(tmp_path / "spoolfs")
    monkeypatch.setenv("SKYPLANE_USAGE_STATS_DIR", str(area / "usage"))
    sandbox.spool = area / "usage"
    spool = Spool.open(Scope())
    block_background_flush(spool)
    return spool


def session_files(root: Path) -> dict[str, bytes]:
    """Payloads and state files (the send log may appear, empty, beside them)."""
    return {
        path: data
        for path, data in snapshot_files(root).items()
        if path.endswith(("/usage_stats.json", "/state.json"))
    }


def full_home(sandbox: Sandbox, disk: FullDisk) -> None:
    """~/.skyplane on the full disk, holding a config with a host key and a record."""
    disk.area(sandbox.home / ".skyplane")
    sandbox.write_config({"host_key": {"keep": ["me", 1]}, "usage_stats": True})
    apply_choice(
        "share", "init-flag", scope=Scope()
    )  # usage_stats true, review false: init --yes is a no-op
    config, _ = check_home(sandbox)
    assert config == {
        "host_key": {"keep": ["me", 1]},
        "usage_stats": True,
        "usage_stats_review": False,
    }


def test_host_session_on_full_spool(
    sandbox: Sandbox, disk: FullDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = full_spool(sandbox, disk, tmp_path, monkeypatch)
    disk.fill()

    host = run_host(preexec_fn=disk.preexec)
    assert host.ids == [None, None, None]
    lines = consent_lines(host.run.stderr)
    assert lines, host.run.describe()
    assert all("not recorded" in line for line in lines), lines
    scan = scan_spool(spool.root)
    assert scan.states == {}  # nothing half-written is visible
    assert not visible_temp_files(spool.root)

    disk.free()
    again = run_host()
    assert all(again.ids), again.run.describe()
    scan = scan_spool(spool.root)
    assert scan.ids() == set(again.ids)
    check_listings(sandbox, scan)


def test_full_spool_is_reported_once_per_process(
    sandbox: Sandbox, disk: FullDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_spool(sandbox, disk, tmp_path, monkeypatch)
    disk.fill()
    host = run_host(preexec_fn=disk.preexec)
    assert host.ids == [None, None, None]
    assert len(consent_lines(host.run.stderr)) == 1, host.run.describe()


def test_record_cli_on_full_spool(
    sandbox: Sandbox, disk: FullDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = full_spool(sandbox, disk, tmp_path, monkeypatch)
    disk.fill()

    result = disk.run(consent_argv(*RECORD_ARGS))
    message = assert_clear_error(result, 1)
    assert "usage statistics" in message
    assert result.stdout == ""  # no session id for a session that was not written
    assert scan_spool(spool.root).states == {}
    assert not visible_temp_files(spool.root)

    disk.free()
    ok = disk.run(consent_argv(*RECORD_ARGS))
    assert ok.returncode == 0, ok.describe()
    assert scan_spool(spool.root).ids() == {ok.stdout.strip()}


@pytest.mark.parametrize(
    "args",
    [
        ("config", "set", "usage_stats", "false"),
        ("config", "set", "usage_stats_endpoint", "https://collector.example.org/push"),
        ("config", "unset", "usage_stats_review"),
        ("init", "--no"),
    ],
    ids=["opt-out", "endpoint", "unset", "init-no"],
)
def test_config_write_on_full_disk(sandbox: Sandbox, disk: FullDisk, args: tuple[str, ...]) -> None:
    full_home(sandbox, disk)
    pending = spool_payloads(3)
    block_background_flush()
    disk.fill()
    before = data_files(snapshot_files(sandbox.home))

    result = disk.run(consent_argv(*args))
    assert_clear_error(result, 1)
    assert data_files(snapshot_files(sandbox.home)) == before
    check_home(sandbox)
    # a failed opt-out said so, and dropped nothing behind the user's back
    assert scan_spool(sandbox.spool).ids("pending") == {e.session_id for e, _ in pending}

    disk.free()
    ok = disk.run(consent_argv(*args))
    assert ok.returncode == 0, ok.describe()
    config, _ = check_home(sandbox)
    assert config is not None
    assert config["host_key"] == {"keep": ["me", 1]}


def test_record_write_on_full_disk(sandbox: Sandbox, disk: FullDisk, tmp_path: Path) -> None:
    full_home(sandbox, disk)
    block_background_flush()
    policy = {"SKYPLANE_USAGE_STATS_POLICY": str(newer_policy(tmp_path))}
    disk.fill()
    before = data_files(snapshot_files(sandbox.home))

    accept = disk.run(consent_argv("policy", "accept"), env=policy)
    assert_clear_error(accept, 1)
    init = disk.run(consent_argv("init", "--review"))
    assert_clear_error(init, 1)
    # reading still works, and says what is going on
    status = disk.run(consent_argv("stats", "status", "--json"), env=policy)
    assert status.returncode == 0, status.describe()
    assert_no_traceback(status)
    assert status.json()["policy"]["up_to_date"] is False
    assert data_files(snapshot_files(sandbox.home)) == before

    disk.free()
    ok = disk.run(consent_argv("policy", "accept", "--json"), env=policy)
    assert ok.returncode == 0, ok.describe()
    assert ok.json()["accepted_version"] == 4
    check_home(sandbox)


def test_first_record_on_full_disk(sandbox: Sandbox, disk: FullDisk) -> None:
    """No record yet and no room for one: `init --yes` fails clearly, the host shrugs."""
    disk.area(sandbox.home / ".skyplane")
    sandbox.write_config({"usage_stats": True, "usage_stats_review": False})
    disk.fill()
    before = data_files(snapshot_files(sandbox.home))

    assert_clear_error(disk.run(consent_argv("init", "--yes")), 1)
    host = run_host(preexec_fn=disk.preexec)
    assert host.ids == [None, None, None]
    assert consent_lines(host.run.stderr), host.run.describe()
    assert data_files(snapshot_files(sandbox.home)) == before
    assert not sandbox.record.exists()
    assert scan_spool(sandbox.spool).states == {}


def test_receipt_on_full_spool(
    sandbox: Sandbox,
    disk: FullDisk,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    httpserver: HTTPServer,
) -> None:
    spool = full_spool(sandbox, disk, tmp_path, monkeypatch)
    made = {entry.session_id: data for entry, data in spool_payloads(5, spool=spool)}
    httpserver.expect_request(PUSH_PATH, method="POST").respond_with_data("", status=204)
    endpoint = {"SKYPLANE_USAGE_STATS_ENDPOINT": httpserver.url_for(PUSH_PATH)}
    disk.fill()
    before = session_files(spool.root)

    result = disk.run(consent_argv("stats", "send"), env=endpoint)
    message = assert_clear_error(result, 1)
    assert "pending" in message
    assert "receipt" in result.stderr
    # delivered, but without a receipt it is not "sent": still pending, bytes untouched
    received = {sid for req, _ in httpserver.log for sid in loki_session_ids(req.get_data())}
    assert received == set(made)
    scan = scan_spool(spool.root)
    assert scan.ids("pending") == set(made)
    assert all(doc["receipts"] == [] for doc in scan.docs.values())
    assert session_files(spool.root) == before
    assert not visible_temp_files(spool.root)

    disk.free()
    ok = disk.run(consent_argv("stats", "send"), env=endpoint)
    assert ok.returncode == 0, ok.describe()
    scan = scan_spool(spool.root)
    assert scan.ids("sent") == set(made)
    assert {sid: scan.payloads[sid] for sid in made} == made
    for doc in scan.docs.values():
        assert [r["status"] for r in doc["receipts"]] == [204]
    assert [e.state for e in spool.entries()] == [State.SENT] * 5


def test_approve_on_full_spool(
    sandbox: Sandbox, disk: FullDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = full_spool(sandbox, disk, tmp_path, monkeypatch)
    apply_choice("review", "init-flag", scope=Scope())
    held = {entry.session_id for entry, _ in spool_payloads(3, state=State.HELD, spool=spool)}
    disk.fill()
    before = session_files(spool.root)

    approve = disk.run(consent_argv("stats", "review", "--approve-all"))
    assert_clear_error(approve, 1)
    assert session_files(spool.root) == before  # all still held, nothing torn
    assert scan_spool(spool.root).ids("held") == held
    listing = disk.run(consent_argv("stats", "review", "--json"))
    assert listing.returncode == 0, listing.describe()
    assert {item["session_id"] for item in listing.json()} == held

    disk.free()
    ok = disk.run(consent_argv("stats", "review", "--approve-all"))
    assert ok.returncode == 0, ok.describe()
    assert scan_spool(spool.root).ids("pending") == held


def forget_setup(
    sandbox: Sandbox, disk: FullDisk, httpserver: HTTPServer
) -> tuple[str, dict[str, str]]:
    full_home(sandbox, disk)
    spool_payloads(2)
    block_background_flush()
    httpserver.expect_request(PUSH_PATH, method="POST").respond_with_data("", status=204)
    _, payload = scan_spool(sandbox.spool).payloads.popitem()
    old_id = str(json.loads(payload)["client_id"])
    return old_id, {"SKYPLANE_USAGE_STATS_ENDPOINT": httpserver.url_for(PUSH_PATH)}


def deletion_requests(httpserver: HTTPServer) -> list[str]:
    return [req.get_data(as_text=True) for req, _ in httpserver.log]


def test_forget_on_full_home_is_recoverable(
    sandbox: Sandbox, disk: FullDisk, httpserver: HTTPServer
) -> None:
    old_id, env = forget_setup(sandbox, disk, httpserver)
    disk.fill()
    home_before = data_files(snapshot_files(sandbox.home))

    forget = disk.run(consent_argv("stats", "forget", "--yes"), env=env)
    assert_clear_error(forget, 1)
    assert data_files(snapshot_files(sandbox.home)) == home_before  # the old id is kept
    assert scan_spool(sandbox.spool).states == {}  # local payloads: gone, as asked

    disk.free()
    again = disk.run(consent_argv("stats", "forget", "--yes"), env=env)
    assert again.returncode == 0, again.describe()
    assert any(old_id in body for body in deletion_requests(httpserver))


def test_forget_on_full_home_still_requests_deletion(
    sandbox: Sandbox, disk: FullDisk, httpserver: HTTPServer
) -> None:
    old_id, env = forget_setup(sandbox, disk, httpserver)
    disk.fill()
    forget = disk.run(consent_argv("stats", "forget", "--yes"), env=env)
    assert_no_traceback(forget)
    assert any(old_id in body for body in deletion_requests(httpserver)), forget.describe()
