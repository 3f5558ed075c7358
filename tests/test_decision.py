"""The decision matrix of docs/architecture.md §3.2, in-process and through the real CLI.

Every case writes real files under the sandbox HOME; nothing is mocked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import consent
from consent import Decision, decide
from consent.config import parse_switch
from tests.conftest import Sandbox, run_cli

TRUE_WORDS = ("1", "true", "yes", "on", "TRUE", "On", "YES", "tRuE")
FALSE_WORDS = ("0", "false", "no", "off", "FALSE", "Off", "NO")
ENV = "SKYPLANE_USAGE_STATS_ENABLED"
SOURCES = {"env", "do_not_track", "config", "legacy_config", "invalid_config", "default"}


def _env(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    """A minimal environ for ``decide``: only HOME and what the case adds."""
    return {"HOME": str(sandbox.home), **extra}


def _legacy_ini(sandbox: Sandbox, text: str) -> Path:
    path = sandbox.home / ".skyplane" / "config"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- 1. the environment switch ---------------------------------------------------------------


@pytest.mark.parametrize("word", TRUE_WORDS)
def test_env_true_words_enable(sandbox: Sandbox, word: str) -> None:
    sandbox.write_config({"usage_stats": False})  # env beats config
    decision = decide(environ=_env(sandbox, **{ENV: word}))
    assert decision == Decision(True, "env", False, ())


@pytest.mark.parametrize("word", FALSE_WORDS)
def test_env_false_words_disable(sandbox: Sandbox, word: str) -> None:
    sandbox.write_config({"usage_stats": True})
    decision = decide(environ=_env(sandbox, **{ENV: word}))
    assert decision == Decision(False, "env", False, ())


@pytest.mark.parametrize("bad", ["maybe", "2", "enable", "y", "tru", "-1"])
def test_env_bad_word_disables_with_warning(sandbox: Sandbox, bad: str) -> None:
    decision = decide(environ=_env(sandbox, **{ENV: bad}))
    assert decision.enabled is False
    assert decision.source == "env"
    assert len(decision.warnings) == 1
    assert repr(bad) in decision.warnings[0]
    assert ENV in decision.warnings[0]


def test_env_bad_word_beats_config_true(sandbox: Sandbox) -> None:
    sandbox.write_config({"usage_stats": True})
    decision = decide(environ=_env(sandbox, **{ENV: "sure"}))
    assert (decision.enabled, decision.source) == (False, "env")


def test_env_beats_do_not_track(sandbox: Sandbox) -> None:
    decision = decide(environ=_env(sandbox, **{ENV: "yes", "DO_NOT_TRACK": "1"}))
    assert (decision.enabled, decision.source) == (True, "env")


# -- 2. DO_NOT_TRACK -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "anything", "false", "00"])
def test_do_not_track_disables(sandbox: Sandbox, value: str) -> None:
    decision = decide(environ=_env(sandbox, DO_NOT_TRACK=value))
    assert decision == Decision(False, "do_not_track", False, ())


@pytest.mark.parametrize("value", ["", "0"])
def test_do_not_track_empty_or_zero_does_not_decide(sandbox: Sandbox, value: str) -> None:
    assert decide(environ=_env(sandbox, DO_NOT_TRACK=value)).source == "default"
    sandbox.write_config({"usage_stats": False})
    decision = decide(environ=_env(sandbox, DO_NOT_TRACK=value))
    assert (decision.enabled, decision.source) == (False, "config")


def test_do_not_track_beats_config_true(sandbox: Sandbox) -> None:
    sandbox.write_config({"usage_stats": True})
    decision = decide(environ=_env(sandbox, DO_NOT_TRACK="1"))
    assert (decision.enabled, decision.source) == (False, "do_not_track")


def test_do_not_track_beats_corrupt_config(sandbox: Sandbox) -> None:
    sandbox.write_config("{not json")
    decision = decide(environ=_env(sandbox, DO_NOT_TRACK="1"))
    assert (decision.enabled, decision.source) == (False, "do_not_track")


# -- 3. config.json --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False])
def test_config_boolean_decides(sandbox: Sandbox, value: bool) -> None:
    sandbox.write_config({"other": 1, "usage_stats": value})
    assert decide(environ=_env(sandbox)) == Decision(value, "config", False, ())


CORRUPT_CONFIGS = {
    "bad-json": "{usage_stats: true",
    "json-list": "[true]",
    "json-string": '"usage_stats"',
    "string-value": '{"usage_stats": "yes"}',
    "int-value": '{"usage_stats": 1}',
    "null-value": '{"usage_stats": null}',
    "empty-file": "",
}


@pytest.mark.parametrize("text", CORRUPT_CONFIGS.values(), ids=CORRUPT_CONFIGS.keys())
def test_corrupt_config_fails_closed_with_warning(sandbox: Sandbox, text: str) -> None:
    sandbox.write_config(text)
    decision = decide(environ=_env(sandbox))
    assert decision.enabled is False
    assert decision.source == "invalid_config"
    assert decision.warnings, "a corrupt config must come with a warning"
    warning = " ".join(decision.warnings)
    assert str(sandbox.config) in warning
    # the fix: either the command to run or what to do with the file
    assert "consent config set usage_stats" in warning or "delete it" in warning


def test_corrupt_config_beats_legacy_ini(sandbox: Sandbox) -> None:
    sandbox.write_config("{broken")
    _legacy_ini(sandbox, "[flags]\nusage_stats = True\n")
    decision = decide(environ=_env(sandbox))
    assert (decision.enabled, decision.source) == (False, "invalid_config")


def test_corrupt_config_is_never_modified_by_deciding(sandbox: Sandbox) -> None:
    sandbox.write_config("{broken")
    before = sandbox.config.read_bytes()
    decide(environ=_env(sandbox))
    consent.is_enabled(environ=_env(sandbox))
    assert sandbox.config.read_bytes() == before


# -- legacy INI (Skyplane 0.3.x) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "enabled"),
    [
        ("[flags]\nusage_stats = False\n", False),
        ("[flags]\nusage_stats = True\n", True),
        ("[flags]\nusage_stats = false\naws_enabled = True\n", False),
        ("[aws]\nregion = x\n\n[flags]\nusage_stats=true\n", True),
    ],
)
def test_legacy_ini_decides(sandbox: Sandbox, text: str, enabled: bool) -> None:
    _legacy_ini(sandbox, text)
    assert decide(environ=_env(sandbox)) == Decision(enabled, "legacy_config", False, ())


def test_legacy_ini_without_flag_is_default(sandbox: Sandbox) -> None:
    _legacy_ini(sandbox, "[flags]\naws_enabled = True\n")
    assert decide(environ=_env(sandbox)).source == "default"


@pytest.mark.parametrize("value", [True, False])
def test_the_opt_out_wins_when_config_json_and_legacy_ini_disagree(
    sandbox: Sandbox, value: bool
) -> None:
    _legacy_ini(sandbox, f"[flags]\nusage_stats = {not value}\n")
    sandbox.write_config({"usage_stats": value})
    decision = decide(environ=_env(sandbox))
    deciding = sandbox.config if value is False else sandbox.home / ".skyplane" / "config"
    assert (decision.enabled, decision.source) == (
        False,
        "config" if not value else "legacy_config",
    )
    assert str(deciding) in decision.warnings[0]


def test_legacy_ini_used_when_config_json_lacks_key(sandbox: Sandbox) -> None:
    _legacy_ini(sandbox, "[flags]\nusage_stats = False\n")
    sandbox.write_config({"aws_enabled": True})
    decision = decide(environ=_env(sandbox))
    assert (decision.enabled, decision.source) == (False, "legacy_config")


def test_env_and_dnt_beat_legacy_ini(sandbox: Sandbox) -> None:
    _legacy_ini(sandbox, "[flags]\nusage_stats = False\n")
    assert decide(environ=_env(sandbox, **{ENV: "on"})).source == "env"
    _legacy_ini(sandbox, "[flags]\nusage_stats = True\n")
    assert decide(environ=_env(sandbox, DO_NOT_TRACK="1")).source == "do_not_track"


# -- 4. default ------------------------------------------------------------------------------


def test_default_is_enabled(sandbox: Sandbox) -> None:
    assert decide(environ=_env(sandbox)) == Decision(True, "default", False, ())
    sandbox.write_config({"aws_enabled": True, "usage_stats_review": False})
    assert decide(environ=_env(sandbox)) == Decision(True, "default", False, ())


def test_decide_reads_process_environ_by_default(sandbox: Sandbox) -> None:
    # the sandbox set HOME in os.environ; without ``environ`` that is what is read
    sandbox.write_config({"usage_stats": False})
    assert decide().source == "config"
    assert consent.is_enabled() is False


def test_review_mode_is_reported(sandbox: Sandbox) -> None:
    sandbox.write_config({"usage_stats": True, "usage_stats_review": True})
    decision = decide(environ=_env(sandbox))
    assert (decision.enabled, decision.source, decision.review_before_upload) == (
        True,
        "config",
        True,
    )


# -- is_enabled never raises -----------------------------------------------------------------


def test_is_enabled_home_is_a_file(sandbox: Sandbox) -> None:
    home_file = sandbox.home / "not-a-dir"
    home_file.write_text("x")
    env = {"HOME": str(home_file)}
    assert consent.is_enabled(environ=env) is False
    decision = decide(environ=env)
    assert (decision.enabled, decision.source) == (False, "invalid_config")
    assert decision.warnings


def test_is_enabled_directory_at_config_path(sandbox: Sandbox) -> None:
    sandbox.config.mkdir(parents=True)
    assert consent.is_enabled(environ=_env(sandbox)) is False
    decision = decide(environ=_env(sandbox))
    assert (decision.enabled, decision.source) == (False, "invalid_config")
    assert str(sandbox.config) in " ".join(decision.warnings)


def test_is_enabled_directory_at_legacy_ini_path(sandbox: Sandbox) -> None:
    (sandbox.home / ".skyplane" / "config").mkdir(parents=True)
    assert consent.is_enabled(environ=_env(sandbox)) is True


def test_is_enabled_binary_legacy_ini(sandbox: Sandbox) -> None:
    path = sandbox.home / ".skyplane" / "config"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe\x00[flags\x00\nusage_stats = ???")
    assert consent.is_enabled(environ=_env(sandbox)) is False


def test_is_enabled_deeply_nested_config(sandbox: Sandbox) -> None:
    sandbox.write_config("[" * 100_000 + "]" * 100_000)
    assert consent.is_enabled(environ=_env(sandbox)) is False


def test_is_enabled_with_empty_environ_does_not_raise() -> None:
    # no HOME at all: falls back to the user's home; must still answer
    assert isinstance(consent.is_enabled(environ={}), bool)


# -- property tests --------------------------------------------------------------------------

# No deadline and no too-slow check: a loaded machine makes examples slow, not wrong.
_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
_FIXED = settings(max_examples=150, deadline=None, suppress_health_check=_HEALTH)

_env_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=30,
)


# The only white space a switch word may carry: str.strip() would also drop control
# characters (\x1c-\x1f, \x0b, \x0c, \x85) and Unicode spaces, which a value typed
# or pasted by a person never holds and an injected one may.
SWITCH_SPACE = " \t\r\n"
_OTHER_SPACE = "\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u3000"


@pytest.mark.parametrize(
    "value", ["\x1ftrue", "\u3000on", "1\x0c", "\x0bon", "yes\x85", "\xa0off", "0\u2028"]
)
def test_parse_switch_refuses_words_in_other_white_space(value: str) -> None:
    assert value.strip() in TRUE_WORDS + FALSE_WORDS  # what str.strip() would accept
    assert parse_switch(value) is None


@pytest.mark.parametrize("pad", [" ", "\t", "\r\n", " \t \n"])
def test_parse_switch_allows_ordinary_white_space(pad: str) -> None:
    assert parse_switch(pad + "On" + pad) is True
    assert parse_switch(pad + "oFF" + pad) is False


@pytest.mark.parametrize("value", ["\x1ftrue", "\u3000on"])
def test_env_word_in_other_white_space_fails_closed(sandbox: Sandbox, value: str) -> None:
    decision = decide(environ=_env(sandbox, **{ENV: value}))
    assert (decision.enabled, decision.source) == (False, "env")
    assert decision.warnings


_padding = st.text(alphabet=SWITCH_SPACE + _OTHER_SPACE, max_size=3)


@_FIXED
@given(
    value=st.one_of(
        _env_text,
        st.builds(lambda w, p, s: p + w + s, st.sampled_from(TRUE_WORDS), _padding, _padding),
        st.sampled_from(TRUE_WORDS + FALSE_WORDS),
        st.builds(lambda w, p, s: p + w + s, st.sampled_from(TRUE_WORDS), _env_text, _env_text),
    )
)
def test_env_text_never_raises_and_fails_closed(sandbox: Sandbox, value: str) -> None:
    decision = decide(environ=_env(sandbox, **{ENV: value}))
    assert decision.source == "env"
    word = value.strip(SWITCH_SPACE).lower()
    if decision.enabled:
        assert word in {"1", "true", "yes", "on"}
    if word in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        assert decision.enabled is (word in {"1", "true", "yes", "on"})
        assert decision.warnings == ()
    else:
        assert decision.enabled is False
        assert decision.warnings


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
_config_bytes = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda v: json.dumps(v).encode(), _json_values),
    st.builds(
        lambda v, rest: json.dumps({"usage_stats": v, **rest}).encode(),
        _json_values,
        st.dictionaries(st.text(max_size=5), _json_values, max_size=2),
    ),
)


def _expected_from_config(raw: bytes) -> tuple[bool, str]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return False, "invalid_config"
    if not isinstance(data, dict):
        return False, "invalid_config"
    if "usage_stats" not in data:
        return True, "default"
    value = data["usage_stats"]
    if isinstance(value, bool):
        return value, "config"
    return False, "invalid_config"


@_FIXED
@given(raw=_config_bytes)
def test_config_bytes_never_raise_and_fail_closed(sandbox: Sandbox, raw: bytes) -> None:
    sandbox.config.parent.mkdir(parents=True, exist_ok=True)
    sandbox.config.write_bytes(raw)
    decision = decide(environ=_env(sandbox))
    assert (decision.enabled, decision.source) == _expected_from_config(raw)
    assert decision.source in SOURCES
    if decision.source == "invalid_config":
        assert any(str(sandbox.config) in w for w in decision.warnings)
    assert consent.is_enabled(environ=_env(sandbox)) is decision.enabled


# -- the same matrix through the real CLI ----------------------------------------------------

_CLI_CASES: list[tuple[str, dict[str, str], str | None, str | None, bool, str]] = [
    # id, env, config.json text, legacy INI text, enabled, source
    ("env-On", {ENV: "On"}, '{"usage_stats": false}', None, True, "env"),
    ("env-FALSE", {ENV: "FALSE"}, '{"usage_stats": true}', None, False, "env"),
    ("env-beats-dnt", {ENV: "yes", "DO_NOT_TRACK": "1"}, None, None, True, "env"),
    (
        "dnt-anything",
        {"DO_NOT_TRACK": "anything"},
        '{"usage_stats": true}',
        None,
        False,
        "do_not_track",
    ),
    ("dnt-empty", {"DO_NOT_TRACK": ""}, None, None, True, "default"),
    ("dnt-zero", {"DO_NOT_TRACK": "0"}, '{"usage_stats": false}', None, False, "config"),
    ("config-true", {}, '{"usage_stats": true}', None, True, "config"),
    ("legacy-false", {}, None, "[flags]\nusage_stats = False\n", False, "legacy_config"),
    ("legacy-true", {}, None, "[flags]\nusage_stats = True\n", True, "legacy_config"),
    (
        "legacy-opt-out-beats-json",
        {},
        '{"usage_stats": true}',
        "[flags]\nusage_stats = False\n",
        False,  # the opt-out wins, whichever store holds it
        "legacy_config",
    ),
    ("default", {}, None, None, True, "default"),
]


@pytest.mark.parametrize(
    ("env", "config", "legacy", "enabled", "source"),
    [case[1:] for case in _CLI_CASES],
    ids=[case[0] for case in _CLI_CASES],
)
def test_status_json_reports_decision(
    sandbox: Sandbox,
    env: dict[str, str],
    config: str | None,
    legacy: str | None,
    enabled: bool,
    source: str,
) -> None:
    if config is not None:
        sandbox.write_config(config)
    if legacy is not None:
        _legacy_ini(sandbox, legacy)
    result = run_cli("stats", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert (data["enabled"], data["source"]) == (enabled, source)


def test_status_json_bad_env_word(sandbox: Sandbox) -> None:
    result = run_cli("stats", "status", "--json", env={ENV: "perhaps"})
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert (data["enabled"], data["source"]) == (False, "env")
    assert any("perhaps" in w and ENV in w for w in data["warnings"])
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text",
    ["{not json", "[1, 2]", '{"usage_stats": "yes"}', '{"usage_stats": 1}'],
    ids=["bad-json", "json-list", "string-value", "int-value"],
)
def test_status_json_invalid_config(sandbox: Sandbox, text: str) -> None:
    sandbox.write_config(text)
    before = sandbox.config.read_bytes()
    result = run_cli("stats", "status", "--json")
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert (data["enabled"], data["source"]) == (False, "invalid_config")
    assert any(str(sandbox.config) in w for w in data["warnings"])
    assert sandbox.config.read_bytes() == before


def test_cli_home_is_a_file_does_not_crash(sandbox: Sandbox, tmp_path: Path) -> None:
    home_file = tmp_path / "home-file"
    home_file.write_text("")
    result = run_cli("stats", "status", "--json", env={"HOME": str(home_file)})
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert (data["enabled"], data["source"]) == (False, "invalid_config")
    assert any(str(home_file) in w for w in data["warnings"])


def test_sandbox_env_is_clean() -> None:
    # guards every case above: nothing from the outer environment leaks in
    assert ENV not in os.environ
    assert "DO_NOT_TRACK" not in os.environ


# -- parse_json: the decision path's json.loads without importing json --------------------

_json_scalars: st.SearchStrategy[Any] = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _json_outcome(raw: bytes) -> tuple[str, object]:
    import json

    try:
        return ("ok", json.loads(raw))
    except (ValueError, RecursionError):
        return ("error", None)


def _parse_outcome(raw: bytes) -> tuple[str, object]:
    from consent.config import parse_json

    try:
        return ("ok", parse_json(raw))
    except (ValueError, RecursionError):
        return ("error", None)


@settings(max_examples=300, deadline=None, suppress_health_check=_HEALTH)
@given(
    value=_json_values, indent=st.sampled_from([None, 0, 2]), pad=st.sampled_from(["", " \n", "\t"])
)
def test_parse_json_agrees_with_json_on_documents(
    value: object, indent: int | None, pad: str
) -> None:
    import json

    raw = (pad + json.dumps(value, indent=indent, ensure_ascii=False) + pad).encode()
    assert _parse_outcome(raw) == _json_outcome(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=_HEALTH)
@given(
    raw=st.binary(max_size=64) | st.text(max_size=64).map(lambda t: t.encode("utf-8", "replace"))
)
def test_parse_json_agrees_with_json_on_garbage(raw: bytes) -> None:
    ours, theirs = _parse_outcome(raw), _json_outcome(raw)
    if theirs[0] == "ok" and isinstance(theirs[1], float) and theirs[1] != theirs[1]:
        assert ours[0] == "ok"  # NaN is not equal to itself
    else:
        assert ours == theirs


@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b'{"a": 1} x', b'\xef\xbb\xbf{"a": 1}', b"NaN", b'{"a": Infinity}', b"[1,]"],
)
def test_parse_json_edge_cases_match_json(raw: bytes) -> None:
    ours, theirs = _parse_outcome(raw), _json_outcome(raw)
    assert ours[0] == theirs[0]
