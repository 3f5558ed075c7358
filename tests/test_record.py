"""The consent record (docs/architecture.md §3.4).

Creation, acknowledgement, history, damage, round trip.
"""

from __future__ import annotations

import datetime as dt
import json
import stat
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.policy import CATEGORIES, FIELD_TYPES, load_policy
from consent.profile import Scope
from consent.record import (
    CHOICES,
    VIAS,
    Acknowledgement,
    ConsentRecord,
    Notice,
    _from_toml,
    dumps_record,
    load_record,
    read_record,
    update_record,
)
from tests.conftest import Sandbox, run_cli


def _raw(sandbox: Sandbox) -> dict[str, Any]:
    return tomllib.loads(sandbox.record.read_text(encoding="utf-8"))


def _is_uuid4(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == value


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- created by init -------------------------------------------------------------------------


def test_init_yes_creates_record(sandbox: Sandbox) -> None:
    started = _now().replace(microsecond=0)
    result = run_cli("init", "--yes")
    finished = _now()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert stat.S_IMODE(sandbox.record.stat().st_mode) == 0o600

    raw = _raw(sandbox)
    assert _is_uuid4(raw["client_id"])
    ack = raw["acknowledgement"]
    policy = load_policy(Scope().policy_path)
    assert ack["version"] == policy.version
    assert ack["fingerprint"] == policy.fingerprint
    assert ack["decision"] == "share"
    assert ack["via"] == "init-flag"
    at = ack["at"]
    assert isinstance(at, dt.datetime)
    assert at.utcoffset() == dt.timedelta(0), "the time is written in UTC"
    assert started <= at <= finished
    assert raw.get("history", []) == []

    # the library reads back what the file says
    record = load_record(sandbox.record)
    assert record is not None
    assert record.acknowledgement is not None
    assert record.acknowledgement.schema == policy.schema


@pytest.mark.parametrize(("flag", "decision"), [("--no", "dont-share"), ("--review", "review")])
def test_init_other_flags(sandbox: Sandbox, flag: str, decision: str) -> None:
    result = run_cli("init", flag)
    assert result.returncode == 0, result.stderr
    ack = _raw(sandbox)["acknowledgement"]
    assert (ack["decision"], ack["via"]) == (decision, "init-flag")
    config = json.loads(sandbox.config.read_text())
    assert config["usage_stats"] is (decision != "dont-share")


def test_init_two_flags_is_bad_usage(sandbox: Sandbox) -> None:
    result = run_cli("init", "--yes", "--no")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert not sandbox.record.exists()
    assert not sandbox.config.exists()


def test_history_appends_and_client_id_is_stable(sandbox: Sandbox) -> None:
    assert run_cli("init", "--yes").returncode == 0
    first = _raw(sandbox)
    assert run_cli("init", "--no").returncode == 0
    second = _raw(sandbox)
    assert run_cli("config", "set", "usage_stats", "true").returncode == 0
    third = _raw(sandbox)

    assert first["client_id"] == second["client_id"] == third["client_id"]

    assert second["acknowledgement"]["decision"] == "dont-share"
    assert len(second["history"]) == 1
    earlier = second["history"][0]
    for key in ("version", "fingerprint", "decision", "at", "via"):
        assert earlier[key] == first["acknowledgement"][key]

    assert third["acknowledgement"]["via"] == "config-set"
    assert third["acknowledgement"]["decision"] == "share"
    # append-only: the old entries are unchanged and the newest is last
    assert third["history"][0] == second["history"][0]
    assert len(third["history"]) == 2
    assert third["history"][1]["decision"] == "dont-share"


# -- damage ----------------------------------------------------------------------------------

DAMAGED = {
    "bad-toml": b"client_id = [unterminated\n",
    "not-utf8": b"\xff\xfe\xfd garbage \x00\x01",
    "bad-uuid": b'client_id = "not-a-uuid"\n',
    "bad-decision": (
        b'client_id = "0b5a3c1e-9a1b-4c2d-8e3f-4a5b6c7d8e9f"\n[acknowledgement]\n'
        b'version = 3\nfingerprint = "x"\ndecision = "whatever"\n'
        b'at = 2026-01-01T00:00:00Z\nvia = "init-flag"\n'
    ),
}


@pytest.mark.parametrize("raw", DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_record_read_gives_warning(sandbox: Sandbox, raw: bytes) -> None:
    sandbox.record.parent.mkdir(parents=True)
    sandbox.record.write_bytes(raw)
    record, warning = read_record(sandbox.record)
    assert record is None
    assert warning is not None
    assert str(sandbox.record) in warning
    assert sandbox.record.read_bytes() == raw


def test_damaged_record_is_backed_up_on_next_write(sandbox: Sandbox) -> None:
    raw = DAMAGED["bad-toml"]
    sandbox.record.parent.mkdir(parents=True)
    sandbox.record.write_bytes(raw)
    result = run_cli("init", "--yes")
    assert result.returncode == 0, result.stderr
    backups = sorted(sandbox.record.parent.glob("consent.toml.damaged-*"))
    assert len(backups) == 1
    assert backups[0].read_bytes() == raw
    fresh = _raw(sandbox)
    assert _is_uuid4(fresh["client_id"])
    assert fresh["acknowledgement"]["decision"] == "share"


def test_damaged_record_backup_in_process(sandbox: Sandbox) -> None:
    raw = DAMAGED["not-utf8"]
    sandbox.record.parent.mkdir(parents=True)
    sandbox.record.write_bytes(raw)
    record = update_record(sandbox.record, lambda current: current)
    assert _is_uuid4(record.client_id)
    backups = list(sandbox.record.parent.glob("consent.toml.damaged-*"))
    assert [b.read_bytes() for b in backups] == [raw]
    assert load_record(sandbox.record) == record


def test_status_with_damaged_record_warns_and_leaves_it(sandbox: Sandbox) -> None:
    raw = b"client_id = [unterminated\n"
    sandbox.record.parent.mkdir(parents=True)
    sandbox.record.write_bytes(raw)
    result = run_cli("stats", "status", "--json")
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert any(str(sandbox.record) in w for w in data["warnings"])
    assert sandbox.record.read_bytes() == raw
    assert list(sandbox.record.parent.glob("consent.toml.damaged-*")) == []


def test_read_record_deeply_nested(sandbox: Sandbox) -> None:
    sandbox.record.parent.mkdir(parents=True)
    sandbox.record.write_text("client_id = " + "[" * 5000 + "]" * 5000 + "\n")
    record, warning = read_record(sandbox.record)
    assert record is None
    assert warning is not None


def test_read_record_out_of_range_datetime(sandbox: Sandbox) -> None:
    sandbox.record.parent.mkdir(parents=True)
    sandbox.record.write_text(
        'client_id = "0b5a3c1e-9a1b-4c2d-8e3f-4a5b6c7d8e9f"\n\n[acknowledgement]\n'
        'version = 3\nfingerprint = "x"\ndecision = "share"\n'
        'at = 0001-01-01T00:00:00+01:00\nvia = "notice"\n'
    )
    record, warning = read_record(sandbox.record)
    assert record is None
    assert warning is not None


# -- never hardware-derived ------------------------------------------------------------------


def test_record_never_reuses_host_uuid(sandbox: Sandbox) -> None:
    host_uuid_path = sandbox.home / ".skyplane" / "host_uuid"
    host_uuid_path.parent.mkdir(parents=True)
    # Skyplane 0.3.x derived this from the MAC address (uuid1 carries the node id)
    mac_derived = str(uuid.uuid1(node=0x0242AC110002, clock_seq=0))
    host_uuid_path.write_text(mac_derived)
    result = run_cli("init", "--yes")
    assert result.returncode == 0, result.stderr
    client_id = _raw(sandbox)["client_id"]
    assert client_id != mac_derived
    assert _is_uuid4(client_id)
    assert format(0x0242AC110002, "012x") not in client_id.replace("-", "")
    assert host_uuid_path.read_text() == mac_derived


# -- property tests --------------------------------------------------------------------------

_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# DEL (U+007F) is excluded here; test_dumps_record_escapes_del covers it on its own
_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x7f"),
    max_size=40,
)
_tricky_text = st.one_of(
    _text,
    st.sampled_from(['"', "\\", '\\"', "\n", "'''", '"""', "\t", "\r\n", "é☃", "\x1b[31m", "#"]),
)
_times = st.datetimes(
    min_value=dt.datetime(1970, 1, 1),
    max_value=dt.datetime(9999, 12, 31),
    timezones=st.just(dt.UTC),
).map(lambda t: t.replace(microsecond=0))
_versions = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_schemas = st.dictionaries(
    st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True),
    st.tuples(st.sampled_from(FIELD_TYPES), st.sampled_from(CATEGORIES)),
    max_size=8,
)


