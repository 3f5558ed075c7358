"""The CLI reference in docs/ is generated from the Typer app and must be current."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_cli_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_cli_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_cli_reference_names_every_command() -> None:
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for command in (
        "consent init",
        "consent record",
        "consent config get",
        "consent config set",
        "consent config unset",
        "consent config list",
        "consent stats status",
        "consent stats review",
        "consent stats send",
        "consent stats forget",
        "consent policy show",
        "consent policy diff",
        "consent policy accept",
    ):
        assert f"# `{command}`" in text, command


def test_shell_completion_completes_commands() -> None:
    """Typer's completion, as `consent --install-completion` wires it into bash."""
    import os

    env = {
        **os.environ,
        "_CONSENT_COMPLETE": "complete_bash",
        "COMP_WORDS": "consent stats re",
        "COMP_CWORD": "2",
    }
    result = subprocess.run(
        [sys.executable, "-c", "from consent.cli import main; main()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["review"], result
