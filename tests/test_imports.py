"""The decision path is standard library only (DESIGN §1, §5), checked in a fresh interpreter."""

from __future__ import annotations

import pytest

from tests.conftest import Sandbox
from tests.probes import imports_of


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
    probe = imports_of("import consent\nresult = consent.is_enabled()")
    expected = {"empty": True, "config-json": True, "legacy-ini": False}[home]
    assert probe.result is expected, "the probe must exercise the case it names"
    assert probe.heavy == []
    assert probe.foreign == [], f"non-stdlib modules on the decision path: {probe.foreign}"


def test_decide_reasons_are_stdlib_only(sandbox: Sandbox) -> None:
    sandbox.write_config("{broken")
    probe = imports_of(
        "import consent\nd = consent.decide()\nresult = [d.enabled, d.source, list(d.warnings)]"
    )
    assert probe.result[:2] == [False, "invalid_config"]
    assert probe.foreign == []


def test_cli_import_is_light() -> None:
    probe = imports_of("import consent.cli")
    lazy = ("rich", "questionary", "prompt_toolkit", "httpx")
    eager = sorted(name for name in probe.new if name.split(".")[0] in lazy)
    assert eager == [], f"`import consent.cli` imports {eager} eagerly"


def test_probe_sees_third_party_imports() -> None:
    # the probe itself must be able to fail: a heavy import is visible to it
    probe = imports_of("import typer")
    assert "typer" in probe.new
    assert probe.heavy
    assert probe.foreign
