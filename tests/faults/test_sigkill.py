"""SIGKILL in the middle of every write path, in a loop.

Each path is killed two ways: the real CLI command, and a child that runs the same
library call in a tight loop. Neither is killed after a delay: the child reports
every file-system change it is about to make (see
:func:`tests.faults.support.run_to_point`), and is killed at a point drawn at
random from those of an undisturbed run, either stopped right before that change or
let run on into it. So every kill lands in the write path, on an idle machine or a
loaded one. After every kill the files are checked: config.json is whole JSON,
consent.toml whole TOML with the same client id and an undiminished history, every
listed spool entry parses, no ``*.tmp`` is visible, and the listings agree with the
disk. Set FAULT_SEED to replay a run's kill points.
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
from consent.profile import Scope
from consent.spool import Spool, State
from tests.conftest import Sandbox
from tests.faults.support import (
    CLI_CODE,
    PUSH_PATH,
    RECORD_ARGS,
    Arg,
    Killed,
    block_background_flush,
    check_cli_listings,
    check_home,
    check_listings,
    consent_argv,
    count_points,
    loki_session_ids,
    run,
    run_to_point,
    scan_spool,
    session_ids,
    spool_payloads,
)

pytestmark = pytest.mark.slow

ITERATIONS = 15
LOOP_ITERATIONS = 6
LOOP_POINTS = 60
"""A looping child is killed at one of its first LOOP_POINTS write points (a few rounds)."""
HOST_KEYS: dict[str, Any] = {"host_key": "kept", "nested": {"a": [1, 2, 3]}}


class Points:
    """The write points of each CLI command, counted once from an undisturbed run."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env
        self.counts: dict[tuple[Arg, ...], int] = {}

    def __call__(self, *args: Arg) -> int:
        if args not in self.counts:
            self.counts[args] = count_points(CLI_CODE, *args, env=self.env)
        return self.counts[args]


def kill_cli(
    rng: random.Random, points: Points, *args: Arg, env: dict[str, str] | None = None
) -> Killed:
    """Run the command; SIGKILL it at a random one of its write points."""
    result = run_to_point(
        CLI_CODE,
        *args,
        stop_at=rng.randint(1, points(*args)),
        hold=rng.random() < 0.5,
        env=env,
    )
    assert "Traceback" not in result.stderr, result.describe()
    return result


