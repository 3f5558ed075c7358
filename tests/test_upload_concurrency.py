"""Exactly once across processes: concurrent senders, a sender killed mid-batch, and
a session recorded while `stats forget` runs.

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
from pytest_httpserver import HTTPServer

from consent.profile import DEFAULT_PROFILE, Scope
from consent.record import load_record
from consent.spool import Spool, State
from consent.upload import run_background, send_pending
from tests.conftest import Sandbox, run_cli
from tests.upload_helpers import (
    PUSH_PATH,
    Receiver,
    Request,
    acknowledge,
    make_payloads,
    states,
)

pytestmark = pytest.mark.slow


def _start_cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "consent", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_four_concurrent_senders_deliver_each_session_once(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    acknowledge()
    made = make_payloads(60)
    with Receiver() as receiver:
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", receiver.url)
        env = dict(os.environ)
        procs = [_start_cli("stats", "send", "--json", env=env) for _ in range(4)]
        outputs = [proc.communicate(timeout=60) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], [err for _, err in outputs]
    counts = Counter(receiver.session_ids())
    assert sorted(counts) == sorted(entry.session_id for entry, _ in made)
    assert set(counts.values()) == {1}, "a session went out twice"
    assert set(states().values()) == {"sent"}


_SENDER = """
from consent.profile import Scope
from consent.upload import Limits, send_pending
send_pending(limits=Limits(max_batch=5), scope=Scope())
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


# -- forget is final: a session recorded while `stats forget` runs ----------------------

# A host recording one session, held by the parent at one point of the spool write,
# always after it has read its client id: "before-open" before it opens (and maybe
# creates) the spool, "gap" before it takes the spool's writer lock, "locked" inside
# that lock, before the session directory exists. It says "held" on stdout, then
# waits for a line on stdin.
_HELD_RECORDER = """
import sys
import consent
from consent import _spoolwrite

where = sys.argv[1]

def hold():
    sys.stdout.write("held\\n")
    sys.stdout.flush()
    sys.stdin.readline()

def held(real):
    def wrapper(*args, **kwargs):
        hold()
        return real(*args, **kwargs)
    return wrapper

# the session path writes through consent._spoolwrite, which looks these up at call time
name = {"before-open": "open_root", "gap": "write_new"}.get(where, "_make_session_dir")
setattr(_spoolwrite, name, held(getattr(_spoolwrite, name)))

print(consent.record_session(
    argv=["cp", "a", "b"], src="aws:us-east-1", dst=["gcp:us-central1"], runtime_s=1.0
))
"""


def _start_held_recorder(where: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _HELD_RECORDER, where],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()  # blocks until the recorder is at the hold point
    assert line == "held\n", (line, child.stderr.read() if child.stderr else "")
    return child


def _release(child: subprocess.Popen[str]) -> str:
    out, err = child.communicate("\n", timeout=60)
    assert child.returncode == 0, err
    return out.strip()


def _waiting_for_a_lock(pid: int) -> bool:
    """True once ``pid`` is blocked in flock: /proc/locks lists its waiting request."""
    with open("/proc/locks") as locks:
        return any(" -> " in line and f" {pid} " in line for line in locks)


def _bodies_after_deletion(httpserver: HTTPServer) -> tuple[list[str], list[str]]:
    """(request bodies before the deletion request, bodies after it)."""
    bodies = [request.get_data(as_text=True) for request, _ in httpserver.log]
    marks = [i for i, body in enumerate(bodies) if '"deletion_request"' in body]
    assert marks, "forget sent its deletion request"
    return bodies[: marks[0]], bodies[marks[0] + 1 :]


@pytest.mark.parametrize("where", ["before-open", "gap", "locked"])
def test_a_session_recorded_during_forget_never_arrives_under_the_old_id(
    sandbox: Sandbox, httpserver: HTTPServer, where: str
) -> None:
    httpserver.expect_request(PUSH_PATH, method="POST").respond_with_data("", status=204)
    endpoint = httpserver.url_for(PUSH_PATH)
    old_id = acknowledge()
    if where == "before-open":
        # nothing spooled yet (say /tmp was emptied at boot): the recorder makes the spool
        assert not sandbox.spool.exists()
    else:
        make_payloads(1)  # the spool exists and holds one of this user's sessions
    recorder = _start_held_recorder(where)  # its payload will carry old_id

    forget_env = {"SKYPLANE_USAGE_STATS_ENDPOINT": endpoint}
    if where != "locked":
        # the recorder holds no lock yet: forget runs to its end
        result = run_cli("stats", "forget", "--yes", env=forget_env)
        assert result.returncode == 0, result.stderr
        _release(recorder)
    else:
        # the recorder is inside the writer lock: forget must wait for it
        forget = _start_cli("stats", "forget", "--yes", env={**os.environ, **forget_env})
        while not _waiting_for_a_lock(forget.pid):
            assert forget.poll() is None, forget.communicate()
            os.sched_yield()
        _release(recorder)
        _, err = forget.communicate(timeout=60)
        assert forget.returncode == 0, err

    new_id = load_record(sandbox.record).client_id  # type: ignore[union-attr]
    assert new_id != old_id
    assert all(entry.client_id != old_id for entry in Spool.open(Scope()).entries())

    # every sender that may run now: a manual send, then a background one
    result = run_cli("stats", "send", env={"SKYPLANE_USAGE_STATS_ENDPOINT": endpoint})
    assert result.returncode == 0, result.stderr
    endpoint_env = {**os.environ, "SKYPLANE_USAGE_STATS_ENDPOINT": endpoint}
    assert run_background(scope=Scope(DEFAULT_PROFILE, endpoint_env))

    _, after = _bodies_after_deletion(httpserver)
    assert not [body for body in after if old_id in body], "data arrived under a deleted id"


def test_the_sender_deletes_a_payload_under_a_retired_id(
    sandbox: Sandbox, httpserver: HTTPServer
) -> None:
    """A writer that skipped the retired-id check (an older version) still cannot send."""
    httpserver.expect_request(PUSH_PATH, method="POST").respond_with_data("", status=204)
    endpoint = httpserver.url_for(PUSH_PATH)
    old_id = acknowledge()
    spool = Spool.open(Scope())
    with spool.forgetting():
        spool.retire([old_id])
    rotate = run_cli("stats", "forget", "--yes")  # a new id, so the sender has one to trust
    assert rotate.returncode == 0, rotate.stderr
    # written as an older writer would: no lock, no check
    [(entry, _)] = make_payloads(1)
    directory = spool.root / old_id / entry.session_id
    directory.parent.mkdir(mode=0o700)
    (spool.root / entry.client_id / entry.session_id).rename(directory)

    result = send_pending(endpoint=endpoint, scope=Scope())

    assert httpserver.log == []
    assert result.sent == 0
    assert not directory.exists()


def test_a_writer_drops_a_payload_under_a_retired_id(sandbox: Sandbox) -> None:
    spool = Spool.open(Scope())
    with spool.forgetting():
        spool.retire(["old-client"])
    spool.write("old-client", "s-1", b"{}", State.PENDING)
    spool.write("new-client", "s-2", b"{}", State.PENDING)
    assert [(e.client_id, e.session_id) for e in spool.entries()] == [("new-client", "s-2")]
    assert spool.retired_ids() == {"old-client"}
