"""Fixtures of the fault suite: a full disk two ways, a seeded random source."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.faults.support import Arg, Run, fill, limit_file_size, mount_tmpfs, run, umount


class FullDisk:
    """A full disk: a tiny tmpfs filled to the last byte, or ``RLIMIT_FSIZE`` = 0.

    ``area(path)`` prepares a directory that will be full (mounting the tmpfs there,
    so call it before anything is written in it). ``fill()`` then uses up the space;
    ``run`` runs a command against the full disk; ``free()`` gives the space back.
    With the rlimit every file write of the child fails (EFBIG, SIGXFSZ ignored), so
    the setup writes the files a case needs from the test process first.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.mounts: list[Path] = []
        self.fillers: list[Path] = []
        self.full = False

    def area(self, path: Path) -> Path:
        if self.kind == "tmpfs":
            if not mount_tmpfs(path):
                pytest.skip("mounting a tmpfs is not permitted here; the rlimit case runs")
            self.mounts.append(path)
        else:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def fill(self) -> None:
        self.fillers = [fill(mount) for mount in self.mounts]
        self.full = True

    def free(self) -> None:
        for filler in self.fillers:
            filler.unlink()
        self.fillers = []
        self.full = False

    @property
    def preexec(self) -> Callable[[], None] | None:
        return limit_file_size if self.kind == "rlimit" and self.full else None

    def run(self, argv: Sequence[Arg], *, env: dict[str, str] | None = None) -> Run:
        return run(argv, env=env, preexec_fn=self.preexec)

    def close(self) -> None:
        for mount in reversed(self.mounts):
            umount(mount)


@pytest.fixture(params=["tmpfs", "rlimit"])
def disk(request: pytest.FixtureRequest) -> Iterator[FullDisk]:
    full = FullDisk(str(request.param))
    try:
        yield full
    finally:
        full.close()


@pytest.fixture
def rng() -> random.Random:
    """Random delays; the seed is printed (shown on failure) and settable by FAULT_SEED."""
    seed = int(os.environ.get("FAULT_SEED") or time.time_ns() % 2**32)
    print(f"fault seed: FAULT_SEED={seed}")
    return random.Random(seed)
