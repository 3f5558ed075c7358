"""The chaos soak, bounded for CI: ~35 s of load, then the invariants.

Concurrent recorders (API and CLI), senders, reviews, review-mode switches,
opt-outs, discards and forgets, with SIGKILLs of random children (detached senders
included), against a loopback receiver that answers 500, 429, 503 slowly, 400 on
batches, drops connections and acknowledges late (tests/soak/harness.py). Then a
quiet send to a well-behaved receiver, and every invariant of issue 12's soak:
nothing lost or duplicated beyond the idempotency rule, no traceback, modes and
counts right, nothing arriving under a client id after its deletion request.

The harness is checked against the bug it was built for: with the retired-id checks
of the writer and the sender switched off, a 60 s ``scripts/soak.py --forget-heavy``
run reports sessions arriving under client ids after their deletion requests.

Longer runs: ``python scripts/soak.py --seconds 300``. A failure prints the seed;
``scripts/soak.py --seed N`` replays the same choices (the timing differs).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.soak.harness import Soak, check, summary

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("CONSENT_SOAK_SECONDS", "35"))


def test_chaos_soak_keeps_every_promise(tmp_path: Path) -> None:
    seed = int(os.environ.get("CONSENT_SOAK_SEED", random.randrange(1 << 30)))
    soak = Soak(tmp_path / "soak", SOAK_SECONDS, seed)
    soak.run()
    problems = check(soak)
    report = summary(soak)
    assert soak.children and soak.receiver.arrivals, report
    assert not problems, "\n".join([report, f"logs: {soak.base}", *problems])
