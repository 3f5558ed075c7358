"""Build one payload per transfer session and project it onto the acknowledged schema.

Standard library only: this runs at the end of every transfer in the host.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from consent.policy import Policy

__all__ = ["build_payload", "encode_payload", "project", "system_fields"]

_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "string[]": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
    "object": lambda v: isinstance(v, dict),
}


@functools.cache
def _system() -> tuple[tuple[str, str], ...]:
    uname = os.uname()
    return (
        ("os", uname.sysname),
        ("os_version", uname.version),
        ("kernel_version", uname.release),
        ("python_version", "{}.{}.{}".format(*sys.version_info[:3])),
    )


def system_fields() -> dict[str, str]:
    """The system and OS fields, read once per process: they cannot change under it."""
    return dict(_system())


def build_payload(
    *,
    policy: Policy,
    client_id: str,
    session_id: str,
    host_version: str,
    source_region: str,
    destination_regions: Sequence[str],
    arguments: Mapping[str, Any],
    runtime_s: float | None,
    throughput_gbps: float | None,
    error: str | None,
    collected_at: dt.datetime,
) -> dict[str, Any]:
    """Every field we know how to fill; :func:`project` decides what may be kept."""
    payload: dict[str, Any] = {
        **system_fields(),
        "host_version": host_version,
        "client_id": client_id,
        "session_id": session_id,
        "source_region": source_region,
        "destination_regions": list(destination_regions),
        "arguments": dict(arguments),
        "schema_version": policy.version,
        "collected_at": collected_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
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
    kept: dict[str, Any] = {}
    withheld: list[str] = []
    for name, spec in policy.fields.items():
        if tuple(acknowledged.get(name, ())) != (spec.type, spec.category):
            withheld.append(name)
            continue
        if name in payload and _TYPE_CHECKS[spec.type](payload[name]):
            kept[name] = payload[name]
    return kept, withheld


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes that are stored, shown, and sent."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
