"""Shared timing for the benchmarks: run commands side by side, report medians.

Each figure is measured in the same run as its baseline, interleaved, so machine
load affects both alike. Peak memory is the child's own max RSS from ``wait4``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

__all__ = [
    "Row",
    "instructions",
    "peak_rss_kib",
    "print_table",
    "run_timed",
    "sandbox_env",
    "side_by_side",
]


@dataclass(frozen=True)
class Sample:
    wall_s: float


def run_timed(argv: Sequence[str], env: Mapping[str, str]) -> Sample:
    """Run one command to completion and time it."""
    start = time.perf_counter()
    code = subprocess.call(
        list(argv),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {code}")
    return Sample(wall)


def peak_rss_kib(code: str, env: Mapping[str, str], runs: int = 5) -> int:
    """The peak RSS (VmHWM) of ``python -c code``, read by the child itself.

    ``wait4``'s ru_maxrss would count the benchmark's own pages copied at fork.
    """
    probe = f"{code}\nprint(open('/proc/self/status').read())"
    peaks = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", probe], env=dict(env), capture_output=True, text=True, check=True
        ).stdout
        line = next(line for line in out.splitlines() if line.startswith("VmHWM:"))
        peaks.append(int(line.split()[1]))
    return int(statistics.median(peaks))


def instructions(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    pythonpath: Sequence[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> int | None:
    """Instructions executed, counted by callgrind: repeatable whatever the machine's load.

    valgrind runs the real interpreter, not a venv's symlink to it, so the venv's
    packages come through ``PYTHONPATH``: ``pythonpath``, or this process's own path.
    ``None`` when valgrind is not installed.
    """
    import re
    import shutil

    if shutil.which("valgrind") is None:
        return None
    real = [os.path.realpath(argv[0]), *argv[1:]]
    path = [*sys.path[1:], env.get("PYTHONPATH", "")] if pythonpath is None else pythonpath
    err = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *real],
        env={**env, "PYTHONPATH": os.pathsep.join(path)},
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    ).stderr
    match = re.search(r"Collected : (\d+)", err)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Pair:
    figure: list[Sample]
    baseline: list[Sample]

    @property
    def figure_wall(self) -> float:
        return statistics.median(s.wall_s for s in self.figure)

    @property
    def baseline_wall(self) -> float:
        return statistics.median(s.wall_s for s in self.baseline)


def side_by_side(
    figure: Sequence[str], baseline: Sequence[str], env: Mapping[str, str], runs: int
) -> Pair:
    """Alternate the two commands ``runs`` times each, after one warm-up of each."""
    run_timed(figure, env)
    run_timed(baseline, env)
    pair = Pair([], [])
    for _ in range(runs):
        pair.baseline.append(run_timed(baseline, env))
        pair.figure.append(run_timed(figure, env))
    return pair


def sandbox_env(root: Path | None = None) -> dict[str, str]:
    """An environment with a private HOME and spool, no colour, and a closed endpoint.

    It also compiles the package's bytecode, as an installed package has it.
    """
    import compileall

    compileall.compile_dir(Path(__file__).resolve().parent.parent / "consent", quiet=1)
    base = Path(root or tempfile.mkdtemp(prefix="consent-bench-"))
    (base / "home").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYPLANE_")}
    env.pop("DO_NOT_TRACK", None)
    # measure what a user runs: modules loaded from cached bytecode, not compiled each time
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        HOME=str(base / "home"),
        SKYPLANE_USAGE_STATS_DIR=str(base / "spool"),
        SKYPLANE_USAGE_STATS_ENDPOINT="http://127.0.0.1:9/",
        NO_COLOR="1",
        COLUMNS="100",
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    return env


@dataclass(frozen=True)
class Row:
    name: str
    figure: str
    baseline_name: str
    baseline: str
    ratio: float | None
    budget: str
    ok: bool

    def cells(self) -> list[str]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}x"
        return [
            self.name,
            self.figure,
            f"{self.baseline} ({self.baseline_name})",
            ratio,
            self.budget,
            "ok" if self.ok else "MISSED",
        ]


def print_table(rows: Sequence[Row], out: TextIO | None = None) -> str:
    header = ["path", "figure", "baseline (same run)", "ratio", "budget", ""]
    table = [header, *[row.cells() for row in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in table
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    text = "\n".join(lines)
    print(text, file=sys.stdout if out is None else out)
    return text
