"""Regenerate the screens in docs/first-run.md and docs/review-and-delete.md.

    python scripts/gen_screens.py

Each block the script owns is a fenced block right after a marker line
``<!-- screen: NAME -->``. The script runs the real program against a throwaway
HOME, spool and loopback receiver, and puts what a user sees in place of the old
block: plain commands through pipes at 80 columns (or as the block says), and
interactive screens through a pseudo-terminal read back by a terminal emulator.
The temporary paths are replaced by ones of the same length (``/home/anastasia``,
``/tmp/skyplane/usage``), so every wrapped line and panel border stays where the
program put it. Ids and times are those of the run.

Needs the test extras (pexpect, pyte).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "docs" / "first-run.md", ROOT / "docs" / "review-and-delete.md"]
MARKER = re.compile(r"<!-- screen: ([a-z0-9-]+) -->")
SHOWN_HOME = "/home/anastasia"
SHOWN_SPOOL = "/tmp/skyplane/usage"
SHOWN_ENDPOINT = "http://127.0.0.1:8765"


class Receiver(http.server.ThreadingHTTPServer):
    """A loopback endpoint that accepts every POST, as the real one does."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        try:
            super().__init__(("127.0.0.1", 8765), Handler)
        except OSError:
            super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class World:
    """A throwaway HOME and spool whose paths have the length of the ones shown."""

    def __init__(self, base: Path, receiver: Receiver) -> None:
        self.base = base
        self.home = base / "h"  # "/tmp/xxxxxxxx/h": as long as SHOWN_HOME
        self.spool = base / "spool"  # "/tmp/xxxxxxxx/spool": as long as SHOWN_SPOOL
        assert len(str(self.home)) == len(SHOWN_HOME), self.home
        assert len(str(self.spool)) == len(SHOWN_SPOOL), self.spool
        self.home.mkdir()
        self.receiver = receiver
        self.endpoint = f"{receiver.url}/loki/api/v1/push"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "SKYPLANE_USAGE_STATS_DIR": str(self.spool),
            "SKYPLANE_USAGE_STATS_ENDPOINT": self.endpoint,
            "NO_COLOR": "1",
            "COLUMNS": "80",
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT),
        }

    def reset(self) -> None:
        shutil.rmtree(self.home)
        self.home.mkdir()
        shutil.rmtree(self.spool, ignore_errors=True)

    def shown(self, text: str) -> str:
        text = text.replace(str(self.spool), SHOWN_SPOOL).replace(str(self.home), SHOWN_HOME)
        text = text.replace(self.receiver.url, SHOWN_ENDPOINT)
        return "\n".join(line.rstrip() for line in text.split("\n"))

    def run(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "consent", *args],
            env={**self.env, **(env or {})},
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def out(self, *args: str, env: dict[str, str] | None = None, err: bool = False) -> str:
        done = self.run(*args, env=env)
        return self.shown(done.stderr if err else done.stdout + done.stderr)

    def record(self, *argv: str, **options: str) -> str:
        args = ["record"]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", value]
        done = self.run(*args, "--", *argv)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


def session(world: World, *args: str, rows: int, cols: int, env: dict[str, str]) -> Any:
    import pexpect
    import pyte

    child_env = {**world.env, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1", **env}
    child_env.pop("COLUMNS")
    screen = pyte.Screen(cols, rows)
    stream = pyte.Stream(screen)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "consent", *args],
        env=child_env,
        dimensions=(rows, cols),
        encoding="utf-8",
        timeout=30,
    )

    def until(text: str) -> None:
        while not any(text in row for row in screen.display):
            stream.feed(child.read_nonblocking(65536, timeout=30))

    def finish() -> None:
        child.expect(pexpect.EOF)
        stream.feed(child.before or "")
        child.close()

    def rows_shown() -> str:
        lines = [row.rstrip() for row in screen.display]
        while lines and not lines[-1]:
            lines.pop()
        while lines and not lines[0]:
            lines.pop(0)
        return world.shown("\n".join(lines))

    return child, until, finish, rows_shown


def pty_screen(
    world: World,
    *args: str,
    wait: str,
    keys: tuple[str, ...] = (),
    then: str | None = None,
    rows: int = 24,
    cols: int = 80,
    env: dict[str, str] | None = None,
) -> str:
    """The screen once ``wait`` shows; with ``keys``, the screen after them and the exit."""
    child, until, finish, rows_shown = session(world, *args, rows=rows, cols=cols, env=env or {})
    until(wait)
    if not keys:
        text = rows_shown()
        child.sendcontrol("c")
        finish()
        return text
    time.sleep(0.3)  # prompt_toolkit switches the terminal to raw mode after drawing
    for key in keys:
        child.send(key)
        time.sleep(0.1)
    if then:
        until(then)
    finish()
    return rows_shown()


