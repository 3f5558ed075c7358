"""The decision and session paths stay light (docs/architecture.md §1, §5).

Checked in a fresh interpreter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consent.profile import Scope
from tests.conftest import Sandbox
from tests.probes import HEAVY, imports_of


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


def test_the_scope_of_an_explicit_environment_stays_on_the_decision_path(
    sandbox: Sandbox,
) -> None:
    # every override set, so every path the Scope resolves is resolved
    env = {
        **sandbox.env,
        "SKYPLANE_USAGE_STATS_POLICY": str(sandbox.home / "policy.toml"),
        "SKYPLANE_USAGE_STATS_ENDPOINT": "https://stats.example.org/push",
        "SKYPLANE_CONFIG": "~/skyplane.ini",
    }
    probe = imports_of(
        "import consent\n"
        "from consent.profile import Scope\n"
        f"scope = Scope(environ={env!r})\n"
        "paths = [scope.spool_dir, scope.fallback_spool_dir, scope.legacy_ini_file]\n"
        f"result = consent.is_enabled(environ={env!r})"
    )
    assert probe.result is True
    lazy = ("pathlib", "typing", "dataclasses", "functools", "json", "re")
    assert _forbidden(probe.new, lazy) == []
    assert probe.foreign == []


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


# -- the host's cold path (issue 14): what recording one transfer loads ------------------------

_SESSION = """
import consent
with consent.session(["cp", "-r", "s3://acme/x", "gs://b/y", "--max-instances", "8"],
                     src="aws:us-east-1", dst="gcp:us-central1") as s:
    s.transferred(10**9)
    {inside}
