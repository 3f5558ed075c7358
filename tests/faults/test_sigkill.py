"""SIGKILL in the middle of every write path, in a loop with random delays.

Each path is killed two ways. The real CLI command is started and killed after a
random delay spread over its measured run time (most of which is start-up, so the
delays lean towards the end, where the writes are). And a child that runs the same
library call in a tight loop is killed at a random moment, which lands inside a
write far more often. After every kill the files are checked: config.json is whole
JSON, consent.toml whole TOML with the same client id and an undiminished history,
every listed spool entry parses, no ``*.tmp`` is visible, and the listings agree
with the disk. Set FAULT_SEED to replay a run's delays.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from consent.actions import apply_choice
from consent.config import CONFIG_KEYS
from consent.spool import Spool, State
from tests.conftest import Sandbox
from tests.faults.support import (
    PUSH_PATH,
    RECORD_ARGS,
    Arg,
    block_background_flush,
    check_cli_listings,
    check_home,
    check_listings,
    consent_argv,
    kill_after,
    loki_session_ids,
    popen,
    python_argv,
    run,
    scan_spool,
    session_ids,
    spool_payloads,
)

pytestmark = pytest.mark.slow

ITERATIONS = 15
LOOP_ITERATIONS = 6
HOST_KEYS: dict[str, Any] = {"host_key": "kept", "nested": {"a": [1, 2, 3]}}


def calibrate(*args: Arg, env: dict[str, str] | None = None) -> float:
    """One undisturbed run of the command: its wall time scales the kill delays."""
    result = run(consent_argv(*args), env=env)
    assert result.returncode == 0, result.describe()
    return result.elapsed


def kill_cli(
    rng: random.Random,
    seconds: float,
    *args: Arg,
    env: dict[str, str] | None = None,
    low: float = 0.3,
    high: float = 1.1,
) -> tuple[bool, list[str]]:
    """Start the command, SIGKILL it at a random point of its run; (killed, stdout lines).

    The delay is drawn from ``[low, high]`` times the calibrated run time.
    """
    killed, out, err = kill_after(
        popen(consent_argv(*args), env=env), rng.uniform(low * seconds, high * seconds)
    )
    assert b"Traceback" not in err, err.decode("utf-8", "replace")
    return killed, out.decode("utf-8", "replace").split("\n")[:-1]


def kill_loop(
    rng: random.Random,
    script: str,
    check: Callable[[list[str]], None],
    *,
    low: float = 0.1,
    high: float = 0.5,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> int:
    """Kill a child looping over one write path LOOP_ITERATIONS times; how many died mid-run."""
    killed = 0
    for _ in range(LOOP_ITERATIONS):
        child = popen(python_argv(script, *args), env=env)
        died, out, err = kill_after(child, rng.uniform(low, high))
        assert died, err.decode("utf-8", "replace")  # the loop never ends by itself
        assert b"Traceback" not in err, err.decode("utf-8", "replace")
        killed += died
        check(out.decode("utf-8", "replace").split("\n")[:-1])
    return killed


class HomeWatch:
    """The home-file invariants, kept across kills: same client id, history only grows."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        _, record = check_home(sandbox)
        assert record is not None
        self.client_id = record["client_id"]
        self.history = len(record.get("history", []))

    def check(self) -> dict[str, Any]:
        config, record = check_home(self.sandbox)
        assert config is not None
        assert record is not None
        for key, value in HOST_KEYS.items():
            assert config.get(key) == value, config
        assert set(config) <= set(HOST_KEYS) | set(CONFIG_KEYS), config
        assert record["client_id"] == self.client_id  # a torn record would mean a new id
        history = len(record.get("history", []))
        assert history >= self.history, "an acknowledgement was lost from the history"
        self.history = history
        assert not list(self.sandbox.record.parent.glob("consent.toml.damaged-*"))
        return config


@pytest.fixture
def home(sandbox: Sandbox) -> HomeWatch:
    sandbox.write_config(HOST_KEYS)
    apply_choice("share", "init-flag")
    return HomeWatch(sandbox)