def head_tail(text: str, head: int, tail: int) -> str:
    lines = text.rstrip("\n").splitlines()
    return "\n".join([*lines[:head], "...", *lines[-tail:]])


def changed_policy(world: World) -> Path:
    """The shipped policy as version 4: one field added, one moved, one removed."""
    shipped = ROOT / "consent" / "policies" / "skyplane.toml"
    data = tomllib.loads(shipped.read_text())
    data["version"] = 4
    fields = data.pop("fields")
    fields["gpu_count"] = {
        "type": "integer",
        "category": "system",
        "description": "How many GPUs the machine has, to plan GPU-side compression.",
    }
    fields["kernel_version"]["category"] = "performance"
    del fields["throughput_gbps"]
    lines = [f"{key} = {_toml(value)}" for key, value in data.items()]
    for name, spec in fields.items():
        lines += ["", f"[fields.{name}]", *(f"{k} = {_toml(v)}" for k, v in spec.items())]
    path = world.base / "policy-v4.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def reworded_policy(world: World) -> Path:
    shipped = ROOT / "consent" / "policies" / "skyplane.toml"
    text = shipped.read_text().replace("\nversion = 3\n", "\nversion = 4\n", 1)
    path = world.base / "policy-v4-words.toml"
    path.write_text(text.replace("How long the transfer took", "How long the transfer ran"))
    return path


def _toml(value: object) -> str:
    import datetime as dt

    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool | int):
        return json.dumps(value)
    return json.dumps(str(value))


def with_command(command: str, text: str) -> str:
    return f"$ {command}\n{text.rstrip()}"


# -- first-run.md --------------------------------------------------------------------------

DOWN = "\x1b[B"


def first_run(world: World) -> dict[str, str]:
    screens: dict[str, str] = {}
    from consent.cli._init import ANSWERS

    screens["init-question"] = pty_screen(world, "init", wait=ANSWERS["dont-share"])
    for name, downs in (("share", 0), ("review", 1), ("no", 2)):
        world.reset()
        text = pty_screen(world, "init", wait=ANSWERS["dont-share"], keys=(DOWN,) * downs + ("\r",))
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("? Share"))
        screens[f"init-answer-{name}"] = "\n".join(lines[start:])
    world.reset()
    world.run("init", "--review")
    text = pty_screen(world, "init", wait=ANSWERS["dont-share"])
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("? Share"))
    screens["init-rerun"] = "\n".join(lines[start:])
    world.reset()
    text = pty_screen(world, "init", wait=ANSWERS["dont-share"], keys=("\x1b",))
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("? Share"))
    screens["init-cancel"] = "\n".join(lines[start:])
    screens["init-two-flags"] = world.out("init", "--yes", "--no").rstrip()

    world.reset()
    screens["init-notice"] = world.out("init", env={"CI": "true"}, err=True).rstrip()
    world.reset()
    world.run("init", "--review")
    screens["init-notice-review"] = world.out("init", "--non-interactive", err=True).rstrip()

    world.reset()
    screens["first-transfer-panel"] = world.shown(
        world.run(
            "record", "--src", "aws:us-east-1", "--dst", "gcp:us-central1", "--runtime-s", "3"
        ).stderr
    ).rstrip()
    world.reset()
    plain = subprocess.run(
        [
            sys.executable,
            "-c",
            "import consent; consent.record_session(src='aws:us-east-1', "
            "dst='gcp:us-central1', runtime_s=3.0)",
        ],
        env=world.env,
        capture_output=True,
        text=True,
        check=True,
    )
    screens["first-transfer-plain"] = world.shown(plain.stderr).rstrip()

    world.reset()
    world.run("init", "--yes")
    policy = {"SKYPLANE_USAGE_STATS_POLICY": str(changed_policy(world))}
    change = world.run("stats", "status", env=policy).stderr
    screens["policy-change"] = world.shown(change.split("\n╰", 1)[0] + "\n╰" + _rest_of(change))
    reworded = {"SKYPLANE_USAGE_STATS_POLICY": str(reworded_policy(world))}
    world.reset()
    world.run("init", "--yes")
    line = world.run("record", "--src", "local", "--dst", "local", "--runtime-s", "1", env=reworded)
    screens["policy-description"] = world.shown(line.stderr).strip()
    world.reset()
    world.run("init", "--yes")
    world.run("stats", "status", env=policy)
    screens["policy-diff"] = with_command(
        "consent policy diff", world.out("policy", "diff", env=policy)
    )
    diff_json = world.out("policy", "diff", "--json", env=policy)
    screens["policy-diff-json"] = diff_json.rstrip()
    screens["policy-accept"] = "\n".join(
        [
            with_command("consent policy accept", world.out("policy", "accept", env=policy)),
            with_command("consent policy diff", world.out("policy", "diff", env=policy)),
        ]
    )
    world.reset()
    screens["policy-accept-fresh"] = with_command(
        "consent policy accept", world.out("policy", "accept")
    )
    return screens


