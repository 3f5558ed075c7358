"""The host API (docs/architecture.md §3.5, §3.9, §4): payload, context manager, failures.

In-process tests hold payloads (review mode) so no background sender starts; the
pending path and the import checks run in subprocesses against the sandbox's
closed endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import consent
import consent._session as session_module
import consent.scrub
from consent.actions import apply_choice, config_set
from consent.payload import dumps_json, random_uuid4
from consent.policy import Policy, load_policy
from consent.profile import AppProfile, Scope
from consent.record import Choice
from consent.scrub import MARKERS
from tests.conftest import Sandbox
from tests.probes import imports_of

ARGV = [
    "cp",
    "-r",
    "s3://acme-data/2024/payroll.csv",
    "gs://bucket-x/dst",
    "/home/alice/data",
    "--max-instances",
    "8",
    "--solver",
    "ilp",
    "--compress",
]
PRIVATE = ("acme", "payroll", "bucket-x", "alice", "/home")


@pytest.fixture(autouse=True)
def _fresh_reports() -> Iterator[None]:
    # "once per process" would otherwise hide a message behind an earlier test's, and
    # a key recorded by one test would make another's a repeat
    for memo in (consent._reported, consent._done, consent._open):
        memo.clear()
    yield
    for memo in (consent._reported, consent._done, consent._open):
        memo.clear()


def acknowledge(choice: Choice = "review") -> str:
    """Answer the consent question; "review" holds payloads, so nothing is sent."""
    return apply_choice(choice, "init-flag", scope=Scope()).record.client_id


def payload_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/usage_stats.json")) if root.is_dir() else []


def only_payload(root: Path) -> tuple[dict[str, Any], bytes, Path]:
    files = payload_files(root)
    assert len(files) == 1, files
    raw = files[0].read_bytes()
    return json.loads(raw), raw, files[0].parent


def state_of(directory: Path) -> str:
    state: str = json.loads((directory / "state.json").read_bytes())["state"]
    return state


def consent_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "boolean": lambda v: type(v) is bool,
    "string[]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "object": lambda v: isinstance(v, dict),
}


def assert_matches_policy(payload: dict[str, Any], policy: Policy, *, error: bool) -> None:
    declared = set(policy.fields)
    expected = declared if error else declared - {"error"}
    assert set(payload) == expected, (
        f"missing {expected - set(payload)}, extra {set(payload) - expected}"
    )
    for name, value in payload.items():
        spec = policy.fields[name]
        assert _TYPES[spec.type](value), f"{name}={value!r} is not a {spec.type}"


def is_uuid4(value: object) -> bool:
    try:
        parsed = uuid.UUID(str(value))
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == value


# -- the payload ----------------------------------------------------------------------------


def test_payload_fields_and_types_follow_the_policy(sandbox: Sandbox) -> None:
    client_id = acknowledge()
    with consent.session(ARGV, src="aws:us-east-1", dst=["gcp:us-central1"]) as s:
        s.transferred(10**9)
    payload, _, directory = only_payload(sandbox.spool)
    policy = load_policy(Scope().policy_path)
    assert_matches_policy(payload, policy, error=False)
    assert payload["client_id"] == client_id == directory.parent.name
    assert payload["session_id"] == s.session_id == directory.name
    assert is_uuid4(payload["session_id"])
    assert payload["schema_version"] == policy.version
    assert payload["os"] == platform.system()
    assert payload["kernel_version"] == platform.release()
    assert payload["python_version"] == platform.python_version()
    assert payload["source_region"] == "aws:us-east-1"
    assert payload["destination_regions"] == ["gcp:us-central1"]
    assert state_of(directory) == "held"


def test_error_field_is_declared_and_typed_when_present(sandbox: Sandbox) -> None:
    acknowledge()

    def transfer() -> None:
        with consent.session(ARGV, src="local", dst=["local"]) as s:
            s.transferred(1024)
            raise RuntimeError("quota exceeded")

    with pytest.raises(RuntimeError):
        transfer()
    payload, _, _ = only_payload(sandbox.spool)
    assert_matches_policy(payload, load_policy(Scope().policy_path), error=True)
    assert payload["error"] == "RuntimeError: quota exceeded"


def test_collected_at_is_utc_to_the_second(sandbox: Sandbox) -> None:
    acknowledge()
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with consent.session(src="aws:us-east-1", dst=["aws:us-west-2"]):
        pass
    after = dt.datetime.now(dt.UTC)
    payload, _, _ = only_payload(sandbox.spool)
    stamp = payload["collected_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    parsed = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert before <= parsed <= after


@pytest.mark.parametrize(
    ("src", "dst", "want_src", "want_dst"),
    [
        ("local:/home/alice/data", ["aws:us-east-1"], "local", ["aws:us-east-1"]),
        ("/home/alice/data", ["~/alice/out", "./rel/alice"], "local", ["local", "local"]),
        ("AWS:US-East-1", ["gcp:us-central1", "azure:eastus"], "aws:us-east-1",
         ["gcp:us-central1", "azure:eastus"]),
        # the host's bug is not the user's problem: an unreadable tag is sent as unknown
        ("s3://alice-bucket/key", ["nowhere"], "unknown", ["unknown"]),
    ],
)  # fmt: skip
def test_regions_are_normalized(
    sandbox: Sandbox, src: str, dst: list[str], want_src: str, want_dst: list[str]
) -> None:
    acknowledge()
    with consent.session(src=src, dst=dst):
        pass
    payload, raw, _ = only_payload(sandbox.spool)
    assert payload["source_region"] == want_src
    assert payload["destination_regions"] == want_dst
    assert b"alice" not in raw


def test_arguments_are_scrubbed(sandbox: Sandbox) -> None:
    acknowledge()
    with consent.session(ARGV, src="aws:us-east-1", dst=["gcp:us-central1"]):
        pass
    payload, raw, _ = only_payload(sandbox.spool)
    arguments = payload["arguments"]
    assert arguments["max_instances"] == 8
    assert arguments["solver"] == "ilp"
    assert arguments["compress"] is True
    # positionals (the URIs and the path) survive only as markers
    positional = arguments["_positional"]
    assert positional
    assert all(marker in MARKERS for marker in positional)
    assert "<uri:s3>" in positional
    assert "<uri:gs>" in positional
    assert "<path>" in positional
    for private in PRIVATE:
        assert private.encode() not in raw


def test_safe_values_from_the_host_are_kept(sandbox: Sandbox) -> None:
    acknowledge()
    argv = ["cp", "--cloud-mode", "spot-fleet", "--label", "spot-fleet-2"]
    with consent.session(argv, src="local", dst=["local"], safe_values={"spot-fleet"}):
        pass
    arguments = only_payload(sandbox.spool)[0]["arguments"]
    assert arguments["cloud_mode"] == "spot-fleet"
    assert arguments["label"] in MARKERS


# -- the context manager --------------------------------------------------------------------


def test_success_measures_runtime_and_derives_throughput(sandbox: Sandbox) -> None:
    acknowledge()
    nbytes = 3 * 10**9
    with consent.session(ARGV, src="aws:us-east-1", dst=["gcp:us-central1"]) as s:
        time.sleep(0.2)
        s.transferred(nbytes)
    payload, _, _ = only_payload(sandbox.spool)
    runtime = payload["runtime_s"]
    assert 0.2 <= runtime < 10
    expected = nbytes * 8 / runtime / 1e9
    # runtime_s is rounded to the millisecond, throughput to 1e-4 Gbps
    assert payload["throughput_gbps"] == pytest.approx(expected, rel=0.01)


def test_no_byte_count_means_no_throughput(sandbox: Sandbox) -> None:
    acknowledge()
    with consent.session(src="local", dst=["local"]) as s:
        s.transferred(-5)  # not a byte count: ignored, never raised on
    payload, _, _ = only_payload(sandbox.spool)
    assert "throughput_gbps" not in payload
    assert payload["runtime_s"] >= 0


def test_exception_is_recorded_scrubbed_and_reraised_unchanged(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    acknowledge()
    error = FileNotFoundError("/home/alice/secret.txt")
    opened: list[session_module.Session] = []

    def transfer() -> None:
        with consent.session(ARGV, src="aws:us-east-1", dst=["gcp:us-central1"]) as s:
            opened.append(s)
            s.transferred(10)
            raise error

    with pytest.raises(FileNotFoundError) as caught:
        transfer()
    assert caught.value is error
    assert error.args == ("/home/alice/secret.txt",)
    assert caught.value.__traceback__ is not None
    payload, raw, _ = only_payload(sandbox.spool)
    assert payload["error"].startswith("FileNotFoundError: ")
    for private in ("alice", "secret", "/home"):
        assert private.encode() not in raw
    assert opened[0].session_id == payload["session_id"]
    assert capsys.readouterr().err == ""


def test_sys_exit_zero_is_a_success_and_nonzero_an_error(sandbox: Sandbox) -> None:
    acknowledge()
    with pytest.raises(SystemExit), consent.session(src="local", dst=["local"]):
        sys.exit(0)
    with pytest.raises(SystemExit), consent.session(src="local", dst=["local"]):
        sys.exit(3)
    payloads = [json.loads(p.read_bytes()) for p in payload_files(sandbox.spool)]
    assert sorted(p.get("error", "") for p in payloads) == ["", "SystemExit: 3"]


def test_block_result_is_untouched(sandbox: Sandbox) -> None:
    # what the host's code returns from inside the block reaches its caller as it was
    acknowledge()
    result = object()
    opened: list[object] = []

    def transfer() -> object:
        with consent.session(src="local", dst=["local"]) as s:
            opened.append(s)
            return result

    assert transfer() is result
    (s,) = opened
    assert isinstance(s, consent.Session)
    assert s.session_id is not None  # the session was recorded all the same
    assert only_payload(sandbox.spool)[0]["session_id"] == s.session_id


def test_record_session_for_hosts_with_numbers(sandbox: Sandbox) -> None:
    acknowledge()
    session_id = consent.record_session(
        argv=ARGV,
        src="aws:us-east-1",
        dst=["gcp:us-central1"],
        runtime_s=4.0,
        nbytes=10**9,
        error=PermissionError("denied for s3://acme-data/x"),
        host_version="0.3.2",
    )
    payload, raw, directory = only_payload(sandbox.spool)
    assert payload["session_id"] == session_id == directory.name
    assert payload["runtime_s"] == 4.0
    assert payload["throughput_gbps"] == 2.0
    assert payload["host_version"] == "0.3.2"
    assert payload["error"].startswith("PermissionError: ")
    assert b"acme" not in raw


def test_host_version_comes_from_the_imported_host(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    acknowledge()
    fake = type(sys)("skyplane")
    fake.__version__ = "0.3.2"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "skyplane", fake)
    consent.record_session(src="local", dst=["local"], runtime_s=1)
    fake.__version__ = "0.3.2 /home/alice"  # type: ignore[attr-defined]
    consent.record_session(src="local", dst=["local"], runtime_s=1, host_version="x y")
    versions = sorted(
        json.loads(p.read_bytes())["host_version"] for p in payload_files(sandbox.spool)
    )
    assert versions == ["0.3.2", "unknown"]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("SkyPlane-9.8.7.dist-info", "9.8.7"),
        ("skyplane-1.2.egg-info", "1.2"),
        ("skyplane-1.2.3.dist-info.bak", "unknown"),  # not a metadata directory
        ("skyplanes-1.0.dist-info", "unknown"),  # another distribution
    ],
)
def test_an_installed_host_version_is_read_from_its_metadata_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str, expected: str
) -> None:
    (tmp_path / entry).mkdir()
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    monkeypatch.setattr(session_module, "_versions", {})
    assert session_module._installed_version("skyplane") == expected


def test_the_host_version_search_skips_the_standard_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listed: list[str] = []
    real = os.listdir

    def spy(path: str) -> list[str]:
        listed.append(path)
        return real(path)

    stdlib = os.path.dirname(os.__file__)
    monkeypatch.setattr(sys, "path", [stdlib, os.path.join(stdlib, "lib-dynload")])
    monkeypatch.setattr(session_module, "_versions", {})
    monkeypatch.setattr(os, "listdir", spy)
    assert session_module._installed_version("skyplane") == "unknown"
    assert listed == []


def test_first_session_tells_and_holds(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    with consent.session(src="local", dst=["local"]) as s:
        pass
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage statistics" in captured.err
    assert "consent stats review" in captured.err
    payload, _, directory = only_payload(sandbox.spool)
    assert state_of(directory) == "held"
    record = tomllib.loads(sandbox.record.read_text())
    assert record["client_id"] == payload["client_id"]
    assert s.session_id == payload["session_id"]


def test_package_attributes_are_the_functions(sandbox: Sandbox) -> None:
    # the submodule is private, so importing it cannot shadow the function
    import consent._session as module

    assert callable(consent.session)
    assert consent.session is module.session
    assert isinstance(consent.session(src="local", dst=["local"]), module.Session)
    assert consent.record_session is module.record_session
    assert {"session", "record_session"} <= set(dir(consent))


# -- disabled -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["env", "do_not_track", "config"])
def test_disabled_writes_nothing(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "env":
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENABLED", "0")
    elif how == "do_not_track":
        monkeypatch.setenv("DO_NOT_TRACK", "1")
    else:
        sandbox.write_config({"usage_stats": False})
    with consent.session(ARGV, src="aws:us-east-1", dst=["gcp:us-central1"]) as s:
        s.transferred(10)
    assert s.session_id is None
    assert consent.record_session(src="local", dst=["local"], runtime_s=1) is None
    assert payload_files(sandbox.spool) == []
    assert not sandbox.record.exists()


@pytest.mark.parametrize("how", ["config", "env"])
def test_turned_off_during_the_session(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    acknowledge()
    with consent.session(ARGV, src="aws:us-east-1", dst=["gcp:us-central1"]) as s:
        if how == "config":
            config_set("usage_stats", "false", scope=Scope())
        else:
            monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENABLED", "off")
    assert s.session_id is None
    assert payload_files(sandbox.spool) == []


def test_turned_on_during_the_session_records_nothing(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the transfer started while the user had said no: it stays unrecorded
    acknowledge()
    monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENABLED", "0")
    with consent.session(src="local", dst=["local"]) as s:
        monkeypatch.delenv("SKYPLANE_USAGE_STATS_ENABLED")
    assert s.session_id is None
    assert payload_files(sandbox.spool) == []


# -- failures never reach the host ----------------------------------------------------------


def run_block(
    raises: bool, profile: AppProfile | None = None
) -> tuple[object, session_module.Session]:
    """Run a session block that returns or raises; check and give back what the host saw."""
    kwargs: dict[str, Any] = {} if profile is None else {"profile": profile}
    error = ValueError("the host's own error")
    seen: object = None
    try:
        with consent.session(ARGV, src="aws:us-east-1", dst=["gcp:us-central1"], **kwargs) as s:
            s.transferred(10**6)
            if raises:
                raise error
            seen = "the host's result"
    except ValueError as exc:
        seen = exc
    if raises:
        assert seen is error  # the very same object, not a copy or a wrapper
    else:
        assert seen == "the host's result"
    return seen, s


def assert_one_message(err: str) -> str:
    lines = consent_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("consent: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("raises", [False, True])
def test_spool_root_is_a_file_and_fallback_is_blocked(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str], shared: Path, raises: bool
) -> None:
    acknowledge()
    sandbox.spool.write_text("not a directory")
    (shared / f"skyplane-{os.getuid()}").write_text("in the way")
    outcome, s = run_block(raises, AppProfile(shared_temp_root=shared))
    assert outcome == "the host's result" or isinstance(outcome, ValueError)
    assert s.session_id is None
    message = assert_one_message(capsys.readouterr().err)
    assert "not recorded" in message
    assert sandbox.spool.read_text() == "not a directory"


def test_spool_root_set_to_a_file_is_refused_once_never_replaced(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str], shared: Path
) -> None:
    acknowledge()
    sandbox.spool.write_text("not a directory")
    profile = AppProfile(shared_temp_root=shared)
    outcome, _ = run_block(False, profile)
    run_block(False, profile)
    assert outcome == "the host's result"
    message = assert_one_message(capsys.readouterr().err)
    assert "SKYPLANE_USAGE_STATS_DIR" in message  # an explicit root never falls back
    assert payload_files(shared) == []
    assert sandbox.spool.read_text() == "not a directory"


@pytest.mark.parametrize("raises", [False, True])
def test_record_path_is_a_directory(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str], raises: bool
) -> None:
    sandbox.record.mkdir(parents=True)
    outcome, s = run_block(raises)
    assert outcome == "the host's result" or isinstance(outcome, ValueError)
    assert s.session_id is None
    assert_one_message(capsys.readouterr().err)
    assert payload_files(sandbox.spool) == []


@pytest.mark.parametrize("raises", [False, True])
def test_broken_policy_file(
    sandbox: Sandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    raises: bool,
) -> None:
    acknowledge()
    broken = tmp_path / "policy.toml"
    broken.write_text("version = [unclosed\n")
    monkeypatch.setenv("SKYPLANE_USAGE_STATS_POLICY", str(broken))
    outcome, s = run_block(raises)
    assert outcome == "the host's result" or isinstance(outcome, ValueError)
    assert s.session_id is None
    message = assert_one_message(capsys.readouterr().err)
    assert str(broken) in message
    assert payload_files(sandbox.spool) == []


@pytest.mark.parametrize("raises", [False, True])
def test_home_config_dir_is_a_file(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str], raises: bool
) -> None:
    # Tests run as root, so a read-only HOME would still be writable: a file where
    # ~/.skyplane should be makes every read and write there fail instead.
    (sandbox.home / ".skyplane").write_text("in the way")
    outcome, s = run_block(raises)
    assert outcome == "the host's result" or isinstance(outcome, ValueError)
    assert s.session_id is None
    message = assert_one_message(capsys.readouterr().err)
    assert "usage statistics are off" in message.lower()
    assert payload_files(sandbox.spool) == []


_FULL_DISK = """
import resource, sys
import consent
# every later write of a byte fails with EFBIG, as on a full disk (SIGXFSZ is ignored
# by Python, so the write returns an error instead of killing the process)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
error = ValueError("the host's own error")
raises = sys.argv[1] == "raise"
try:
    with consent.session(["cp", "s3://acme/x", "/home/alice"], src="aws:us-east-1",
                         dst=["gcp:us-central1"]) as s:
        if raises:
            raise error
        result = "the host's result"
