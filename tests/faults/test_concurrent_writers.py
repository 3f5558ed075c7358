"""Eight processes writing the same files at once.

While they run, a reader in the test process keeps parsing config.json and
consent.toml: neither may ever be torn or missing. Afterwards config.json is exactly
one writer's whole result (read-modify-write under the lock, so keys the host owns
and keys other writers set survive), and the consent record lost no acknowledgement.
"""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from consent.actions import apply_choice
from consent.profile import Scope
from tests.conftest import Sandbox
from tests.faults.support import Arg, check_home, consent_argv, popen

pytestmark = pytest.mark.slow

WRITERS = 8
ROUNDS = 2
HOST_KEYS: dict[str, Any] = {"host_key": "kept", "nested": {"emoji": "\U0001f680", "n": [1, 2]}}


class Reader(threading.Thread):
    """Parses both files in a loop until stopped; remembers the first problem."""

    def __init__(self, config: Path, record: Path) -> None:
        super().__init__(daemon=True)
        self.config = config
        self.record = record
        self.stop = threading.Event()
        self.reads = 0
        self.problem: str | None = None

    def run(self) -> None:
        while not self.stop.is_set() and self.problem is None:
            try:
                json.loads(self.config.read_bytes())
                tomllib.loads(self.record.read_bytes().decode("utf-8"))
            except (OSError, ValueError) as exc:
                self.problem = f"{type(exc).__name__}: {exc}"
            self.reads += 1
            self.stop.wait(0.001)  # leave the two cores to the writers; ends when stopped


def run_together(commands: Sequence[Sequence[Arg]], sandbox: Sandbox) -> None:
    reader = Reader(sandbox.config, sandbox.record)
    reader.start()
    try:
        procs = [popen(consent_argv(*args)) for args in commands]
        for proc in procs:
            _out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode("utf-8", "replace")
            assert b"Traceback" not in err
    finally:
        reader.stop.set()
        reader.join()
    assert reader.problem is None, reader.problem
    assert reader.reads > 0


@pytest.fixture
def shared_home(sandbox: Sandbox) -> str:
    sandbox.write_config(HOST_KEYS)
    return apply_choice("share", "init-flag", scope=Scope()).record.client_id


def test_same_key_last_writer_wins_whole(sandbox: Sandbox, shared_home: str) -> None:
    before, _ = check_home(sandbox)
    assert before is not None
    for round_ in range(ROUNDS):
        urls = [f"https://r{round_}-w{i}.example.org/push" for i in range(WRITERS)]
        run_together([("config", "set", "usage_stats_endpoint", url) for url in urls], sandbox)
        config, _ = check_home(sandbox)
        assert config in [{**before, "usage_stats_endpoint": url} for url in urls], config


def test_init_and_config_set_at_once(sandbox: Sandbox, shared_home: str) -> None:
    acknowledgements = 1  # the fixture's
    for round_ in range(ROUNDS):
        endpoints = [f"https://r{round_}-e{i}.example.org/push" for i in range(2)]
        commands: list[tuple[str, ...]] = [
            ("config", "set", "usage_stats", "true"),
            ("config", "set", "usage_stats", "false"),
            ("init", "--yes"),
            ("init", "--no"),
            ("init", "--yes"),
            ("config", "set", "usage_stats", "off"),
            *(("config", "set", "usage_stats_endpoint", url) for url in endpoints),
        ]
        assert len(commands) == WRITERS
        run_together(commands, sandbox)
        acknowledgements += 6  # every usage_stats writer acknowledges once

        config, record = check_home(sandbox)
        assert config is not None
        assert record is not None
        # one writer's whole result: nothing torn, nothing of another writer lost
        switch = config.get("usage_stats")
        assert switch in (True, False), config
        assert config == {
            **HOST_KEYS,
            "usage_stats": switch,
            "usage_stats_review": False,
            "usage_stats_endpoint": config.get("usage_stats_endpoint"),
        }
        assert config["usage_stats_endpoint"] in endpoints  # this round's, never dropped
        assert record["client_id"] == shared_home
        assert len(record.get("history", [])) == acknowledgements - 1, "a lost acknowledgement"
