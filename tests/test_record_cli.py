"""`consent record` (docs/architecture.md §3.8), for hosts not written in Python.

Run as a real subprocess.
"""

from __future__ import annotations

import json
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

from consent.spool import Spool
from tests.conftest import Result, Sandbox, run_cli

GOOD = (
    "--src", "aws:us-east-1",
    "--dst", "gcp:us-central1",
    "--dst", "azure:eastus",
    "--runtime-s", "12.5",
    "--gbps", "3.2",
)  # fmt: skip
HOST_ARGV = ("--", "cp", "-r", "s3://acme/data", "gs://bucket/x", "--max-instances", "8")


def record(*extra: str, env: dict[str, str] | None = None) -> Result:
    return run_cli("record", *GOOD, *extra, *HOST_ARGV, env=env)


def payload_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/usage_stats.json")) if root.is_dir() else []


def client_id(sandbox: Sandbox) -> str:
    value: str = tomllib.loads(sandbox.record.read_text())["client_id"]
    return value


def printed_id(result: Result) -> str:
    assert result.returncode == 0, result.stderr
    session_id = result.stdout.removesuffix("\n")
    assert result.stdout == session_id + "\n", "stdout must hold the session id and nothing else"
    assert uuid.UUID(session_id).version == 4
    assert str(uuid.UUID(session_id)) == session_id
    return session_id


def canonical(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def test_record_prints_the_session_id_and_spools_the_payload(sandbox: Sandbox) -> None:
    assert run_cli("init", "--yes").returncode == 0
    result = record()
    session_id = printed_id(result)
    assert "Traceback" not in result.stderr

    path = sandbox.spool / client_id(sandbox) / session_id / "usage_stats.json"
    raw = path.read_bytes()
    payload = json.loads(raw)
    # the file is exactly what a sender reads and what review shows: canonical JSON
    assert raw == canonical(payload)
    spool = Spool(sandbox.spool)
    (entry,) = [e for e in spool.entries() if e.session_id == session_id]
    assert spool.read_payload(entry) == raw

    assert payload["session_id"] == session_id
    assert payload["client_id"] == client_id(sandbox)
    assert payload["source_region"] == "aws:us-east-1"
    assert payload["destination_regions"] == ["gcp:us-central1", "azure:eastus"]
    assert payload["runtime_s"] == 12.5
    assert payload["throughput_gbps"] == 3.2
    assert "error" not in payload
    arguments = payload["arguments"]
    assert arguments["max_instances"] == 8
    assert arguments["r"] is True
    assert arguments["_command"] == "cp"
    assert arguments["_positional"] == ["<uri:s3>", "<uri:gs>"]
    for private in (b"acme", b"bucket"):
        assert private not in raw


def test_first_record_tells_and_holds(sandbox: Sandbox) -> None:
    result = record()
    session_id = printed_id(result)
    assert "consent stats review" in result.stderr  # the first notice, on stderr
    state = json.loads((sandbox.spool / client_id(sandbox) / session_id / "state.json").read_text())
    assert state["state"] == "held"


def test_error_text_is_scrubbed(sandbox: Sandbox) -> None:
    assert run_cli("init", "--review").returncode == 0
    text = "Permission denied for s3://acme-payroll/2024.csv at /home/bob/x"
    session_id = printed_id(record("--error", text))
    raw = (sandbox.spool / client_id(sandbox) / session_id / "usage_stats.json").read_bytes()
    error = json.loads(raw)["error"]
    assert error.startswith("Permission denied for <uri:s3>")
    assert "<path>" in error
    for private in (b"acme", b"payroll", b"2024.csv", b"bob", b"/home"):
        assert private not in raw


def test_host_version_is_recorded(sandbox: Sandbox) -> None:
    assert run_cli("init", "--review").returncode == 0
    session_id = printed_id(record("--host-version", "0.3.2"))
    raw = (sandbox.spool / client_id(sandbox) / session_id / "usage_stats.json").read_bytes()
    assert json.loads(raw)["host_version"] == "0.3.2"


BASE = {
    "--src": "aws:us-east-1",
    "--dst": "gcp:us-central1",
    "--runtime-s": "1",
}


def _args(**changes: str | None) -> list[str]:
    options = dict(BASE)
    options.update({f"--{k.replace('_', '-')}": v for k, v in changes.items() if v is not None})
    for key in [f"--{k.replace('_', '-')}" for k, v in changes.items() if v is None]:
        options.pop(key)
    return [item for pair in options.items() for item in pair]


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (_args(src="nowhere"), "'nowhere'"),
        (_args(dst="aws:"), "'aws:'"),
        (_args(src="mars:olympus-1"), "unknown provider"),
        (_args(runtime_s="-1"), "--runtime-s"),
        (_args(runtime_s="nan"), "--runtime-s"),
        (_args(runtime_s="inf"), "--runtime-s"),
        (_args(runtime_s="soon"), "--runtime-s"),
        ([*_args(), "--gbps", "-3"], "--gbps"),
        ([*_args(), "--gbps", "nan"], "--gbps"),
        ([*_args(), "--host-version", "1.0 /home/bob"], "--host-version"),
        ([*_args(), "--bogus"], "--bogus"),
        (_args(src=None), "--src"),
        (_args(dst=None), "--dst"),
        (_args(runtime_s=None), "--runtime-s"),
    ],
    ids=[
        "src-no-provider",
        "dst-no-region",
        "unknown-provider",
        "negative-runtime",
        "nan-runtime",
        "inf-runtime",
        "word-runtime",
        "negative-gbps",
        "nan-gbps",
        "host-version-with-path",
        "unknown-option",
        "missing-src",
        "missing-dst",
        "missing-runtime",
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    sandbox: Sandbox, args: list[str], mentions: str
) -> None:
    result = run_cli("record", *args, "--", "cp", "s3://acme/x")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert mentions in errors[0]
    assert "/home/bob" not in result.stderr
    assert payload_files(sandbox.spool) == []
    assert not sandbox.record.exists()


@pytest.mark.parametrize("how", ["env", "do_not_track", "config"])
def test_disabled_writes_and_prints_nothing(sandbox: Sandbox, how: str) -> None:
    env: dict[str, str] = {}
    if how == "env":
        env["SKYPLANE_USAGE_STATS_ENABLED"] = "0"
    elif how == "do_not_track":
        env["DO_NOT_TRACK"] = "1"
    else:
        assert run_cli("config", "set", "usage_stats", "false").returncode == 0
    result = record(env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert payload_files(sandbox.spool) == []
    if how != "config":
        assert not sandbox.record.exists()
