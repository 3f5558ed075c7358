"""Many transfers finishing at once (docs/architecture.md §3.6, §5): none lost, none torn.

Real processes record through the public API. Review mode holds every payload, so
no background sender starts and the spool only ever sees writers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consent.actions import apply_choice
from consent.policy import load_policy
from consent.profile import Scope
from consent.spool import Spool, State
from tests.conftest import Sandbox

pytestmark = pytest.mark.slow

WRITERS = 8
PER_WRITER = 125

_WRITER = """
import os, sys, time
import consent
go, count = sys.argv[1], int(sys.argv[2])
while not os.path.exists(go):  # start together, so the writes really overlap
    time.sleep(0.001)
i = 0
while count < 0 or i < count:
    sid = consent.record_session(
        argv=["cp", "-r", "s3://acme/data", "gs://bucket/x", "--max-instances", str(i % 16)],
        src="aws:us-east-1",
        dst=["gcp:us-central1"],
        runtime_s=1.0 + i,
        nbytes=10**9,
    )
    print(sid, flush=True)
    i += 1
"""


def start_writer(go: Path, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(go), str(count)],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


@pytest.fixture
def held(sandbox: Sandbox) -> str:
    """Review mode, acknowledged: every session is written as held, nothing is sent."""
    return apply_choice("review", "init-flag", scope=Scope()).record.client_id


def payload_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/usage_stats.json"))


def check_complete(raw: bytes, expected_fields: set[str]) -> dict[str, object]:
    payload: dict[str, object] = json.loads(raw)
    assert set(payload) == expected_fields
    return payload


def test_eight_writers_lose_nothing(sandbox: Sandbox, held: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    writers = [start_writer(go, PER_WRITER) for _ in range(WRITERS)]
    go.touch()
    printed: list[str] = []
    for proc in writers:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert err == "", err  # no telemetry problem was reported by anyone
        printed += out.split()

    total = WRITERS * PER_WRITER
    assert len(printed) == total
    assert "None" not in printed
    assert len(set(printed)) == total

    fields = set(load_policy(Scope().policy_path).fields) - {"error"}
    spool = Spool(sandbox.spool)
    entries = spool.entries()
    assert len(entries) == total
    assert {e.session_id for e in entries} == set(printed)
    assert {e.state for e in entries} == {State.HELD}
    assert {e.client_id for e in entries} == {held}
    for entry in entries:
        payload = check_complete(spool.read_payload(entry), fields)
        assert payload["session_id"] == entry.session_id
    assert len(payload_files(sandbox.spool)) == total
    # every temp file was renamed into place or removed
    assert list(sandbox.spool.rglob("*.tmp")) == []


@pytest.mark.parametrize("after", [5, 20, 60])
def test_killed_writer_leaves_no_partial_payload(
    sandbox: Sandbox, held: str, tmp_path: Path, after: int
) -> None:
    go = tmp_path / "go"
    go.touch()
    writer = start_writer(go, -1)  # records until killed
    try:
        deadline = time.monotonic() + 60
        # kill at a moment chosen by the writer's own progress, in the middle of a write
        while len(payload_files(sandbox.spool)) < after:
            assert writer.poll() is None, writer.stderr.read() if writer.stderr else ""
            assert time.monotonic() < deadline, "the writer made no progress"
            time.sleep(0.002)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.communicate(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    fields = set(load_policy(Scope().policy_path).fields) - {"error"}
    visible = payload_files(sandbox.spool)
    assert len(visible) >= after
    for path in visible:
        check_complete(path.read_bytes(), fields)  # whole JSON, every field, or absent
    spool = Spool(sandbox.spool)
    entries = spool.entries()
    # listings show exactly the complete sessions; a torn one is never passed off as one
    assert {e.session_id for e in entries} == {p.parent.name for p in visible}
    assert all(e.state is State.HELD for e in entries)

    # the spool is not wedged: the next run records, and cleanup clears the debris
    import consent

    assert consent.record_session(src="local", dst=["local"], runtime_s=1) is not None
    spool.cleanup_incomplete(older_than_s=0)
    assert len(spool.entries()) == len(visible) + 1
    assert list(sandbox.spool.rglob("*.tmp")) == []
