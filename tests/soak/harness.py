"""The chaos soak: real processes recording, sending, reviewing, opting out and
forgetting at once, with SIGKILLs, against a misbehaving loopback receiver.

One run has three phases:

- **storm** (the first ~60 %): recorders (``consent.record_session`` in child
  processes, and the ``consent record`` CLI), ``stats send``, ``stats review
  --json`` / ``--approve-all``, review mode on and off, and the destructive ones:
  ``stats off``/``on``, ``config set usage_stats false``/``true``, ``stats review
  --discard-all``, ``stats forget --yes``; a killer SIGKILLs a random child now and
  then, detached background senders included;
- **tail**: the same without anything destructive, so every session recorded
  then must be found sent, held, pending or failed;
- **settle**: every child ends (a detached sender still running is killed),
  collection is turned on, the receiver behaves, and one quiet ``stats send``
  runs.

Then :func:`check` states every invariant that failed (an empty list: it held).
Standard library only, plus the package itself; ``scripts/soak.py`` runs it longer.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.soak.receiver import ChaosReceiver

REPO = Path(__file__).resolve().parents[2]

RECORD_SCRIPT = """
import sys
import consent
for i in range(int(sys.argv[1])):
    sid = consent.record_session(
        argv=["skyplane", "cp", "-r", "s3://bucket/key", "gs://other/key"],
        src="aws:us-east-1", dst=["gcp:us-central1-a"], runtime_s=1.5 + i, nbytes=10**9,
        error=None if i % 3 else "TimeoutError: host 10.0.0.1 did not answer",
    )
    print(sid or "-", flush=True)