def kill_loop(
    rng: random.Random,
    script: str,
    check: Callable[[list[str]], None],
    *,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> None:
    """Kill a child looping over one write path, LOOP_ITERATIONS times, checking after each."""
    for _ in range(LOOP_ITERATIONS):
        result = run_to_point(
            script,
            *args,
            stop_at=rng.randint(1, LOOP_POINTS),
            hold=rng.random() < 0.5,
            env=env,
        )
        assert result.killed, result.describe()  # the loop never ends by itself
        assert "Traceback" not in result.stderr, result.describe()
        check(result.lines())


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
    apply_choice("share", "init-flag", scope=Scope())
    return HomeWatch(sandbox)


LOOP_CONFIG = """
import itertools
from consent.actions import config_set
from consent.profile import Scope
scope = Scope()
for i in itertools.count():
    config_set("usage_stats", "true" if i % 2 else "false", scope=scope)
    config_set("usage_stats_endpoint", f"https://e{i}.example.org/push", scope=scope)
    print(i, flush=True)
"""


def test_sigkill_config_set(sandbox: Sandbox, home: HomeWatch, rng: random.Random) -> None:
    commands = [
        ("config", "set", "usage_stats", "false"),
        ("config", "set", "usage_stats", "true"),
        ("config", "set", "usage_stats_endpoint", "https://collector.example.org/push"),
        ("config", "set", "usage_stats_review", "true"),
        ("config", "unset", "usage_stats_review"),
    ]
    points = Points()
    killed = 0
    for i in range(ITERATIONS):
        killed += kill_cli(rng, points, *commands[i % len(commands)]).killed
        home.check()
    # a kill let run on may come after the command finished; the others cannot
    assert killed >= 1, "no run was killed mid-way"

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
from consent.profile import Scope
for i in itertools.count():
    apply_choice("share" if i % 2 else "dont-share", "init-flag", scope=Scope())
    print(i, flush=True)
"""


def test_sigkill_record_write(sandbox: Sandbox, home: HomeWatch, rng: random.Random) -> None:
    points = Points()
    killed = 0
    for i in range(ITERATIONS):
        killed += kill_cli(rng, points, "init", "--yes" if i % 2 else "--no").killed
        home.check()
    # a kill let run on may come after the command finished; the others cannot
    assert killed >= 1, "no run was killed mid-way"

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
    apply_choice("review", "init-flag", scope=Scope())  # held: no detached sender joins in
    block_background_flush()
    recorded: set[str] = set()

    def check(lines: list[str]) -> None:
        assert "None" not in lines  # the host API never silently gave up
        recorded.update(session_ids("\n".join(lines) + "\n"))
        scan = scan_spool(sandbox.spool)
        assert recorded <= scan.ids(), "a session the host was told about is gone"
        assert set(scan.states.values()) <= {"held"}
        check_listings(sandbox, scan)

    kill_loop(rng, LOOP_SESSIONS, check)
    assert recorded, "no session was ever recorded before the kill"

    points = Points()
    killed = 0
    for _ in range(ITERATIONS // 3):
        result = kill_cli(rng, points, *RECORD_ARGS)
        killed += result.killed
        check(result.lines())
    assert killed >= 1, "no run was killed mid-way"
    check_cli_listings(scan_spool(sandbox.spool))


LOOP_TRANSITIONS = """
from consent.profile import Scope
from consent.review import approve
from consent.spool import Spool, State
scope = Scope()
spool = Spool.open(scope)
while True:
    approve(None, scope=scope)
    with spool.lock():
        for entry in spool.entries((State.PENDING,)):
            spool.set_state(entry, State.HELD)
"""


def test_sigkill_state_transition(sandbox: Sandbox, rng: random.Random) -> None:
    apply_choice("review", "init-flag", scope=Scope())
    spool = Spool.open(Scope())
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

    points = Points()
    approve_all = ("stats", "review", "--approve-all")
    hold_all()
    points(*approve_all)  # counted with all 40 held, as every kill below starts
    killed = 0
    for _ in range(ITERATIONS):
        hold_all()
        killed += kill_cli(rng, points, *approve_all).killed
        check()
    # a kill let run on may come after the command finished; the others cannot
    assert killed >= 1, "no run was killed mid-way"
    kill_loop(rng, LOOP_TRANSITIONS, check)
    check_cli_listings(scan_spool(sandbox.spool))


LOOP_SEND = """
import sys
import consent
from consent.profile import Scope
from consent.upload import send_pending
while True:
    for _ in range(5):
        sid = consent.record_session(src="aws:us-east-1", dst=["gcp:us-central1"], runtime_s=1.0)
        print(sid, flush=True)
    send_pending(endpoint=sys.argv[1], scope=Scope())
"""


def test_sigkill_receipt_write(
    sandbox: Sandbox, rng: random.Random, httpserver: HTTPServer
) -> None:
    apply_choice("share", "init-flag", scope=Scope())
    spool = Spool.open(Scope())
    block_background_flush(spool)
    httpserver.expect_request(PUSH_PATH, method="POST").respond_with_data("", status=204)
    url = httpserver.url_for(PUSH_PATH)
    # Only the test's own sends reach the server: it names it with --endpoint, while the
    # environment keeps the sandbox's dead endpoint, so a detached sender that starts
    # once a send has cleared the backoff delivers nothing and marks nothing sent.
    send = ("stats", "send", "--endpoint", url)
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

    points = Points()
    created |= {entry.session_id for entry, _ in spool_payloads(25, spool=spool)}
    points(*send)  # counted on a send of 25, as every kill below starts with 25 or more
    killed = 0
    for _ in range(ITERATIONS):
        created |= {entry.session_id for entry, _ in spool_payloads(25, spool=spool)}
        killed += kill_cli(rng, points, *send).killed
        check()
    # a kill let run on may come after the command finished; the others cannot
    assert killed >= 1, "no run was killed mid-way"
    kill_loop(rng, LOOP_SEND, check, args=(url,))

    final = run(consent_argv(*send, "--json"))
    assert final.returncode == 0, final.describe()
    assert json.loads(final.stdout)["pending"] == 0
    check()
    scan = scan_spool(sandbox.spool)
    assert scan.ids("sent") == created
    assert created <= received()
    check_cli_listings(scan)
