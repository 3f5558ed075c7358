"""Isolation for every test: a private HOME and spool, no colour, a fixed width.

Nothing a test does can reach the real home directory, the real /tmp spool, or
the network: the endpoint defaults to a closed loopback port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consent.profile import AppProfile
from consent.spool import Spool

REPO = Path(__file__).resolve().parent.parent
CLOSED_ENDPOINT = "http://127.0.0.1:9/loki/api/v1/push"

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


def _real_spool_contents() -> set[str]:
    root = Path("/tmp/skyplane")
    return {str(p) for p in root.rglob("*")} if root.is_dir() else set()


@pytest.fixture(autouse=True, scope="session")
def real_spool_untouched() -> Iterator[None]:
    """No test, and no process a test starts, may write to the real shared spool."""
    before = _real_spool_contents()
    yield
    leaked = sorted(_real_spool_contents() - before)
    assert not leaked, f"tests wrote to the real /tmp/skyplane: {leaked[:5]}"


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
def spool(profile: AppProfile) -> Spool:
    """A spool chosen and vetted as the CLI would, under the private /tmp."""
    return Spool.open(profile, environ={})


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
