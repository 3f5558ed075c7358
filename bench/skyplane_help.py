"""`skyplane --help` with the patch beside the same Skyplane without it. Budget: <= 1.05x.

Both run in the integration venv (``skyplane==0.3.2`` + the wheel + the patch, see
tests/integration/skyplane_venv.py): the unpatched run puts a copy of the
``skyplane`` package with the patch reversed first on ``PYTHONPATH``, so the two
differ only by the patch. The patched run gets an empty directory there, to match.

Run: ``python -m bench.skyplane_help [--runs N]``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._harness import Row, print_table, sandbox_env, side_by_side
from tests.integration.skyplane_venv import PATCH, skyplane_venv


def _unpatched_copy(python: Path, into: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([str(python), "-c", code], text=True).strip())
    shutil.copytree(site / "skyplane", into / "skyplane")
    with PATCH.open("rb") as patch:
        subprocess.run(["patch", "-R", "-p1", "--quiet"], cwd=into, stdin=patch, check=True)
    return into


def measure(runs: int) -> list[Row]:
    venv = skyplane_venv()
    with tempfile.TemporaryDirectory(prefix="consent-bench-") as tmp:
        root = Path(tmp)
        env = sandbox_env(root)
        plain = _unpatched_copy(venv.python, root / "unpatched")
        empty = root / "empty"
        empty.mkdir()
        skyplane = [str(venv.python), str(venv.skyplane), "--help"]
        # side_by_side takes one environment: the two differ by PYTHONPATH alone
        pair = side_by_side(
            ["env", f"PYTHONPATH={empty}", *skyplane],
            ["env", f"PYTHONPATH={plain}", *skyplane],
            env,
            runs,
        )
    ratio = pair.figure_wall / pair.baseline_wall
    return [
        Row(
            "skyplane --help (patched)",
            f"{pair.figure_wall * 1000:.0f} ms",
            "skyplane --help (0.3.2)",
            f"{pair.baseline_wall * 1000:.0f} ms",
            ratio,
            "<= 1.05x",
            ratio <= 1.05,
        )
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    rows = measure(args.runs)
    print_table(rows, sys.stdout)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
