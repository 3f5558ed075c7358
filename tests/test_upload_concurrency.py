"""Exactly once across processes: concurrent senders, and a sender killed mid-batch.

The documented idempotency rule (docs/where-the-data-goes.md): a session is sent
again only when its sender died after posting it and before writing its receipt;
receivers deduplicate on ``session_id``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter

import pytest

from tests.conftest import Sandbox, run_cli
from tests.upload_helpers import Receiver, Request, acknowledge, make_payloads, states

pytestmark = pytest.mark.slow


def test_four_concurrent_senders_deliver_each_session_once(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    acknowledge()
    made = make_payloads(60)
    with Receiver() as receiver:
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", receiver.url)
        env = dict(os.environ)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "consent", "stats", "send", "--json"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        outputs = [proc.communicate(timeout=60) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], [err for _, err in outputs]
    counts = Counter(receiver.session_ids())
    assert sorted(counts) == sorted(entry.session_id for entry, _ in made)
    assert set(counts.values()) == {1}, "a session went out twice"
    assert set(states().values()) == {"sent"}


_SENDER = """
from consent.upload import Limits, send_pending
send_pending(limits=Limits(max_batch=5))
"""


def test_a_sender_killed_mid_batch_loses_nothing(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    acknowledge()
    made = make_payloads(60)
    in_flight = threading.Event()
    release = threading.Event()

    def respond(request: Request) -> int:
        if request.index == 3:  # the fourth batch: posted, never answered before the kill
            in_flight.set()
            release.wait(30)
        return 204

    with Receiver(respond) as receiver:
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", receiver.url)
        proc = subprocess.Popen(
            [sys.executable, "-c", _SENDER],
            env=dict(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert in_flight.wait(30), "the sender never reached the fourth batch"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            release.set()
        answered_before_kill = {sid for r in receiver.answered for sid in r.session_ids()}
        killed_batch = set(receiver.requests[3].session_ids())

        assert "pending" in states().values(), "the kill left work undone"
        rerun = run_cli("stats", "send")

    assert rerun.returncode == 0, rerun.stderr
    everything = {entry.session_id for entry, _ in made}
    counts = Counter(receiver.session_ids())
    assert set(counts) == everything
    twice = {sid for sid, n in counts.items() if n > 1}
    # Batches answered 2xx before the kill had their receipts written: never again.
    assert len(answered_before_kill) == 15
    assert all(counts[sid] == 1 for sid in answered_before_kill)
    # Only the batch in flight at the kill may arrive twice (the idempotency rule).
    assert twice <= killed_batch
    assert set(states().values()) == {"sent"}