"""

# Exit codes a command may end with under chaos: 0, 1 (a send or deletion request
# that did not complete), -9 (our SIGKILL). Anything else (2: bad usage) is a bug.
_OK_CODES = frozenset({0, 1, -signal.SIGKILL})

_SPOOL_DOTFILES = frozenset(
    {".send.log", ".send.log.1", ".flush.stamp", ".flush.json", ".retired", ".send.lock",
     ".forget.lock"}
)  # fmt: skip
_HOME_FILES = frozenset(
    {"config.json", "config.json.lock", "consent.toml", "consent.toml.lock", "consent-cache.json"}
)


@dataclass
class Child:
    kind: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    started: float
    ended: float | None = None
    killed_at: float | None = None
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    phase: str = "storm"


@dataclass
class Kill:
    at: float
    kind: str
    pid: int


@dataclass
class Soak:
    base: Path
    seconds: float
    seed: int
    recorders: int = 2
    kill_every_s: float = 1.5
    spare: tuple[str, ...] = ()
    destroy_every_s: float = 2.75
    """Mean pause between two destructive commands (storm phase)."""
    forget_share: float = 0.35
    """Of the destructive commands, the share that are forgets."""
    """Kinds of children the killer leaves alone."""
    log: Callable[[str], None] = lambda _line: None

    children: list[Child] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    destructive: list[tuple[str, float, float]] = field(default_factory=list)
    """(command, start, end) of every forget, opt-out and discard."""
    wipes: list[tuple[float, float]] = field(default_factory=list)
    """(start, end) of each forget and opt-out that ran to its end."""
    off_windows: list[tuple[float, float]] = field(default_factory=list)
    """(end of an opt-out, start of the opt-in after it): nothing may arrive in between."""
    phase: str = "storm"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.home = self.base / "home"
        self.spool = self.base / "spool"
        self.logs = self.base / "logs"
        for path in (self.home, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(self.seed)
        self.stop = threading.Event()
        self.receiver = ChaosReceiver(self.seed)
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("SKYPLANE_")
            and name not in ("DO_NOT_TRACK", "CI", "XDG_CONFIG_HOME", "TMPDIR")
        }
        env.update(
            HOME=str(self.home),
            SKYPLANE_USAGE_STATS_DIR=str(self.spool),
            SKYPLANE_USAGE_STATS_ENDPOINT=self.receiver.url,
            NO_COLOR="1",
            COLUMNS="100",
            PYTHONPATH=str(REPO),
        )
        self.env = env
        self._counter = 0

    # -- children ----------------------------------------------------------------------
    def spawn(self, kind: str, argv: list[str]) -> Child:
        with self.lock:
            self._counter += 1
            n = self._counter
        out, err = self.logs / f"{n:05d}-{kind}.out", self.logs / f"{n:05d}-{kind}.err"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(
                argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=self.env, cwd=self.base
            )
        child = Child(kind, argv, proc, out, err, time.monotonic(), phase=self.phase)
        with self.lock:
            self.children.append(child)
        return child

    def finish(self, child: Child, timeout: float = 60.0) -> Child:
        try:
            child.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill(child.proc.pid, f"hung-{child.kind}")
            child.killed_at = time.monotonic()
            child.proc.wait()
        child.ended = time.monotonic()
        child.returncode = child.proc.returncode
        child.stdout = child.out.read_text(errors="replace")
        child.stderr = child.err.read_text(errors="replace")
        return child

    def consent(self, kind: str, *args: str) -> Child:
        return self.finish(self.spawn(kind, [sys.executable, "-m", "consent", *args]))

    def _kill(self, pid: int, kind: str) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        with self.lock:
            self.kills.append(Kill(time.monotonic(), kind, pid))

    def detached_senders(self) -> list[int]:
        """Pids of the background senders started for this spool (by our recorders)."""
        found = []
        needle = str(self.spool).encode()
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    cmd = handle.read()
            except OSError:
                continue
            if b"consent.upload" in cmd and needle in cmd:
                found.append(int(name))
        return found

    # -- actors ------------------------------------------------------------------------
    def _pause(self, low: float, high: float) -> None:
        self.stop.wait(self.rng.uniform(low, high))

    def recorder(self, index: int) -> None:
        rng = random.Random(self.seed * 31 + index)
        while not self.stop.is_set():
            if rng.random() < 0.6:
                count = rng.randint(1, 4)
                argv = [sys.executable, "-c", RECORD_SCRIPT, str(count)]
                self.finish(self.spawn("record-api", argv))
            else:
                self.consent(
                    "record-cli",
                    "record", "--src", "aws:us-east-1", "--dst", "azure:westus",
                    "--runtime-s", "2.5", "--gbps", "1.2", "--", "cp", "/tmp/a", "s3://b/c",
                )  # fmt: skip
            self.stop.wait(rng.uniform(0.0, 0.3))

    def sender(self) -> None:
        while not self.stop.is_set():
            self.consent("send", "stats", "send", "--json")
            self._pause(0.2, 1.2)

    def reviewer(self) -> None:
        while not self.stop.is_set():
            roll = self.rng.random()
            if roll < 0.5:
                self.consent("review", "stats", "review", "--json")
            elif roll < 0.75:
                self.consent("approve", "stats", "review", "--approve-all")
            else:
                value = self.rng.choice(["true", "false"])
                self.consent("review-mode", "config", "set", "usage_stats_review", value)
            self._pause(0.3, 1.5)

    def destroyer(self) -> None:
        """Forget, opt-outs and discards, in the storm phase only."""
        while not self.stop.is_set():
            self._pause(self.destroy_every_s * 0.5, self.destroy_every_s * 1.5)
            if self.phase != "storm" or self.stop.is_set():
                continue
            roll = self.rng.random()
            start = time.monotonic()
            if roll < self.forget_share:
                forget = self.consent("forget", "stats", "forget", "--yes")
                name = "forget"
                if forget.returncode in (0, 1):  # 1: the deletion request did not go out
                    with self.lock:
                        self.wipes.append((start, time.monotonic()))
            elif roll < self.forget_share + (1 - self.forget_share) * 0.4:
                name = "off"
                self._opt_out_and_in(["stats", "off"], ["stats", "on"])
            elif roll < self.forget_share + (1 - self.forget_share) * 0.7:
                name = "off"
                self._opt_out_and_in(
                    ["config", "set", "usage_stats", "false"],
                    ["config", "set", "usage_stats", "true"],
                )
            else:
                self.consent("discard", "stats", "review", "--discard-all")
                name = "discard"
            with self.lock:
                self.destructive.append((name, start, time.monotonic()))

    def _opt_out_and_in(self, off: list[str], on: list[str]) -> None:
        off_start = time.monotonic()
        done = self.consent("off", *off)
        off_end = time.monotonic()
        if done.returncode == 0:
            with self.lock:
                self.wipes.append((off_start, off_end))
        self._pause(0.2, 1.5)
        on_start = time.monotonic()
        self.consent("on", *on)
        if done.returncode == 0:  # not killed: collection was off in between
            with self.lock:
                self.off_windows.append((off_end, on_start))

    def killer(self) -> None:
        while not self.stop.is_set():
            self._pause(self.kill_every_s * 0.3, self.kill_every_s * 1.7)
            if self.stop.is_set():
                return
            with self.lock:
                live = [c for c in self.children if c.proc.poll() is None]
            # an opt-in killed would leave collection off, and the rest of the run idle
            spared = ("on", "init", *self.spare)
            targets = [(c.kind, c.proc.pid) for c in live if c.kind not in spared]
            targets += [("detached-sender", pid) for pid in self.detached_senders()]
            if not targets:
                continue
            kind, pid = self.rng.choice(targets)
            self._kill(pid, kind)
            for child in live:
                if child.proc.pid == pid:
                    child.killed_at = time.monotonic()

    # -- the run -----------------------------------------------------------------------
    def run(self) -> None:
        with self.receiver:
            self.consent("init", "init", "--yes", "--non-interactive")
            actors = [
                threading.Thread(target=self.recorder, args=(i,)) for i in range(self.recorders)
            ]
            actors += [
                threading.Thread(target=f)
                for f in (self.sender, self.reviewer, self.destroyer, self.killer)
            ]
            for actor in actors:
                actor.daemon = True
                actor.start()
            self.stop.wait(self.seconds * 0.6)
            self.phase = "tail"
            self.log(f"soak: tail phase after {len(self.children)} children")
            self.stop.wait(self.seconds * 0.4)
            self.stop.set()
            for actor in actors:
                actor.join(120)
            self.settle()

    def settle(self) -> None:
        self.phase = "settle"
        deadline = time.monotonic() + 20
        while self.detached_senders() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self.detached_senders():
            self._kill(pid, "detached-sender")
        deadline = time.monotonic() + 5
        while self.detached_senders() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.receiver.mode = "good"
        self.consent("on", "stats", "on")
        self.final_send = self.consent("final-send", "stats", "send", "--json")
        self.status = self.consent("status", "stats", "status", "--json")
        self.review = self.consent("review", "stats", "review", "--json")
        self.dump()

    def dump(self) -> None:
        """The receiver's log, the kills and the destructive commands, for a post-mortem."""
        t0 = self.children[0].started if self.children else 0.0
        doc = {
            "arrivals": [
                {**vars(a), "at": round(a.at - t0, 3),
                 "acked_at": None if a.acked_at is None else round(a.acked_at - t0, 3)}
                for a in self.receiver.arrivals
            ],
            "kills": [{**vars(k), "at": round(k.at - t0, 3)} for k in self.kills],
            "destructive": [
                [n, round(s - t0, 3), round(e - t0, 3)] for n, s, e in self.destructive
            ],
            "children": [
                {"kind": c.kind, "pid": c.proc.pid, "start": round(c.started - t0, 3),
                 "end": None if c.ended is None else round(c.ended - t0, 3),
                 "rc": c.returncode, "out": c.out.name}
                for c in self.children
            ],
        }  # fmt: skip
        (self.base / "soak.json").write_text(json.dumps(doc, indent=1))