def _acks(with_schema: bool) -> st.SearchStrategy[Acknowledgement]:
    return st.builds(
        Acknowledgement,
        version=_versions,
        fingerprint=_tricky_text,
        decision=st.sampled_from(CHOICES),
        at=_times,
        via=st.sampled_from(VIAS),
        schema=_schemas if with_schema else st.just({}),
    )


_records = st.builds(
    ConsentRecord,
    client_id=st.uuids(version=4).map(str),
    acknowledgement=st.none() | _acks(with_schema=True),
    notice=st.none() | st.builds(Notice, version=_versions, fingerprint=_tricky_text, at=_times),
    history=st.lists(_acks(with_schema=False), max_size=4).map(tuple),
)


@_SETTINGS
@given(record=_records)
def test_dumps_record_round_trips(record: ConsentRecord) -> None:
    text = dumps_record(record)
    data = tomllib.loads(text)
    assert data["client_id"] == record.client_id
    # the library's reader turns the parsed document back into an equal record
    assert _from_toml(data) == record


@_SETTINGS
@given(record=_records)
def test_dumps_record_round_trips_through_file(sandbox: Sandbox, record: ConsentRecord) -> None:
    sandbox.record.parent.mkdir(parents=True, exist_ok=True)
    sandbox.record.write_text(dumps_record(record), encoding="utf-8")
    assert load_record(sandbox.record) == record


