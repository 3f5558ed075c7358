"""Benchmark `consent stats review` over a spool of 10,000 payloads.

- ``consent stats review --json`` (every payload, parsed and printed): budget ≤ 2 s
  wall, interpreter start included.
- ``consent stats review`` (the human summary: counts of all, newest 50 rows): the
  same budget, since it reads the same spool.

Each is timed beside merely listing the spool directory in the same run: ``os.walk``
from a fresh interpreter (the least any Python tool pays) and ``ls -R``.

Run: ``python -m bench.review [--payloads N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench._harness import Row, print_table, sandbox_env, side_by_side
from consent.profile import Scope

BUDGET_S = 2.0
WALK = "import os, sys; sum(len(files) for _, _, files in os.walk(sys.argv[1]))"
ROUTES = [
    ("aws:us-east-1", ["gcp:us-central1"]),
    ("aws:us-west-2", ["aws:eu-west-1", "azure:westeurope"]),
    ("gcp:europe-west4", ["aws:ap-northeast-1"]),
    ("local", ["aws:us-east-1"]),
]
ENDPOINT = "https://usage-stats.skyplane.org/loki/api/v1/push"


def fill_spool(env: dict[str, str], payloads: int) -> None:
    """Realistic payloads in every state, written the way a host writes them."""
    subprocess.run(
        [sys.executable, "-m", "consent", "init", "--yes"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ.update(env)  # the library below reads HOME and the spool dir from here
    from consent.payload import build_payload, encode_payload, project
    from consent.policy import load_policy
    from consent.record import load_record
    from consent.spool import Receipt, Spool, State

    policy = load_policy(Scope().policy_path)
    record = load_record(Path(env["HOME"]) / ".skyplane" / "consent.toml")
    assert record is not None
    assert record.acknowledgement is not None
    spool = Spool.open(Scope())
    rng = random.Random(5)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with spool.lock():
        for index in range(payloads):
            session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            src, dst = ROUTES[index % len(ROUTES)]
            full = build_payload(
                policy=policy,
                client_id=record.client_id,
                session_id=session_id,
                host_version="0.3.2",
                source_region=src,
                destination_regions=dst,
                arguments={"_command": "cp", "_positional": ["<uri:s3>", "<uri:gs>"], "r": True},
                runtime_s=rng.uniform(1, 900),
                throughput_gbps=rng.uniform(0.1, 12),
                error="TimeoutError: <host> did not answer" if index % 37 == 0 else None,
                collected_at=start + dt.timedelta(minutes=index),
            )
            projected, withheld = project(full, policy, record.acknowledgement.schema)
            body = encode_payload(projected)
            roll = rng.random()
            state = State.HELD if roll < 0.05 else State.PENDING
            entry = spool.write(record.client_id, session_id, body, state, withheld=withheld)
            if roll >= 0.25:  # three in four were sent, as on a machine used for a while
                receipt = Receipt.for_payload(ENDPOINT, 204, body)
                spool.add_receipt(entry, receipt, required_endpoints=[ENDPOINT])
            elif 0.05 <= roll < 0.07:
                spool.set_state(entry, State.FAILED, reason="HTTP 400 from the endpoint")


def measure(payloads: int, runs: int) -> list[Row]:
    py = sys.executable
    consent = [py, "-m", "consent", "stats", "review"]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="consent-bench-") as tmp:
        env = sandbox_env(Path(tmp))
        began = time.perf_counter()
        fill_spool(env, payloads)
        print(f"spooled {payloads:,} payloads in {time.perf_counter() - began:.1f} s")
        spool = env["SKYPLANE_USAGE_STATS_DIR"]
        walk = [py, "-c", WALK, spool]
        for name, figure in (
            ("stats review --json", [*consent, "--json"]),
            ("stats review (summary)", consent),
        ):
            for baseline_name, baseline in (
                ("os.walk in python", walk),
                ("ls -R", ["ls", "-R", spool]),
            ):
                pair = side_by_side(figure, baseline, env, runs)
                rows.append(
                    Row(
                        f"{name}, {payloads:,} payloads",
                        f"{pair.figure_wall:.2f} s",
                        baseline_name,
                        f"{pair.baseline_wall:.2f} s",
                        pair.figure_wall / pair.baseline_wall,
                        f"<= {BUDGET_S:.0f} s",
                        pair.figure_wall <= BUDGET_S,
                    )
                )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--payloads", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3, help="median of this many runs")
    args = parser.parse_args()
    rows = measure(args.payloads, args.runs)
    print_table(rows)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
