"""Benchmark the upload path (docs/architecture.md §5).

- ``consent stats send`` of 10,000 pending payloads to a loopback receiver: budget
  ≤ 5 s wall (interpreter start included), each session received exactly once.
  Baseline, same run: the same request bodies POSTed with a bare httpx client (no
  spool, no receipts), which is the network's share of the figure.
- Host delay with a black-holed endpoint: ``consent.record_session`` end to end,
  median of 30, each call starting a detached flush into an endpoint that accepts
  and never answers. Baseline, same run: the same call with collection disabled.
  Budget: ≤ 50 ms added. The rate-limited case (no flush started) is shown too.
- Diagnostic: the same send with fsync off, in-process: the cost of everything but
  the durable receipt writes (one state-file rewrite with two fsyncs per session).

Everything is written under a temporary directory, removed at the end.
Run: ``python -m bench.upload [--payloads N] [--calls N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench._harness import Row, print_table, sandbox_env
from consent.profile import Scope

SEND_BUDGET_S = 5.0
DELAY_BUDGET_S = 0.050
PUSH = "/loki/api/v1/push"


class CountingReceiver:
    """A threaded HTTP/1.1 receiver that counts the session ids of Loki pushes."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.requests = 0
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ids = [
                    json.loads(line)["session_id"]
                    for stream in json.loads(body)["streams"]
                    for _, line in stream["values"]
                ]
                with lock:
                    outer.counts.update(ids)
                    outer.requests += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{PUSH}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(sock.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}{PUSH}"
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes accept(); the senders see a refusal
        sock.close()
        for conn in held:
            conn.close()


@contextlib.contextmanager
def no_fsync() -> Iterator[None]:
    # Only while filling the spool: 10,000 durable writes would take a minute here,
    # and the figure is the send, which runs with fsync as always.
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def init(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "consent", "init", "--yes"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def fill_spool(payloads: int) -> list[str]:
    from consent.payload import build_payload, encode_payload, project
    from consent.policy import load_policy
    from consent.record import load_record
    from consent.spool import Spool, State

    policy = load_policy(Scope().policy_path)
    record = load_record(Scope().record_path)
    assert record is not None
    assert record.acknowledgement is not None
    spool = Spool.open(Scope())
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    ids: list[str] = []
    with no_fsync():
        for index in range(payloads):
            session_id = str(uuid.uuid4())
            full = build_payload(
                policy=policy,
                client_id=record.client_id,
                session_id=session_id,
                host_version="0.4.0",
                source_region="aws:us-east-1",
                destination_regions=["gcp:us-central1"],
                arguments={"_command": "cp", "_positional": ["<uri:s3>", "<uri:gs>"], "r": True},
                runtime_s=30.0 + index % 600,
                throughput_gbps=4.2,
                error="TimeoutError: <host> did not answer" if index % 37 == 0 else None,
                collected_at=start + dt.timedelta(seconds=index),
            )
            projected, withheld = project(full, policy, record.acknowledgement.schema)
            body = encode_payload(projected)
            spool.write(record.client_id, session_id, body, State.PENDING, withheld=withheld)
            ids.append(session_id)
    return ids


def bare_posts(url: str) -> float:
    """The same bodies a send would make, POSTed with no spool work: the network's share."""
    import httpx

    from consent.upload import plan_send

    plan = plan_send(endpoint=url, scope=Scope())
    started = time.perf_counter()
    with httpx.Client() as client:
        for request in plan.requests:
            client.post(url, content=request.body, headers=dict(request.headers))
    return time.perf_counter() - started


def measure_send(env: dict[str, str], payloads: int) -> Row:
    from consent.spool import Spool, State

    receiver = CountingReceiver()
    try:
        os.environ["SKYPLANE_USAGE_STATS_ENDPOINT"] = receiver.url
        began = time.perf_counter()
        ids = fill_spool(payloads)
        print(f"spooled {payloads:,} payloads in {time.perf_counter() - began:.1f} s (setup)")
        baseline = bare_posts(receiver.url)
        receiver.counts.clear()
        baseline_requests, receiver.requests = receiver.requests, 0

        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "consent", "stats", "send"],
            env={**env, "SKYPLANE_USAGE_STATS_ENDPOINT": receiver.url},
            capture_output=True,
            text=True,
            check=False,
        )
        figure = time.perf_counter() - started
    finally:
        receiver.close()
    counts = Counter(receiver.counts)
    sent = Spool.open(Scope()).counts()[State.SENT.value]
    exactly_once = set(counts) == set(ids) and set(counts.values()) == {1}
    print(
        f"stats send exit {proc.returncode}; {receiver.requests} requests "
        f"(baseline {baseline_requests}); received {len(counts):,} distinct of {len(ids):,}, "
        f"max {max(counts.values(), default=0)} per session: "
        f"{'each exactly once' if exactly_once else 'NOT exactly once'}; {sent:,} marked sent"
    )
    return Row(
        f"stats send, {payloads:,} payloads to loopback",
        f"{figure:.2f} s",
        "same bodies, bare httpx",
        f"{baseline:.2f} s",
        figure / baseline if baseline else None,
        f"<= {SEND_BUDGET_S:.0f} s, once each",
        proc.returncode == 0 and exactly_once and sent == payloads and figure <= SEND_BUDGET_S,
    )


