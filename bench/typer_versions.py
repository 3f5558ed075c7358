"""`consent stats status` (and the other hot read-only commands) on each typer version.

typer has no upper bound (a host such as Skyplane brings the newest), so the budget
``consent stats status`` <= 1.3x a minimal Typer app's ``--help`` must hold on the
lowest supported typer and on the newest. Each interpreter is measured against the
minimal app run by that same interpreter (so with that typer), side by side.

The interpreters are the ``.cache/typer-*`` venvs that ``.ci/run`` builds (or
``--make-venvs`` builds them here), plus ``--python PATH`` ones, plus the current one.

Run: ``python -m bench.typer_versions [--runs N] [--make-venvs] [--python PATH ...]``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._harness import Row, instructions, print_table, sandbox_env, side_by_side
from bench.decision import MINIMAL_TYPER_APP

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"

COMMANDS: list[tuple[str, list[str]]] = [
    ("consent stats status", ["stats", "status"]),
    ("consent stats status --json", ["stats", "status", "--json"]),
    ("consent stats review --json", ["stats", "review", "--json"]),
    ("consent --help", ["--help"]),
]


def lowest_typer() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'"typer>=([0-9.]+)"', text)
    if match is None:
        raise SystemExit("pyproject.toml has no typer>= requirement")
    return match.group(1)


def make_venvs() -> None:
    """The venvs `.ci/run` builds: this project with the lowest and the newest typer."""
    for version in (lowest_typer(), "newest"):
        venv = CACHE / f"typer-{version}"
        spec = "typer" if version == "newest" else f"typer=={version}"
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--upgrade"]
        subprocess.run([*pip, "-e", str(ROOT), spec], check=True)


def typer_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import typer; print(typer.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def interpreters(extra: list[str]) -> list[str]:
    found = [sys.executable, *extra]
    if CACHE.is_dir():
        found += [str(p) for p in sorted(CACHE.glob("typer-*/bin/python"))]
    unique: dict[str, str] = {}
    for python in found:
        unique.setdefault(typer_version(python), python)
    return list(unique.values())


def instructions_with(python: str, args: list[str], env: dict[str, str]) -> int | None:
    """Instructions of ``python args`` under callgrind, with that venv's packages."""
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return instructions([python, *args], env, pythonpath=[str(ROOT), site], cwd=ROOT)


def measure(runs: int, pythons: list[str]) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="consent-bench-") as tmp:
        env = sandbox_env(Path(tmp))
        app = Path(tmp) / "minimal_typer_app.py"
        app.write_text(MINIMAL_TYPER_APP)
        for python in pythons:
            version = typer_version(python)
            for label, argv in COMMANDS:
                pair = side_by_side(
                    [python, "-m", "consent", *argv], [python, str(app), "--help"], env, runs
                )
                ratio = pair.figure_wall / pair.baseline_wall
                rows.append(
                    Row(
                        f"{label} (typer {version})",
                        f"{pair.figure_wall * 1000:.0f} ms",
                        "minimal Typer --help",
                        f"{pair.baseline_wall * 1000:.0f} ms",
                        ratio,
                        "<= 1.3x",
                        ratio <= 1.3,
                    )
                )
            status = instructions_with(python, ["-m", "consent", "stats", "status"], env)
            minimal = instructions_with(python, [str(app), "--help"], env)
            if status and minimal:
                rows.append(
                    Row(
                        f"consent stats status instructions (typer {version})",
                        f"{status / 1e6:.0f} M",
                        "minimal Typer --help",
                        f"{minimal / 1e6:.0f} M",
                        status / minimal,
                        "<= 1.3x",
                        status / minimal <= 1.3,
                    )
                )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--make-venvs", action="store_true", help="build .cache/typer-* first")
    parser.add_argument("--python", action="append", default=[], help="another interpreter")
    args = parser.parse_args()
    if args.make_venvs:
        make_venvs()
    rows = measure(args.runs, interpreters(args.python))
    print_table(rows)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
