"""A loopback receiver that misbehaves, and logs every request in arrival order.

Each POST is read whole and logged (its arrival index, time, the session ids and
client ids of its payloads, or the client ids of a deletion request) before it is
answered. In ``chaos`` mode the answer is drawn at random: 2xx (sometimes late),
500, 429 with ``Retry-After``, 503, a dropped connection (body read, no answer), a
400 on a batch, a slow 2xx. In ``good`` mode every request gets a 204.

An answer counts as an acknowledgement only once its 2xx status line was written and
flushed: ``acked`` holds those, in order, with the time the answer left.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

PUSH_PATH = "/loki/api/v1/push"


@dataclass
class Arrival:
    index: int
    at: float
    """``time.monotonic()`` when the whole body had been read."""
    kind: str
    """``payloads``, ``deletion`` or ``junk``."""
    sessions: list[tuple[str, str]] = field(default_factory=list)
    """(client_id, session_id) of each payload, in body order."""
    deleted_ids: list[str] = field(default_factory=list)
    idempotency_key: str | None = None
    status: int | None = None
    """The status answered; ``None`` for a dropped connection."""
    acked_at: float | None = None
    """When a 2xx answer was written and flushed."""


def _lines(doc: Any) -> list[tuple[dict[str, str], Any]]:
    """(labels, decoded line) of a Loki push, or ({}, item) of a JSON array."""
    if isinstance(doc, list):
        return [({}, item) for item in doc]
    out = []
    for stream in doc["streams"]:
        for _ts, line in stream["values"]:
            out.append((stream["stream"], json.loads(line)))
    return out


def parse_body(body: bytes) -> tuple[str, list[tuple[str, str]], list[str]]:
    try:
        items = _lines(json.loads(body))
    except (ValueError, KeyError, TypeError):
        return "junk", [], []
    sessions: list[tuple[str, str]] = []
    deleted: list[str] = []
    for labels, item in items:
        if labels.get("type") == "deletion_request" or item.get("type") == "deletion_request":
            deleted.extend(item["client_ids"])
        else:
            sessions.append((item["client_id"], item["session_id"]))
    return ("deletion" if deleted and not sessions else "payloads"), sessions, deleted


class ChaosReceiver:
    def __init__(self, seed: int, *, max_delay_s: float = 1.5) -> None:
        self.rng = random.Random(seed)
        self.mode = "chaos"
        self.max_delay_s = max_delay_s
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                kind, sessions, deleted = parse_body(body)
                with receiver.lock:
                    arrival = Arrival(
                        len(receiver.arrivals),
                        time.monotonic(),
                        kind,
                        sessions,
                        deleted,
                        self.headers.get("Idempotency-Key"),
                    )
                    receiver.arrivals.append(arrival)
                    action = receiver._choose(arrival)
                receiver._answer(self, arrival, action)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # killed senders and dropped connections are the point

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{PUSH_PATH}"

    def _choose(self, arrival: Arrival) -> tuple[str, float]:
        if self.mode != "chaos":
            return "ok", 0.0
        roll = self.rng.random()
        delay = self.rng.uniform(0.05, self.max_delay_s)
        if roll < 0.40:
            return "ok", 0.0
        if roll < 0.50:
            return "late-ok", delay  # a 2xx, acknowledged late
        if roll < 0.62:
            return "500", 0.0
        if roll < 0.70:
            return "429", 0.0
        if roll < 0.76:
            return "503-slow", delay
        if roll < 0.86:
            return "drop", 0.0
        if roll < 0.92 and len(arrival.sessions) > 1:
            return "400", 0.0  # only on batches: the client splits and retries halves
        return "ok", 0.0

    def _answer(
        self,
        handler: http.server.BaseHTTPRequestHandler,
        arrival: Arrival,
        action: tuple[str, float],
    ) -> None:
        what, delay = action
        if delay:
            time.sleep(delay)
        if what == "drop":
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        status = {"ok": 204, "late-ok": 204, "500": 500, "429": 429, "503-slow": 503, "400": 400}[
            what
        ]
        body = b"" if status == 204 else f"chaos {status}".encode()
        try:
            handler.send_response(status)
            if status == 429:
                handler.send_header("Retry-After", str(self.rng.choice([0, 1])))
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if body:
                handler.wfile.write(body)
            handler.wfile.flush()
        except OSError:
            return  # the sender was killed or gave up: not an acknowledgement
        with self.lock:
            arrival.status = status
            if 200 <= status < 300:
                arrival.acked_at = time.monotonic()

    def __enter__(self) -> ChaosReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