# -- the invariants ------------------------------------------------------------------------


def _disk_sessions(spool: Path) -> dict[str, tuple[str, str]]:
    """session id -> (client id, state) for every complete session on disk."""
    found: dict[str, tuple[str, str]] = {}
    if not spool.is_dir():
        return found
    for client in spool.iterdir():
        if client.name.startswith(".") or not client.is_dir():
            continue
        for session in client.iterdir():
            if not session.is_dir() or not (session / "usage_stats.json").is_file():
                continue
            try:
                state = json.loads((session / "state.json").read_bytes())["state"]
            except FileNotFoundError:
                state = "legacy"
            except (ValueError, KeyError, TypeError):
                state = "failed"
            found[session.name] = (client.name, state)
    return found


def check(soak: Soak) -> list[str]:
    problems: list[str] = []
    arrivals = list(soak.receiver.arrivals)
    kills = sorted(k.at for k in soak.kills)
    children = soak.children

    # 1. no traceback, no unexpected exit code
    for child in children:
        if "Traceback" in child.stderr:
            problems.append(f"traceback in {child.kind} ({child.err}):\n{child.stderr[-1500:]}")
        if child.returncode not in _OK_CODES:
            problems.append(
                f"{child.kind} exited {child.returncode}: {child.stderr.strip()[-400:]}"
            )
        if (
            child.kind.startswith("record")
            and "not recorded" in child.stderr
            and child.killed_at is None
        ):
            problems.append(f"{child.kind} could not record: {child.stderr.strip()[-400:]}")
    for name in (".send.log", ".send.log.1"):
        path = soak.spool / name
        if path.exists() and "internal error" in path.read_text(errors="replace"):
            problems.append(f"a sender hit an internal error: see {path}")
    for label, child in (("final send", soak.final_send), ("status", soak.status)):
        if child.returncode != 0:
            problems.append(f"the {label} exited {child.returncode}: {child.stdout}{child.stderr}")

    # 2. no session arrives under a client id after that id's deletion request
    deleted_at: dict[str, int] = {}
    for a in arrivals:
        if a.kind == "deletion":
            for cid in a.deleted_ids:
                deleted_at.setdefault(cid, a.index)
    for a in arrivals:
        for cid, sid in a.sessions:
            if cid in deleted_at and a.index > deleted_at[cid]:
                problems.append(
                    f"session {sid} arrived (request #{a.index}) under client id {cid}, after "
                    f"its deletion request (request #{deleted_at[cid]})"
                )

    # 2b. nothing is sent while collection is off
    for off_end, on_start in soak.off_windows:
        for a in arrivals:
            if a.sessions and off_end < a.at < on_start:
                problems.append(
                    f"request #{a.index} with {len(a.sessions)} payload(s) arrived while "
                    f"collection was off"
                )

    # 2c. an opt-out or a forget drops what was recorded before it: a session whose
    # recorder had ended before one started never arrives after it ended
    ended: dict[str, float] = {}
    for child in children:
        if child.kind.startswith("record") and child.ended is not None:
            for line in child.stdout.split():
                ended[line] = child.ended
    first_arrival: dict[str, float] = {}
    for a in arrivals:
        for _cid, sid in a.sessions:
            first_arrival.setdefault(sid, a.at)
    for sid, at in first_arrival.items():
        if sid not in ended:
            continue
        for start, end in soak.wipes:
            if ended[sid] < start and at > end:
                problems.append(
                    f"session {sid} was recorded before an opt-out or forget, and arrived after it"
                )
                break

    # 3. exactly once: a session acknowledged twice needs a killed sender in between
    acks: dict[str, list[tuple[float, float]]] = {}
    for a in arrivals:
        if a.acked_at is not None:
            for _cid, sid in a.sessions:
                acks.setdefault(sid, []).append((a.at, a.acked_at))
    for sid, times in acks.items():
        for (at1, _ack1), (at2, _ack2) in itertools.pairwise(times):
            # a 2xx written to a sender killed while it waited is no acknowledgement
            if not any(at1 <= k <= at2 for k in kills):
                problems.append(
                    f"session {sid} was acknowledged {len(times)} times with no sender killed "
                    f"in between"
                )
                break

    # 4. everything reported is accounted for
    disk = _disk_sessions(soak.spool)
    received = set(acks)
    for child in children:
        if not child.kind.startswith("record"):
            continue
        for line in child.stdout.split():
            if line == "-" or len(line) != 36:
                continue
            if line in received or line in disk:
                if line in disk and disk[line][1] == "pending":
                    problems.append(f"session {line} is still pending after the final send")
                continue
            excuse = [name for name, start, end in soak.destructive if end >= child.started]
            if not excuse:
                problems.append(
                    f"session {line} (reported by {child.kind}, {child.phase} phase) is lost: "
                    f"not received, not on disk, and nothing deleted it"
                )
    # what the final send reports as pending is pending on disk, and nothing is
    pending = [sid for sid, (_c, state) in disk.items() if state == "pending"]
    if pending:
        problems.append(
            f"{len(pending)} session(s) pending after the final quiet send: {pending[:3]}"
        )

    # 5. modes, counts, stray files
    problems += _check_files(soak, disk)
    return problems