def test_dumps_record_escapes_del() -> None:
    record = ConsentRecord(
        client_id=str(uuid.uuid4()),
        notice=Notice(version=1, fingerprint="a\x7fb", at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
    )
    data = tomllib.loads(dumps_record(record))
    assert data["notice"]["fingerprint"] == "a\x7fb"


@_SETTINGS
@given(
    text=st.one_of(
        st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
        st.builds(
            lambda head, tail: head + tail,
            st.sampled_from(
                [
                    'client_id = "0b5a3c1e-9a1b-4c2d-8e3f-4a5b6c7d8e9f"\n',
                    "[acknowledgement]\n",
                    "[[history]]\n",
                    "[notice]\nversion = 1\n",
                    'client_id = "0b5a3c1e-9a1b-4c2d-8e3f-4a5b6c7d8e9f"\n[acknowledgement]\n'
                    'version = 3\nfingerprint = "x"\n',
                ]
            ),
            st.text(alphabet=st.characters(codec="utf-8"), max_size=100),
        ),
    )
)
def test_read_record_never_raises_on_garbage_text(sandbox: Sandbox, text: str) -> None:
    sandbox.record.parent.mkdir(parents=True, exist_ok=True)
    sandbox.record.write_bytes(text.encode("utf-8"))
    record, warning = read_record(sandbox.record)
    assert (record is None) != (warning is None)
    if record is not None:
        assert str(uuid.UUID(record.client_id)) == record.client_id
    else:
        assert warning is not None
        assert str(sandbox.record) in warning


@_SETTINGS
@given(raw=st.binary(max_size=300))
def test_read_record_never_raises_on_garbage_bytes(sandbox: Sandbox, raw: bytes) -> None:
    sandbox.record.parent.mkdir(parents=True, exist_ok=True)
    sandbox.record.write_bytes(raw)
    record, warning = read_record(sandbox.record)
    assert (record is None) != (warning is None)


def test_read_record_missing_file(tmp_path: Path) -> None:
    assert read_record(tmp_path / "nothing.toml") == (None, None)
