"""Machinery shared by the fault cases.

- :func:`run` runs a command (bytes or str argv) with the sandbox environment, an
  optional ``preexec_fn`` (for ``RLIMIT_FSIZE``) and a wall-clock measurement.
- :func:`run_to_point` runs a child that reports every write it is about to make
  (an audit hook writing to a pipe) and SIGKILLs it at the point the test chose:
  kills land in the write path however loaded the machine is, never before the
  interpreter has started.
- :func:`mount_tmpfs` / :func:`fill` make a small filesystem and fill it to the last
  byte; :func:`readonly_tmp_argv` runs a command in a private mount namespace whose
  ``/tmp`` is an empty read-only tmpfs (the real ``/tmp`` is never touched).
- :func:`scan_spool`, :func:`check_home` and :func:`visible_temp_files` check the
  on-disk invariants every case relies on: whole files, parseable documents, no
  visible partial file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import hashlib
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from consent.policy import load_policy
from consent.profile import Scope
from consent.record import load_record
from consent.spool import PAYLOAD_FILE, STATE_FILE, Entry, Spool, State
from tests.conftest import Sandbox
from tests.upload_helpers import make_payloads

PUSH_PATH = "/loki/api/v1/push"
Arg = str | bytes

_UUID_LINE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A sentence ends at . ! or ? followed by a space or the end; "config.json:" does not.
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


# -- running things ---------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.stdout)

    def describe(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def consent_argv(*args: Arg) -> list[Arg]:
    return [sys.executable, "-m", "consent", *args]


def python_argv(script: str, *args: Arg) -> list[Arg]:
    return [sys.executable, "-c", script, *args]


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    full = dict(os.environ)
    full["PYTHONDONTWRITEBYTECODE"] = "1"
    if env:
        full.update(env)
    return full


def run(
    argv: Sequence[Arg],
    *,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    timeout: float = 60,
) -> Run:
    """Run ``argv`` to completion with the sandbox environment (and ``env`` on top)."""
    start = time.monotonic()
    proc = subprocess.run(
        list(argv),
        env=child_env(env),
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )
    elapsed = time.monotonic() - start
    return Run(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        elapsed,
    )


def popen(argv: Sequence[Arg], *, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv),
        env=child_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


# -- killing a child at a point it reports ----------------------------------------------

# Prepended to the child's code: before every file-system change the child is about to
# make (an open for writing, a rename, a mkdir, a lock...) it writes one line to the
# report pipe. At point FAULT_STOP_AT it either stops there for good (hold: the kill
# lands exactly before that change) or runs on (the kill lands just after it, inside
# the write). Audit events are raised before the operation, by the real code paths,
# so nothing in the package is altered. The settings are popped so the detached
# sender a child may start neither reports nor stops.
_REPORT_HOOK = r"""
import os as _os, signal as _signal, sys as _sys

def _install_report_hook():
    fd = int(_os.environ.pop("FAULT_REPORT_FD"))
    stop_at = int(_os.environ.pop("FAULT_STOP_AT"))
    hold = _os.environ.pop("FAULT_HOLD") == "1"
    writing = _os.O_WRONLY | _os.O_RDWR | _os.O_CREAT | _os.O_TRUNC | _os.O_APPEND
    changes = frozenset(
        ("os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.truncate", "os.link",
         "os.symlink", "os.chmod", "os.utime", "os.chown", "fcntl.flock", "fcntl.lockf")
    )
    count = 0

    def hook(event, args):
        nonlocal count
        if event == "open":
            if not (isinstance(args[2], int) and args[2] & writing):
                return
        elif event not in changes:
            return
        count += 1
        _os.write(fd, b"%d %s\n" % (count, event.encode()))
        if count == stop_at and hold:
            while True:
                _signal.pause()  # the SIGKILL ends the child here

    _sys.addaudithook(hook)

