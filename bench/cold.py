"""Benchmark the cold path: what one host process pays to record one transfer.

A command-line host runs one transfer per process, so the figure that matters is
the whole process, not a session amortised over thousands in a warm one. Each
case is a fresh ``python -c`` that opens ``consent.session(...)`` once around a
block, timed side by side with a bare ``python -c pass``, alternating, median of
the pairs:

- (a) collection disabled (``SKYPLANE_USAGE_STATS_ENABLED=0``): budget <= 1.2x;
- (b) enabled, review mode (payload written, held): <= 1.6x;
- (c) enabled, payload written and the detached upload spawned: <= 1.8x;
- (d) each of the three again with an exception to scrub: <= 2.0x;
- peak memory of (c) with an error: <= bare + 8 MiB;
- informative: (b) and (c) with the scrubber replaced by a stub, which tells the
  session path's own cost from the scrubber's.

For (c) every run gets a fresh spool, so the rate limit and the backoff never skip
the spawn; the spawned sender (aimed at a dead loopback port) is stopped by its pid
after the host exits, so it cannot load the next measurement.

Run: ``python -m bench.cold [--runs N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from bench._harness import Row, instructions, peak_rss_kib, print_table, run_timed, sandbox_env

# Works with every version of the session API: an exception inside the block is
# recorded (scrubbed) and re-raised, and the host handles it as it would.
HOST = """
import consent
argv = ["cp", "-r", "s3://acme-raw/data/", "gs://acme-copy/", "--max-instances", "8"]
try:
    with consent.session(argv, src="aws:us-east-1", dst=["gcp:us-central1-a"]) as s:
        s.transferred(12_000_000_000)
        {raise_line}
except RuntimeError:
    pass
"""
ERROR_TEXT = (
    "An error occurred (NoSuchBucket) when calling the ListObjectsV2 operation: "
    "The specified bucket does not exist: acme-payroll-prod (request 4F2A19C0B7)"
)


# Informative: the same host with the scrubber replaced by a stub, to tell the session
# path's own cost from the scrubber's (a separate module with its own budget).
STUB_SCRUBBER = """
import sys
stub = type(sys)("consent.scrub")
stub.scrub_arguments = lambda argv, safe_values=(), known_flags=(): {"_command": "cp"}
stub.normalize_region = lambda tag: tag
stub.scrub_error = lambda exc: type(exc).__name__ + ": <redacted>"
stub.scrub_text = lambda text, max_length=512: "<redacted>"
sys.modules["consent.scrub"] = stub
"""


def host_code(*, error: bool, stub_scrubber: bool = False) -> str:
    raise_line = f"raise RuntimeError({ERROR_TEXT!r})" if error else "pass"
    return (STUB_SCRUBBER if stub_scrubber else "") + HOST.format(raise_line=raise_line)


def _senders_of(spool: Path) -> list[int]:
    """The pids of detached senders started for ``spool`` (their env names it)."""
    marker = f"SKYPLANE_USAGE_STATS_DIR={spool}".encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:
            continue
        if marker in environ:
            pids.append(int(name))
    return pids


def _stop_senders(spool: Path) -> int:
    """Stop the senders this benchmark's host started; how many there were."""
    pids = _senders_of(spool)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _senders_of(spool) and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(pids)


class Case:
    """One host process, with what must be set up before each run."""

    def __init__(
        self, name: str, env: dict[str, str], error: bool, spawns: bool, stub: bool = False
    ) -> None:
        self.name = name
        self.env = env
        self.code = host_code(error=error, stub_scrubber=stub)
        self.spawns = spawns
        self.spawned = 0

    def run(self, py: str) -> float:
        env = self.env
        spool: Path | None = None
        if self.spawns:
            spool = Path(tempfile.mkdtemp(prefix="spool-", dir=env["HOME"]))
            env = {**env, "SKYPLANE_USAGE_STATS_DIR": str(spool)}
        wall = run_timed([py, "-c", self.code], env).wall_s
        if spool is not None:
            self.spawned += _stop_senders(spool)
            shutil.rmtree(spool, ignore_errors=True)
        return wall


def alternate(
    figure: Callable[[], float], baseline: Callable[[], float], runs: int
) -> tuple[float, float]:
    """Median wall of each, alternating B then A ``runs`` times after one warm-up each."""
    figure()
    baseline()
    a, b = [], []
    for _ in range(runs):
        b.append(baseline())
        a.append(figure())
    return statistics.median(a), statistics.median(b)


