"""A clock that jumps backwards between record and send.

With ``faketime`` (libfaketime) the CLI really runs days ahead or behind; without it
the same situation is built on disk: payloads and state files dated 2099.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time

import pytest
from pytest_httpserver import HTTPServer

from consent._fileio import atomic_write
from consent.actions import apply_choice
from consent.profile import Scope
from consent.spool import Spool
from tests.conftest import Sandbox
from tests.faults.support import (
    PUSH_PATH,
    RECORD_ARGS,
    Arg,
    block_background_flush,
    check_cli_listings,
    consent_argv,
    loki_session_ids,
    python_argv,
    run,
    scan_spool,
    session_ids,
    spool_payloads,
)

FAKETIME = shutil.which("faketime")
needs_faketime = pytest.mark.skipif(FAKETIME is None, reason="faketime is not installed")


def shifted(offset: str, argv: list[Arg]) -> list[Arg]:
    assert FAKETIME is not None
    return [FAKETIME, "-f", offset, *argv]


def received(httpserver: HTTPServer) -> list[str]:
    return [sid for req, _ in list(httpserver.log) for sid in loki_session_ids(req.get_data())]


@pytest.fixture
def receiver(httpserver: HTTPServer) -> dict[str, str]:
    httpserver.expect_request(PUSH_PATH, method="POST").respond_with_data("", status=204)
    return {"SKYPLANE_USAGE_STATS_ENDPOINT": httpserver.url_for(PUSH_PATH)}


def record(argv: list[Arg]) -> str:
    result = run(argv)
    assert result.returncode == 0, result.describe()
    [sid] = session_ids(result.stdout)
    return sid


@needs_faketime
def test_clock_jumps_backwards_between_record_and_send(
    sandbox: Sandbox, httpserver: HTTPServer, receiver: dict[str, str]
) -> None:
    apply_choice("share", "init-flag", scope=Scope())
    block_background_flush()
    ahead = [record(shifted("+3d", consent_argv(*RECORD_ARGS))) for _ in range(2)]
    now = record(consent_argv(*RECORD_ARGS))

    # the clock is back to the present (three days "before" the first two payloads)
    send = run(consent_argv("stats", "send", "--json"), env=receiver)
    assert send.returncode == 0, send.describe()
    assert send.json()["sent"] == 3
    assert sorted(received(httpserver)) == sorted([*ahead, now])  # each exactly once
    scan = scan_spool(sandbox.spool)
    assert scan.ids("sent") == {*ahead, now}
    for sid in ahead:
        collected = json.loads(scan.payloads[sid])["collected_at"]
        [receipt] = scan.docs[sid]["receipts"]
        assert receipt["at"] < collected  # sent "before" it was recorded, and that is fine

    items = run(consent_argv("stats", "review", "--json")).json()
    order = [item["session_id"] for item in items]
    assert order.index(now) < min(order.index(sid) for sid in ahead)  # by collection time
    check_cli_listings(scan)

    # and the other way round: recorded now, sent by a clock two days behind
    later = [record(consent_argv(*RECORD_ARGS)) for _ in range(2)]
    behind = run(shifted("-2d", consent_argv("stats", "send", "--json")), env=receiver)
    assert behind.returncode == 0, behind.describe()
    assert behind.json()["sent"] == 2
    assert sorted(received(httpserver)) == sorted([*ahead, now, *later])
    check_cli_listings(scan_spool(sandbox.spool))


def test_payloads_dated_2099(
    sandbox: Sandbox, httpserver: HTTPServer, receiver: dict[str, str]
) -> None:
    apply_choice("share", "init-flag", scope=Scope())
    spool = Spool.open(Scope())
    block_background_flush(spool)
    future = [
        entry for entry, _ in spool_payloads(2, collected_at=dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
    ]
    for entry in future:  # as written by a clock in 2099
        state = entry.directory / "state.json"
        doc = json.loads(state.read_bytes())
        doc["updated_at"] = "2099-01-01T00:00:00Z"
        atomic_write(state, json.dumps(doc).encode())
    [(present, _)] = spool_payloads(1)
    ids = {present.session_id, *(e.session_id for e in future)}

    items = run(consent_argv("stats", "review", "--json")).json()
    assert items[0]["session_id"] == present.session_id
    assert [item["state"] for item in items] == ["pending"] * 3
    status = run(consent_argv("stats", "status", "--json"))
    assert status.json()["counts"]["pending"] == 3

    send = run(consent_argv("stats", "send"), env=receiver)
    assert send.returncode == 0, send.describe()
    assert sorted(received(httpserver)) == sorted(ids)
    scan = scan_spool(sandbox.spool)
    assert scan.ids("sent") == ids
    check_cli_listings(scan)


HOST_RECORDS = """
import consent
print(consent.record_session(src="aws:us-east-1", dst=["gcp:us-central1"], runtime_s=1.0))
"""


def test_backoff_from_a_clock_ahead_does_not_stop_background_sends(sandbox: Sandbox) -> None:
    apply_choice("share", "init-flag", scope=Scope())
    spool = Spool.open(Scope())
    backoff = spool.root / ".flush.json"
    if FAKETIME is not None:
        # a send that met a down endpoint while the clock ran a year ahead
        spool_payloads(1)
        failed = run(shifted("+365d", consent_argv("stats", "send")))
        assert failed.returncode == 1, failed.describe()
    else:
        atomic_write(backoff, json.dumps({"failures": 1, "retry_at": time.time() + 3e7}).encode())
    retry_at = json.loads(backoff.read_bytes())["retry_at"]
    assert retry_at > time.time() + 300 * 86400
    (spool.root / ".flush.stamp").unlink(missing_ok=True)

    host = run(python_argv(HOST_RECORDS))
    assert host.returncode == 0, host.describe()
    assert session_ids(host.stdout), host.describe()
    # the clock is right again; a pending payload should start a detached sender
    assert (spool.root / ".flush.stamp").exists(), "no background send until next year"