LOOP_CONFIG = """
import itertools
from consent.actions import config_set
for i in itertools.count():
    config_set("usage_stats", "true" if i % 2 else "false")
    config_set("usage_stats_endpoint", f"https://e{i}.example.org/push")
    print(i, flush=True)
"""


def test_sigkill_config_set(sandbox: Sandbox, home: HomeWatch, rng: random.Random) -> None:
    commands = [
        ("config", "set", "usage_stats", "false"),
        ("config", "set", "usage_stats", "true"),
        ("config", "set", "usage_stats_endpoint", "https://e{}.example.org/push"),
        ("config", "set", "usage_stats_review", "true"),
        ("config", "unset", "usage_stats_review"),
    ]
    seconds = calibrate(*commands[0])
    killed = 0
    for i in range(ITERATIONS):
        args = tuple(arg.format(i) for arg in commands[i % len(commands)])
        died, _ = kill_cli(rng, seconds, *args)
        killed += died
        home.check()
    # a kill may land after the command finished; some must land mid-write
    assert killed >= 1, "too few runs were killed mid-way to mean anything"

    def check(lines: list[str]) -> None:
        config = home.check()
        if lines:  # a finished write survives the kill that came after it
            done = int(lines[-1])
            assert config["usage_stats_endpoint"] in (
                f"https://e{done}.example.org/push",
                f"https://e{done + 1}.example.org/push",
            )

    kill_loop(rng, LOOP_CONFIG, check)
    result = run(consent_argv("config", "list", "--json"))
    assert result.returncode == 0, result.describe()


LOOP_RECORD = """
import itertools
from consent.actions import apply_choice
for i in itertools.count():
    apply_choice("share" if i % 2 else "dont-share", "init-flag")
    print(i, flush=True)
"""


def test_sigkill_record_write(sandbox: Sandbox, home: HomeWatch, rng: random.Random) -> None:
    seconds = calibrate("init", "--no")
    killed = 0
    for i in range(ITERATIONS):
        died, _ = kill_cli(rng, seconds, "init", "--yes" if i % 2 else "--no")
        killed += died
        home.check()
    # a kill may land after the command finished; some must land mid-write
    assert killed >= 1

    def check(lines: list[str]) -> None:
        before = home.history
        home.check()
        # every acknowledgement the loop reported is still in the record
        assert home.history >= before + len(lines)

    kill_loop(rng, LOOP_RECORD, check)
    status = run(consent_argv("stats", "status", "--json"))
    assert status.returncode == 0, status.describe()
    assert status.json()["client_id"] == home.client_id


LOOP_SESSIONS = """
import consent
while True:
    sid = consent.record_session(
        argv=["cp", "-r", "s3://acme/x", "gs://acme/y"],
        src="aws:us-east-1",
        dst=["gcp:us-central1"],
        runtime_s=1.0,
    )
    print(sid, flush=True)
"""


