"""Odd input: non-UTF-8 and huge argv, odd Unicode in the switch and in config values,
config files with odd (but valid) JSON, and a HOME that does not exist.

Linux refuses a single argv string over MAX_ARG_STRLEN (128 KiB) at ``execve``, so
a 1 MiB argument reaches ``consent record`` as nine 128 KiB arguments; a single
1 MiB string is given to ``record_session`` in-process.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

import consent
from consent.actions import apply_choice
from consent.profile import Scope
from tests.conftest import Sandbox
from tests.faults.support import (
    RECORD_ARGS,
    Arg,
    assert_clear_error,
    assert_no_traceback,
    block_background_flush,
    consent_argv,
    consent_lines,
    python_argv,
    run,
    run_host,
    scan_spool,
    session_ids,
    snapshot_files,
    spool_payloads,
)

MAX_ARG = 131071  # MAX_ARG_STRLEN less the terminating NUL
SECRETS = (b"alice", b"acme-private", b"AKIAIOSFODNN7EXAMPLE", b"hunter2", b"ghp_")


def assert_clean_payload(raw: bytes) -> dict[str, object]:
    """Strict UTF-8 (no smuggled surrogates), small, and free of every planted secret."""
    text = raw.decode("utf-8")  # strict: json.loads(bytes) would let surrogates pass
    payload = json.loads(text)
    assert isinstance(payload, dict)
    assert len(raw) < 8192, len(raw)
    for secret in SECRETS:
        assert secret not in raw, secret
    assert "\x1b" not in text
    return payload


@pytest.fixture
def review_mode(sandbox: Sandbox) -> None:
    """Acknowledged, review mode: payloads are held, so no detached sender starts."""
    apply_choice("review", "init-flag", scope=Scope())


# -- argv -----------------------------------------------------------------------------------


def test_record_cli_with_non_utf8_and_1mib_argv(sandbox: Sandbox, review_mode: None) -> None:
    huge = [b"s3://acme-private/" + bytes([65 + i]) * (MAX_ARG - 18) for i in range(9)]
    assert sum(len(arg) for arg in huge) > 1 << 20
    argv: list[Arg] = [
        *consent_argv("record", "--src", "aws:us-east-1", "--dst", "gcp:us-central1"),
        "--runtime-s",
        "2.5",
        "--error",
        b"open(/home/alice/\xff\xfe.txt) failed: token=hunter2",
        "--",
        "cp",
        b"\xff\xfe/home/alice/\x80data",
        b"--key=\xffAKIAIOSFODNN7EXAMPLE",
        b"--name=\xe2\x80\xaehunter2",  # a right-to-left override, then the secret
        *huge,
    ]
    result = run(argv)
    assert result.returncode == 0, result.describe()
    assert_no_traceback(result)
    [sid] = session_ids(result.stdout)
    scan = scan_spool(sandbox.spool)
    assert scan.ids("held") == {sid}
    payload = assert_clean_payload(scan.payloads[sid])
    assert "error" in payload

    review = run(consent_argv("stats", "review", "--json"))
    assert review.returncode == 0, review.describe()
    assert [item["session_id"] for item in review.json()] == [sid]
    detail = run(consent_argv("stats", "review", "--session", sid))
    assert detail.returncode == 0, detail.describe()


def test_record_session_with_1mib_and_surrogate_argv(
    sandbox: Sandbox, review_mode: None, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "cp",
        "x" * (1 << 20),
        "--flag=" + "y" * (1 << 20),
        os.fsdecode(b"s3://acme-private/\xff\xfe"),  # surrogateescape, as argv arrives
        "--token",
        "ghp_" + "a" * 36,
        "\u202egnp.exe",
        "\U0001f680",
        "\x07\x1b[31mred",
        "--name=\u200fhunter2",
    ]
    error = os.fsdecode(b"failed on /home/alice/\xff: password=hunter2")
    # CPU time, not wall time: what a huge argv would cost in scrubbing, which the
    # other processes on a loaded machine do not inflate
    start = time.process_time()
    sid = consent.record_session(
        argv=argv, src="aws:us-east-1", dst=["gcp:us-central1"], runtime_s=1.0, error=error
    )
    assert time.process_time() - start < 1.0  # the host is not held up by a huge argv
    assert sid is not None, capfd.readouterr().err
    payload = assert_clean_payload(scan_spool(sandbox.spool).payloads[sid])
    assert "error" in payload

    with (
        pytest.raises(RuntimeError) as raised,
        consent.session(argv=argv, src="local", dst=["local"]),
    ):
        raise RuntimeError("z" * (1 << 20))
    assert raised.value.args == ("z" * (1 << 20),)  # re-raised unchanged
    assert "Traceback" not in capfd.readouterr().err
    assert len(scan_spool(sandbox.spool).states) == 2


@pytest.mark.parametrize(
    "args",
    [
        ("--src", b"aws:us-east-1\xff", "--dst", "gcp:us-central1", "--runtime-s", "1"),
        ("--src", "aws:us-east-1", "--dst", "gcp:\u202eus-central1", "--runtime-s", "1"),
        ("--src", "aws:us-east-1", "--dst", "gcp:us-central1", "--runtime-s", "nan"),
        ("--src", "local", "--dst", "local", "--runtime-s", "1", "--host-version", b"\xff1.0"),
        ("--src", "local", "--dst", "local", "--runtime-s", "1", "--gbps", "-inf"),
    ],
    ids=["src-bytes", "dst-rtl", "nan", "version-bytes", "gbps-inf"],
)
def test_record_cli_rejects_odd_values(
    sandbox: Sandbox, review_mode: None, args: tuple[Arg, ...]
) -> None:
    before = snapshot_files(sandbox.home)
    result = run(consent_argv("record", *args, "--", "cp"))
    assert_clear_error(result, 2)
    assert result.stdout == ""
    assert scan_spool(sandbox.spool).states == {}
    assert snapshot_files(sandbox.home) == before


# -- the on/off switch ------------------------------------------------------------------------

ODD_SWITCHES = {
    "rtl-mark": "\u200fyes",
    "zero-width": "1\u200b",
    "bom": "\ufeffon",
    "emoji": "\U0001f44d",
    "escape": "\x1b[31mon\x1b[0m",
    "fullwidth": "\uff39\uff25\uff33",
    "homoglyph": "tru\u0435",
    "combining": "y\u0301es",
    "surrogates": os.fsdecode(b"\xff\xfe"),
}


@pytest.mark.parametrize("value", list(ODD_SWITCHES.values()), ids=list(ODD_SWITCHES))
def test_odd_switch_fails_closed(sandbox: Sandbox, value: str) -> None:
    apply_choice("share", "init-flag", scope=Scope())
    env = {"SKYPLANE_USAGE_STATS_ENABLED": value}
    status = run(consent_argv("stats", "status", "--json"), env=env)
    assert status.returncode == 0, status.describe()
    assert_no_traceback(status)
    data = status.json()
    assert (data["enabled"], data["source"]) == (False, "env")
    assert any("SKYPLANE_USAGE_STATS_ENABLED" in w for w in data["warnings"]), data
    human = run(consent_argv("stats", "status"), env=env)
    assert human.returncode == 0, human.describe()
    assert "\x1b" not in human.stderr + human.stdout  # the value is shown escaped

    check = run(python_argv("import consent; print(consent.is_enabled())"), env=env)
    assert check.stdout.strip() == "False", check.describe()
    host = run_host(env=env)
    assert host.ids == [None, None, None]
    assert host.enabled is False
    assert len(consent_lines(host.run.stderr)) == 1, host.run.describe()
    assert scan_spool(sandbox.spool).states == {}


CONTROL_PADDED = {"fs-us": "\x1c1\x1f", "rs": "\x1eon", "nel": "yes\x85", "gs": "\x1dtrue"}


@pytest.mark.parametrize("value", list(CONTROL_PADDED.values()), ids=list(CONTROL_PADDED))
def test_control_padded_switch_fails_closed(sandbox: Sandbox, value: str) -> None:
    apply_choice("dont-share", "init-flag", scope=Scope())
    before = sandbox.config.read_bytes()
    env = {"SKYPLANE_USAGE_STATS_ENABLED": value}
    check = run(python_argv("import consent; print(consent.is_enabled())"), env=env)
    assert check.stdout.strip() == "False", check.describe()
    stored = run(consent_argv("config", "set", "usage_stats", value))
    assert_clear_error(stored, 2)
    assert sandbox.config.read_bytes() == before


# -- config values ------------------------------------------------------------------------------

ODD_VALUES: dict[str, tuple[str, Arg]] = {
    "rtl-mark": ("usage_stats", "yes\u200f"),
    "emoji": ("usage_stats", "\U0001f44d"),
    "bytes": ("usage_stats", b"\xff\xfe"),
    "homoglyph": ("usage_stats", "tru\u0435"),
    "escape": ("usage_stats", "\x1b[31mtrue"),
    "review-rtl": ("usage_stats_review", "\u202eeurt"),
    "endpoint-http": ("usage_stats_endpoint", "http://collector.example.org/\U0001f680"),
    "extras-scheme": ("usage_stats_extra_endpoints", "ftp://\u202e.example.org/x"),
}


@pytest.mark.parametrize("key_value", list(ODD_VALUES.values()), ids=list(ODD_VALUES))
def test_config_set_rejects_odd_values_unchanged(
    sandbox: Sandbox, key_value: tuple[str, Arg]
) -> None:
    sandbox.write_config({"host": "\u202eowned", "usage_stats": True})
    before = snapshot_files(sandbox.home)
    key, value = key_value
    result = run(consent_argv("config", "set", key, value))
    message = assert_clear_error(result, 2)
    assert key in message
    assert "\x1b" not in result.stderr
    assert snapshot_files(sandbox.home) == before


BAD_HOSTS: dict[str, Arg] = {
    "bidi-override": "https://exa\u202emple.org/push",
    "surrogate": b"https://a\xff.example.org/push",
    "long-label": "https://" + "a" * 64 + ".example.org/push",
    "space": "https://ex ample.org/push",
}


@pytest.mark.parametrize("url", list(BAD_HOSTS.values()), ids=list(BAD_HOSTS))
def test_config_set_rejects_invalid_endpoint_hosts(sandbox: Sandbox, url: Arg) -> None:
    sandbox.write_config({"usage_stats": True})
    before = snapshot_files(sandbox.home)
    result = run(consent_argv("config", "set", "usage_stats_endpoint", url))
    assert_clear_error(result, 2)
    assert snapshot_files(sandbox.home) == before


def pending_payload(sandbox: Sandbox) -> str:
    apply_choice("share", "init-flag", scope=Scope())
    [(entry, _)] = spool_payloads(1)
    block_background_flush()
    return entry.session_id


@pytest.mark.parametrize("url", list(BAD_HOSTS.values())[:1], ids=list(BAD_HOSTS)[:1])
def test_send_to_invalid_endpoint_host_loses_nothing(sandbox: Sandbox, url: str) -> None:
    sid = pending_payload(sandbox)
    result = run(consent_argv("stats", "send"), env={"SKYPLANE_USAGE_STATS_ENDPOINT": url})
    assert result.returncode != 0, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert scan_spool(sandbox.spool).states == {sid: "pending"}


def test_send_to_invalid_endpoint_host_is_a_clear_error(sandbox: Sandbox) -> None:
    pending_payload(sandbox)
    url = BAD_HOSTS["bidi-override"]
    assert isinstance(url, str)
    result = run(consent_argv("stats", "send"), env={"SKYPLANE_USAGE_STATS_ENDPOINT": url})
    assert_clear_error(result, 2)


ODD_FOREIGN: dict[str, object] = {
    "rtl": "\u202eabc\u200f",
    "emoji": "\U0001f680\u200d\U0001f525",
    "controls": "\u0000\u001b[31m\u007f",
    "bom": "\ufeff",
    "nonchar": "\uffff\U0010ffff",
    "deep": [[[[{"k": "\u2028\u2029"}]]]],
}


@pytest.mark.parametrize("args", [("config", "set", "usage_stats", "false"), ("init", "--no")])
def test_odd_foreign_values_survive_a_write(sandbox: Sandbox, args: tuple[str, ...]) -> None:
    sandbox.write_config(json.dumps({**ODD_FOREIGN, "usage_stats": True}))
    result = run(consent_argv(*args))
    assert result.returncode == 0, result.describe()
    after = json.loads(sandbox.config.read_bytes())
    assert after == {**ODD_FOREIGN, "usage_stats": False}  # opting out keeps no review key


@pytest.mark.parametrize("args", [("config", "set", "usage_stats", "false"), ("init", "--no")])
def test_lone_surrogate_in_foreign_key_does_not_block_opt_out(
    sandbox: Sandbox, args: tuple[str, ...]
) -> None:
    sandbox.write_config('{"host": "\\ud800x", "usage_stats": true}')
    result = run(consent_argv(*args))
    assert result.returncode == 0, result.describe()
    after = json.loads(sandbox.config.read_bytes())
    assert after["host"] == "\ud800x"
    assert after["usage_stats"] is False


# -- a HOME that does not exist -------------------------------------------------------------------


def test_home_that_does_not_exist(sandbox: Sandbox, tmp_path: Path) -> None:
    home = tmp_path / "nonexistent" / "x"
    env = {"HOME": str(home)}
    status = run(consent_argv("stats", "status", "--json"), env=env)
    assert status.returncode == 0, status.describe()
    assert (status.json()["enabled"], status.json()["source"]) == (True, "default")
    for args in (("stats", "review", "--json"), ("config", "list", "--json"), ("policy", "diff")):
        result = run(consent_argv(*args), env=env)
        assert result.returncode == 0, result.describe()
        assert_no_traceback(result)
    check = run(python_argv("import consent; print(consent.is_enabled())"), env=env)
    assert check.stdout.strip() == "True", check.describe()
    assert not (tmp_path / "nonexistent").exists()  # reading created nothing

    init = run(consent_argv("init", "--yes"), env=env)
    if init.returncode == 0:
        config = json.loads((home / ".skyplane" / "config.json").read_bytes())
        assert config == {"usage_stats": True, "usage_stats_review": False}
        assert (home / ".skyplane" / "consent.toml").exists()
    else:
        assert_clear_error(init, 1)
    host = run_host(env=env)
    assert all(host.ids), host.run.describe()


def test_home_below_a_file(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    env = {"HOME": str(tmp_path / "a-file" / "home")}
    status = run(consent_argv("stats", "status", "--json"), env=env)
    assert status.returncode == 0, status.describe()
    assert (status.json()["enabled"], status.json()["source"]) == (False, "invalid_config")
    message = assert_clear_error(run(consent_argv("init", "--yes"), env=env), 1)
    assert re.search(r"[Nn]ot a directory", message), message
    host = run_host(env=env)
    assert host.ids == [None, None, None]
    assert len(consent_lines(host.run.stderr)) == 1, host.run.describe()
    record = run(consent_argv(*RECORD_ARGS), env=env)
    assert record.returncode == 0, record.describe()  # collection is off: nothing to do
    assert record.stdout == ""
