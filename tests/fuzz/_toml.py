"""A tiny TOML emitter for the fuzzers, and the settings they share.

The package writes its record with tomli-w; the fuzzers keep their own small
writer, an independent second opinion on what valid TOML is. It covers what the
strategies generate: strings, integers,
floats (with ``nan`` and ``inf``), booleans, dates, times, datetimes, arrays and
nested tables. Every key is quoted, so any string can be a key.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, settings

__all__ = ["FUZZ", "FUZZ_SLOW", "SCALE", "dumps", "mutate_bytes", "value"]

# The autouse sandbox fixture is function-scoped; the fuzzers never touch it.
_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
# Sized so that all of tests/fuzz runs in well under 40 s with ``-n 2``. For a longer
# hunt, multiply every budget: ``CONSENT_FUZZ_SCALE=50 pytest tests/fuzz -n 2``.
SCALE = max(1, int(os.environ.get("CONSENT_FUZZ_SCALE", "1") or "1"))
FUZZ = settings(max_examples=200 * SCALE, deadline=None, suppress_health_check=_HEALTH)
FUZZ_SLOW = settings(max_examples=60 * SCALE, deadline=None, suppress_health_check=_HEALTH)


def _string(value: str) -> str:
    # JSON escapes are a subset of TOML basic-string escapes; TOML forbids a raw DEL
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _datetime(value: dt.datetime) -> str:
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
    text += f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    offset = value.utcoffset()
    if offset is None:
        return text
    if offset == dt.timedelta(0):
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def value(item: object) -> str:
    """One TOML value, inline."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        if math.isnan(item):
            return "nan"
        if math.isinf(item):
            return "inf" if item > 0 else "-inf"
        return repr(item)
    if isinstance(item, str):
        return _string(item)
    if isinstance(item, dt.datetime):
        return _datetime(item)
    if isinstance(item, dt.date):
        return f"{item.year:04d}-{item.month:02d}-{item.day:02d}"
    if isinstance(item, dt.time):
        text = f"{item.hour:02d}:{item.minute:02d}:{item.second:02d}"
        return text + (f".{item.microsecond:06d}" if item.microsecond else "")
    if isinstance(item, list | tuple):
        return "[" + ", ".join(value(x) for x in item) + "]"
    if isinstance(item, Mapping):
        return "{" + ", ".join(f"{_string(str(k))} = {value(v)}" for k, v in item.items()) + "}"
    raise TypeError(f"cannot write {type(item).__name__} as TOML")


def _table(doc: Mapping[str, Any], prefix: tuple[str, ...], out: list[str]) -> None:
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, item in doc.items():
        if isinstance(item, Mapping):
            tables.append((key, item))
        else:
            out.append(f"{_string(key)} = {value(item)}")
    for key, table in tables:
        path = (*prefix, key)
        out.append("")
        out.append("[" + ".".join(_string(part) for part in path) + "]")
        _table(table, path, out)


def dumps(doc: Mapping[str, Any]) -> str:
    """A TOML document for ``doc``; nested mappings become ``[tables]``."""
    out: list[str] = []
    _table(doc, (), out)
    return "\n".join(out) + "\n"


def mutate_bytes(raw: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply ``(position, delete count, insertion)`` edits, positions taken modulo the length."""
    data = bytearray(raw)
    for position, delete, insert in edits:
        at = position % (len(data) + 1)
        data[at : at + delete] = insert
    return bytes(data)
