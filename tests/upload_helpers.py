"""Loopback receivers and spool fillers shared by the upload tests and the benchmark.

``Receiver`` is a threaded stdlib HTTP/1.1 server that records every request and
answers what its ``respond`` callback says; ``BlackHole`` accepts connections and
never answers. Both bind 127.0.0.1 on a free port.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from consent.actions import apply_choice
from consent.payload import build_payload, encode_payload, project
from consent.policy import load_policy
from consent.profile import Scope
from consent.record import load_record
from consent.spool import Entry, Spool, State

PUSH_PATH = "/loki/api/v1/push"


@dataclass(frozen=True)
class Request:
    index: int
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def session_ids(self) -> list[str]:
        """Session ids in a Loki or JSON body, in order."""
        doc = self.json()
        if isinstance(doc, list):
            return [item["session_id"] for item in doc]
        return [
            json.loads(line)["session_id"]
            for stream in doc["streams"]
            for _, line in stream["values"]
        ]


Respond = Callable[[Request], int]


class Receiver:
    """Records requests; ``respond(request)`` picks the status (204 by default)."""

    def __init__(self, respond: Respond | None = None) -> None:
        self.respond: Respond = respond or (lambda _request: 204)
        self.requests: list[Request] = []
        self.answered: list[Request] = []  # requests whose 2xx answer was written
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real collector

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    request = Request(
                        len(receiver.requests), self.path, dict(self.headers.items()), body
                    )
                    receiver.requests.append(request)
                status = receiver.respond(request)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.wfile.flush()
                if 200 <= status < 300:
                    with receiver._lock:
                        receiver.answered.append(request)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a sender killed mid-request is part of the tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{PUSH_PATH}"

    def session_ids(self) -> list[str]:
        return [sid for request in list(self.requests) for sid in request.session_ids()]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class BlackHole:
    """Accepts connections and never answers, until closed."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.held: list[socket.socket] = []
        self._closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{PUSH_PATH}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def __enter__(self) -> BlackHole:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        # shutdown wakes the blocked accept(); close alone would leave the socket
        # listening until it returns, and a sender's retry would hang in its backlog
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn in self.held:
            conn.close()


def acknowledge() -> str:
    """`init --yes` in-process: the policy is acknowledged, payloads are pending."""
    return apply_choice("share", "init-flag", scope=Scope()).record.client_id


def make_payloads(
    count: int,
    *,
    state: State = State.PENDING,
    error: str | None = None,
    extra: dict[str, Any] | None = None,
    collected_at: dt.datetime | None = None,
    spool: Spool | None = None,
) -> list[tuple[Entry, bytes]]:
    """Spool ``count`` realistic payloads, projected on the acknowledged schema."""
    policy = load_policy(Scope().policy_path)
    record = load_record(Scope().record_path)
    assert record is not None, "acknowledge() first"
    assert record.acknowledgement is not None, "acknowledge() first"
    spool = spool or Spool.open(Scope())
    made: list[tuple[Entry, bytes]] = []
    now = collected_at or dt.datetime.now(dt.UTC)
    for i in range(count):
        session_id = str(uuid.uuid4())
        payload = build_payload(
            policy=policy,
            client_id=record.client_id,
            session_id=session_id,
            host_version="0.4.0",
            source_region="aws:us-east-1",
            destination_regions=["gcp:us-central1", "azure:westeurope"],
            arguments={"max_instances": 8, "solver": "ilp", "compress": True},
            runtime_s=12.5 + i,
            throughput_gbps=3.25,
            error=error,
            collected_at=now,
        )
        projected, _ = project(payload, policy, record.acknowledgement.schema)
        projected.update(extra or {})
        data = encode_payload(projected)
        made.append((spool.write(record.client_id, session_id, data, state), data))
    return made


def states(spool: Spool | None = None) -> dict[str, str]:
    """Session id to state, for every session in the spool."""
    spool = spool or Spool.open(Scope())
    return {entry.session_id: entry.state.value for entry in spool.entries()}


def entries_by_id(spool: Spool | None = None) -> dict[str, Entry]:
    spool = spool or Spool.open(Scope())
    return {entry.session_id: entry for entry in spool.entries()}


def iter_values(body: Any) -> Iterator[tuple[dict[str, str], str, str]]:
    """(stream labels, timestamp, line) of every entry of a Loki push body."""
    for stream in body["streams"]:
        for ts, line in stream["values"]:
            yield stream["stream"], ts, line
