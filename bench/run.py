"""Run every budget (docs/architecture.md §5); print one table, each beside its baseline.

    python -m bench.run [--quick] [--write-readme]

``--write-readme`` replaces the table in bench/README.md with this run's, with the
machine it ran on. Exit status 1 when any budget is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import sys
import tempfile
from pathlib import Path

from bench import cold, decision, record, review, scrub, skyplane_help, upload
from bench._harness import Row, print_table, sandbox_env

README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- bench:run begin -->", "<!-- bench:run end -->"


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    tmp_fs = "tmpfs" if _is_tmpfs(tempfile.gettempdir()) else "disk"
    return (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}; "
        f"{platform.system()} {platform.release()}; {os.cpu_count()} CPUs; "
        f"load average {load}; {tempfile.gettempdir()} is on {tmp_fs}"
    )


def _is_tmpfs(path: str) -> bool:
    best, kind = "", ""
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            parts = line.split()
            if len(parts) > 2 and path.startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind == "tmpfs"


def measure(quick: bool) -> list[Row]:
    rows: list[Row] = []
    rows += decision.measure(runs=8 if quick else 20)
    rows += cold.measure(runs=15)
    rows += scrub.rows(quick)
    iterations = 100 if quick else 500
    rows += record.in_process(iterations, None, tempfile.gettempdir())
    if Path("/dev/shm").is_dir():
        rows += record.in_process(iterations, "/dev/shm", "tmpfs /dev/shm")
    rows.append(record.concurrent(None))
    rows += review.measure(payloads=10_000, runs=1 if quick else 3)
    with tempfile.TemporaryDirectory(prefix="consent-bench-") as tmp:
        env = sandbox_env(Path(tmp))
        upload.init(env)
        os.environ.update(env)  # the library reads HOME and the spool dir from here
        rows.append(upload.measure_send(env, 10_000))
        rows += upload.measure_host_delay(Path(tmp), calls=10 if quick else 30)
    rows += skyplane_help.measure(runs=8 if quick else 15)
    return rows


def write_readme(table: str, where: str) -> None:
    text = README.read_text(encoding="utf-8")
    block = f"{BEGIN}\nMeasured {where}.\n\n{table}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text += f"\n{block}\n"
    README.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    rows = measure(args.quick)
    where = machine()
    print(where)
    buffer = io.StringIO()
    table = print_table(rows, out=buffer)
    sys.stdout.write(buffer.getvalue())
    if args.write_readme:
        write_readme(table, where)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