_install_report_hook()
del _install_report_hook
"""

# The real CLI, exactly as `python -m consent` runs it (argv after the code).
CLI_CODE = 'import runpy\nrunpy.run_module("consent", run_name="__main__", alter_sys=True)\n'

POINT_DEADLINE_S = 180.0
"""How long a child may take to reach its kill point: generous, a loaded machine is slow."""


@dataclass(frozen=True)
class Killed:
    killed: bool
    """SIGKILL ended the child (not its own exit)."""
    points: int
    """Write points the child reported before it died or exited."""
    returncode: int
    stdout: str
    stderr: str

    def lines(self) -> list[str]:
        """Whole stdout lines (the part after the last newline may be torn)."""
        return self.stdout.split("\n")[:-1]

    def describe(self) -> str:
        return (
            f"exit {self.returncode} after {self.points} points\n--- stdout\n{self.stdout}"
            f"\n--- stderr\n{self.stderr}"
        )


def run_to_point(
    code: str,
    *args: Arg,
    stop_at: int,
    hold: bool = True,
    env: Mapping[str, str] | None = None,
) -> Killed:
    """Run ``code`` (``python -c``); SIGKILL it when it reports write point ``stop_at``.

    ``stop_at=0`` never kills: the run counts the points of an undisturbed run.
    """
    read_end, write_end = os.pipe()
    settings = {
        "FAULT_REPORT_FD": str(write_end),
        "FAULT_STOP_AT": str(stop_at),
        "FAULT_HOLD": "1" if hold else "0",
    }
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _REPORT_HOOK + code, *args],
                env=child_env({**(env or {}), **settings}),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)
        points, killed = 0, False
        deadline = time.monotonic() + POINT_DEADLINE_S
        with open(read_end, "rb", buffering=0) as reports:
            pending = b""
            while not killed:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([reports], [], [], left)[0]:
                    proc.kill()
                    proc.wait()
                    pytest.fail(f"the child reported {points} write points in {POINT_DEADLINE_S} s")
                chunk = reports.read(65536)
                if not chunk:
                    break  # the child exited (or closed the pipe) before the point
                pending += chunk
                *whole, pending = pending.split(b"\n")
                for _line in whole:
                    points += 1
                    if points == stop_at:
                        proc.send_signal(signal.SIGKILL)
                        killed = True
                        break
        returncode = proc.wait(timeout=POINT_DEADLINE_S)
        out.seek(0)
        err.seek(0)
        return Killed(
            returncode == -signal.SIGKILL,
            points,
            returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


def count_points(code: str, *args: Arg, env: Mapping[str, str] | None = None) -> int:
    """The write points of one undisturbed run, which must succeed."""
    result = run_to_point(code, *args, stop_at=0, env=env)
    assert result.returncode == 0, result.describe()
    assert result.points > 0, "the child reported no write at all"
    return result.points


def limit_file_size() -> None:
    """``preexec_fn``: every write to a regular file fails with EFBIG (a full disk)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


RECORD_ARGS = (
    "record",
    "--src",
    "aws:us-east-1",
    "--dst",
    "gcp:us-central1",
    "--runtime-s",
    "3",
    "--",
    "cp",
    "-r",
    "s3://acme/x",
    "gs://acme/y",
)


def newer_policy(tmp_path: Path) -> Path:
    """The shipped policy with one more field: accepting it rewrites the record."""
    text = load_policy(Scope().policy_path).path.read_text()
    text = text.replace("\nversion = 3\n", "\nversion = 4\n", 1)
    text += (
        "\n[fields.fault_probe]\n"
        'type = "string"\ncategory = "system"\ndescription = "A field added by a test."\n'
    )
    path = tmp_path / "policy-v4.toml"
    path.write_text(text)
    return path


# -- what the user sees -----------------------------------------------------------------


def sentences(text: str) -> int:
    return max(1, len(_SENTENCE_END.findall(text.strip())))


