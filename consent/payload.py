"""Build one payload per transfer session and project it onto the acknowledged schema.

Standard library only, and light: this runs at the end of every transfer in the
host, in a process that records one transfer and exits, so every import counts
(bench/cold.py). No ``json``, ``datetime``, ``uuid``, ``platform`` or ``typing``
at import: JSON is written with the same C encoder ``json.dumps`` uses, ids come
from ``os.urandom``, and the OS facts from ``os.uname()``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

    from consent.policy import Policy

__all__ = [
    "build_payload",
    "dumps_json",
    "encode_payload",
    "is_finite",
    "project",
    "project_fields",
    "random_uuid4",
    "system_fields",
]

_TYPE_CHECKS: dict[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and is_finite(v),
    "boolean": lambda v: isinstance(v, bool),
    "string[]": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
    "object": lambda v: isinstance(v, dict),
}

_system: tuple[tuple[str, str], ...] = ()


def is_finite(number: float) -> bool:
    """``math.isfinite`` for an int or a float, without loading ``math`` (a shared library)."""
    # NaN compares false with everything; an int of any size is finite
    return isinstance(number, int) or -sys.float_info.max <= number <= sys.float_info.max


def system_fields() -> dict[str, str]:
    """The system and OS fields, read once per process: they cannot change under it."""
    global _system
    if not _system:
        uname = os.uname()
        _system = (
            ("os", uname.sysname),
            ("os_version", uname.version),
            ("kernel_version", uname.release),
            ("python_version", "{}.{}.{}".format(*sys.version_info[:3])),
        )
    return dict(_system)


def random_uuid4() -> str:
    """A random (version 4) UUID in its usual text form, as ``str(uuid.uuid4())`` gives."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def build_payload(
    *, policy: Policy, collected_at: dt.datetime | str, **fields: Any
) -> dict[str, Any]:
    """Every field we know how to fill; :func:`project` decides what may be kept.

    ``fields`` are :func:`_build`'s, but for the schema version, which is the
    policy's. ``collected_at`` is a datetime, or already the UTC text form.
    """
    if not isinstance(collected_at, str):
        import datetime as dt

        from consent._time import STAMP_FORMAT

        collected_at = collected_at.astimezone(dt.UTC).strftime(STAMP_FORMAT)
    return _build(schema_version=policy.version, collected_at=collected_at, **fields)


def _build(
    *,
    schema_version: int,
    client_id: str,
    session_id: str,
    host_version: str,
    source_region: str,
    destination_regions: Sequence[str],
    arguments: Mapping[str, Any],
    runtime_s: float | None,
    throughput_gbps: float | None,
    error: str | None,
    collected_at: str,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        **system_fields(),
        "host_version": host_version,
        "client_id": client_id,
        "session_id": session_id,
        "source_region": source_region,
        "destination_regions": list(destination_regions),
        "arguments": dict(arguments),
        "schema_version": schema_version,
        "collected_at": collected_at,
    }
    # An unknown measurement is left out rather than sent as a made-up number.
    if runtime_s is not None:
        payload["runtime_s"] = round(runtime_s, 3)
    if throughput_gbps is not None:
        payload["throughput_gbps"] = round(throughput_gbps, 4)
    if error is not None:
        payload["error"] = error
    return payload


def project(
    payload: Mapping[str, Any],
    policy: Policy,
    acknowledged: Mapping[str, tuple[str, str]],
) -> tuple[dict[str, Any], list[str]]:
    """Keep only fields the policy declares *and* the user acknowledged, with the right type.

    Returns the projected payload and the names of policy fields withheld because
    they are not (or not in this form) acknowledged.
    """
    fields = ((name, spec.type, spec.category) for name, spec in policy.fields.items())
    return project_fields(payload, fields, acknowledged)


def project_fields(
    payload: Mapping[str, Any],
    fields: Iterable[tuple[str, str, str]],
    acknowledged: Mapping[str, tuple[str, str]],
) -> tuple[dict[str, Any], list[str]]:
    """:func:`project` for a policy given as ``(name, type, category)`` in policy order."""
    kept: dict[str, Any] = {}
    withheld: list[str] = []
    for name, kind, category in fields:
        if tuple(acknowledged.get(name, ())) != (kind, category):
            withheld.append(name)
            continue
        if name in payload and _TYPE_CHECKS[kind](payload[name]):
            kept[name] = payload[name]
    return kept, withheld


def dumps_json(value: object, *, compact: bool = False, ensure_ascii: bool = False) -> str:
    """``json.dumps(value, ensure_ascii=ensure_ascii)`` without importing ``json``.

    ``compact`` is ``sort_keys=True, separators=(",", ":")``. ``import json`` loads
    ``re`` and more, a tenth of a bare interpreter's start-up; the C encoder behind
    ``json.dumps`` is the same one used here, and a test checks that they agree.
    """
    try:
        import _json

        separators = (":", ",") if compact else (": ", ", ")
        strings = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
        encode = _json.make_encoder(
            {}, _unserializable, strings, None, *separators, compact, False, True
        )
    except (ImportError, AttributeError, TypeError):  # no C accelerator
        import json

        if compact:
            return json.dumps(
                value, ensure_ascii=ensure_ascii, sort_keys=True, separators=(",", ":")
            )
        return json.dumps(value, ensure_ascii=ensure_ascii)
    return "".join(encode(value, 0))


def _unserializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes that are stored, shown, and sent."""
    return dumps_json(payload, compact=True).encode()
