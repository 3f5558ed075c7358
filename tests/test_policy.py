"""The policy file (docs/architecture.md §3.3).

The shipped policy, the fingerprint, the diff, validation, and the CLI.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from consent._exceptions import PolicyError
from consent.policy import (
    CATEGORIES,
    FIELD_TYPES,
    Policy,
    diff_schemas,
    fingerprint_of,
    load_policy,
)
from consent.profile import DEFAULT_PROFILE, Scope
from tests.conftest import Sandbox, run_cli

SHIPPED = DEFAULT_PROFILE.policy_file
POLICY_ENV = "SKYPLANE_USAGE_STATS_POLICY"

# docs/architecture.md §3.5: name -> (type, category) where the design says which
ARCHITECTURE_FIELDS: dict[str, tuple[str | None, str | None]] = {
    "os": ("string", "system"),
    "os_version": ("string", "system"),
    "kernel_version": ("string", "system"),
    "python_version": ("string", "system"),
    "host_version": ("string", "system"),
    "client_id": ("string", "ids"),
    "session_id": ("string", "ids"),
    "source_region": ("string", "regions"),
    "destination_regions": ("string[]", "regions"),
    "arguments": ("object", "arguments"),
    "runtime_s": ("number", "performance"),
    "throughput_gbps": ("number", "performance"),
    "error": ("string", "error"),
    "schema_version": (None, None),
    "collected_at": ("string", None),
}

HEADER = """\
name = "test"
version = {version}
effective = 2026-01-01
summary = "A test policy."
docs_url = "https://example.com/policy"
contact = "admin@example.com"
endpoint = "{endpoint}"
format = "json"
"""


def _policy_text(
    fields: dict[str, tuple[str, str, str]],
    *,
    version: str = "1",
    endpoint: str = "https://example.com/push",
    extra_top: str = "",
) -> str:
    text = HEADER.format(version=version, endpoint=endpoint) + extra_top
    for name, (kind, category, description) in fields.items():
        text += (
            f"\n[fields.{name}]\ntype = {kind!r}\ncategory = {category!r}\n"
            f"description = {description!r}\n"
        )
    return text


BASE: dict[str, tuple[str, str, str]] = {
    "os": ("string", "system", "Operating system."),
    "runtime_s": ("number", "performance", "Seconds."),
    "client_id": ("string", "ids", "A random id."),
}


def _write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _load_text(tmp_path: Path, text: str, name: str = "policy.toml") -> Policy:
    return load_policy(_write(tmp_path, text, name))


# -- the shipped policy ----------------------------------------------------------------------


def test_shipped_policy_loads() -> None:
    policy = load_policy(Scope().policy_path)
    assert policy.path == SHIPPED
    assert policy.name == "skyplane"
    assert policy.version >= 1
    assert policy.endpoint.startswith("https://")
    assert policy.format in ("loki", "json")
    assert re.fullmatch(r"[0-9a-f]{64}", policy.fingerprint)
    # the file on disk says the same as the model
    raw = tomllib.loads(SHIPPED.read_text())
    assert raw["version"] == policy.version
    assert set(raw["fields"]) == set(policy.fields)


def test_shipped_policy_declares_every_design_field() -> None:
    policy = load_policy(Scope().policy_path)
    missing = set(ARCHITECTURE_FIELDS) - set(policy.fields)
    assert not missing, f"the shipped policy lacks {sorted(missing)}"
    for name, spec in policy.fields.items():
        assert spec.type in FIELD_TYPES, name
        assert spec.category in CATEGORIES, name
        assert spec.description.strip(), name
        expected_type, expected_category = ARCHITECTURE_FIELDS.get(name, (None, None))
        if expected_type is not None:
            assert spec.type == expected_type, name
        if expected_category is not None:
            assert spec.category == expected_category, name


def test_policy_env_override(sandbox: Sandbox, tmp_path: Path) -> None:
    path = _write(tmp_path, _policy_text(BASE))
    policy = load_policy(Scope(environ={POLICY_ENV: str(path)}).policy_path)
    assert policy.path == path
    assert set(policy.fields) == set(BASE)


# -- fingerprint -----------------------------------------------------------------------------


def test_fingerprint_ignores_descriptions_and_order(tmp_path: Path) -> None:
    base = _load_text(tmp_path, _policy_text(BASE), "a.toml")
    reworded = {name: (k, c, d + " Reworded.") for name, (k, c, d) in BASE.items()}
    reordered = dict(reversed(list(reworded.items())))
    other = _load_text(tmp_path, _policy_text(reordered, version="2"), "b.toml")
    assert other.version != base.version
    assert other.fingerprint == base.fingerprint


def test_fingerprint_changes_with_schema(tmp_path: Path) -> None:
    base = _load_text(tmp_path, _policy_text(BASE), "base.toml").fingerprint
    variants = {
        "type": {**BASE, "runtime_s": ("integer", "performance", "Seconds.")},
        "category": {**BASE, "runtime_s": ("number", "system", "Seconds.")},
        "added": {**BASE, "error": ("string", "error", "The error.")},
        "removed": {k: v for k, v in BASE.items() if k != "os"},
        "renamed": {**{k: v for k, v in BASE.items() if k != "os"}, "os2": BASE["os"]},
    }
    seen = {base}
    for label, fields in variants.items():
        fingerprint = _load_text(tmp_path, _policy_text(fields), f"{label}.toml").fingerprint
        assert fingerprint not in seen, label
        seen.add(fingerprint)


def test_fingerprint_of_is_deterministic_and_separates_fields() -> None:
    schema = {"a": ("string", "system"), "b": ("number", "performance")}
    assert fingerprint_of(schema) == fingerprint_of(dict(reversed(list(schema.items()))))
    # moving text between the name, type and category must not collide
    assert fingerprint_of({"ab": ("c", "d")}) != fingerprint_of({"a": ("bc", "d")})
    assert fingerprint_of({"a": ("b", "cd")}) != fingerprint_of({"a": ("bc", "d")})
    assert fingerprint_of({}) != fingerprint_of({"a": ("string", "system")})


# sha256 of "client_id\tstring\tids\nos\tstring\tsystem\nruntime_s\tnumber\tperformance\n",
# worked out once by hand (`printf ... | sha256sum`). Records store fingerprints, so a
# change to how they are computed must show up here, not only in the code.
BASE_FINGERPRINT = "379f67459fed0d7d2ca6d6cc6107848a88ad83c0ee3e470aff7b7d2435391d44"


def test_fingerprint_of_a_known_policy_is_pinned(tmp_path: Path) -> None:
    policy = _load_text(tmp_path, _policy_text(BASE))
    assert policy.fingerprint == BASE_FINGERPRINT
    assert fingerprint_of({n: (k, c) for n, (k, c, _) in BASE.items()}) == BASE_FINGERPRINT
    # sha256 of no bytes at all: an empty schema hashes nothing, not a placeholder
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert fingerprint_of({}) == empty


def test_shipped_policy_schema_is_its_fields() -> None:
    policy = load_policy(Scope().policy_path)
    assert policy.schema == {n: (s.type, s.category) for n, s in policy.fields.items()}


# -- diff ------------------------------------------------------------------------------------


def test_diff_lists_added_removed_changed() -> None:
    old = {
        "os": ("string", "system"),
        "runtime_s": ("number", "performance"),
        "gone": ("string", "error"),
        "same": ("boolean", "arguments"),
    }
    new = {
        "os": ("string", "ids"),
        "runtime_s": ("integer", "performance"),
        "same": ("boolean", "arguments"),
        "fresh": ("string[]", "regions"),
        "another": ("object", "arguments"),
    }
    diff = diff_schemas(old, new)
    assert diff.added == ("another", "fresh")
    assert diff.removed == ("gone",)
    assert diff.changed == (
        ("os", ("string", "system"), ("string", "ids")),
        ("runtime_s", ("number", "performance"), ("integer", "performance")),
    )
    assert not diff.empty


def test_diff_of_equal_schemas_is_empty() -> None:
    schema = load_policy(Scope().policy_path).schema
    diff = diff_schemas(schema, dict(schema))
    assert diff.empty
    assert (diff.added, diff.removed, diff.changed) == ((), (), ())


def test_diff_from_nothing_adds_everything() -> None:
    schema = load_policy(Scope().policy_path).schema
    diff = diff_schemas({}, schema)
    assert set(diff.added) == set(schema)
    assert diff.removed == ()


# -- broken policy files ---------------------------------------------------------------------

BROKEN: dict[str, tuple[str | None, str]] = {
    # id: (file text, or None for a missing file; a word the message must contain)
    "missing-file": (None, "does not exist"),
    "bad-toml": ('name = "x"\nversion = [\n', "TOML"),
    "missing-description": (
        HEADER.format(version="1", endpoint="https://example.com/push")
        + '\n[fields.os]\ntype = "string"\ncategory = "system"\n',
        "description",
    ),
    "bad-type": (_policy_text({"os": ("str", "system", "OS.")}), "'str'"),
    "bad-category": (_policy_text({"os": ("string", "hardware", "OS.")}), "'hardware'"),
    "unknown-top-level": (_policy_text(BASE, extra_top='retention = "forever"\n'), "retention"),
    "http-endpoint": (_policy_text(BASE, endpoint="http://collector.example.com/push"), "http"),
    "version-string": (_policy_text(BASE, version='"3"'), "version"),
    "version-float": (_policy_text(BASE, version="3.0"), "version"),
    "version-bool": (_policy_text(BASE, version="true"), "version"),
    "no-fields": (HEADER.format(version="1", endpoint="https://example.com/push"), "fields"),
    "field-not-table": (
        HEADER.format(version="1", endpoint="https://example.com/push") + 'fields = {os = "x"}\n',
        "os",
    ),
}


@pytest.mark.parametrize(("text", "problem"), BROKEN.values(), ids=BROKEN.keys())
def test_broken_policy_in_process(tmp_path: Path, text: str | None, problem: str) -> None:
    path = tmp_path / "policy.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert str(path) in message
    assert problem in message


_CLI_BROKEN = [
    "missing-file",
    "bad-toml",
    "missing-description",
    "bad-type",
    "bad-category",
    "unknown-top-level",
    "http-endpoint",
    "version-string",
]


@pytest.mark.parametrize("case", _CLI_BROKEN)
def test_broken_policy_cli(sandbox: Sandbox, tmp_path: Path, case: str) -> None:
    text, problem = BROKEN[case]
    path = tmp_path / "policy.toml"
    if text is not None:
        path.write_text(text)
    result = run_cli("policy", "show", env={POLICY_ENV: str(path)})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    joined = result.stderr.replace("\n", "")
    assert str(path) in joined
    assert problem in " ".join(result.stderr.split())


def test_http_endpoint_to_loopback_is_allowed(tmp_path: Path) -> None:
    for endpoint in ("http://127.0.0.1:3100/push", "http://localhost/push", "http://[::1]/p"):
        policy = _load_text(tmp_path, _policy_text(BASE, endpoint=endpoint))
        assert policy.endpoint == endpoint


def test_extra_field_keys_are_optional_and_kept(tmp_path: Path) -> None:
    text = _policy_text(BASE) + 'example = "Linux"\n'
    policy = _load_text(tmp_path, text)
    assert policy.fields["client_id"].extra == {"example": "Linux"}


def test_deeply_nested_policy_is_a_policy_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "name = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(PolicyError):
        load_policy(path)


# -- policy show -----------------------------------------------------------------------------


def test_policy_show_json_shape(sandbox: Sandbox) -> None:
    result = run_cli("policy", "show", "--json")
    assert result.returncode == 0, result.stderr
    data = result.json()
    policy = load_policy(Scope().policy_path)
    for key in ("name", "version", "effective", "fingerprint", "summary", "docs_url"):
        assert key in data, key
    for key in ("contact", "endpoint", "format", "fields"):
        assert key in data, key
    assert data["version"] == policy.version
    assert data["fingerprint"] == policy.fingerprint
    assert data["effective"] == policy.effective.isoformat()
    assert set(data["fields"]) == set(policy.fields)
    for name, spec in data["fields"].items():
        assert set(spec) >= {"type", "category", "description"}, name
        assert spec["type"] == policy.fields[name].type
        assert spec["category"] == policy.fields[name].category
        assert spec["description"] == policy.fields[name].description


def test_policy_show_json_uses_env_policy(sandbox: Sandbox, tmp_path: Path) -> None:
    path = _write(tmp_path, _policy_text(BASE, version="7"))
    result = run_cli("policy", "show", "--json", env={POLICY_ENV: str(path)})
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert data["version"] == 7
    assert set(data["fields"]) == set(BASE)


def test_policy_show_human_lists_everything(sandbox: Sandbox) -> None:
    result = run_cli("policy", "show")
    assert result.returncode == 0, result.stderr
    policy = load_policy(Scope().policy_path)
    for category in {spec.category for spec in policy.fields.values()}:
        assert category.lower() in result.stdout.lower(), category
    for name in policy.fields:
        assert re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", result.stdout), name
    assert str(policy.version) in result.stdout
    assert policy.contact in result.stdout
    for line in result.stdout.splitlines():
        assert len(line) <= 100, line
