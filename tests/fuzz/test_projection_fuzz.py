"""Fuzz the allow-list: a field the policy does not declare, or the user did not
acknowledge, can never be sent (docs/architecture.md §1 "No PII", §4 "Never").

Two gates keep it. ``project`` builds a payload only from fields that the policy
declares *and* the acknowledged schema names with the same type and category.
The sender then re-checks the spooled bytes (``_check_payload``): a payload with
any other key is marked failed and never sent, however it got into the spool.
"""

from __future__ import annotations

import json
import math
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from consent.payload import encode_payload, project
from consent.policy import CATEGORIES, FIELD_TYPES, FieldSpec, Policy, load_policy
from consent.profile import DEFAULT_PROFILE, Scope
from consent.spool import Entry, Spool, State
from consent.upload import Limits, _check_payload, send_pending
from tests.fuzz._toml import FUZZ, FUZZ_SLOW, dumps
from tests.upload_helpers import Receiver, acknowledge, iter_values

SHIPPED = load_policy(DEFAULT_PROFILE.policy_file)
FAST = Limits(connect_timeout_s=0.5, request_timeout_s=1.0, backoff_base_s=0.01, backoff_cap_s=0.05)

_names = st.one_of(
    st.sampled_from(sorted(SHIPPED.fields)),
    st.sampled_from(["hostname", "username", "cwd", "ip", "gpu_model", "__proto__", ""]),
    st.text(max_size=10),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
_kinds = st.tuples(
    st.sampled_from([*FIELD_TYPES, "str"]), st.sampled_from([*CATEGORIES, "hardware"])
)


@st.composite
def _policies(draw: st.DrawFn) -> Policy:
    names = draw(st.lists(_names.filter(str.isidentifier), min_size=1, max_size=8, unique=True))
    fields = {
        name: FieldSpec(
            name, draw(st.sampled_from(FIELD_TYPES)), draw(st.sampled_from(CATEGORIES)), "d"
        )
        for name in names
    }
    return Policy(
        name="t",
        version=1,
        effective=SHIPPED.effective,
        summary="s",
        docs_url="https://example.com",
        contact="a@example.com",
        endpoint="https://example.com/push",
        format="json",
        fields=fields,
        path=Path("t.toml"),
    )


def _type_ok(kind: str, value: object) -> bool:
    """docs/architecture.md §3.3's types, written out again."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return type(value) is int
    if kind == "number":
        return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]
    if kind == "boolean":
        return type(value) is bool
    if kind == "string[]":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, dict)


@FUZZ
@given(
    policy=_policies(),
    data=st.data(),
    payload=st.dictionaries(_names, _json, max_size=10),
)
def test_project_keeps_only_declared_acknowledged_well_typed_fields(
    policy: Policy, data: st.DataObject, payload: dict[str, Any]
) -> None:
    # the acknowledgement: some policy fields as declared, some changed, some strangers
    acknowledged: dict[str, tuple[str, str]] = {}
    for name, spec in policy.fields.items():
        acknowledged[name] = data.draw(st.sampled_from([(spec.type, spec.category)]) | _kinds)
    for name in data.draw(st.lists(_names, max_size=3)):
        acknowledged[name] = data.draw(_kinds)
    for name in sorted(policy.fields):
        if name in payload or data.draw(st.booleans()):
            continue
        payload[name] = data.draw(_json)

    kept, withheld = project(payload, policy, acknowledged)

    agreed = {
        name
        for name, spec in policy.fields.items()
        if acknowledged.get(name) == (spec.type, spec.category)
    }
    assert set(kept) <= agreed
    assert withheld == [name for name in policy.fields if name not in agreed]
    for name, value in kept.items():
        assert value is payload[name]
        assert _type_ok(policy.fields[name].type, value)
    for name in agreed:
        if name in payload and _type_ok(policy.fields[name].type, payload[name]):
            assert name in kept
    # and the bytes that reach the spool pass the sender's own check
    session_id = str(uuid.uuid4())
    entry = Entry("c", session_id, State.PENDING, Path("x"))
    checked, _ = _check_payload(
        entry,
        encode_payload({**kept, "session_id": session_id}),
        frozenset(agreed | {"session_id"}),
    )
    assert checked is not None


@FUZZ
@given(
    keys=st.lists(_names, max_size=6, unique=True),
    allowed=st.frozensets(_names, max_size=6),
    raw=st.none() | st.binary(max_size=40),
)
@example(keys=["os", "hostname"], allowed=frozenset({"os"}), raw=None)
@example(keys=[], allowed=frozenset(), raw=b"[]")
@example(keys=[], allowed=frozenset(), raw=b"\xff")
def test_the_sender_refuses_any_key_outside_the_allowed_set(
    keys: list[str], allowed: frozenset[str], raw: bytes | None
) -> None:
    entry = Entry("c", "s-1", State.PENDING, Path("x"))
    data = json.dumps(dict.fromkeys(keys, 1)).encode() if raw is None else raw
    payload, reason = _check_payload(entry, data, allowed)
    if payload is None:
        assert reason.endswith("it is never sent.")
        return
    assert isinstance(payload, dict)
    assert set(payload) <= allowed


# -- end to end: whatever is in the spool, only acknowledged fields reach the receiver ------

_V4_FIELD = "gpu_model"


@pytest.fixture
def newer_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """Acknowledge the shipped policy, then run under a v4 that adds one field."""
    acknowledge()
    doc = tomllib.loads(DEFAULT_PROFILE.policy_file.read_text())
    doc["version"] = 4
    doc["format"] = "json"
    doc["fields"][_V4_FIELD] = {"type": "string", "category": "system", "description": "GPU."}
    path = tmp_path / "policy-v4.toml"
    path.write_text(dumps(doc))
    monkeypatch.setenv("SKYPLANE_USAGE_STATS_POLICY", str(path))
    with Receiver() as receiver:
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", receiver.url)
        yield receiver


@FUZZ_SLOW
@given(
    extra=st.dictionaries(
        st.sampled_from([_V4_FIELD, "hostname", "cwd", "user"]) | st.text(max_size=6),
        st.text(max_size=6),
        max_size=2,
    ),
    drop=st.sets(st.sampled_from(sorted(SHIPPED.fields))),
)
def test_only_acknowledged_fields_reach_the_receiver(
    newer_policy: Receiver, extra: dict[str, str], drop: set[str]
) -> None:
    spool = Spool.open(Scope())
    spool.wipe()
    newer_policy.requests.clear()
    session_id = str(uuid.uuid4())
    payload: dict[str, object] = {name: "x" for name in SHIPPED.fields if name not in drop}
    payload["session_id"] = session_id
    payload.update(extra)
    spool.write("client", session_id, encode_payload(payload), State.PENDING)

    result = send_pending(limits=FAST, scope=Scope())

    outside = set(payload) - set(SHIPPED.fields)
    received = [item for r in newer_policy.requests for item in _items(r.json())]
    assert all(set(item) <= set(SHIPPED.fields) for item in received)
    assert _V4_FIELD not in json.dumps(received)
    (entry,) = spool.entries()
    if outside:
        assert received == []
        assert entry.state is State.FAILED
        assert result.failed == 1
    else:
        assert [item["session_id"] for item in received] == [session_id]
        assert entry.state is State.SENT


def _items(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, list):
        return body
    return [json.loads(line) for _, _, line in iter_values(body)]