def assert_clear_error(result: Run, code: int = 1) -> str:
    """Exit ``code``, no traceback, and one ``Error:`` line of one or two sentences."""
    assert result.returncode == code, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert "Unexpected internal error" not in result.stderr, result.describe()
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.describe()
    message = errors[0].removeprefix("Error: ")
    assert 1 <= sentences(message) <= 2, f"not one or two sentences: {message!r}"
    return message


def assert_no_traceback(result: Run) -> None:
    assert "Traceback" not in result.stderr, result.describe()
    assert "Unexpected internal error" not in result.stderr, result.describe()


def consent_lines(stderr: str) -> list[str]:
    """The host-session reports (``consent: ...``) on a host's stderr."""
    return [line for line in stderr.splitlines() if line.startswith("consent: ")]


def session_ids(stdout: str | bytes) -> list[str]:
    """Session ids printed one per complete line (a killed writer's last line is cut)."""
    text = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else stdout
    lines = text.split("\n")[:-1]  # the part after the last newline may be torn
    return [line.strip() for line in lines if _UUID_LINE.fullmatch(line.strip())]


# The host side of every "host must not be hurt" case: three sessions, one of them
# failing inside the block; the result is one JSON line on stdout. "Never blocked" is
# checked by what the host did, not by a clock a loaded machine would fool: every
# sleep and every network call of the host process is noted (the detached sender is a
# process of its own).
HOST_SCRIPT = r"""
import json, sys, time

waits = []
_NETWORK = frozenset(("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"))
sys.addaudithook(lambda event, args: waits.append(event) if event in _NETWORK else None)
_sleep = time.sleep

def _noted_sleep(seconds):
    waits.append(f"time.sleep({seconds})")  # no audit event for it before Python 3.12
    _sleep(seconds)

time.sleep = _noted_sleep

import consent

start = time.monotonic()
ids = []
ids.append(
    consent.record_session(
        argv=["cp", "-r", "/home/alice/data", "s3://acme-private/x", "--max-instances", "8"],
        src="local",
        dst=["aws:us-east-1"],
        runtime_s=2.0,
        nbytes=10**9,
    )
)
with consent.session(argv=["cp"], src="aws:us-east-1", dst=["gcp:us-central1"]) as s:
    s.transferred(10**6)
ids.append(s.session_id)
try:
    with consent.session(argv=["sync"], src="local", dst=["local"]) as s2:
        raise ValueError("host failure")
except ValueError as exc:
    assert str(exc) == "host failure", exc
ids.append(s2.session_id)
elapsed = time.monotonic() - start
enabled = consent.is_enabled()
print(json.dumps({"ids": ids, "elapsed": elapsed, "enabled": enabled, "waits": waits}))
"""


@dataclass(frozen=True)
class HostRun:
    ids: list[str | None]
    elapsed: float
    enabled: bool
    run: Run


def run_host(
    *,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    wrap: Callable[[list[Arg]], list[Arg]] | None = None,
) -> HostRun:
    """Run :data:`HOST_SCRIPT`; assert the host itself finished normally, never waiting."""
    argv = python_argv(HOST_SCRIPT)
    result = run(wrap(argv) if wrap else argv, env=env, preexec_fn=preexec_fn)
    assert result.returncode == 0, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    data = json.loads(result.stdout.strip().splitlines()[-1])
    # the host is never blocked: it neither slept (a retry's backoff) nor touched the network
    assert data["waits"] == [], result.describe()
    for line in consent_lines(result.stderr):
        assert line.endswith("(the transfer itself is not affected)"), line
    return HostRun(data["ids"], data["elapsed"], data["enabled"], result)


# -- small filesystems and mount namespaces ------------------------------------------------


def mount_tmpfs(path: Path, size: str = "64k") -> bool:
    """Mount a private (0700) tmpfs of ``size`` at ``path``; False if not permitted here."""
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def bind_readonly(path: Path) -> bool:
    """Make ``path`` a read-only bind mount of itself (root ignores 0555, not this)."""
    first = subprocess.run(
        ["mount", "--bind", str(path), str(path)], capture_output=True, check=False
    )
    if first.returncode != 0:
        return False
    second = subprocess.run(
        ["mount", "-o", "remount,bind,ro", str(path)], capture_output=True, check=False
    )
    if second.returncode != 0:
        umount(path)
        return False
    return True


