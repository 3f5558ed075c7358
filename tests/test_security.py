"""The threat model's defences that no other test file proves (docs/security.md).

- Local attackers on a shared ``/tmp``: a symlink or hardlink planted where a file
  will be written, a guessed temp-file name, a directory swapped between check and
  use, a planted lock file, send log or flush stamp.
- Other users: the spool, the config and the consent record cannot be read,
  listed or written by another uid (checked by a forked child that drops to one).
- A network attacker: TLS certificates are verified (a self-signed loopback
  server is refused before any HTTP is spoken).
- Secrets: nothing planted in argv or an exception reaches any file in the spool.
"""

from __future__ import annotations

import errno
import http.server
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

import consent
import consent.upload as upload_module
from consent._exceptions import StorageError
from consent._fileio import atomic_write
from consent.actions import apply_choice
from consent.profile import AppProfile, Scope
from consent.spool import PAYLOAD_FILE, STATE_FILE, Spool, State
from consent.upload import _FLUSH_STAMP, SEND_LOG, Limits, _log_run, send_pending
from consent.upload import start_background_flush as _start_background_flush
from tests.conftest import Sandbox
from tests.upload_helpers import acknowledge, make_payloads, states

FOREIGN_UID = 12345
CLIENT = "0b6c1e9f-3f52-4c38-9a43-0d1f1a1b2c3d"
FAST = Limits(connect_timeout_s=0.5, request_timeout_s=1.0, backoff_base_s=0.01, backoff_cap_s=0.05)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


def _victim(tmp_path: Path, content: bytes = b"victim's own bytes\n") -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(content)
    return victim


# -- planted links: the write replaces the name, never what it points to -------------------


