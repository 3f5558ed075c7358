"""Isolation for every test: a private HOME and spool, no colour, a fixed width.

Nothing a test does can reach the real home directory, the real /tmp spool, or
the network: the endpoint defaults to a closed loopback port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consent.profile import AppProfile, Scope
from consent.spool import Spool

REPO = Path(__file__).resolve().parent.parent


def _reserve_dead_port() -> tuple[socket.socket, int]:
    """A loopback port bound but never listened on, held for the whole session.

    Connections to it are refused at once, and while this process lives nothing else
    can listen there, so no test (nor a detached sender one starts) can reach a real
    collector by default.
    """
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    return holder, holder.getsockname()[1]


_DEAD_PORT_HOLDER, DEAD_PORT = _reserve_dead_port()
CLOSED_ENDPOINT = f"http://127.0.0.1:{DEAD_PORT}/loki/api/v1/push"
"""The endpoint every test gets unless it sets its own: a dead loopback port."""

_CLEARED = ("DO_NOT_TRACK", "CI", "XDG_CONFIG_HOME", "CONSENT_DEBUG", "TMPDIR")


@dataclass
class Sandbox:
    home: Path
    spool: Path
    env: dict[str, str]

    @property
    def config(self) -> Path:
        return self.home / ".skyplane" / "config.json"

    @property
    def record(self) -> Path:
        return self.home / ".skyplane" / "consent.toml"

    def write_config(self, data: Any) -> None:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        text = data if isinstance(data, str) else json.dumps(data)
        self.config.write_text(text)


# The machine's real shared spool roots: the default and the per-user fallback.
REAL_SPOOL_ROOTS = (Path("/tmp/skyplane"), Path(f"/tmp/skyplane-{os.getuid()}"))


def _real_spool_state() -> dict[str, tuple[int, int, int]]:
    """Every entry under the real roots (the roots too): path -> (mode, size, mtime_ns).

    Roots that already exist on the machine are fine; any change below them is not.
    A directory's mtime moves when an entry is added or removed in it, even one gone
    again by the time of the next look.
    """
    found: dict[str, tuple[int, int, int]] = {}
    for root in REAL_SPOOL_ROOTS:
        paths = [root, *root.rglob("*")] if root.is_dir() else [root]
        for path in paths:
            try:
                st = path.lstat()
            except OSError:
                continue
            found[str(path)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


def _spool_changes(
    before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]
) -> list[str]:
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


@pytest.fixture(autouse=True, scope="session")
def real_spool_untouched() -> Iterator[None]:
    """No test, and no process a test starts, may write to the real shared spool."""
    before = _real_spool_state()
    yield
    changed = _spool_changes(before, _real_spool_state())
    assert not changed, f"the test session changed the real shared spool: {changed[:5]}"


@pytest.fixture(autouse=True)
def real_spool_untouched_by_test() -> Iterator[None]:
    """The same, after each test: names the test that did it."""
    before = _real_spool_state()
    yield
    changed = _spool_changes(before, _real_spool_state())
    assert not changed, f"this test changed the real shared spool: {changed[:5]}"


@pytest.fixture(autouse=True)
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    home = tmp_path / "home"
    home.mkdir()
    spool = tmp_path / "spool"
    for name in list(os.environ):
        if name.startswith("SKYPLANE_") or name in _CLEARED:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SKYPLANE_USAGE_STATS_DIR", str(spool))
    monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", CLOSED_ENDPOINT)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return Sandbox(home=home, spool=spool, env=dict(os.environ))


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A private stand-in for /tmp (sticky, world-writable), so no spool lands in the real one."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    directory.chmod(0o1777)
    return directory


@pytest.fixture
def profile(shared: Path) -> AppProfile:
    return AppProfile(shared_temp_root=shared)


@pytest.fixture
def scope(profile: AppProfile) -> Scope:
    """The test's profile in an empty environment: its spool lives under the private /tmp."""
    return Scope(profile, {})


@pytest.fixture
def spool(scope: Scope) -> Spool:
    """A spool chosen and vetted as the CLI would, under the private /tmp."""
    return Spool.open(scope)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
) -> Result:
    """Run the real CLI in a subprocess, with the sandbox environment (and ``env`` on top)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "consent", *args],
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli() -> Any:
    return run_cli