def fill(directory: Path) -> Path:
    """Fill the filesystem holding ``directory`` to the last byte; returns the filler."""
    filler = directory / "filler.bin"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            block = b"\0" * chunk
            with contextlib.suppress(OSError):
                while handle.write(block):
                    pass
    probe = directory / "probe.bin"
    error: OSError | None = None
    try:
        with open(probe, "wb", buffering=0) as handle:
            handle.write(b"x")
    except OSError as exc:
        error = exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    assert error is not None, f"{directory} is not full"
    assert error.errno == errno.ENOSPC, error
    return filler


class FullDisk:
    """A full disk: a tiny tmpfs filled to the last byte, or ``RLIMIT_FSIZE`` = 0.

    ``area(path)`` prepares a directory that will be full (mounting the tmpfs there,
    so call it before anything is written in it). ``fill()`` then uses up the space;
    ``run`` runs a command against the full disk; ``free()`` gives the space back.
    With the rlimit every file write of the child fails (EFBIG, SIGXFSZ ignored), so
    the setup writes the files a case needs from the test process first.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.mounts: list[Path] = []
        self.fillers: list[Path] = []
        self.full = False

    def area(self, path: Path) -> Path:
        if self.kind == "tmpfs":
            if not mount_tmpfs(path):
                pytest.skip("mounting a tmpfs is not permitted here; the rlimit case runs")
            self.mounts.append(path)
        else:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def fill(self) -> None:
        self.fillers = [fill(mount) for mount in self.mounts]
        self.full = True

    def free(self) -> None:
        for filler in self.fillers:
            filler.unlink()
        self.fillers = []
        self.full = False

    @property
    def preexec(self) -> Callable[[], None] | None:
        return limit_file_size if self.kind == "rlimit" and self.full else None

    def run(self, argv: Sequence[Arg], *, env: dict[str, str] | None = None) -> Run:
        return run(argv, env=env, preexec_fn=self.preexec)

    def close(self) -> None:
        for mount in reversed(self.mounts):
            umount(mount)


# In a private mount namespace: a fresh tmpfs is prepared at $1 (a directory that
# exists), ``keep`` ($2, a directory under /tmp, or "") is bound into it read-only
# (mounts below ``keep``, such as a tmpfs HOME, stay writable), the tmpfs is moved
# onto /tmp and made read-only. So /tmp holds nothing the machine has (no
# /tmp/skyplane-{uid} from an earlier run) and nothing can be created in it.
_EMPTY_READONLY_TMP = """
set -e
stage=$1 keep=$2
shift 2
mount -t tmpfs -o size=64k,mode=1777 tmpfs "$stage"
case "$keep" in
/tmp/?*)
    inside="$stage/${keep#/tmp/}"
    mkdir -p "$inside"
    mount --rbind "$keep" "$inside"
    mount -o remount,bind,ro "$inside"
    ;;
