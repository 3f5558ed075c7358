"""Policy changes are told once, withheld until accepted; the first notice holds its run."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import consent
from tests.conftest import Result, Sandbox, run_cli

SHIPPED = Path(consent.__file__).parent / "policies" / "skyplane.toml"
CHANGE_TITLE = "The usage-statistics policy changed (version 4)"
FIRST_TITLE = "Skyplane anonymous usage statistics"

Fields = dict[str, dict[str, str]]


def _toml_value(value: object) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool | int):
        return json.dumps(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_policy(tmp_path: Path, edit: Callable[[Fields], None]) -> Path:
    """The shipped policy as version 4, with ``edit`` applied to its fields."""
    data: dict[str, Any] = tomllib.loads(SHIPPED.read_text())
    data["version"] = 4
    fields: Fields = data.pop("fields")
    edit(fields)
    lines = [f"{key} = {_toml_value(value)}" for key, value in data.items()]
    for name, spec in fields.items():
        lines += ["", f"[fields.{name}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in spec.items()]
    path = tmp_path / "policy-v4.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def add_gpu_count(fields: Fields) -> None:
    fields["gpu_count"] = {
        "type": "integer",
        "category": "system",
        "description": "How many GPUs the machine has, to plan GPU-side compression.",
    }


def kernel_to_performance(fields: Fields) -> None:
    fields["kernel_version"]["category"] = "performance"


def kernel_to_integer(fields: Fields) -> None:
    fields["kernel_version"]["type"] = "integer"


def drop_throughput(fields: Fields) -> None:
    del fields["throughput_gbps"]


def reword_runtime(fields: Fields) -> None:
    fields["runtime_s"]["description"] = "Wall-clock seconds from start to end of the transfer."


def record(*extra: str, env: dict[str, str] | None = None) -> Result:
    result = run_cli(
        "record",
        "--src",
        "aws:us-east-1",
        "--dst",
        "gcp:us-central1",
        "--runtime-s",
        "2",
        *extra,
        "--",
        "cp",
        "a",
        "b",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result


def stored(sandbox: Sandbox, result: Result) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state file and the payload of the session ``result`` printed the id of."""
    session_id = result.stdout.strip()
    (directory,) = sandbox.spool.glob(f"*/{session_id}")
    state: dict[str, Any] = json.loads((directory / "state.json").read_text())
    payload: dict[str, Any] = json.loads((directory / "usage_stats.json").read_text())
    return state, payload


def ack_of(sandbox: Sandbox) -> dict[str, Any]:
    ack: dict[str, Any] = tomllib.loads(sandbox.record.read_text())["acknowledgement"]
    return ack


