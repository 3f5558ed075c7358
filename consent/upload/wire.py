"""The wire format: which payloads may leave, and the exact bytes of each request.

A request body is a Loki push (``{"streams": [...]}``, one line per payload) or a
JSON array of the spooled payloads, byte for byte. Every request carries an
``Idempotency-Key``, so receivers can deduplicate a batch sent twice. Nothing here
talks to the network or changes the spool.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from consent.spool import Entry
    from consent.upload.transport import Limits

__all__ = ["Format", "PlannedRequest"]

Format = Literal["loki", "json"]


@dataclass(frozen=True)
class PlannedRequest:
    """One request exactly as it would be sent (the Loki timestamp is the time of sending)."""

    endpoint: str
    format: Format
    session_ids: tuple[str, ...]
    headers: Mapping[str, str]
    body: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "format": self.format,
            "session_ids": list(self.session_ids),
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8"),
        }


@dataclass
class _Item:
    entry: Entry
    data: bytes
    text: str
    kind: str  # the Loki "type" label
    schema: str  # the Loki "schema" label
    escaped_len: int
    done: bool = False  # sent or failed in this run: no further endpoint gets it

    def cost(self, fmt: Format) -> int:
        # Bytes this payload adds to a body; ``["<19 digits>",<line>],`` for Loki.
        return self.escaped_len + 25 if fmt == "loki" else len(self.data) + 1


def _check_payload(
    entry: Entry, data: bytes, allowed: frozenset[str]
) -> tuple[dict[str, Any] | None, str]:
    """The parsed payload, or None and the reason it may never be sent."""
    try:
        text = data.decode("utf-8")
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, "the spooled payload is not valid JSON; it is never sent."
    if not isinstance(payload, dict):
        return None, "the spooled payload is not a JSON object; it is never sent."
    outside = sorted(key for key in payload if key not in allowed)
    if outside:
        return None, (
            f"it holds fields outside the acknowledged schema ({', '.join(outside)}); "
            "it is never sent."
        )
    if payload.get("session_id", entry.session_id) != entry.session_id:
        return None, "its session_id does not match its place in the spool; it is never sent."
    return payload, text


def _make_item(entry: Entry, data: bytes, payload: dict[str, Any], text: str) -> _Item:
    schema = payload.get("schema_version")
    return _Item(
        entry=entry,
        data=data,
        text=text,
        kind="error" if "error" in payload else "usage",
        schema="unknown" if schema is None else str(schema),
        escaped_len=len(json.dumps(text, ensure_ascii=False).encode()),
    )


_BODY_OVERHEAD = 256  # the Loki envelope and per-stream labels, generously


def _loki_body(items: Sequence[_Item], now_ns: int) -> bytes:
    # The send time, not collected_at: Loki refuses lines far behind the newest in a
    # stream, and every client shares a stream. +i keeps the lines of a push ordered.
    streams: dict[tuple[str, str], list[list[str]]] = {}
    for i, item in enumerate(items):
        streams.setdefault((item.kind, item.schema), []).append([str(now_ns + i), item.text])
    doc = {
        "streams": [
            {"stream": {"type": kind, "schema": schema}, "values": values}
            for (kind, schema), values in streams.items()
        ]
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _json_body(items: Sequence[_Item]) -> bytes:
    return b"[" + b",".join(item.data for item in items) + b"]"


def _body(items: Sequence[_Item], fmt: Format) -> bytes:
    return _loki_body(items, time.time_ns()) if fmt == "loki" else _json_body(items)


def _idempotency_key(ids: Sequence[str]) -> str:
    import hashlib

    # A digest, not the joined ids: a 1,000-session batch would exceed the 8 KiB
    # header limit of common proxies, which answer 4xx. Sorted, so the key names the
    # set of sessions whatever their order in the body.
    return hashlib.sha256(",".join(sorted(ids)).encode()).hexdigest()


def _headers(ids: Sequence[str]) -> dict[str, str]:
    return {"Content-Type": "application/json", "Idempotency-Key": _idempotency_key(ids)}


def _batches(items: Sequence[_Item], fmt: Format, limits: Limits) -> Iterator[list[_Item]]:
    batch: list[_Item] = []
    size = _BODY_OVERHEAD
    for item in items:
        cost = item.cost(fmt)
        if batch and (size + cost > limits.max_body_bytes or len(batch) >= limits.max_batch):
            yield batch
            batch, size = [], _BODY_OVERHEAD
        batch.append(item)
        size += cost
    if batch:
        yield batch


def _halves(batch: list[_Item]) -> list[list[_Item]]:
    middle = len(batch) // 2
    return [batch[:middle], batch[middle:]]
