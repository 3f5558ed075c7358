"""The decision path is standard library only (DESIGN §1, §5), checked in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import Sandbox

HEAVY = ("typer", "rich", "questionary", "prompt_toolkit", "httpx", "click")

_PROBE = """
import json, sys
before = set(sys.modules)
{body}
after = set(sys.modules)
print(json.dumps({{"new": sorted(after - before), "result": result}}))
"""


def _probe(body: str) -> dict[str, Any]:
    code = _PROBE.format(body=body)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _top(name: str) -> str:
    return name.split(".")[0]


def _setup_home(sandbox: Sandbox, kind: str) -> None:
    if kind == "config-json":
        sandbox.write_config(
            {"aws_enabled": True, "usage_stats": True, "usage_stats_review": False}
        )
    elif kind == "legacy-ini":
        legacy = sandbox.home / ".skyplane" / "config"
        legacy.parent.mkdir(parents=True)
        legacy.write_text("[flags]\nusage_stats = False\n")


@pytest.mark.parametrize("home", ["empty", "config-json", "legacy-ini"])
def test_decision_path_is_stdlib_only(sandbox: Sandbox, home: str) -> None:
    _setup_home(sandbox, home)
    data = _probe("import consent\nresult = consent.is_enabled()")
    expected = {"empty": True, "config-json": True, "legacy-ini": False}[home]
    assert data["result"] is expected, "the probe must exercise the case it names"
    new: list[str] = data["new"]
    heavy = sorted(name for name in new if _top(name) in HEAVY)
    assert heavy == []
    foreign = sorted(
        name
        for name in new
        if _top(name) not in sys.stdlib_module_names and _top(name) != "consent"
    )
    assert foreign == [], f"non-stdlib modules on the decision path: {foreign}"


def test_decide_reasons_are_stdlib_only(sandbox: Sandbox) -> None:
    sandbox.write_config("{broken")
    data = _probe(
        "import consent\nd = consent.decide()\nresult = [d.enabled, d.source, list(d.warnings)]"
    )
    assert data["result"][:2] == [False, "invalid_config"]
    assert all(_top(n) in sys.stdlib_module_names or _top(n) == "consent" for n in data["new"])


def test_cli_import_is_light() -> None:
    data = _probe("import consent.cli\nresult = None")
    lazy = ("rich", "questionary", "prompt_toolkit", "httpx")
    eager = sorted(name for name in data["new"] if _top(name) in lazy)
    assert eager == [], f"`import consent.cli` imports {eager} eagerly"


def test_probe_sees_third_party_imports() -> None:
    # the probe itself must be able to fail: a heavy import is visible to it
    data = _probe("import typer\nresult = None")
    assert "typer" in data["new"]
    assert any(_top(n) not in sys.stdlib_module_names for n in data["new"])
