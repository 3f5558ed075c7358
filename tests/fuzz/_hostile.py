"""A loopback endpoint that answers whatever a test scripts, byte for byte.

``HostileServer(behave)`` accepts connections on 127.0.0.1, reads each request
(headers and a ``Content-Length`` body), records it, and hands the socket to
``behave(conn, request)``, which may write anything, as slowly as it likes. The
connection is closed when ``behave`` returns. Closing the server wakes every
behaviour that waits on ``server.closed``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

__all__ = ["Behaviour", "HostileServer", "read_request"]

Behaviour = Callable[[socket.socket, bytes, "HostileServer"], None]


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class HostileServer:
    def __init__(self, behave: Behaviour) -> None:
        self.behave = behave
        self.requests: list[bytes] = []
        self.bytes_written = 0
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/loki/api/v1/push"

    def send(self, conn: socket.socket, data: bytes) -> bool:
        """Write ``data``; False once the client has gone."""
        try:
            conn.sendall(data)
        except OSError:
            return False
        with self._lock:
            self.bytes_written += len(data)
        return True

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            request = read_request(conn)
            if not request:
                return
            with self._lock:
                self.requests.append(request)
            self.behave(conn, request, self)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
