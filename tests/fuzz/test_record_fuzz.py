"""Fuzz the consent-record parser: a :class:`ConsentRecord` or :class:`CorruptFileError`.

tests/test_record.py round-trips records the writer makes and feeds the reader
garbage text. Here the documents are record-shaped TOML written by hand (another
tool, an older version, a user's editor): odd uuid spellings, datetimes with
offsets at the edges of the calendar, local dates and times where a datetime
belongs, wrong types in every slot, history entries of every shape. Whatever the
reader accepts must survive the writer and read back the same.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from consent._exceptions import CorruptFileError
from consent.record import (
    CHOICES,
    VIAS,
    Acknowledgement,
    ConsentRecord,
    dumps_record,
    load_record,
    read_record,
)
from tests.fuzz._toml import FUZZ, dumps, mutate_bytes

CLIENT = "0b5a3c1e-9a1b-4c2d-8e3f-4a5b6c7d8e9f"
_AT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
_ACK: dict[str, Any] = {
    "version": 3,
    "fingerprint": "f" * 64,
    "decision": "share",
    "at": _AT,
    "via": "init-flag",
    "schema": {"os": "string/system", "runtime_s": "number/performance"},
}
BASE: dict[str, Any] = {
    "client_id": CLIENT,
    "acknowledgement": _ACK,
    "notice": {"version": 3, "fingerprint": "f" * 64, "at": _AT},
    "history": [{k: v for k, v in _ACK.items() if k != "schema"}],
}

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=16)
_offsets = st.sampled_from([0, 1, -1, 14 * 60, -14 * 60, 23 * 60 + 59, -(23 * 60 + 59)]).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
_datetimes = st.one_of(
    # Years from 1000 on (in UTC, after the offset): earlier ones are the regression
    # test_dumps_record_writes_years_before_1000 in test_regressions.py.
    st.datetimes(min_value=dt.datetime(1000, 1, 2), timezones=_offsets),
    st.datetimes(min_value=dt.datetime(1000, 1, 2)),
    st.sampled_from(
        [
            dt.datetime(1000, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=23, minutes=59))),
            dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(-dt.timedelta(hours=1))),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        ]
    ),
)
_uuids = st.one_of(
    st.uuids().flatmap(
        lambda u: st.sampled_from(
            [str(u), str(u).upper(), u.hex, "{" + str(u) + "}", u.urn, f" {u} ", str(u)[:-1]]
        )
    ),
    _text,
)
_scalars = st.one_of(
    _text,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.floats(),
    st.dates(),
    st.times(),
    _datetimes,
)
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=5,
)
_ack_slots = {
    "version": st.integers(min_value=-(2**70), max_value=2**70) | _values,
    "fingerprint": _text | _values,
    "decision": st.sampled_from([*CHOICES, "Share", ""]) | _values,
    "at": _datetimes | _values,
    "via": st.sampled_from([*VIAS, "cli"]) | _values,
    "schema": st.dictionaries(_text, _text | _values, max_size=4) | _values,
}


@st.composite
def _tables(draw: st.DrawFn, base: dict[str, Any], slots: dict[str, Any]) -> Any:
    table = copy.deepcopy(base)
    for key in draw(st.lists(st.sampled_from(sorted(slots)), max_size=3, unique=True)):
        if draw(st.booleans()):
            table.pop(key, None)
        else:
            table[key] = draw(slots[key])
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        table[draw(_text)] = draw(_values)
    return table


_notice_base = BASE["notice"]
_history_base = BASE["history"][0]


@st.composite
def record_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    if draw(st.booleans()):
        doc["client_id"] = draw(_uuids | _values)
    for key, strategy in (
        ("acknowledgement", _tables(_ACK, _ack_slots)),
        ("notice", _tables(_notice_base, {k: _ack_slots[k] for k in _notice_base})),
        ("history", st.lists(_tables(_history_base, _ack_slots), max_size=3) | _values),
    ):
        choice = draw(st.integers(min_value=0, max_value=3))
        if choice == 0:
            doc.pop(key)
        elif choice == 1:
            doc[key] = draw(strategy)
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        doc.pop("client_id")
    return doc


def _as_written(record: ConsentRecord) -> ConsentRecord:
    """The record as the writer keeps it: whole seconds, no schema in the history."""

    def ack(item: Acknowledgement, *, keep_schema: bool = False) -> Acknowledgement:
        return Acknowledgement(
            item.version,
            item.fingerprint,
            item.decision,
            item.at.replace(microsecond=0),
            item.via,
            item.schema if keep_schema else {},
        )

    notice = record.notice
    return ConsentRecord(
        record.client_id,
        None if record.acknowledgement is None else ack(record.acknowledgement, keep_schema=True),
        None if notice is None else replace(notice, at=notice.at.replace(microsecond=0)),
        tuple(ack(item) for item in record.history),
    )


def _check_record(record: ConsentRecord, path: Path) -> None:
    assert str(uuid.UUID(record.client_id)) == record.client_id
    acks = [*record.history]
    if record.acknowledgement is not None:
        acks.append(record.acknowledgement)
    for item in acks:
        assert isinstance(item.version, int) and not isinstance(item.version, bool)
        assert isinstance(item.fingerprint, str)
        assert item.decision in CHOICES and item.via in VIAS
        assert item.at.utcoffset() == dt.timedelta(0)
        assert all(isinstance(k, str) and len(v) == 2 for k, v in item.schema.items())
    if record.notice is not None:
        assert record.notice.at.utcoffset() == dt.timedelta(0)
    # what the reader accepts, the writer writes, and the reader reads back the same
    path.write_text(dumps_record(record), encoding="utf-8")
    assert load_record(path) == _as_written(record)


def _outcome(path: Path) -> ConsentRecord | CorruptFileError | None:
    try:
        return load_record(path)
    except CorruptFileError as exc:
        return exc


@FUZZ
@given(doc=record_documents())
@example(doc=BASE)
@example(doc={**BASE, "client_id": "{" + CLIENT + "}"})
@example(doc={**BASE, "acknowledgement": {**_ACK, "at": dt.date(2026, 1, 1)}})
@example(doc={**BASE, "acknowledgement": {**_ACK, "at": dt.time(1, 2, 3)}})
@example(doc={**BASE, "acknowledgement": {**_ACK, "version": True}})
@example(doc={**BASE, "history": {"version": 1}})
@example(doc={**BASE, "acknowledgement": {**_ACK, "schema": {"a/b": 7, "": "x/y/z"}}})
def test_record_documents_give_a_record_or_corrupt_file_error(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    path = tmp_path / "consent.toml"
    path.write_text(dumps(doc), encoding="utf-8")
    outcome = _outcome(path)
    if isinstance(outcome, ConsentRecord):
        _check_record(outcome, tmp_path / "again.toml")
    else:
        assert isinstance(outcome, CorruptFileError)
        assert str(path) in str(outcome)
        record, warning = read_record(path)
        assert record is None and warning == str(outcome)


_valid_bytes = dumps_record(
    ConsentRecord(
        CLIENT,
        Acknowledgement(3, "f" * 64, "share", _AT, "init-flag", {"os": ("string", "system")}),
        None,
        (Acknowledgement(2, "e" * 64, "dont-share", _AT, "config-set"),),
    )
).encode()


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=len(_valid_bytes)),
                st.integers(min_value=0, max_value=6),
                st.binary(max_size=4)
                | st.sampled_from([b"[", b"[[", b"]", b"=", b'"', b"\n", b"Z", b"+25:00", b"9"]),
            ),
            min_size=1,
            max_size=5,
        ).map(lambda edits: mutate_bytes(_valid_bytes, edits)),
    )
)
@example(raw=_valid_bytes)
@example(raw=_valid_bytes.replace(b"version = 3", b"version = " + b"9" * 5000))
@example(raw=b'client_id = "' + CLIENT.encode() + b'"\nhistory = [' * 2000)
def test_record_bytes_give_a_record_or_corrupt_file_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "consent.toml"
    path.write_bytes(raw)
    outcome = _outcome(path)
    assert outcome is not None  # None means "no file", and there is one
    if isinstance(outcome, ConsentRecord):
        _check_record(outcome, tmp_path / "again.toml")
    else:
        assert isinstance(outcome, CorruptFileError)