def test_sigkill_session_write(sandbox: Sandbox, rng: random.Random) -> None:
    apply_choice("review", "init-flag")  # held: no detached sender joins in
    block_background_flush()
    recorded: set[str] = set()

    def check(lines: list[str]) -> None:
        assert "None" not in lines  # the host API never silently gave up
        recorded.update(session_ids("\n".join(lines) + "\n"))
        scan = scan_spool(sandbox.spool)
        assert recorded <= scan.ids(), "a session the host was told about is gone"
        assert set(scan.states.values()) <= {"held"}
        check_listings(sandbox, scan)

    kill_loop(rng, LOOP_SESSIONS, check, low=0.15, high=0.45)
    assert recorded, "no session was ever recorded before the kill"

    seconds = calibrate(*RECORD_ARGS)
    for _ in range(ITERATIONS // 3):
        _, lines = kill_cli(rng, seconds, *RECORD_ARGS)
        check(lines)
    check_cli_listings(scan_spool(sandbox.spool))


LOOP_TRANSITIONS = """
from consent.review import approve
from consent.spool import Spool, State
spool = Spool.open()
while True:
    approve(None)
    with spool.lock():
        for entry in spool.entries((State.PENDING,)):
            spool.set_state(entry, State.HELD)
"""


def test_sigkill_state_transition(sandbox: Sandbox, rng: random.Random) -> None:
    apply_choice("review", "init-flag")
    spool = Spool.open()
    block_background_flush(spool)
    everyone = {entry.session_id for entry, _ in spool_payloads(40, state=State.HELD)}

    def check(_lines: list[str] | None = None) -> None:
        scan = scan_spool(sandbox.spool)
        assert scan.ids() == everyone, "a payload was lost or torn"
        assert set(scan.states.values()) <= {"held", "pending"}
        check_listings(sandbox, scan)

    def hold_all() -> None:
        with spool.lock():
            for entry in spool.entries((State.PENDING,)):
                spool.set_state(entry, State.HELD)

    seconds = calibrate("stats", "review", "--approve-all")
    killed = 0
    for _ in range(ITERATIONS):
        hold_all()
        died, _ = kill_cli(rng, seconds, "stats", "review", "--approve-all")
        killed += died
        check()
    # a kill may land after the command finished; some must land mid-write
    assert killed >= 1
    kill_loop(rng, LOOP_TRANSITIONS, check, low=0.15, high=0.6)
    check_cli_listings(scan_spool(sandbox.spool))


LOOP_SEND = """
import sys
import consent
from consent.upload import send_pending
while True:
    for _ in range(5):
        sid = consent.record_session(src="aws:us-east-1", dst=["gcp:us-central1"], runtime_s=1.0)
        print(sid, flush=True)
    send_pending(endpoint=sys.argv[1])
"""


def test_sigkill_receipt_write(
    sandbox: Sandbox, rng: random.Random, httpserver: HTTPServer
) -> None:
    apply_choice("share", "init-flag")
    spool = Spool.open()
    block_background_flush(spool)
    httpserver.expect_request(PUSH_PATH, method="POST").respond_with_data("", status=204)
    url = httpserver.url_for(PUSH_PATH)
    env = {"SKYPLANE_USAGE_STATS_ENDPOINT": url}
    created: set[str] = set()

    def received() -> set[str]:
        return {sid for req, _ in list(httpserver.log) for sid in loki_session_ids(req.get_data())}

    def check(lines: list[str] | None = None) -> None:
        scan = scan_spool(sandbox.spool)
        created.update(session_ids("\n".join(lines or []) + "\n"))
        assert created <= scan.ids(), "a payload was lost"
        created.update(scan.ids())  # those written but not yet reported by a killed loop
        assert set(scan.states.values()) <= {"pending", "sent"}
        for sid in scan.ids("sent"):
            receipts = scan.docs[sid]["receipts"]
            assert [(r["endpoint"], r["status"]) for r in receipts] == [(url, 204)]
        assert scan.ids("sent") <= received(), "a receipt for something never delivered"
        check_listings(sandbox, scan)

    created |= {entry.session_id for entry, _ in spool_payloads(25, spool=spool)}
    seconds = calibrate("stats", "send", env=env)
    killed = 0
    for _ in range(ITERATIONS):
        created |= {entry.session_id for entry, _ in spool_payloads(25, spool=spool)}
        died, _ = kill_cli(rng, seconds, "stats", "send", env=env, low=0.5, high=1.3)
        killed += died
        check()
    # a kill may land after the command finished; some must land mid-write
    assert killed >= 1
    kill_loop(rng, LOOP_SEND, check, low=0.3, high=0.8, args=(url,), env=env)

    final = run(consent_argv("stats", "send", "--json"), env=env)
    assert final.returncode == 0, final.describe()
    assert json.loads(final.stdout)["pending"] == 0
    check()
    scan = scan_spool(sandbox.spool)
    assert scan.ids("sent") == created
    assert created <= received()
    check_cli_listings(scan)