def _rest_of(stderr: str) -> str:
    """The bottom border of the first panel in ``stderr``."""
    after = stderr.split("\n╰", 1)[1]
    return after.split("\n", 1)[0]


# -- review-and-delete.md ------------------------------------------------------------------


def review(world: World) -> dict[str, str]:
    screens: dict[str, str] = {}
    world.reset()
    world.run("init", "--yes")
    sent_a = world.record(
        "cp",
        "-r",
        "/home/ana/data",
        "gs://ana-bucket/",
        src="aws:us-east-1",
        dst="gcp:us-central1",
        runtime_s="42.7",
        gbps="3.91",
    )
    sent_b = world.record(
        "cp",
        "./build",
        "s3://ana-bucket/b",
        src="local",
        dst="aws:eu-west-1",
        runtime_s="8.2",
        gbps="0.74",
    )
    done = world.run("stats", "send")
    assert done.returncode == 0, done.stderr
    world.run("init", "--review")
    held_a = _record_two_destinations(world)
    held_b = world.record(
        "cp",
        "az://acct/container/k",
        "gs://ana-us/k",
        src="azure:eastus",
        dst="gcp:us-east4",
        runtime_s="14",
        gbps="1.12",
        error=(
            "ConnectionError: HTTPSConnectionPool(host='10.1.2.3', port=443): "
            "token=ghp_abcdefghijklmnopqrstuvwxyz0123456789 rejected for ana@example.com"
        ),
    )
    del sent_b
    checkbox = "Approve which held payloads?"
    screens["review-summary"] = (
        pty_screen(world, "stats", "review", wait=held_b[:8], rows=40, cols=80)
        .split(checkbox)[0]
        .rstrip()
        + "\n\n"
        + _checkbox(world, 80)
    )
    screens["review-summary-wide"] = (
        pty_screen(world, "stats", "review", wait=held_b[:8], rows=40, cols=200)
        .split(checkbox)[0]
        .rstrip()
        + "\n\n"
        + _checkbox(world, 200)
    )

    screens["review-detail-held"] = with_command(
        f"consent stats review {held_b[:4]}", world.out("stats", "review", held_b[:4])
    )
    screens["review-detail-sent"] = with_command(
        f"consent stats review {sent_a[:4]}",
        head_tail(world.out("stats", "review", sent_a[:4]), 14, 12),
    )
    screens["review-json"] = with_command(
        f"consent stats review {held_b[:4]} --json",
        world.out("stats", "review", held_b[:4], "--json"),
    )
    files = sorted(
        str(path) for path in world.spool.rglob("*") if path.is_file() and "lock" not in path.name
    )
    screens["review-files"] = with_command(
        f"find {SHOWN_SPOOL} -type f -not -name '*.lock' | sort", world.shown("\n".join(files))
    )
    sent_dir = next(world.spool.glob(f"*/{sent_a}"))
    digest = subprocess.run(
        ["sha256sum", "usage_stats.json"], cwd=sent_dir, capture_output=True, text=True, check=True
    ).stdout
    screens["review-state-file"] = (
        with_command(
            f"cat {world.shown(str(sent_dir))}/state.json",
            world.shown((sent_dir / "state.json").read_text()),
        )
        + "\n"
        + with_command("sha256sum usage_stats.json", digest)
    )
    screens["review-approve"] = with_command(
        f"consent stats review --approve {held_a[:4]}",
        world.out("stats", "review", "--approve", held_a[:4]),
    )
    legacy = world.spool / "unknown" / "20230322_171911-1a2b3c4d"
    legacy.mkdir(parents=True)
    (legacy / "usage_stats.json").write_text(json.dumps(LEGACY_PAYLOAD))
    screens["review-legacy"] = "\n".join(
        [
            with_command(
                "consent stats review --state legacy",
                world.out("stats", "review", "--state", "legacy"),
            ),
            with_command(
                "consent stats review --approve 20230322",
                world.out("stats", "review", "--approve", "20230322"),
            ),
        ]
    )
    world.run("init", "--review")
    world.record("cp", "a", "b", src="local", dst="local", runtime_s="1")
    many = world.base / "many"
    many.mkdir()
    crowd = {**world.env, "HOME": str(many), "SKYPLANE_USAGE_STATS_DIR": str(many / "spool")}
    subprocess.run(
        [sys.executable, "-m", "consent", "init", "--review"],
        env=crowd,
        capture_output=True,
        check=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import consent\nfor i in range(1500):\n    consent.record_session("
            "src='aws:us-east-1', dst=('gcp:us-central1',), runtime_s=float(i % 700))",
        ],
        env=crowd,
        check=True,
    )
    listing = world.run("stats", "review", env=crowd).stdout
    tail = "\n".join(listing.rstrip("\n").split("\n")[-14:])
    tail = tail.replace(str(many / "spool"), SHOWN_SPOOL)
    screens["review-many"] = with_command("consent stats review | tail -14", world.shown(tail))
    screens["review-opt-out"] = "\n".join(
        [
            with_command("consent init --no", world.out("init", "--no")),
            with_command("consent stats review", world.out("stats", "review")),
        ]
    )
    world.run("init", "--yes")
    world.record("cp", "a", "b", src="local", dst="local", runtime_s="1")
    world.run("stats", "send")
    screens["forget-confirm"] = pty_screen(
        world, "stats", "forget", wait="(y/N)", keys=("y", "\r"), then="Server", rows=40
    )
    screens["forget-refuse"] = with_command(
        'consent stats forget < /dev/null; echo "exit code $?"',
        world.out("stats", "forget") + f"exit code {world.run('stats', 'forget').returncode}",
    )
    return screens


