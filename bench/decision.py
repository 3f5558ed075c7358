"""Benchmark the decision path and `consent stats status` against same-run baselines.

- ``import consent; consent.is_enabled()`` beside a bare ``python -c pass``:
  budget ≤ 1.5x wall, ≤ bare + 5 MiB peak memory.
- ``consent stats status`` beside a minimal Typer app's ``--help``: budget ≤ 1.3x
  (``python -m bench.typer_versions`` measures it on the lowest and newest typer).

Run: ``python -m bench.decision [--runs N]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from pathlib import Path

from bench._harness import (
    Row,
    instructions,
    peak_rss_kib,
    print_table,
    sandbox_env,
    side_by_side,
)

MINIMAL_TYPER_APP = textwrap.dedent(
    """
    import typer

    app = typer.Typer()

    @app.command()
    def hello(name: str = "world") -> None:
        print(f"hello {name}")

    @app.command()
    def bye() -> None:
        print("bye")

    app()
    """
)


def measure(runs: int) -> list[Row]:
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="consent-bench-") as tmp:
        env = sandbox_env(Path(tmp))
        # a realistic user: a config file on disk, so the decision reads and parses it
        config = Path(env["HOME"]) / ".skyplane" / "config.json"
        config.parent.mkdir(parents=True)
        config.write_text('{"usage_stats": true, "aws_enabled": true}\n')

        decision_code = "import consent; consent.is_enabled()"
        decision = side_by_side([py, "-c", decision_code], [py, "-c", "pass"], env, runs)
        decision_rss = peak_rss_kib(decision_code, env)
        bare_rss = peak_rss_kib("pass", env)
        decision_instr = instructions([py, "-c", decision_code], env)
        bare_instr = instructions([py, "-c", "pass"], env)
        app = Path(tmp) / "minimal_typer_app.py"
        app.write_text(MINIMAL_TYPER_APP)
        status = side_by_side(
            [py, "-m", "consent", "stats", "status"], [py, str(app), "--help"], env, runs
        )

    wall_ratio = decision.figure_wall / decision.baseline_wall
    extra_mib = (decision_rss - bare_rss) / 1024
    status_ratio = status.figure_wall / status.baseline_wall
    from importlib.metadata import version

    typer_version = version("typer")
    rows = []
    if decision_instr and bare_instr:
        instr_ratio = decision_instr / bare_instr
        rows.append(
            Row(
                "is_enabled() instructions",
                f"{decision_instr / 1e6:.1f} M",
                "python -c pass",
                f"{bare_instr / 1e6:.1f} M",
                instr_ratio,
                "<= 1.5x",
                instr_ratio <= 1.5,
            )
        )
    return [
        *rows,
        Row(
            "is_enabled() wall",
            f"{decision.figure_wall * 1000:.1f} ms",
            "python -c pass",
            f"{decision.baseline_wall * 1000:.1f} ms",
            wall_ratio,
            "<= 1.5x",
            wall_ratio <= 1.5,
        ),
        Row(
            "is_enabled() peak RSS",
            f"{decision_rss / 1024:.1f} MiB",
            "python -c pass",
            f"{bare_rss / 1024:.1f} MiB",
            None,
            f"<= +5 MiB (+{extra_mib:.1f})",
            extra_mib <= 5,
        ),
        Row(
            f"consent stats status (typer {typer_version})",
            f"{status.figure_wall * 1000:.0f} ms",
            "minimal Typer --help",
            f"{status.baseline_wall * 1000:.0f} ms",
            status_ratio,
            "<= 1.3x",
            status_ratio <= 1.3,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    rows = measure(args.runs)
    print_table(rows)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