def _write_config(env: Mapping[str, str], review: bool) -> None:
    config = Path(env["HOME"]) / ".skyplane" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"usage_stats": True, "usage_stats_review": review}) + "\n")


def measure(runs: int) -> list[Row]:
    py = sys.executable
    rows: list[Row] = []
    budgets = {"disabled": 1.2, "review mode": 1.6, "upload spawned": 1.8}
    with tempfile.TemporaryDirectory(prefix="consent-bench-") as tmp:
        base = sandbox_env(Path(tmp))
        homes: dict[str, dict[str, str]] = {}
        for kind in budgets:
            home = Path(tmp) / kind.replace(" ", "-")
            home.mkdir()
            env = {**base, "HOME": str(home), "SKYPLANE_USAGE_STATS_DIR": str(home / "spool")}
            if kind == "disabled":
                env["SKYPLANE_USAGE_STATS_ENABLED"] = "0"
            else:
                _write_config(env, review=kind == "review mode")
            homes[kind] = env
        bare_env = base

        def bare() -> float:
            return run_timed([py, "-c", "pass"], bare_env).wall_s

        spawned_case: Case | None = None
        for error in (False, True):
            for kind, budget in budgets.items():
                if error:
                    budget = 2.0
                case = Case(kind, homes[kind], error, spawns=kind == "upload spawned")
                # the first run shows the first-run notice and holds its payload; the
                # figure is every run after it
                case.run(py)
                figure, baseline = alternate(lambda c=case: c.run(py), bare, runs)  # type: ignore[misc]
                ratio = figure / baseline
                label = f"session, {kind}" + (", error scrubbed" if error else "")
                if case.spawns:
                    label += f" ({case.spawned} spawned)"
                    spawned_case = case
                rows.append(
                    Row(
                        label,
                        f"{figure * 1000:.1f} ms",
                        "python -c pass",
                        f"{baseline * 1000:.1f} ms",
                        ratio,
                        f"<= {budget}x",
                        ratio <= budget,
                    )
                )
        for kind in ("review mode", "upload spawned"):
            case = Case(kind, homes[kind], False, spawns=kind == "upload spawned", stub=True)
            case.run(py)
            figure, baseline = alternate(lambda c=case: c.run(py), bare, runs)  # type: ignore[misc]
            rows.append(
                Row(
                    f"  the same, {kind}, scrubber stubbed",
                    f"{figure * 1000:.1f} ms",
                    "python -c pass",
                    f"{baseline * 1000:.1f} ms",
                    figure / baseline,
                    "informative",
                    True,
                )
            )
        # Instructions do not vary with the machine's load (callgrind), so they tell a
        # real change from noise on a busy machine; informative, the budgets are wall time.
        bare_instr = instructions([py, "-c", "pass"], bare_env)
        if bare_instr:
            variants = [(False, False), (True, False), (False, True)]  # (error, stub)
            for kind in budgets:
                for error, stub in variants if kind != "disabled" else variants[:1]:
                    env = homes[kind]
                    spool: Path | None = None
                    if kind == "upload spawned":
                        spool = Path(tempfile.mkdtemp(prefix="spool-", dir=env["HOME"]))
                        env = {**env, "SKYPLANE_USAGE_STATS_DIR": str(spool)}
                    code = host_code(error=error, stub_scrubber=stub)
                    count = instructions([py, "-c", code], env)
                    if spool is not None:
                        _stop_senders(spool)
                    if count is None:
                        continue
                    label = f"session, {kind}" + (", error scrubbed" if error else "")
                    label += ", scrubber stubbed" if stub else ""
                    rows.append(
                        Row(
                            f"{label}: instructions",
                            f"{count / 1e6:.1f} M",
                            "python -c pass",
                            f"{bare_instr / 1e6:.1f} M",
                            count / bare_instr,
                            "informative",
                            True,
                        )
                    )
        assert spawned_case is not None
        peak = peak_rss_kib(spawned_case.code, homes["upload spawned"])
        _stop_senders(Path(homes["upload spawned"]["SKYPLANE_USAGE_STATS_DIR"]))
        bare_peak = peak_rss_kib("pass", bare_env)
    extra = (peak - bare_peak) / 1024
    rows.append(
        Row(
            "session peak RSS, enabled, error scrubbed",
            f"{peak / 1024:.1f} MiB",
            "python -c pass",
            f"{bare_peak / 1024:.1f} MiB",
            None,
            f"<= +8 MiB (+{extra:.1f})",
            extra <= 8,
        )
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="pairs per case (at least 15)")
    args = parser.parse_args()
    rows = measure(max(15, args.runs))
    print_table(rows)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