def _record_two_destinations(world: World) -> str:
    done = world.run(
        "record",
        "--src",
        "aws:us-west-2",
        "--dst",
        "azure:westeurope",
        "--dst",
        "gcp:europe-west4",
        "--runtime-s",
        "611",
        "--gbps",
        "7.2",
        "--",
        "sync",
        "s3://ana-bucket/x",
        "gs://ana-eu/x",
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _checkbox(world: World, cols: int) -> str:
    text = pty_screen(world, "stats", "review", wait="Esc cancels", rows=40, cols=cols)
    return text[text.index("? Approve") :]


LEGACY_PAYLOAD = {
    "skyplane_version": "0.3.2",
    "python_version": "3.10.9",
    "schema_version": "0.2",
    "client_id": "unknown",
    "session_id": "20230322_171911-1a2b3c4d",
    "source_region": "us-east-1",
    "destination_regions": ["us-central1"],
    "source_cloud_provider": "aws",
    "destination_cloud_providers": ["gcp"],
    "os": "linux",
    "session_start_timestamp_ms": 1679505551000,
    "arguments_dict": {"recursive": True, "src": "s3://bucket/path"},
    "transfer_stats": {"total_runtime_s": 12.5, "throughput_gbits": 3.2},
    "error_dict": None,
    "sent_time_ms": None,
}


# -- the docs ------------------------------------------------------------------------------


def replace_blocks(path: Path, screens: dict[str, str]) -> list[str]:
    """Put each screen in the fenced block after its marker; the names not found."""
    lines = path.read_text(encoding="utf-8").split("\n")
    out: list[str] = []
    used: set[str] = set()
    i = 0
    while i < len(lines):
        out.append(lines[i])
        found = MARKER.fullmatch(lines[i].strip())
        if found and found.group(1) in screens:
            name = found.group(1)
            fence = lines[i + 1]
            assert fence.startswith("```"), (path, name)
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
            out += [fence, *screens[name].rstrip("\n").split("\n"), lines[end]]
            used.add(name)
            i = end + 1
            continue
        i += 1
    path.write_text("\n".join(out), encoding="utf-8")
    return sorted(used)


@contextmanager
def world() -> Iterator[World]:
    base = Path("/tmp") / f"sc{secrets.token_hex(3)}"
    base.mkdir(mode=0o700)
    receiver = Receiver()
    try:
        yield World(base, receiver)
    finally:
        receiver.shutdown()
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    show = "--print" in sys.argv[1:]
    makers: list[Callable[[World], dict[str, str]]] = [first_run, review]
    screens: dict[str, str] = {}
    with world() as w:
        for make in makers:
            screens.update(make(w))
    if show:
        for name, text in screens.items():
            print(f"=== {name}\n{text}")
        return 0
    used: list[str] = []
    for doc in DOCS:
        used += replace_blocks(doc, screens)
    unused = sorted(set(screens) - set(used))
    print(f"{len(used)} screens regenerated; not placed: {', '.join(unused) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