def measure_send_without_fsync(payloads: int) -> Row:
    """Diagnostic: the same send with durable writes off, i.e. what batching them would buy.

    Every receipt is one ``Spool.add_receipt``, which rewrites that session's state
    file with two fsyncs; this row shows the rest of the cost (HTTP, reading,
    checking, hashing, renaming), in-process.
    """
    from consent.spool import Spool, State
    from consent.upload import send_pending

    receiver = CountingReceiver()
    try:
        os.environ["SKYPLANE_USAGE_STATS_ENDPOINT"] = receiver.url
        ids = fill_spool(payloads)
        with no_fsync():
            started = time.perf_counter()
            result = send_pending(scope=Scope())
            figure = time.perf_counter() - started
    finally:
        receiver.close()
    once = set(receiver.counts) == set(ids) and set(receiver.counts.values()) == {1}
    return Row(
        f"diagnostic: same send in-process, no fsync, {payloads:,} more",
        f"{figure:.2f} s",
        "-",
        "-",
        None,
        "(what batched receipts could reach)",
        result.sent == payloads and once and Spool.open(Scope()).counts()[State.PENDING.value] == 0,
    )


def _record(environ: dict[str, str]) -> float:
    import consent

    started = time.perf_counter()
    consent.record_session(
        argv=["cp", "-r", "s3://bucket/key", "gs://other/key"],
        src="aws:us-east-1",
        dst=["gcp:us-central1"],
        runtime_s=42.0,
        nbytes=10**9,
        environ=environ,
    )
    return time.perf_counter() - started


def measure_host_delay(root: Path, calls: int) -> list[Row]:
    from consent.profile import DEFAULT_PROFILE
    from consent.spool import Spool
    from consent.upload import start_background_flush

    enabled: list[float] = []
    disabled: list[float] = []
    limited: list[float] = []
    starts: list[float] = []
    spools: list[Path] = []
    with black_hole() as url:
        base = {**os.environ, "SKYPLANE_USAGE_STATS_ENDPOINT": url}
        off = {**base, "SKYPLANE_USAGE_STATS_ENABLED": "0"}
        shared = {**base, "SKYPLANE_USAGE_STATS_DIR": str(root / "shared-spool")}
        _record(shared)  # warm-up: imports, and the shared spool's one flush
        _record(off)
        for index in range(calls):
            # a fresh spool per call, so every call starts its own detached flush
            spool_dir = root / f"spool-{index}"
            spools.append(spool_dir)
            enabled.append(_record({**base, "SKYPLANE_USAGE_STATS_DIR": str(spool_dir)}))
            disabled.append(_record(off))
            limited.append(_record(shared))
            time.sleep(0.1)  # let the child start, as it would between two transfers
        for index in range(calls):
            # the flush start alone (stamp, backoff, lock try, spawn), on fresh spools
            spool_dir = root / f"bare-{index}"
            spool_dir.mkdir(mode=0o700)
            spools.append(spool_dir)
            bare = Spool(spool_dir)
            began = time.perf_counter()
            start_background_flush(bare, scope=Scope(environ=base))
            starts.append(time.perf_counter() - began)
            time.sleep(0.1)
    for spool_dir in [*spools, root / "shared-spool"]:
        env = {**os.environ, DEFAULT_PROFILE.spool_dir_env: str(spool_dir)}
        spool = Spool.existing(Scope(DEFAULT_PROFILE, env))
        if spool is not None:
            with spool.lock():  # wait for its sender: the temp dir goes next
                pass
    off_median = statistics.median(disabled)
    rows = []
    for name, samples in (
        ("host delay, black-holed endpoint (flush started)", enabled),
        ("host delay, black-holed endpoint (rate-limited)", limited),
    ):
        median = statistics.median(samples)
        rows.append(
            Row(
                f"{name}, median of {calls}",
                f"{median * 1000:.1f} ms",
                "collection disabled",
                f"{off_median * 1000:.2f} ms",
                median / off_median,
                f"<= {DELAY_BUDGET_S * 1000:.0f} ms added",
                median - off_median <= DELAY_BUDGET_S,
            )
        )
    start_median = statistics.median(starts)
    rows.append(
        Row(
            f"of which the flush start alone, median of {calls}",
            f"{start_median * 1000:.2f} ms",
            "collection disabled",
            f"{off_median * 1000:.2f} ms",
            start_median / off_median,
            f"<= {DELAY_BUDGET_S * 1000:.0f} ms",
            start_median <= DELAY_BUDGET_S,
        )
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--payloads", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument(
        "--no-diagnose", dest="diagnose", action="store_false", help="skip the no-fsync row"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="consent-bench-") as tmp:
        env = sandbox_env(Path(tmp))
        init(env)
        os.environ.update(env)  # the library reads HOME and the spool dir from here
        rows = [measure_send(env, args.payloads)]
        if args.diagnose:
            rows.append(measure_send_without_fsync(args.payloads))
        rows += measure_host_delay(Path(tmp), args.calls)
    print_table(rows)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