def status(env: dict[str, str]) -> dict[str, Any]:
    result = run_cli("stats", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = result.json()
    return data


# -- the first notice ---------------------------------------------------------------------


def test_first_recorded_session_shows_the_notice_and_is_held(sandbox: Sandbox) -> None:
    first = record()
    assert FIRST_TITLE in first.stderr
    assert "Nothing is sent from this run" in first.stderr
    assert "consent stats off" in first.stderr
    state, payload = stored(sandbox, first)
    assert state["state"] == "held"
    assert payload["source_region"] == "aws:us-east-1"
    ack = ack_of(sandbox)
    assert (ack["via"], ack["version"]) == ("notice", 3)

    second = record()
    assert FIRST_TITLE not in second.stderr
    assert second.stderr == ""
    state, payload = stored(sandbox, second)
    assert state["state"] == "pending"
    assert state["withheld"] == []
    assert payload["destination_regions"] == ["gcp:us-central1"]
    assert not {"a", "b"} & set(payload["arguments"].get("_positional", []))


def test_the_first_notice_is_not_repeated_by_status(sandbox: Sandbox) -> None:
    record()
    result = run_cli("stats", "status")
    assert result.returncode == 0
    assert FIRST_TITLE not in result.stderr
    assert status({})["counts"]["held"] == 1


def test_nothing_is_told_or_written_while_off(sandbox: Sandbox) -> None:
    assert run_cli("init", "--no").returncode == 0
    result = record()
    assert (result.stdout, result.stderr) == ("", "")
    assert not list(sandbox.spool.glob("*/*/state.json"))


# -- schema changes -----------------------------------------------------------------------


def test_an_added_field_is_told_once_and_withheld_until_accepted(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    assert run_cli("init", "--yes").returncode == 0
    env = {"SKYPLANE_USAGE_STATS_POLICY": str(write_policy(tmp_path, add_gpu_count))}

    told = run_cli("stats", "status", env=env)
    assert told.returncode == 0
    assert CHANGE_TITLE in told.stderr
    assert "New, not sent until you accept: gpu_count" in told.stderr
    assert "consent policy accept" in told.stderr
    again = run_cli("stats", "status", env=env)
    assert CHANGE_TITLE not in again.stderr

    session = record(env=env)
    assert CHANGE_TITLE not in session.stderr
    state, payload = stored(sandbox, session)
    assert state["withheld"] == ["gpu_count"]
    assert "gpu_count" not in payload
    assert payload["schema_version"] == 4
    policy = status(env)["policy"]
    assert (policy["acknowledged_version"], policy["version"]) == (3, 4)
    assert policy["up_to_date"] is False

    diff = run_cli("policy", "diff", "--json", env=env).json()
    assert diff["added"] == ["gpu_count"]
    assert (diff["removed"], diff["changed"], diff["up_to_date"]) == ([], [], False)
    shown = run_cli("policy", "diff", env=env)
    assert "Changes from version 3 (acknowledged) to version 4" in shown.stdout
    assert "gpu_count" in shown.stdout

    accepted = run_cli("policy", "accept", env=env)
    assert accepted.returncode == 0
    assert "Accepted policy version 4" in accepted.stdout
    ack = ack_of(sandbox)
    assert (ack["via"], ack["version"], ack["decision"]) == ("policy-accept", 4, "share")
    assert status(env)["policy"]["up_to_date"] is True
    assert run_cli("policy", "accept", env=env).stdout.startswith("Policy version 4 was already")

    later = record(env=env)
    state, _ = stored(sandbox, later)
    assert state["withheld"] == []


@pytest.mark.parametrize(
    ("edit", "now"),
    [(kernel_to_performance, "string/performance"), (kernel_to_integer, "integer/system")],
    ids=["category", "type"],
)
def test_a_changed_field_is_withheld_until_accepted(
    sandbox: Sandbox, tmp_path: Path, edit: Callable[[Fields], None], now: str
) -> None:
    assert run_cli("init", "--yes").returncode == 0
    _, payload = stored(sandbox, record())
    assert "kernel_version" in payload
    env = {"SKYPLANE_USAGE_STATS_POLICY": str(write_policy(tmp_path, edit))}

    # the first collecting command after the change tells; the next one does not
    first = record(env=env)
    assert CHANGE_TITLE in first.stderr
    assert f"kernel_version: was string/system, now {now}" in first.stderr
    state, payload = stored(sandbox, first)
    assert state["withheld"] == ["kernel_version"]
    assert "kernel_version" not in payload
    assert {"os", "python_version", "source_region", "runtime_s"} <= set(payload)
    second = record(env=env)
    assert CHANGE_TITLE not in second.stderr
    assert CHANGE_TITLE not in run_cli("stats", "status", env=env).stderr

    (changed,) = run_cli("policy", "diff", "--json", env=env).json()["changed"]
    new_type, new_category = now.split("/")
    assert changed == {
        "field": "kernel_version",
        "from": {"type": "string", "category": "system"},
        "to": {"type": new_type, "category": new_category},
    }

    assert run_cli("policy", "accept", env=env).returncode == 0
    state, payload = stored(sandbox, record(env=env))
    assert state["withheld"] == []
    if new_type == "string":
        assert "kernel_version" in payload  # collected again, now that it is acknowledged
    else:
        assert "kernel_version" not in payload  # a value of the wrong type is never sent


def test_a_removed_field_is_dropped_at_once(sandbox: Sandbox, tmp_path: Path) -> None:
    assert run_cli("init", "--yes").returncode == 0
    _, payload = stored(sandbox, record("--gbps", "1.5"))
    assert payload["throughput_gbps"] == 1.5
    env = {"SKYPLANE_USAGE_STATS_POLICY": str(write_policy(tmp_path, drop_throughput))}

    session = record("--gbps", "1.5", env=env)
    assert "No longer collected: throughput_gbps" in session.stderr
    state, payload = stored(sandbox, session)
    assert "throughput_gbps" not in payload
    assert state["withheld"] == []
    diff = run_cli("policy", "diff", "--json", env=env).json()
    assert (diff["added"], diff["removed"], diff["changed"]) == ([], ["throughput_gbps"], [])


def test_a_description_only_change_is_one_line_and_needs_no_acceptance(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    assert run_cli("init", "--review").returncode == 0
    env = {"SKYPLANE_USAGE_STATS_POLICY": str(write_policy(tmp_path, reword_runtime))}

    told = run_cli("stats", "status", env=env)
    assert told.returncode == 0
    assert "Usage-statistics policy updated to version 4" in told.stderr
    notice = [line for line in told.stderr.splitlines() if "Only descriptions" in line]
    assert len(notice) == 1
    assert "nothing new is collected" in notice[0]
    assert "policy accept" not in told.stderr

    policy = status(env)["policy"]
    assert policy["up_to_date"] is True
    assert policy["acknowledged_version"] == 4
    ack = ack_of(sandbox)
    # acknowledged for the user, who keeps their own decision
    assert (ack["via"], ack["version"], ack["decision"]) == ("notice", 4, "review")
    assert "Only descriptions" not in run_cli("stats", "status", env=env).stderr

    session = record(env=env)
    assert session.stderr == ""
    state, _ = stored(sandbox, session)
    assert (state["state"], state["withheld"]) == ("held", [])
    assert "Nothing changed" in run_cli("policy", "diff", env=env).stdout