esac
mount --move "$stage" /tmp
mount -o remount,ro /tmp
exec "$@"
"""


def readonly_tmp_argv(argv: Sequence[Arg], keep: Path) -> list[Arg]:
    """``argv`` run in a private mount namespace whose ``/tmp`` is empty and read-only.

    Only ``keep`` (with whatever is mounted below it) is visible there, read-only;
    the real ``/tmp`` is never touched. A hidden directory is made in ``keep`` to
    stage the new tmpfs.
    """
    stage = keep / ".empty-tmp"
    stage.mkdir(exist_ok=True)
    keep_arg = str(keep) if keep.is_relative_to("/tmp") else ""
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        _EMPTY_READONLY_TMP,
        "sh",
        str(stage),
        keep_arg,
        *argv,
    ]


@functools.cache
def readonly_tmp_available() -> bool:
    # /tmp is read-only there, and holds only the top directory of what was kept
    probe = '! touch /tmp/.consent-fault-probe 2>/dev/null && [ "$(ls -A /tmp)" = "$1" ]'
    with tempfile.TemporaryDirectory() as kept:
        keep = Path(kept)
        top = keep.relative_to("/tmp").parts[0] if keep.is_relative_to("/tmp") else ""
        try:
            proc = subprocess.run(
                readonly_tmp_argv(["sh", "-c", probe, "sh", top], keep),
                capture_output=True,
                check=False,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
    return proc.returncode == 0


# -- spooling payloads for a test -----------------------------------------------------------


def spool_payloads(
    count: int,
    *,
    state: State = State.PENDING,
    collected_at: dt.datetime | None = None,
    spool: Spool | None = None,
) -> list[tuple[Entry, bytes]]:
    """Spool ``count`` realistic payloads projected on the acknowledged schema."""
    return make_payloads(count, state=state, collected_at=collected_at, spool=spool)


def block_background_flush(spool: Spool | None = None) -> None:
    """Keep detached senders from starting: a backoff most of an hour off.

    Kill loops and setups spool many payloads; a detached sender would take the send
    lock and make the in-test state changes wait for its retries. A successful send
    clears the backoff, and a sender that starts anyway meets the sandbox's dead
    endpoint and changes no state. The block is checked at once, so a spawner that
    stops honouring it (say, the backoff file moved) fails here rather than letting
    senders race the test.
    """
    from unittest import mock

    from consent._fileio import atomic_write
    from consent.upload import start_background_flush

    spool = spool or Spool.open(Scope())
    # the spawner ignores a backoff further off than its cap (1 h) allows: a clock ran ahead
    backoff = {"failures": 8, "retry_at": time.time() + 3000}
    atomic_write(spool.root / ".flush.json", json.dumps(backoff).encode())
    started: list[object] = []

    def refuse(*args: object, **_kwargs: object) -> None:
        started.append(args)
        raise OSError("a detached sender was about to start")

    # the spawner's one way to start a sender (os.posix_spawn, or subprocess where
    # that cannot detach a child)
    with mock.patch("consent.upload.spawn._launch", refuse):
        start_background_flush(spool, scope=Scope())
    assert not started, "the backoff no longer keeps detached senders from starting"


def loki_session_ids(body: bytes) -> list[str]:
    doc = json.loads(body)
    if isinstance(doc, list):
        return [str(item["session_id"]) for item in doc]
    return [
        str(json.loads(line)["session_id"])
        for stream in doc["streams"]
        for _, line in stream["values"]
    ]


# -- the invariants -----------------------------------------------------------------------


@dataclass
class SpoolScan:
    """What is really on disk under a spool root."""

    states: dict[str, str] = field(default_factory=dict)
    """session id -> state, for every complete session (payload and state file)."""
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    payloads: dict[str, bytes] = field(default_factory=dict)
    incomplete: list[Path] = field(default_factory=list)
    """Session directories a writer died in before the payload: listings skip them."""

    def ids(self, state: str | None = None) -> set[str]:
        return {sid for sid, s in self.states.items() if state is None or s == state}


def scan_spool(root: Path) -> SpoolScan:
    """Parse every session under ``root``; any torn file or stray state fails the test.

    A payload without a state file would pass for a Skyplane 0.3 payload; the tests
    never write those, so one showing up means the write order was broken.
    """
    scan = SpoolScan()
    if not root.is_dir():
        return scan
    for client in sorted(root.iterdir()):
        if client.name.startswith(".") or not client.is_dir():
            continue
        for session in sorted(client.iterdir()):
            if session.name.startswith("."):
                continue
            assert session.is_dir(), session
            assert not session.is_symlink(), session
            payload_path, state_path = session / PAYLOAD_FILE, session / STATE_FILE
            if not payload_path.exists():
                if state_path.exists():
                    json.loads(state_path.read_bytes())  # whole, even when orphaned
                scan.incomplete.append(session)
                continue
            raw = payload_path.read_bytes()
            payload = json.loads(raw)
            assert isinstance(payload, dict)
            assert payload.get("session_id") == session.name
            assert state_path.exists(), f"payload without a state file: {session}"
            doc = json.loads(state_path.read_bytes())
            assert isinstance(doc, dict)
            assert doc["state"] in ("pending", "held", "sent", "failed")
            for receipt in doc.get("receipts", []):
                assert receipt["sha256"] == hashlib.sha256(raw).hexdigest(), session
            scan.states[session.name] = doc["state"]
            scan.docs[session.name] = doc
            scan.payloads[session.name] = raw
    return scan


def visible_temp_files(*roots: Path) -> list[Path]:
    """Temp files a listing could see: any ``*.tmp`` not hidden behind a leading dot."""
    found: list[Path] = []
    for root in roots:
        if not root.exists():
            continue
        for dirpath, _dirs, files in os.walk(root):
            found += [Path(dirpath, f) for f in files if f.endswith(".tmp") and f[0] != "."]
    return found


def check_home(sandbox: Sandbox) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """config.json is whole JSON and consent.toml whole TOML (when they exist)."""
    config: dict[str, Any] | None = None
    record: dict[str, Any] | None = None
    if sandbox.config.exists():
        loaded = json.loads(sandbox.config.read_bytes())
        assert isinstance(loaded, dict), loaded
        config = loaded
    if sandbox.record.exists():
        record = tomllib.loads(sandbox.record.read_bytes().decode("utf-8"))
        assert load_record(sandbox.record) is not None  # the shape, not only the syntax
    assert not visible_temp_files(sandbox.home), visible_temp_files(sandbox.home)
    return config, record


def check_listings(sandbox: Sandbox, scan: SpoolScan) -> None:
    """In-process: review and status see exactly the complete sessions on disk."""
    from consent.profile import Scope
    from consent.review import list_review

    listing = list_review(scope=Scope())
    assert {item.session_id for item in listing.items} == scan.ids()
    assert sum(listing.counts.values()) == len(scan.states)
    for state in ("pending", "held", "sent", "failed"):
        assert listing.counts[state] == len(scan.ids(state)), (state, listing.counts)
    assert not visible_temp_files(sandbox.spool)


def check_cli_listings(scan: SpoolScan) -> None:
    """The real CLI: `stats review --json` and `stats status --json` agree with the disk."""
    review = run(consent_argv("stats", "review", "--json"))
    assert review.returncode == 0, review.describe()
    assert_no_traceback(review)
    items = review.json()
    assert {item["session_id"] for item in items} == scan.ids()
    for item in items:
        assert item["state"] == scan.states[item["session_id"]]
    status = run(consent_argv("stats", "status", "--json"))
    assert status.returncode == 0, status.describe()
    counts = status.json()["counts"]
    assert sum(counts.values()) == len(scan.states), counts
    for state in ("pending", "held", "sent", "failed"):
        assert counts[state] == len(scan.ids(state)), counts


def snapshot_files(*roots: Path) -> dict[str, bytes]:
    """Every regular file below ``roots`` (or the file itself), path -> bytes."""
    found: dict[str, bytes] = {}
    for root in roots:
        if root.is_file():
            found[str(root)] = root.read_bytes()
            continue
        if not root.exists():
            continue
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath, name)
                if path.is_file() and not path.is_symlink():
                    found[str(path)] = path.read_bytes()
    return found


def data_files(snapshot: Mapping[str, bytes]) -> dict[str, bytes]:
    """Ignore the zero-byte lock files a command may create beside the data."""
    return {path: data for path, data in snapshot.items() if not path.endswith(".lock")}


def ids_in(items: Iterable[Entry]) -> set[str]:
    return {entry.session_id for entry in items}