except ValueError as exc:
    result = "same error" if exc is error else "different error"
print(result, s.session_id)
"""


@pytest.mark.parametrize("raises", [False, True])
@pytest.mark.parametrize("home", ["acknowledged", "fresh"])
def test_full_disk(sandbox: Sandbox, home: str, raises: bool) -> None:
    if home == "acknowledged":
        acknowledge()
    proc = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, "raise" if raises else "return"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    expected = "same error" if raises else "the host's result"
    assert proc.stdout == f"{expected} None\n"
    assert_one_message(proc.stderr)
    assert payload_files(sandbox.spool) == []


# -- the session path imports only the standard library ------------------------------------

_SESSION = """
import consent
with consent.session(["cp", "-r", "s3://acme/x", "gs://b/y", "--max-instances", "8"],
                     src="aws:us-east-1", dst=["gcp:us-central1"]) as s:
    s.transferred(10**9)
result = s.session_id
"""


@pytest.mark.parametrize("home", ["steady", "fresh"])
def test_session_path_imports_only_the_standard_library(sandbox: Sandbox, home: str) -> None:
    if home == "steady":
        acknowledge("share")  # pending: the background flush is started, and checked too
    probe = imports_of(_SESSION)
    assert probe.result is not None, "the probe must record a session to check its path"
    assert "Traceback" not in probe.stderr
    assert sandbox.record.is_file()
    assert probe.heavy == []
    # tomli-w writes the consent record: only the run that creates it may load it
    allowed = [] if home == "steady" else ["tomli_w", "tomli_w._writer"]
    foreign = [name for name in probe.foreign if name not in allowed]
    assert foreign == [], f"non-stdlib modules on the session path: {foreign}"
    expected_state = "pending" if home == "steady" else "held"
    _, _, directory = only_payload(sandbox.spool)
    assert state_of(directory) in (
        (expected_state, "sent", "failed") if home == "steady" else (expected_state,)
    )


# -- the API a real transfer needs (regions late, outcome without raising, one key) -----------


def test_regions_set_inside_the_block_and_a_plain_string_is_one_destination(
    sandbox: Sandbox,
) -> None:
    acknowledge()
    with consent.session(ARGV, dst="aws:us-east-1") as s:
        s.route(src="gcp:us-central1", dst="azure:westeurope")
    payload, _, _ = only_payload(sandbox.spool)
    assert payload["source_region"] == "gcp:us-central1"
    assert payload["destination_regions"] == ["azure:westeurope"]
    consent.record_session(src="local", dst="aws:us-west-2", runtime_s=1)
    regions = [
        json.loads(p.read_bytes())["destination_regions"] for p in payload_files(sandbox.spool)
    ]
    assert ["aws:us-west-2"] in regions


def test_route_keeps_what_it_is_not_given(sandbox: Sandbox) -> None:
    acknowledge()
    with consent.session(src="aws:us-east-1", dst=["gcp:us-central1", "local"]) as s:
        s.route(dst=None)
        s.route(src=None, dst=["aws:eu-west-1"])
    payload, _, _ = only_payload(sandbox.spool)
    assert (payload["source_region"], payload["destination_regions"]) == (
        "aws:us-east-1",
        ["aws:eu-west-1"],
    )


def test_failed_marks_the_failure_without_raising(sandbox: Sandbox) -> None:
    acknowledge()
    with consent.session(src="local", dst=["local"]) as s:
        s.failed(PermissionError("denied for s3://acme-data/payroll.csv"))
    payload, raw, _ = only_payload(sandbox.spool)
    assert payload["error"].startswith("PermissionError: ")
    assert b"acme" not in raw and b"payroll" not in raw


def test_failed_with_text_is_scrubbed(sandbox: Sandbox) -> None:
    acknowledge()
    with consent.session(src="local", dst=["local"]) as s:
        s.failed("copy failed for /home/alice/data")
    payload, raw, _ = only_payload(sandbox.spool)
    assert payload["error"]
    assert b"alice" not in raw and b"/home" not in raw


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        ([("outcome", 0)], None),
        ([("outcome", 3)], "exit status 3"),
        ([("outcome", 3), ("outcome", 0)], None),
        ([("failed", "quota exceeded"), ("outcome", 1)], "quota exceeded"),
        ([("outcome", 1), ("failed", "quota exceeded")], "quota exceeded"),
    ],
)
def test_outcome_by_return_code(
    sandbox: Sandbox, calls: list[tuple[str, Any]], expected: str | None
) -> None:
    acknowledge()
    with consent.session(src="local", dst=["local"]) as s:
        for method, argument in calls:
            getattr(s, method)(argument)
    payload, _, _ = only_payload(sandbox.spool)
    assert payload.get("error") == expected


def test_an_exception_is_scrubbed_once(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    acknowledge()
    real_error, real_text = consent.scrub.scrub_error, consent.scrub.scrub_text
    errors: list[str] = []
    texts: list[str] = []

    def counting_error(exc: BaseException) -> str:
        errors.append(real_error(exc))
        return errors[-1]

    def counting_text(text: str, max_length: int = 512) -> str:
        texts.append(text)
        return real_text(text, max_length)

    monkeypatch.setattr(consent.scrub, "scrub_error", counting_error)
    monkeypatch.setattr(consent.scrub, "scrub_text", counting_text)
    with pytest.raises(OSError, match="disk full"), consent.session(src="local", dst=["local"]):
        raise OSError("disk full writing /home/alice/out")
    consent.record_session(src="local", dst="local", runtime_s=1, error=KeyError("s3://acme/x"))
    assert len(errors) == 2
    assert not set(errors) & set(texts), "a scrubbed error text was scrubbed again"
    recorded = sorted(json.loads(p.read_bytes())["error"] for p in payload_files(sandbox.spool))
    assert recorded == sorted(errors)


def test_known_flags_reach_the_scrubber(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    acknowledge()
    seen: list[object] = []
    real = consent.scrub.scrub_arguments

    def spy(argv: Any, safe_values: Any = (), known_flags: Any = ()) -> dict[str, object]:
        seen.append(tuple(known_flags))
        return real(argv, safe_values)

    monkeypatch.setattr(consent.scrub, "scrub_arguments", spy)
    with consent.session(ARGV, known_flags=("--max-instances", "--solver")):
        pass
    consent.record_session(argv=ARGV, src="local", dst="local", runtime_s=1, known_flags=["--x"])
    assert seen == [("--max-instances", "--solver"), ("--x",)]


def test_record_session_from_worker_threads(sandbox: Sandbox) -> None:
    acknowledge()
    ids: list[str | None] = []
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for _ in range(5):
            ids.append(
                consent.record_session(
                    src="aws:us-east-1", dst="gcp:us-central1", runtime_s=n + 1, nbytes=10**6
                )
            )

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 40 and None not in ids
    assert len(set(ids)) == 40
    assert {p.parent.name for p in payload_files(sandbox.spool)} == set(ids)


def test_a_tracker_thread_merges_into_the_open_session(sandbox: Sandbox) -> None:
    # Skyplane's shape: `cp` is wrapped in a session, and its tracker records the same
    # transfer from a worker thread; one payload results, with the tracker's figures
    acknowledge()
    tracker_ids: list[str | None] = []

    def tracker() -> None:
        tracker_ids.append(
            consent.record_session(
                argv=["ignored"],
                src="aws:us-east-1",
                dst="gcp:us-central1",
                runtime_s=8.0,
                nbytes=10**9,
                error="chunk failed for s3://acme-data/x",
                key="transfer-1",
            )
        )

    with consent.session(ARGV, key="transfer-1") as s:
        thread = threading.Thread(target=tracker)
        thread.start()
        thread.join()
    payload, raw, _ = only_payload(sandbox.spool)
    assert tracker_ids == [s.session_id] == [payload["session_id"]]
    assert payload["source_region"] == "aws:us-east-1"
    assert payload["destination_regions"] == ["gcp:us-central1"]
    assert payload["runtime_s"] == 8.0
    assert payload["throughput_gbps"] == 1.0
    assert payload["arguments"]["_command"] == "cp"  # the wrapper's argv, not the tracker's
    assert payload["error"] and b"acme" not in raw


def test_a_repeat_after_the_payload_is_written_is_ignored(sandbox: Sandbox) -> None:
    acknowledge()
    with consent.session(src="local", dst="local", key="k") as s:
        pass
    again = consent.record_session(src="aws:us-east-1", dst="local", runtime_s=1, key="k")
    assert again == s.session_id is not None
    with consent.session(src="local", dst="local", key="k") as s2:
        pass
    assert s2.session_id == s.session_id
    assert len(payload_files(sandbox.spool)) == 1
    # other keys, and no key, are other transfers
    consent.record_session(src="local", dst="local", runtime_s=1, key="other")
    consent.record_session(src="local", dst="local", runtime_s=1)
    assert len(payload_files(sandbox.spool)) == 3


def test_the_tracker_first_then_the_wrapper(sandbox: Sandbox) -> None:
    acknowledge()
    first = consent.record_session(src="aws:us-east-1", dst="local", runtime_s=2, key="t")
    with consent.session(ARGV, key="t") as s:
        pass
    assert s.session_id == first is not None
    payload, _, _ = only_payload(sandbox.spool)
    assert payload["source_region"] == "aws:us-east-1"


def test_nested_sessions_with_one_key_give_one_payload(sandbox: Sandbox) -> None:
    acknowledge()
    with (
        consent.session(ARGV, key="n") as outer,
        consent.session(src="local", dst="local", key="n") as inner,
    ):
        inner.route(src="aws:us-east-1", dst="gcp:us-central1")
        inner.transferred(10**6)
    payload, _, _ = only_payload(sandbox.spool)
    assert inner.session_id == outer.session_id == payload["session_id"]
    assert payload["source_region"] == "aws:us-east-1"
    # an inner wrapper that knows nothing of the regions keeps the outer's
    with (
        consent.session(src="aws:us-east-1", dst="gcp:us-central1", key="m"),
        consent.session(key="m") as bare,
    ):
        bare.outcome(2)
    by_id = {json.loads(p.read_bytes())["session_id"]: p for p in payload_files(sandbox.spool)}
    second = json.loads(by_id[bare.session_id].read_bytes())
    assert (second["source_region"], second["destination_regions"]) == (
        "aws:us-east-1",
        ["gcp:us-central1"],
    )
    assert second["error"] == "exit status 2"


def test_a_key_is_not_taken_while_collection_is_off(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    acknowledge()
    monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENABLED", "0")
    assert consent.record_session(src="local", dst="local", runtime_s=1, key="off") is None
    monkeypatch.delenv("SKYPLANE_USAGE_STATS_ENABLED")
    assert consent.record_session(src="local", dst="local", runtime_s=1, key="off") is not None
    assert len(payload_files(sandbox.spool)) == 1


# -- the cache of what was acknowledged -------------------------------------------------------


def test_the_cache_follows_the_record(sandbox: Sandbox) -> None:
    acknowledge()
    with consent.session(src="local", dst="local"):
        pass
    cache = sandbox.record.parent / "consent-cache.json"
    assert cache.is_file()
    # the record is replaced (a user who deleted it, or another tool): a new client id
    sandbox.record.unlink()
    with consent.session(src="local", dst="local") as s:
        pass
    record = tomllib.loads(sandbox.record.read_text())
    by_id = {json.loads(p.read_bytes())["session_id"]: p for p in payload_files(sandbox.spool)}
    assert json.loads(by_id[s.session_id].read_bytes())["client_id"] == record["client_id"]


def test_a_damaged_cache_is_ignored(sandbox: Sandbox) -> None:
    client_id = acknowledge()
    cache = sandbox.record.parent / "consent-cache.json"
    for text in ("{broken", "[]", '{"format": 1}', '{"format": 1, "policy": 3, "record": 4}'):
        cache.write_text(text)
        with consent.session(src="local", dst="local") as s:
            pass
        assert s.session_id is not None
    payloads = [json.loads(p.read_bytes()) for p in payload_files(sandbox.spool)]
    assert {p["client_id"] for p in payloads} == {client_id}


def test_a_changed_policy_is_noticed_through_the_cache(
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    acknowledge()
    with consent.session(src="local", dst="local"):
        pass
    assert (sandbox.record.parent / "consent-cache.json").is_file()
    policy_file = tmp_path / "policy.toml"
    text = load_policy(Scope().policy_path).path.read_text()
    policy_file.write_text(text)
    monkeypatch.setenv("SKYPLANE_USAGE_STATS_POLICY", str(policy_file))
    with consent.session(src="local", dst="local"):
        pass
    capsys.readouterr()
    # edited in place, same path: a new field must be noticed and withheld
    policy_file.write_text(
        text.replace("version = ", "version = 1", 1)
        + '\n[fields.newfield]\ntype = "string"\ncategory = "system"\ndescription = "new"\n'
    )
    with consent.session(src="local", dst="local") as s:
        pass
    assert "newfield" in capsys.readouterr().err
    entry = next(p for p in payload_files(sandbox.spool) if p.parent.name == s.session_id)
    assert "newfield" in json.loads((entry.parent / "state.json").read_bytes())["withheld"]


# -- the payload's JSON without `json` -------------------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_dumps_json_is_json_dumps(value: object) -> None:
    assert dumps_json(value) == json.dumps(value, ensure_ascii=False)
    assert dumps_json(value, ensure_ascii=True) == json.dumps(value)
    assert dumps_json(value, compact=True) == json.dumps(
        value, ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )


def test_dumps_json_refuses_what_json_refuses() -> None:
    for bad in ({"x": {1, 2}}, {"x": object()}, {"x": b"bytes"}):
        with pytest.raises(TypeError):
            json.dumps(bad)
        with pytest.raises(TypeError):
            dumps_json(bad)


def test_random_uuid4_is_a_uuid4() -> None:
    ids = {random_uuid4() for _ in range(200)}
    assert len(ids) == 200
    assert all(is_uuid4(value) for value in ids)


@given(
    number=st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**400), max_value=10**400)
)
def test_is_finite_agrees_with_math_isfinite(number: float) -> None:
    import math

    from consent.payload import is_finite

    try:
        expected = math.isfinite(number)
    except OverflowError:  # an int too large for a float is still a finite number
        expected = True
    assert is_finite(number) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, -0.5, True, "3"])
def test_a_figure_that_is_not_a_finite_non_negative_number_is_not_recorded(value: object) -> None:
    from consent._session import _non_negative

    assert _non_negative(value) is None


@pytest.mark.parametrize("value", [0, 0.0, 3, 2.5, 10**20])
def test_a_finite_non_negative_figure_is_recorded_as_a_float(value: float) -> None:
    from consent._session import _non_negative

    assert _non_negative(value) == float(value)


# -- the collector during a recording (docs/architecture.md §5) ------------------------------

_COLLECTOR_PROBE = """
import gc, sys
{setup}
seen = {{}}

