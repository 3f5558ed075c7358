"""The real Skyplane 0.3.2, with integrations/skyplane/skyplane-0.3.2.patch applied.

A venv holds ``skyplane==0.3.2`` and the wheel built from this tree; the tests drive
the real ``skyplane`` command and Skyplane's own ``UsageClient`` in it.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pexpect
import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import Result, Sandbox
from tests.integration.skyplane_venv import SkyplaneVenv, skyplane_venv

pytestmark = pytest.mark.integration

ARGS = {  # the shape cli_transfer.run_transfer passes
    "cmd": "cp",
    "recursive": True,
    "debug": False,
    "multipart": True,
    "confirm": False,
    "max_instances": 1,
    "max_connections": 32,
    "solver": "direct",
}


@pytest.fixture(scope="session")
def venv() -> SkyplaneVenv:
    return skyplane_venv()


def _env(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    # no PYTHONPATH: only the installed wheel may be imported, not this tree
    env = {k: v for k, v in sandbox.env.items() if k not in ("PYTHONPATH", "CI")}
    env.update(extra)
    return env


def _run(argv: list[str], sandbox: Sandbox, extra: dict[str, str]) -> Result:
    proc = subprocess.run(
        argv,
        env=_env(sandbox, **extra),
        cwd=sandbox.home,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def skyplane(venv: SkyplaneVenv, sandbox: Sandbox, *args: str, **extra: str) -> Result:
    return _run([str(venv.skyplane), *args], sandbox, extra)


def python(venv: SkyplaneVenv, sandbox: Sandbox, code: str, **extra: str) -> Result:
    return _run([str(venv.python), "-c", textwrap.dedent(code)], sandbox, extra)


def review(venv: SkyplaneVenv, sandbox: Sandbox) -> list[dict[str, Any]]:
    result = skyplane(venv, sandbox, "stats", "review", "--json")
    assert result.returncode == 0, result.stderr
    items: list[dict[str, Any]] = json.loads(result.stdout)
    return items


def log_transfer(venv: SkyplaneVenv, sandbox: Sandbox) -> Result:
    """A finished transfer, reported as skyplane/api/tracker.py does."""
    return python(
        venv,
        sandbox,
        f"""
        import time
        from skyplane.api.usage import UsageClient

        start = int(time.time() * 1000) - 12_000
        UsageClient.log_transfer(
            {{"total_runtime_s": 12.0, "throughput_gbits": 3.5}},
            {ARGS!r},
            "aws:us-east-1",
            ["gcp:us-central1-a"],
            start,
        )
        """,
    )


def test_the_venv_keeps_the_hosts_typer_and_is_consistent(venv: SkyplaneVenv) -> None:
    report = venv.report
    assert report["typer_after"] == report["typer_before"], report
    assert "No broken requirements found" in report["pip_check"], report
    assert report["wheel"].startswith("skyplane_consent-")


def _spawn_init(venv: SkyplaneVenv, sandbox: Sandbox) -> pexpect.spawn:
    env = _env(sandbox, PROMPT_TOOLKIT_NO_CPR="1")
    env.pop("COLUMNS", None)
    return pexpect.spawn(
        str(venv.skyplane),
        ["init"],
        env=env,
        cwd=str(sandbox.home),
        dimensions=(24, 80),
        encoding="utf-8",
        timeout=60,
    )


def test_init_asks_after_skyplanes_own_questions(venv: SkyplaneVenv, sandbox: Sandbox) -> None:
    child = _spawn_init(venv, sandbox)
    transcript = ""
    answered = 0
    while True:
        index = child.expect([r"\[Y/n\]:", r"\[y/N\]:", "Esc cancels", pexpect.EOF])
        transcript += child.before + (child.after if isinstance(child.after, str) else "")
        if index in (0, 1):
            child.sendline("n")  # no cloud is configured
            answered += 1
        elif index == 2:
            assert answered >= 2, transcript  # Skyplane's own questions came first
            assert "Config file saved to" in transcript
            child.send("\x1b[B")  # down: "Yes, but let me review each upload first"
            child.expect_exact("review each upload first")
            child.send("\r")
        else:
            break
    child.close()
    assert child.exitstatus == 0, transcript
    assert "Sharing after your review" in transcript
    assert "skyplane stats review" in transcript  # the hint names Skyplane's own command
    assert "To disable performance logging info" not in transcript
    config = json.loads(sandbox.config.read_text())
    assert (config["usage_stats"], config["usage_stats_review"]) == (True, True)
    # Skyplane's own INI file exists now, and holds the same answer
    assert "usage_stats = True" in (sandbox.home / ".skyplane" / "config").read_text()

    again = skyplane(venv, sandbox, "init", "-y", "--disable-config-cloudflare")
    assert again.returncode == 0, again.stderr
    lines = [line for line in again.stdout.splitlines() if "skyplane stats" in line]
    assert lines == [
        "Review mode: payloads wait for skyplane stats review. Stop: skyplane stats off"
    ]
    assert "usage statistics" not in again.stderr.lower()


def test_a_transfer_is_one_scrubbed_payload_and_config_set_false_stops_it(
    venv: SkyplaneVenv, sandbox: Sandbox
) -> None:
    assert skyplane(venv, sandbox, "init", "-y", "--disable-config-cloudflare").returncode == 0
    assert skyplane(venv, sandbox, "stats", "on").returncode == 0

    assert log_transfer(venv, sandbox).returncode == 0
    # a failed transfer: two destinations' monitor threads both report, dst as a plain str
    failed = python(
        venv,
        sandbox,
        f"""
        import threading, time
        from skyplane.api.usage import UsageClient

        start = int(time.time() * 1000)
        error = Exception("GET s3://acme-payroll/2024/q1.csv from 10.1.2.3 failed")
        threads = [
            threading.Thread(
                target=UsageClient.log_exception,
                args=("monitor transfer", error, {ARGS!r}, "aws:us-east-1", dst, start),
            )
            for dst in ("gcp:us-central1-a", "azure:eastus")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        """,
    )
    assert failed.returncode == 0, failed.stderr

    items = review(venv, sandbox)
    assert len(items) == 2, items
    by_error = {bool(item["payload"].get("error")): item["payload"] for item in items}
    ok, bad = by_error[False], by_error[True]
    assert ok["source_region"] == "aws:us-east-1"
    assert ok["destination_regions"] == ["gcp:us-central1-a"]
    assert ok["host_version"] == "0.3.2"
    assert ok["throughput_gbps"] == pytest.approx(3.5)
    assert len(bad["destination_regions"]) == 1  # a plain str is one destination
    raw = json.dumps(bad)
    for secret in ("acme-payroll", "q1.csv", "10.1.2.3"):
        assert secret not in raw
    # nothing in Skyplane's old format
    assert not Path("/tmp/skyplane/usage").exists() or not any(
        Path("/tmp/skyplane/usage").rglob("usage_stats.json")
    )

    off = skyplane(venv, sandbox, "config", "set", "usage_stats", "false")
    assert off.returncode == 0, off.stderr
    assert "usage_stats = False" in (sandbox.home / ".skyplane" / "config").read_text()
    assert json.loads(sandbox.config.read_text())["usage_stats"] is False
    assert log_transfer(venv, sandbox).returncode == 0
    assert review(venv, sandbox) == []  # the opt-out dropped the unsent ones; nothing new
    status = json.loads(skyplane(venv, sandbox, "stats", "status", "--json").stdout)
    assert (status["enabled"], status["source"]) == (False, "config")

    # Skyplane's own keys still go through Skyplane's own config command
    own = skyplane(venv, sandbox, "config", "set", "max_instances", "4")
    assert own.returncode == 0, own.stderr
    ini = (sandbox.home / ".skyplane" / "config").read_text()
    assert "max_instances = 4" in ini and "usage_stats = False" in ini
    got = skyplane(venv, sandbox, "config", "get", "usage_stats")
    assert "false" in got.stdout
    bad_value = skyplane(venv, sandbox, "config", "set", "usage_stats", "maybe")
    assert bad_value.returncode == 2
    assert "Traceback" not in bad_value.stderr


def test_the_cli_session_and_the_tracker_make_one_payload(
    venv: SkyplaneVenv, sandbox: Sandbox
) -> None:
    assert skyplane(venv, sandbox, "stats", "on").returncode == 0
    result = python(
        venv,
        sandbox,
        f"""
        import sys, threading, time
        import typer
        from skyplane.api import usage
        from skyplane.api.usage import UsageClient

        @usage.records_transfer
        def cp(
            src: str,
            dst: str,
            recursive: bool = typer.Option(False, "--recursive", "-r"),
        ):
            usage.route("aws:us-east-1", "gcp:us-central1-a")  # known mid-command
            start = int(time.time() * 1000)
            worker = threading.Thread(
                target=UsageClient.log_transfer,
                args=({{"total_runtime_s": 2.0, "throughput_gbits": 1.0}}, {ARGS!r},
                      "aws:us-east-1", ["gcp:us-central1-a"], start),
            )
            worker.start()
            worker.join()
            return 1  # Skyplane reports this failure by its return code

        sys.argv = ["skyplane", "cp", "s3://acme-payroll/x", "gs://acme-copy/y", "-r"]
        cp("s3://acme-payroll/x", "gs://acme-copy/y", True)
        """,
    )
    assert result.returncode == 0, result.stderr
    (item,) = review(venv, sandbox)
    payload = item["payload"]
    assert payload["source_region"] == "aws:us-east-1"
    assert payload["destination_regions"] == ["gcp:us-central1-a"]
    assert "exit status 1" in payload["error"]
    assert "acme" not in json.dumps(payload)


def test_stats_and_policy_commands(venv: SkyplaneVenv, sandbox: Sandbox) -> None:
    for args in (
        ("stats", "status"),
        ("policy", "show"),
        ("policy", "diff"),
        ("policy", "accept"),
        ("stats", "off"),
        ("stats", "on"),
        ("stats", "send"),
        ("stats", "forget", "--yes"),
    ):
        result = skyplane(venv, sandbox, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert "`consent " not in result.stdout + result.stderr, args
    assert "stats" in skyplane(venv, sandbox, "--help").stdout


def test_stats_send_to_a_loopback_receiver(
    venv: SkyplaneVenv, sandbox: Sandbox, httpserver: HTTPServer
) -> None:
    assert skyplane(venv, sandbox, "stats", "on").returncode == 0
    assert log_transfer(venv, sandbox).returncode == 0
    (item,) = review(venv, sandbox)
    # the background sender tried the closed endpoint; `stats send` waits for its lock
    httpserver.expect_request("/push", method="POST").respond_with_data("", status=204)
    sent = skyplane(
        venv, sandbox, "stats", "send", SKYPLANE_USAGE_STATS_ENDPOINT=httpserver.url_for("/push")
    )
    assert sent.returncode == 0, sent.stderr
    assert len(httpserver.log) == 1
    body = httpserver.log[0][0].get_data(as_text=True)
    assert item["session_id"] in body
    (after,) = review(venv, sandbox)
    assert after["state"] == "sent"


def test_the_trackers_own_argument_shape_keeps_its_words(
    venv: SkyplaneVenv, sandbox: Sandbox
) -> None:
    """skyplane/api/tracker.py reports job classes and one value per job, comma-joined."""
    assert skyplane(venv, sandbox, "stats", "on").returncode == 0
    result = python(
        venv,
        sandbox,
        """
        import time
        from skyplane.api.usage import UsageClient

        args = {"cmd": "CopyJob,SyncJob", "recursive": "True,False", "multipart": True}
        UsageClient.log_transfer(
            {"dst_region": "gcp:us-central1-a", "total_runtime_s": 3.2, "throughput_gbits": 1.5},
            args,
            "aws:us-east-1",
            ["gcp:us-central1-a", "azure:eastus"],
            int(time.time() * 1000),
        )
        """,
    )
    assert result.returncode == 0, result.stderr
    (item,) = review(venv, sandbox)
    payload = item["payload"]
    assert payload["arguments"] == {
        "cmd": ["CopyJob", "SyncJob"],
        "recursive": [True, False],
        "multipart": True,
    }
    assert payload["destination_regions"] == ["gcp:us-central1-a", "azure:eastus"]
    assert payload["runtime_s"] == pytest.approx(3.2)
