"""Fuzz the policy loader: it returns a valid :class:`Policy` or raises :class:`PolicyError`.

Two kinds of input. Structured documents start from the shipped policy and mutate
it (drop, retype or add keys and fields, odd endpoints), are written with a tiny
TOML emitter, and are checked against an independent model of docs/architecture.md
§3.3: the loader must accept exactly what the model accepts. Raw input (any bytes,
any text, byte-level edits of the shipped file) must never raise anything but
PolicyError.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from consent._exceptions import InsecureEndpointError, PolicyError
from consent._urls import check_endpoint
from consent.policy import CATEGORIES, FIELD_TYPES, Policy, load_policy
from consent.profile import DEFAULT_PROFILE
from tests.fuzz._toml import FUZZ, FUZZ_SLOW, dumps, mutate_bytes

SHIPPED_BYTES = DEFAULT_PROFILE.policy_file.read_bytes()
SHIPPED: dict[str, Any] = tomllib.loads(SHIPPED_BYTES.decode())
_HEX64 = re.compile(r"[0-9a-f]{64}")

# -- strategies -------------------------------------------------------------------------

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
_keys = st.one_of(
    _text,
    st.sampled_from(["type", "category", "description", "example", "", " ", "a.b", "1x", "é"]),
)
_datetimes = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)
) | st.datetimes(
    min_value=dt.datetime(1, 1, 2),
    max_value=dt.datetime(9999, 12, 30),
    timezones=st.sampled_from(
        [
            dt.UTC,
            dt.timezone(dt.timedelta(hours=5, minutes=30)),
            dt.timezone(-dt.timedelta(hours=8)),
        ]
    ),
)
# Integers stay below 4300 digits: a longer one is the regression in test_regressions.py.
_ints = st.integers() | st.sampled_from([0, -1, 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**300])
_scalars = st.one_of(
    _text,
    _ints,
    st.booleans(),
    st.floats(),
    st.dates(),
    _datetimes,
    st.times(),
)
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=3),
    max_leaves=6,
)
_hosts = st.sampled_from(
    [
        "localhost",
        "127.0.0.1",
        "[::1]",
        "127.0.0.2",
        "example.com",
        "a.localhost",
        "localhost.evil.example",
        "10.0.0.1",
        "2130706433",
        "",
    ]
)
_endpoints = st.one_of(
    st.builds(
        lambda scheme, userinfo, host, port, path: f"{scheme}://{userinfo}{host}{port}{path}",
        st.sampled_from(["https", "http", "HTTPS", "ftp", "", "file"]),
        st.sampled_from(["", "user@", "user:pw@", ":@", "@"]),
        _hosts,
        st.sampled_from(["", ":3100", ":0", ":99999", ":x"]),
        st.sampled_from(["", "/", "/loki/api/v1/push", "?q=1", "#frag"]),
    ),
    _text,
)
_field_names = st.one_of(
    st.sampled_from(sorted(SHIPPED["fields"])),
    st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True),
    _text,
)
_spec_strings = st.one_of(
    st.sampled_from([*FIELD_TYPES, *CATEGORIES, "", " ", "str", "String", "hardware", "system "]),
    _text,
)


def _field_spec() -> st.SearchStrategy[Any]:
    table = st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(st.sampled_from(FIELD_TYPES), _spec_strings, _values),
            "category": st.one_of(st.sampled_from(CATEGORIES), _spec_strings, _values),
            "description": st.one_of(_text, st.just("A description."), _values),
            "example": _values,
        },
    )
    return st.one_of(table, _values)


def _apply(doc: dict[str, Any], mutation: tuple[Any, ...]) -> None:
    kind = mutation[0]
    fields = doc.get("fields")
    if kind == "drop":
        doc.pop(mutation[1], None)
    elif kind == "set":
        doc[mutation[1]] = mutation[2]
    elif kind == "endpoint":
        doc["endpoint"] = mutation[1]
    elif kind == "version":
        doc["version"] = mutation[1]
    elif isinstance(fields, dict) and kind == "drop-field" and fields:
        fields.pop(sorted(fields)[mutation[1] % len(fields)])
    elif isinstance(fields, dict) and kind == "field":
        fields[mutation[1]] = mutation[2]
    elif isinstance(fields, dict) and kind == "field-key" and fields:
        name = sorted(fields)[mutation[1] % len(fields)]
        spec = fields[name]
        if isinstance(spec, dict):
            if mutation[3] is None:
                spec.pop(mutation[2], None)
            else:
                spec[mutation[2]] = mutation[3]
    elif kind == "clear-fields":
        doc["fields"] = {}


_top_keys = st.sampled_from([*SHIPPED, "retention", "fields", "Name", ""])
_mutations = st.one_of(
    st.tuples(st.just("drop"), _top_keys),
    st.tuples(st.just("set"), _top_keys, _values),
    st.tuples(st.just("endpoint"), _endpoints),
    st.tuples(st.just("version"), _ints | st.booleans() | st.floats() | _text),
    st.tuples(st.just("drop-field"), st.integers(min_value=0)),
    st.tuples(st.just("field"), _field_names, _field_spec()),
    st.tuples(
        st.just("field-key"),
        st.integers(min_value=0),
        st.sampled_from(["type", "category", "description", "example"]),
        st.none() | _spec_strings | _values,
    ),
    st.tuples(st.just("clear-fields")),
)


# Changes a valid policy may make: new fields, new words, another https endpoint.
_gentle = st.one_of(
    st.tuples(
        st.just("field"),
        st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True),
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(FIELD_TYPES),
                "category": st.sampled_from(CATEGORIES),
                "description": _text.filter(str.strip),
            },
            optional={"example": _values},
        ),
    ),
    st.tuples(st.just("drop-field"), st.integers(min_value=0)),
    st.tuples(st.just("version"), st.integers(min_value=1)),
    st.tuples(st.just("set"), st.sampled_from(["name", "summary", "contact", "docs_url"]), _text),
    st.tuples(st.just("set"), st.just("format"), st.sampled_from(["loki", "json"])),
    st.tuples(
        st.just("endpoint"),
        st.sampled_from(["https://example.com/push", "http://127.0.0.1:3100/p", "http://[::1]/"]),
    ),
)


@st.composite
def policy_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(SHIPPED)
    mutations = draw(st.lists(_gentle, max_size=4)) + draw(st.lists(_mutations, max_size=2))
    for mutation in draw(st.permutations(mutations)):
        _apply(doc, mutation)
    return doc


# -- the model --------------------------------------------------------------------------

_TOP = {
    "name": str,
    "version": int,
    "effective": dt.date,
    "summary": str,
    "docs_url": str,
    "contact": str,
    "endpoint": str,
    "format": str,
    "fields": dict,
}


def _endpoint_ok(url: str) -> bool:
    try:
        check_endpoint(url)
    except InsecureEndpointError:
        return False
    return True


def model_accepts(doc: dict[str, Any]) -> bool:
    """docs/architecture.md §3.3, written independently of the loader."""
    if set(doc) != set(_TOP):
        return False
    for key, kind in _TOP.items():
        if not isinstance(doc[key], kind) or (kind is int and isinstance(doc[key], bool)):
            return False
    if doc["version"] < 1 or doc["format"] not in ("loki", "json") or not doc["fields"]:
        return False
    if not _endpoint_ok(doc["endpoint"]):
        return False
    for name, spec in doc["fields"].items():
        if not name.isidentifier() or not isinstance(spec, dict):
            return False
        for key in ("type", "category", "description"):
            if not isinstance(spec.get(key), str) or not spec[key].strip():
                return False
        if spec["type"] not in FIELD_TYPES or spec["category"] not in CATEGORIES:
            return False
    return True


def _check_policy(policy: Policy, doc: dict[str, Any] | None) -> None:
    assert isinstance(policy.version, int) and not isinstance(policy.version, bool)
    assert policy.version >= 1
    assert policy.format in ("loki", "json")
    assert policy.fields
    assert check_endpoint(policy.endpoint) == policy.endpoint
    for name, spec in policy.fields.items():
        assert name == spec.name and name.isidentifier()
        assert spec.type in FIELD_TYPES and spec.category in CATEGORIES
        assert spec.description == spec.description.strip() and spec.description
        assert not {"type", "category", "description"} & set(spec.extra)
    assert _HEX64.fullmatch(policy.fingerprint)
    if doc is not None:
        assert set(policy.fields) == set(doc["fields"])
        assert policy.schema == {
            name: (spec["type"], spec["category"]) for name, spec in doc["fields"].items()
        }


def _load(path: Path) -> Policy | PolicyError:
    try:
        return load_policy(path)
    except PolicyError as exc:
        return exc


# -- properties -------------------------------------------------------------------------


def test_the_emitter_round_trips_the_shipped_policy() -> None:
    assert tomllib.loads(dumps(SHIPPED)) == SHIPPED


@FUZZ
@given(doc=policy_documents())
@example(doc={**SHIPPED, "effective": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)})
@example(doc={**SHIPPED, "endpoint": "http://user@localhost/"})
@example(doc={**SHIPPED, "fields": {"os": {"type": "string", "category": "system"}}})
def test_structured_policies_match_the_model(tmp_path: Path, doc: dict[str, Any]) -> None:
    text = dumps(doc)
    parsed = tomllib.loads(text)
    if not any(isinstance(v, float) and math.isnan(v) for v in _leaves(doc)):
        assert parsed == doc  # the fuzzer feeds the loader exactly the document it means
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    outcome = _load(path)
    event(f"model accepts: {model_accepts(parsed)}")
    if model_accepts(parsed):
        assert isinstance(outcome, Policy), outcome
        _check_policy(outcome, parsed)
    else:
        assert isinstance(outcome, PolicyError)
        assert str(path) in str(outcome)


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


_edits = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=len(SHIPPED_BYTES)),
        st.integers(min_value=0, max_value=8),
        st.binary(max_size=6)
        | st.sampled_from([b"[", b"]", b"=", b'"', b"\n", b"\\", b"[[", b"'''", b"\x00", b"\xff"]),
    ),
    min_size=1,
    max_size=6,
)


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")),
        _edits.map(lambda edits: mutate_bytes(SHIPPED_BYTES, edits)),
    )
)
@example(raw=b"")
@example(raw=b"\xef\xbb\xbf" + SHIPPED_BYTES)
@example(raw=b"name = " + b"[" * 3000 + b"]" * 3000)
@example(raw=b"a = {" * 3000)
@example(raw=SHIPPED_BYTES.replace(b"version = 3", b"version = 1e3"))
@example(raw=SHIPPED_BYTES.replace(b"version = 3", b"version = 0x7fffffffffffffffffffffff"))
def test_raw_policy_bytes_give_a_policy_or_a_policy_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(raw)
    outcome = _load(path)
    if isinstance(outcome, Policy):
        _check_policy(outcome, None)
    else:
        assert isinstance(outcome, PolicyError)
        message = str(outcome)
        assert str(path) in message
        assert "Traceback" not in message


@FUZZ_SLOW
@given(doc=policy_documents())
def test_a_policy_that_loads_loads_the_same_twice(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(dumps(doc), encoding="utf-8")
    first, second = _load(path), _load(path)
    if isinstance(first, Policy):
        assert first == second
    else:
        assert isinstance(second, PolicyError)
        assert str(first) == str(second)


@pytest.mark.parametrize("name", ["policy dir", "missing.toml"])
def test_unreadable_paths_are_policy_errors(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name == "policy dir":
        path.mkdir()
    with pytest.raises(PolicyError):
        load_policy(path)
