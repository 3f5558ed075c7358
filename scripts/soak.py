"""A longer chaos soak than the test suite's: `python scripts/soak.py --seconds 300`.

Runs tests/soak/harness.py in a fresh temporary directory (HOME and spool inside
it), prints a summary and every invariant that failed, and exits 1 if any did.
The directory is kept when something failed (its path is printed), for the logs.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.soak.harness import Soak, check, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--recorders", type=int, default=2)
    parser.add_argument("--forget-heavy", action="store_true", help="mostly forgets, often")
    parser.add_argument("--runs", type=int, default=1, help="independent runs, one after another")
    parser.add_argument("--keep", action="store_true", help="keep the directory even on success")
    args = parser.parse_args()
    failed = 0
    for _ in range(args.runs):
        seed = args.seed if args.seed is not None else random.randrange(1 << 30)  # noqa: S311
        base = Path(tempfile.mkdtemp(prefix="consent-soak-"))
        soak = Soak(base, args.seconds, seed, recorders=args.recorders, log=print)
        if args.forget_heavy:
            soak.destroy_every_s, soak.forget_share = 1.0, 0.8
        soak.run()
        problems = check(soak)
        print(summary(soak))
        for problem in problems:
            print("FAIL:", problem)
        if problems or args.keep:
            print(f"kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