def test_atomic_write_replaces_a_planted_symlink_never_its_target(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    target = tmp_path / "dir" / "usage_stats.json"
    target.parent.mkdir()
    target.symlink_to(victim)
    atomic_write(target, b"{}")
    assert victim.read_bytes() == b"victim's own bytes\n"
    assert not target.is_symlink()
    assert target.read_bytes() == b"{}"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_atomic_write_replaces_a_planted_hardlink_never_its_inode(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    target = tmp_path / "dir" / "state.json"
    target.parent.mkdir()
    os.link(victim, target)
    atomic_write(target, b"{}")
    assert victim.read_bytes() == b"victim's own bytes\n"
    assert os.stat(victim).st_nlink == 1
    assert os.stat(target).st_ino != os.stat(victim).st_ino


def test_a_guessed_temp_name_is_never_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_CREAT | O_EXCL | O_NOFOLLOW: a link at the temp name fails the write, harmlessly."""
    victim = _victim(tmp_path)
    monkeypatch.setattr(os, "urandom", lambda n: b"\0" * n)  # make the name guessable
    directory = tmp_path / "dir"
    directory.mkdir()
    guessed = directory / f".usage_stats.json.{os.getpid()}.00000000.tmp"
    guessed.symlink_to(victim)
    with pytest.raises(FileExistsError):
        atomic_write(directory / "usage_stats.json", b"{}")
    assert victim.read_bytes() == b"victim's own bytes\n"
    assert guessed.is_symlink()
    assert not (directory / "usage_stats.json").exists()


def test_a_hardlink_planted_at_the_state_file_is_replaced_not_written(
    spool: Spool, tmp_path: Path
) -> None:
    entry = spool.write(CLIENT, str(uuid.uuid4()), b"{}", State.PENDING)
    state_path = entry.directory / STATE_FILE
    original = state_path.read_bytes()
    victim = _victim(tmp_path, original)  # a file that reads as a valid state
    state_path.unlink()
    os.link(victim, state_path)

    assert spool.set_state(entry, State.HELD).state is State.HELD

    assert victim.read_bytes() == original
    assert os.stat(state_path).st_ino != os.stat(victim).st_ino
    assert json.loads(state_path.read_bytes())["state"] == "held"


@pytest.mark.parametrize("name", [".send.lock", SEND_LOG, _FLUSH_STAMP])
def test_planted_symlinks_at_the_spools_own_files_are_never_followed(
    spool: Spool, tmp_path: Path, name: str
) -> None:
    victim = _victim(tmp_path)
    old = time.time() - 3600
    os.utime(victim, (old, old))
    link = spool.root / name
    link.symlink_to(victim)
    os.utime(link, (old, old), follow_symlinks=False)  # an old stamp: the flush tries to write

    if name == ".send.lock":
        with pytest.raises(StorageError), spool.lock():
            pass
    elif name == SEND_LOG:
        _log_run(spool, "manual", None, "an error line")
    else:
        children = list(upload_module._children)
        # never raises; the O_NOFOLLOW open refuses the link
        _start_background_flush(spool, scope=Scope())
        # the call reaps earlier senders that have exited: look for a new one only
        started = [child for child in upload_module._children if child not in children]
        assert started == [], "no sender was started"

    assert victim.read_bytes() == b"victim's own bytes\n"
    assert os.stat(victim).st_mtime == pytest.approx(old, abs=1)
    assert link.is_symlink()


def test_a_planted_lock_link_to_a_missing_file_creates_nothing(
    spool: Spool, tmp_path: Path
) -> None:
    wanted = tmp_path / "would-be-created"
    (spool.root / ".send.lock").symlink_to(wanted)
    with pytest.raises(StorageError), spool.lock():
        pass
    assert not wanted.exists()


# -- races: a directory swapped between its check and its use ------------------------------


@pytest.mark.parametrize("swap", ["symlink", "another-directory"])
def test_a_directory_swapped_during_the_check_is_refused(
    profile: AppProfile, shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir(mode=0o700)
    (shared / "skyplane" / "usage").mkdir(parents=True, mode=0o700)
    (shared / "skyplane").chmod(0o700)
    real_open = os.open
    swapped: list[str] = []

    def racing_open(
        path: str | os.PathLike[str], flags: int, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> int:
        if dir_fd is not None and path == "skyplane" and not swapped:
            # the attacker wins the race: after the lstat, before the open
            swapped.append(swap)
            os.rename(shared / "skyplane", tmp_path / "moved-away")
            if swap == "symlink":
                os.symlink(elsewhere, shared / "skyplane")
            else:
                (shared / "skyplane" / "usage").mkdir(parents=True, mode=0o700)
                (shared / "skyplane").chmod(0o700)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", racing_open)
    spool = Spool.open(Scope(profile, {}))
    monkeypatch.undo()

    assert swapped == [swap]
    assert spool.root == shared / f"skyplane-{os.getuid()}" / "usage"
    assert len(spool.warnings) == 1
    reason = "cannot be opened" if swap == "symlink" else "was replaced while being checked"
    assert reason in spool.warnings[0]
    spool.write(CLIENT, str(uuid.uuid4()), b"{}", State.PENDING)
    assert list(elsewhere.iterdir()) == []


# -- other users ---------------------------------------------------------------------------


def _as_other_user(checks: list[Callable[[], object]]) -> list[str]:
    """Run each check in a forked child that has dropped to another uid.

    Returns, per check, "ok", or the errno name it failed with.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(FOREIGN_UID)
            os.setuid(FOREIGN_UID)
            found: list[str] = []
            for check in checks:
                try:
                    check()
                    found.append("ok")
                except OSError as exc:
                    found.append(errno.errorcode.get(exc.errno or 0, "?"))
            os.write(write_end, json.dumps(found).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    results: list[str] = json.loads(b"".join(chunks))
    return results


@pytest.fixture
def world_reachable(tmp_path: Path) -> Iterator[Path]:
    """A /tmp-like directory every user can reach (pytest's own tmp_path is 0700)."""
    directory = Path(
        subprocess.check_output(["mktemp", "-d", "/tmp/consent-sec.XXXXXX"], text=True).strip()
    )
    directory.chmod(0o1777)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@as_root
def test_other_users_cannot_read_list_or_plant_in_the_spool(world_reachable: Path) -> None:
    profile = AppProfile(shared_temp_root=world_reachable)
    spool = Spool.open(Scope(profile, {}))
    entry = spool.write(CLIENT, str(uuid.uuid4()), b'{"os": "Linux"}', State.PENDING)
    payload = entry.directory / PAYLOAD_FILE
    tool_dir = world_reachable / "skyplane"

    results = _as_other_user(
        [
            lambda: os.listdir(world_reachable),  # the control: /tmp itself is open
            lambda: os.listdir(tool_dir),
            lambda: os.listdir(spool.root),
            lambda: os.close(os.open(payload, os.O_RDONLY)),
            lambda: os.close(os.open(spool.root / "planted", os.O_WRONLY | os.O_CREAT, 0o600)),
            lambda: os.symlink("/etc/passwd", tool_dir / "usage2"),
        ]
    )

    assert results == ["ok", "EACCES", "EACCES", "EACCES", "EACCES", "EACCES"]
    assert stat.S_IMODE(os.lstat(tool_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(payload).st_mode) == 0o600


@as_root
def test_other_users_cannot_read_the_config_or_the_record(
    world_reachable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = world_reachable / "home"
    home.mkdir()
    home.chmod(0o755)  # a home others may enter, as on many systems
    monkeypatch.setenv("HOME", str(home))
    apply_choice("share", "init-flag", scope=Scope())
    config = home / ".skyplane" / "config.json"
    record = home / ".skyplane" / "consent.toml"
    assert config.exists() and record.exists()

    results = _as_other_user(
        [
            lambda: os.listdir(home),
            lambda: os.listdir(home / ".skyplane"),
            lambda: os.close(os.open(config, os.O_RDONLY)),
            lambda: os.close(os.open(record, os.O_RDONLY)),
        ]
    )

    assert results == ["ok", "EACCES", "EACCES", "EACCES"]


@as_root
def test_another_users_spool_root_is_never_used(world_reachable: Path) -> None:
    """User B's /tmp/skyplane is refused by user A, who falls back to a private root."""
    squatted = world_reachable / "skyplane" / "usage"
    squatted.mkdir(parents=True, mode=0o700)
    for path in (squatted.parent, squatted):
        path.chmod(0o700)
        os.chown(path, FOREIGN_UID, FOREIGN_UID)
    spool = Spool.open(Scope(AppProfile(shared_temp_root=world_reachable), {}))
    assert spool.root == world_reachable / f"skyplane-{os.getuid()}" / "usage"
    assert "owned by another user" in spool.warnings[0]
    spool.write(CLIENT, str(uuid.uuid4()), b"{}", State.PENDING)
    assert list(squatted.iterdir()) == []


def test_the_detached_sender_never_imports_from_the_working_directory(
    spool: Spool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host run in a directory others can write must not run their ``consent`` package."""
    planted = tmp_path / "shared-project"
    (planted / "consent").mkdir(parents=True)
    marker = tmp_path / "hijacked"
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    (planted / "consent" / "__init__.py").write_text(code)
    (planted / "consent" / "upload.py").write_text(code)
    # the control: without -P, `python -m` would import the planted package
    subprocess.run([sys.executable, "-m", "consent.upload"], cwd=planted, timeout=60, check=False)
    assert marker.exists()
    marker.unlink()

    monkeypatch.chdir(planted)
    _start_background_flush(spool, scope=Scope())
    assert upload_module._children, "the detached sender started"
    assert upload_module._children[-1].wait(timeout=60) == 0
    assert not marker.exists()


# -- the network: TLS is verified ------------------------------------------------------------


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


class _TLSReceiver:
    def __init__(self, cert: Path, key: Path) -> None:
        self.requests: list[bytes] = []
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # the refused handshakes are the point

        self.server = Server(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/loki/api/v1/push"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_tls_certificates_are_verified(self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    acknowledge()
    made = make_payloads(2)
    receiver = _TLSReceiver(cert, key)
    try:
        result = send_pending(endpoint=receiver.url, limits=FAST, scope=Scope())
        # the control: a client that trusts this certificate gets through
        trusting = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=trusting) as client:
            assert client.post(receiver.url, content=b"[]").status_code == 204
    finally:
        receiver.close()
    assert receiver.requests == [b"[]"], "only the trusting client's request arrived"
    assert (result.sent, result.pending) == (0, len(made))
    assert result.error is not None
    assert "certificate" in result.error.lower()
    assert set(states().values()) == {"pending"}


# -- secrets: nothing planted in argv or an error reaches any file in the spool -------------

_PLANTED = {
    "aws_secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "github": "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5",
    "password": "hunter2-correct-horse",
    "bucket": "acme-payroll-7",
    "user": "alice.w",
    "host": "db7.corp.example",
    "ip": "10.20.30.40",
    "email": "alice@example.com",
}


def test_secrets_in_argv_and_errors_never_reach_the_spool(sandbox: Sandbox) -> None:
    apply_choice(
        "review", "init-flag", scope=Scope()
    )  # held: nothing is sent, everything is on disk
    argv = [
        "cp",
        f"s3://{_PLANTED['bucket']}/2024/salaries.csv",
        f"/home/{_PLANTED['user']}/out",
        "--aws-secret-access-key",
        _PLANTED["aws_secret"],
        f"--token={_PLANTED['github']}",
        "--password",
        _PLANTED["password"],
        "--endpoint-url",
        f"https://{_PLANTED['host']}:9000",
        "--max-instances",
        "4",
    ]
    message = (
        f"upload to {_PLANTED['ip']} failed for {_PLANTED['email']}: "
        f'{{"password": "{_PLANTED["password"]}", "token": "{_PLANTED["github"]}"}}\n'
        f'  File "/home/{_PLANTED["user"]}/run.py", line 3\n'
        f"    s3.put(Bucket='{_PLANTED['bucket']}', Secret='{_PLANTED['aws_secret']}')"
    )
    with pytest.raises(PermissionError), consent.session(argv, src="aws:us-east-1", dst=["local"]):
        raise PermissionError(message)

    written = b"".join(p.read_bytes() for p in sandbox.spool.rglob("*") if p.is_file())
    assert b'"error":"PermissionError: ' in written
    assert b'"max_instances":4' in written
    for name, secret in _PLANTED.items():
        assert secret.encode() not in written, name


@pytest.mark.parametrize("host", ["a.localhost", "evil.localhost", "localhost.example.com"])
def test_plain_http_only_to_literal_loopback_names(host: str) -> None:
    """``*.localhost`` may be resolved by DNS on some systems, so it is not loopback here."""
    from consent._exceptions import InsecureEndpointError
    from consent._urls import check_endpoint

    with pytest.raises(InsecureEndpointError, match="plain http"):
        check_endpoint(f"http://{host}/push")
    assert check_endpoint("http://localhost:3100/push") == "http://localhost:3100/push"
    assert check_endpoint(f"https://{host}/push") == f"https://{host}/push"
