"""Every hint is a command that works in the state it is given in.

Each test puts the tool in a state, reads the hint the user is shown, runs exactly
the hinted steps, and checks that they change what the hint says they change.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import Sandbox, run_cli

WIDE = {"COLUMNS": "200"}  # no hint is wrapped, so it can be read back whole


def flat(text: str) -> str:
    """The output without panel borders and line breaks, as one line of words."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def status(env: dict[str, str]) -> dict[str, Any]:
    result = run_cli("stats", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = result.json()
    return data


def status_hint(env: dict[str, str]) -> tuple[str, str]:
    """("on" or "off", the steps) from the "Turn them on/off" row of `stats status`."""
    result = run_cli("stats", "status", env={**env, **WIDE})
    assert result.returncode == 0, result.stderr
    found = re.search(r"Turn them (on|off) (.*?) Every field, and why", flat(result.stdout))
    assert found, result.stdout
    return found.group(1), found.group(2)


def run_steps(hint: str, env: dict[str, str]) -> dict[str, str]:
    """Run each step of ``hint`` ("a, then b") as a user would; the environment after."""
    env = dict(env)
    steps = hint.split(" (or ")[0].strip().split(", then ")
    for step in steps:
        words = shlex.split(step)
        if words[0] == "unset":
            env.pop(words[1], None)
        elif words[0] == "consent":
            result = run_cli(*words[1:], env=env)
            assert result.returncode == 0, (step, result.stderr)
        else:
            subprocess.run(words, check=True, env=env)
    return env


STATES: dict[str, tuple[Any, dict[str, str], list[str]]] = {
    # name: (config.json, environment, the hinted steps)
    "default": (None, {}, ["consent stats off"]),
    "config-off": ({"usage_stats": False}, {}, ["consent stats on"]),
    "env-on": (None, {"SKYPLANE_USAGE_STATS_ENABLED": "1"}, ["unset", "consent stats off"]),
    "env-off": (None, {"SKYPLANE_USAGE_STATS_ENABLED": "0"}, ["unset"]),
    "env-off-config-off": (
        {"usage_stats": False},
        {"SKYPLANE_USAGE_STATS_ENABLED": "0"},
        ["unset", "consent stats on"],
    ),
    "do-not-track": (None, {"DO_NOT_TRACK": "1"}, ["unset DO_NOT_TRACK"]),
    "do-not-track-config-off": (
        {"usage_stats": False},
        {"DO_NOT_TRACK": "1"},
        ["unset DO_NOT_TRACK", "consent stats on"],
    ),
    "broken-config": ("{not json", {}, ["mv", "consent stats on"]),
}


@pytest.mark.parametrize("name", list(STATES))
def test_the_status_hint_works(sandbox: Sandbox, name: str) -> None:
    config, extra, expected = STATES[name]
    if config is not None:
        sandbox.write_config(config)
    env = {**sandbox.env, **extra}
    before = status(env)["enabled"]
    direction, hint = status_hint(env)
    assert direction == ("off" if before else "on")
    steps = hint.split(" (or ")[0].strip().split(", then ")
    assert len(steps) == len(expected), hint
    for step, start in zip(steps, expected, strict=True):
        assert step.startswith(start), hint
    # the variable or file that decides is named
    if extra:
        assert next(iter(extra)) in hint
    if name == "broken-config":
        assert str(sandbox.config) in hint
    after = run_steps(hint, env)
    assert status(after)["enabled"] is (not before), hint


def test_the_legacy_flag_hint_works(sandbox: Sandbox) -> None:
    ini = sandbox.home / ".skyplane" / "config"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text("[flags]\nusage_stats = false\n")
    env = dict(sandbox.env)
    assert status(env)["source"] == "legacy_config"
    direction, hint = status_hint(env)
    assert (direction, hint) == ("on", "consent stats on")
    assert status(run_steps(hint, env))["enabled"] is True


def test_the_first_notice_hint_turns_collection_off(sandbox: Sandbox) -> None:
    result = run_cli("init", env=WIDE)  # no terminal: the notice, and the default stays
    found = re.search(r"Turn this off: (.*?) Choose", flat(result.stderr))
    assert found, result.stderr
    env = run_steps(found.group(1), dict(sandbox.env))
    assert status(env)["enabled"] is False


# -- payload hints ---------------------------------------------------------------------------


def record() -> str:
    result = run_cli(
        "record", "--src", "aws:us-east-1", "--dst", "gcp:us-central1", "--runtime-s", "3"
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def detail(session_id: str, env: dict[str, str] | None = None) -> str:
    result = run_cli("stats", "review", session_id[:8], env={**(env or {}), **WIDE})
    assert result.returncode == 0, result.stderr
    return flat(result.stdout)


def next_step(text: str) -> str:
    found = re.search(r" Next (.*?)( \(|   | Client id)", text)
    assert found, text
    return found.group(1).strip()


def states() -> dict[str, str]:
    listing = run_cli("stats", "review", "--json").json()
    return {item["session_id"]: item["state"] for item in listing}


def test_a_payload_held_on_the_first_run_says_why_and_the_approval_works(
    sandbox: Sandbox,
) -> None:
    session = record()  # the first run shows the notice and holds its payload
    text = detail(session)
    assert "held because this is the run that showed the first notice" in text
    step = next_step(text)
    assert step == f"consent stats review --approve {session[:8]}"
    result = run_cli(
        *shlex.split(step)[1:], env={"SKYPLANE_USAGE_STATS_ENDPOINT": "http://127.0.0.1:9/"}
    )
    assert result.returncode == 0, result.stderr
    assert states()[session] == "pending"


def test_a_payload_held_in_review_mode_says_why(sandbox: Sandbox) -> None:
    assert run_cli("init", "--review").returncode == 0
    session = record()
    text = detail(session)
    assert "held because review mode is on" in text
    assert next_step(text) == f"consent stats review --approve {session[:8]}"


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    server = HTTPServer()
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()


def test_a_pending_payload_after_a_failed_send_says_retry_and_the_retry_works(
    sandbox: Sandbox, receiver: HTTPServer
) -> None:
    assert run_cli("init", "--yes").returncode == 0
    session = record()
    failed = run_cli("stats", "send")  # the sandbox's endpoint is a closed port
    assert failed.returncode == 1
    shown = flat(run_cli("stats", "status", env=WIDE).stderr)
    assert "1 payload stays pending" in shown
    assert "Retry now with `consent stats send`" in shown
    text = detail(session)
    assert "the last upload failed" in text
    step = next_step(text)
    assert step == "consent stats send"

    receiver.expect_request("/push", method="POST").respond_with_data("", status=204)
    env = {"SKYPLANE_USAGE_STATS_ENDPOINT": receiver.url_for("/push")}
    assert run_cli(*shlex.split(step)[1:], env=env).returncode == 0
    assert states()[session] == "sent"
    # the warning went with the payload it was about
    again = run_cli("stats", "status", env={**env, **WIDE})
    assert "stay pending" not in again.stderr
    assert "stays pending" not in again.stderr


def test_a_failed_payload_says_why_and_the_discard_works(
    sandbox: Sandbox, receiver: HTTPServer
) -> None:
    assert run_cli("init", "--yes").returncode == 0
    session = record()
    receiver.expect_request("/push", method="POST").respond_with_data("no thanks", status=400)
    env = {"SKYPLANE_USAGE_STATS_ENDPOINT": receiver.url_for("/push")}
    assert run_cli("stats", "send", env=env).returncode == 1
    text = detail(session, env)
    assert "failed: " in text
    assert "HTTP 400" in text
    step = next_step(text)
    assert step == f"consent stats review --discard {session[:8]}"
    assert run_cli(*shlex.split(step)[1:], env=env).returncode == 0
    assert session not in states()


def test_everything_dropped_leaves_no_stale_pending_warning(sandbox: Sandbox) -> None:
    assert run_cli("init", "--yes").returncode == 0
    record()
    assert run_cli("stats", "send").returncode == 1
    assert "stays pending" in run_cli("stats", "status").stderr
    assert run_cli("init", "--no").returncode == 0  # drops every unsent payload
    assert run_cli("init", "--yes").returncode == 0
    shown = run_cli("stats", "status").stderr
    assert "pending" not in shown, shown


@pytest.mark.parametrize(
    ("command", "pattern"),
    [
        (("stats", "send"), r"Turn them on: (.*)$"),
        (("stats", "review"), r"Turn it on (.*?) Files"),
    ],
    ids=["send", "review"],
)
def test_the_off_hints_of_send_and_review_work(
    sandbox: Sandbox, command: tuple[str, ...], pattern: str
) -> None:
    sandbox.write_config({"usage_stats": False})
    env = {**sandbox.env, "DO_NOT_TRACK": "1"}
    result = run_cli(*command, env={**env, **WIDE})
    found = re.search(pattern, flat(result.stdout + result.stderr))
    assert found, result.stdout + result.stderr
    hint = found.group(1).strip()
    assert hint == "unset DO_NOT_TRACK, then consent stats on"
    assert status(run_steps(hint, env))["enabled"] is True


# -- a mounted host: every command a hint names exists there -----------------------------------

HOST = """
import typer

from consent.cli import mount
from consent.profile import AppProfile

host = typer.Typer(name="sky", no_args_is_help=True)
own_config = typer.Typer(name="config", help="The host's own config.", no_args_is_help=True)


@own_config.command("set")
def config_set(key: str, value: str) -> None:
    if apps.owns(key):
        apps.settings(key, value)


@own_config.command("get")
def config_get(key: str) -> None:
    if apps.owns(key):
        apps.settings(key)


@host.command("init")
def init(non_interactive: bool = typer.Option(False, "--non-interactive", "-y")) -> None:
    apps.init(non_interactive=non_interactive)


host.add_typer(own_config, name="config")
apps = mount(host, AppProfile(cli_name="sky"))
host(prog_name="sky")
"""

HOST_STATES: dict[str, tuple[Any, dict[str, str]]] = {
    "default": (None, {}),
    "config-off": ({"usage_stats": False}, {}),
    "env-on": (None, {"SKYPLANE_USAGE_STATS_ENABLED": "1"}),
    "do-not-track": ({"usage_stats": False}, {"DO_NOT_TRACK": "1"}),
    "broken-config": ("{not json", {}),
    "invalid-value": ({"usage_stats_review": "maybe", "usage_stats_endpoint": 3}, {}),
    "review-mode": ({"usage_stats": True, "usage_stats_review": True}, {}),
}


def hinted_commands(text: str, cli: str) -> set[tuple[str, ...]]:
    """The command words (options and placeholders left off) of every `cli ...` in ``text``."""
    found = set()
    for match in re.finditer(rf"(?<![\w/.-]){cli} ((?:[a-z][a-z_-]*\s?)+)", flat(text)):
        words = tuple(match.group(1).split())
        found.add(words[:2] if words[0] in ("stats", "policy", "config") else words[:1])
    return found


@pytest.mark.parametrize("name", list(HOST_STATES))
def test_every_command_a_hint_names_exists_for_a_mounted_host(
    sandbox: Sandbox, tmp_path: Any, name: str
) -> None:
    import sys

    host = tmp_path / "sky.py"
    host.write_text(HOST)
    config, extra = HOST_STATES[name]
    if config is not None:
        sandbox.write_config(config)
    env = {**sandbox.env, **extra, **WIDE}

    def sky(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(host), *args], env=env, capture_output=True, text=True, timeout=60
        )

    seen = ""
    for args in (
        ("init", "-y"),
        ("stats", "status"),
        ("stats", "review"),
        ("stats", "send"),
        ("policy", "show"),
        ("stats", "off"),
        ("init", "-y"),
        ("stats", "on"),
    ):
        result = sky(*args)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        seen += result.stdout + result.stderr
        assert "consent " not in flat(result.stdout + result.stderr), (args, result.stderr)
    commands = hinted_commands(seen, "sky")
    assert ("stats", "on") in commands or ("stats", "off") in commands, seen
    for words in commands:
        assert sky(*words, "--help").returncode == 0, (words, seen)


@pytest.mark.parametrize("cli", ["consent", "sky"])
def test_the_invalid_value_hint_works_for_the_cli_and_a_host(
    sandbox: Sandbox, tmp_path: Any, cli: str
) -> None:
    import sys

    host = tmp_path / "sky.py"
    host.write_text(HOST)
    sandbox.write_config({"usage_stats_review": "maybe"})
    env = {**sandbox.env, **WIDE}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        program = ["-m", "consent"] if cli == "consent" else [str(host)]
        return subprocess.run(
            [sys.executable, *program, *args], env=env, capture_output=True, text=True, timeout=60
        )

    warned = flat(run("stats", "status").stderr)
    found = re.search(rf"Fix it with `({cli} config set usage_stats_review) \.\.\.`", warned)
    assert found, warned
    fixed = run(*shlex.split(found.group(1))[1:], "false")
    assert fixed.returncode == 0, fixed.stderr
    assert "usage_stats_review" not in run("stats", "status").stderr