class Watch:
    # notes the collector's state as each module of the recording path is imported
    def find_spec(self, name, path=None, target=None):
        if name.startswith("consent.") and name not in seen:
            seen[name] = gc.isenabled()
        return None

sys.meta_path.insert(0, Watch())
import consent
import consent.config  # imported by the decision, before any recording
seen.clear()
before = gc.get_stats()[0]["collections"]
with consent.session(["cp", "-r", "s3://a/b", "gs://c/d"], src="aws:us-east-1") as s:
    s.failed(ValueError("The specified bucket does not exist: acme-payroll-prod"))
young = gc.get_stats()[0]["collections"] - before
print(repr([s.session_id is not None, seen, gc.isenabled(), young]))
"""


def _collector_probe(tmp_path: Path, setup: str = "") -> list[Any]:
    import ast

    # a warm scrubber cache of the probe's own, as an installed package has one
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        PYTHONPATH=str(Path(consent.__file__).parent.parent),
        PYTHONPYCACHEPREFIX=str(tmp_path / "pycache"),
    )
    code = _COLLECTOR_PROBE.format(setup=setup)
    for _ in range(2):  # the first run writes the caches
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout
    result: list[Any] = ast.literal_eval(out.strip().splitlines()[-1])
    assert result[0], "the probe must record a session"
    return result


def test_the_recording_path_is_imported_with_the_collector_paused(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    acknowledge()
    _, seen, collecting, _ = _collector_probe(tmp_path)
    for name in ("consent._session", "consent.payload", "consent.scrub.text"):
        assert seen.get(name) is False, (name, seen)
    assert collecting  # resumed after


def test_a_host_that_has_the_collector_off_keeps_it_off(sandbox: Sandbox, tmp_path: Path) -> None:
    acknowledge()
    _, _, collecting, _ = _collector_probe(tmp_path, setup="gc.disable()")
    assert collecting is False


def test_a_later_recording_leaves_the_collector_alone(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    acknowledge()
    consent.record_session(src="local", dst=["local"], runtime_s=1, error="first")
    touched: list[str] = []
    monkeypatch.setattr(gc, "disable", lambda: touched.append("disable"))
    monkeypatch.setattr(gc, "enable", lambda: touched.append("enable"))
    with consent.session(ARGV, src="aws:us-east-1", dst="gcp:us-central1") as s:
        s.failed(ValueError("again"))
    assert s.session_id is not None
    assert touched == []  # everything was imported already: nothing to pause