def _check_files(soak: Soak, disk: dict[str, tuple[str, str]]) -> list[str]:
    problems: list[str] = []
    writer_kills = sum(1 for k in soak.kills if k.kind != "review")
    temps: list[str] = []
    incomplete: list[str] = []
    for root in (soak.spool, soak.home / ".skyplane"):
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISLNK(st.st_mode):
                    problems.append(f"a symlink in the spool: {path}")
                elif stat.S_ISDIR(st.st_mode) and mode != 0o700:
                    problems.append(f"directory {path} has mode {mode:04o}, not 0700")
                elif stat.S_ISREG(st.st_mode) and mode != 0o600:
                    problems.append(f"file {path} has mode {mode:04o}, not 0600")
                if name.endswith(".tmp"):
                    temps.append(path)
    if soak.spool.is_dir():
        for entry in soak.spool.iterdir():
            if entry.name.startswith("."):
                if entry.name not in _SPOOL_DOTFILES and not entry.name.endswith(".tmp"):
                    problems.append(f"unexpected file in the spool root: {entry}")
                continue
            for session in entry.iterdir():
                names = {p.name for p in session.iterdir() if not p.name.endswith(".tmp")}
                if "usage_stats.json" not in names:
                    incomplete.append(str(session))
                elif names != {"usage_stats.json", "state.json"}:
                    problems.append(f"unexpected files in {session}: {sorted(names)}")
    home = soak.home / ".skyplane"
    if home.is_dir():
        for entry in home.iterdir():
            if entry.name not in _HOME_FILES and not entry.name.endswith(".tmp"):
                problems.append(f"unexpected file in the home: {entry}")
    if len(temps) > writer_kills:
        problems.append(f"{len(temps)} temp files left, but only {writer_kills} kills: {temps[:3]}")
    if len(incomplete) > writer_kills:
        problems.append(
            f"{len(incomplete)} incomplete sessions left, but only {writer_kills} kills: "
            f"{incomplete[:3]}"
        )
    # counts
    try:
        counts = json.loads(soak.status.stdout)["counts"]
    except (ValueError, KeyError, TypeError):
        problems.append(f"stats status --json is not JSON: {soak.status.stdout[:200]}")
        return problems
    on_disk = Counter(state for _c, state in disk.values())
    for state in ("pending", "held", "sent", "failed", "legacy"):
        if counts.get(state, 0) != on_disk.get(state, 0):
            problems.append(
                f"stats status says {counts.get(state, 0)} {state}, the disk holds "
                f"{on_disk.get(state, 0)}"
            )
    try:
        rows = json.loads(soak.review.stdout)
    except ValueError:
        problems.append(f"stats review --json is not JSON: {soak.review.stdout[:200]}")
    else:
        review = Counter(row["state"] for row in rows)
        if review != +on_disk:
            problems.append(f"stats review --json counts {dict(review)}, the disk {dict(on_disk)}")
    return problems


def summary(soak: Soak) -> str:
    kinds = Counter(c.kind for c in soak.children)
    codes = Counter(c.returncode for c in soak.children)
    statuses = Counter(a.status for a in soak.receiver.arrivals)
    reported = sum(
        1
        for c in soak.children
        if c.kind.startswith("record")
        for line in c.stdout.split()
        if len(line) == 36
    )
    return (
        f"seed={soak.seed} children={dict(kinds)} exit codes={dict(codes)} "
        f"kills={Counter(k.kind for k in soak.kills)} requests={len(soak.receiver.arrivals)} "
        f"answers={dict(statuses)} sessions reported={reported} "
        f"destructive={Counter(d[0] for d in soak.destructive)} "
        f"on disk={dict(Counter(s for _c, s in _disk_sessions(soak.spool).values()))}"
    )