result = s.session_id
"""
# Loaded only when there is a notice to show, a policy to diff, or a CLI to run.
NOT_ON_THE_SESSION_PATH = (
    "consent.notices",
    "consent.render",
    "consent.actions",
    "consent.policy",
    "consent.record",
    "dataclasses",
    "inspect",
    "typing",
    "tomllib",
    "uuid",
    "platform",
    "datetime",
    "pathlib",
    "subprocess",
    # a shared library costs its own dlopen; neither the session nor the scrubber needs it
    "math",
    # a codec looked up by name (a text-mode open with an encoding): bytes.decode("ascii")
    # and "utf-8" need none
    "encodings",
    *HEAVY,
)


def _forbidden(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m in names or m.split(".")[0] in names)


@pytest.mark.parametrize("how", ["env", "config"])
def test_a_disabled_session_loads_only_the_decision_path(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "env":
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENABLED", "0")
    else:
        sandbox.write_config({"usage_stats": False})
    decision = imports_of("import consent\nresult = consent.is_enabled()")
    assert decision.result is False
    probe = imports_of(
        _SESSION.format(inside="s.route(dst=['aws:us-west-2']); s.outcome(3)")
        + "\nresult = [s.session_id, consent.record_session(src='local', dst='local', runtime_s=1)]"
    )
    assert probe.result == [None, None]
    assert sorted(set(probe.new) - set(decision.new)) == []


@pytest.mark.parametrize("error", [False, True])
def test_an_enabled_session_loads_no_notice_policy_or_cli_code(
    sandbox: Sandbox, error: bool
) -> None:
    from consent.actions import apply_choice

    apply_choice("review", "init-flag", scope=Scope())
    inside = "s.failed(ValueError('no such bucket acme-raw'))" if error else "pass"
    first = imports_of(_SESSION.format(inside=inside))  # may build the cache
    assert first.result is not None
    probe = imports_of(_SESSION.format(inside=inside))
    assert probe.result is not None, "the probe must record a session to check its path"
    assert "Traceback" not in probe.stderr
    assert _forbidden(probe.new, NOT_ON_THE_SESSION_PATH) == []
    # a held payload starts no upload, so the spool's and the sender's modules stay out
    assert _forbidden(probe.new, ("consent.spool", "consent.upload")) == []


def test_the_guard_sees_a_notice_being_shown(sandbox: Sandbox) -> None:
    # the first session shows the first notice: then the notice code must load, and the
    # guard above would see it
    probe = imports_of(_SESSION.format(inside="pass"))
    assert probe.result is not None
    assert "consent.notices" in _forbidden(probe.new, NOT_ON_THE_SESSION_PATH)


def test_a_pending_session_loads_no_notice_policy_or_cli_code(sandbox: Sandbox) -> None:
    # The detached upload is started: the spawner's own imports are the upload
    # module's budget (bench/cold.py), but nothing of the notice or CLI path may load.
    from consent.actions import apply_choice

    apply_choice("share", "init-flag", scope=Scope())
    imports_of(_SESSION.format(inside="pass"))
    probe = imports_of(_SESSION.format(inside="pass"))
    assert probe.result is not None
    assert probe.heavy == []
    assert probe.foreign == []
    assert _forbidden(probe.new, NOT_ON_THE_SESSION_PATH) == []
    # the spawner reads the spool's files with os calls and starts the sender with
    # os.posix_spawn: neither the spool module nor subprocess loads in the host
    assert _forbidden(probe.new, ("consent.spool", "subprocess", "consent.upload.send")) == []
    assert _forbidden(probe.new, LOADED_ONLY_TO_SCRUB_TEXT) == []


# The scrubber's patterns: argv and region tags are decided without them.
LOADED_ONLY_TO_SCRUB_TEXT = (
    "re",
    "ipaddress",
    "enum",
    "functools",
    "collections",
    "consent.scrub._shapes",
    "consent.scrub.text",
)


@pytest.mark.parametrize("review", [True, False])
def test_a_session_without_an_error_loads_no_pattern_code(sandbox: Sandbox, review: bool) -> None:
    from consent.actions import apply_choice

    apply_choice("review" if review else "share", "init-flag", scope=Scope())
    imports_of(_SESSION.format(inside="pass"))  # the first notice, and the cache
    probe = imports_of(_SESSION.format(inside="pass"))
    assert probe.result is not None
    assert _forbidden(probe.new, LOADED_ONLY_TO_SCRUB_TEXT) == []


_ERROR = "s.failed(ValueError('The specified bucket does not exist: acme-payroll-prod'))"


def test_an_error_is_scrubbed_without_compiling_a_pattern(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the scrubber's cache in place, ``re`` and its imports never load.

    The cache lives where the bytecode does, so a private PYTHONPYCACHEPREFIX gives
    this test its own: the first error compiles and writes it, the second reads it.
    """
    from consent.actions import apply_choice

    apply_choice("review", "init-flag", scope=Scope())
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path / "pycache"))
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    first = imports_of(_SESSION.format(inside=_ERROR))
    assert first.result is not None
    assert "re" in first.new  # nothing cached yet: the patterns were compiled
    warm = imports_of(_SESSION.format(inside=_ERROR))
    assert warm.result is not None
    assert "consent.scrub.text" in warm.new
    assert _forbidden(warm.new, ("re", "enum", "functools", "collections", "ipaddress")) == []
    assert _forbidden(warm.new, NOT_ON_THE_SESSION_PATH) == []


def test_without_a_writable_cache_the_patterns_compile_each_time(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from consent.actions import apply_choice

    apply_choice("review", "init-flag", scope=Scope())
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path / "pycache"))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    for _ in range(2):
        probe = imports_of(_SESSION.format(inside=_ERROR))
        assert probe.result is not None
        assert "re" in probe.new
    assert not (tmp_path / "pycache").exists()


def test_a_session_that_ends_with_an_exit_status_loads_no_text_rules(sandbox: Sandbox) -> None:
    # an exit status is recorded as a number: nothing in it to scrub
    from consent.actions import apply_choice

    apply_choice("review", "init-flag", scope=Scope())
    imports_of(_SESSION.format(inside="s.outcome(3)"))
    probe = imports_of(_SESSION.format(inside="s.outcome(3)"))
    assert probe.result is not None
    assert _forbidden(probe.new, LOADED_ONLY_TO_SCRUB_TEXT) == []
