"""Fixtures of the fault suite: a full disk two ways, a seeded random source."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import pytest

from tests.faults.support import FullDisk


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
