"""The consent record (``~/.skyplane/consent.toml``): who we are and what was agreed.

It holds the random client id, the acknowledgement of a policy version and schema,
the last policy-change notice shown, and an append-only history of earlier
acknowledgements. It is written atomically with mode 0600.

``tomllib`` reads it and tomli-w writes it, imported inside :func:`dumps_record`:
the session path writes the record only on the run that creates the client id or
shows a notice, and a steady-state session reads neither (``consent._session``
keeps what it needs in a small cache). A property test proves every record
round-trips through ``tomllib``.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from consent._exceptions import CorruptFileError, StorageError
from consent._fileio import StrPath
from consent.config import locked, write_atomically

__all__ = [
    "Acknowledgement",
    "Choice",
    "ConsentRecord",
    "Notice",
    "Via",
    "dumps_record",
    "load_record",
    "new_client_id",
    "read_record",
    "update_record",
]

Choice = Literal["share", "review", "dont-share"]
Via = Literal["init-prompt", "init-flag", "config-set", "policy-accept", "notice"]
CHOICES: tuple[Choice, ...] = get_args(Choice)
VIAS: tuple[Via, ...] = get_args(Via)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def new_client_id() -> str:
    from consent.payload import random_uuid4

    return random_uuid4()


@dataclass(frozen=True)
class Acknowledgement:
    """A policy version and schema the user was told about, and what they decided."""

    version: int
    fingerprint: str
    decision: Choice
    at: dt.datetime
    via: Via
    schema: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """The last policy-change notice shown, so each change is announced once."""

    version: int
    fingerprint: str
    at: dt.datetime


@dataclass(frozen=True)
class ConsentRecord:
    client_id: str
    acknowledgement: Acknowledgement | None = None
    notice: Notice | None = None
    history: tuple[Acknowledgement, ...] = ()

    def acknowledge(self, new: Acknowledgement) -> ConsentRecord:
        """Replace the acknowledgement; the one it replaces moves to the history."""
        if self.acknowledgement is None:
            return replace(self, acknowledgement=new)
        # the history says what was decided when; the schema of the day is not kept
        earlier = replace(self.acknowledgement, schema={})
        return replace(self, acknowledgement=new, history=(*self.history, earlier))


# -- reading -------------------------------------------------------------------------------


def load_record(path: StrPath) -> ConsentRecord | None:
    """The record, or ``None`` when there is none. Raises :class:`CorruptFileError`."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        return _from_toml(tomllib.loads(raw.decode("utf-8")))
    except (
        UnicodeDecodeError,
        tomllib.TOMLDecodeError,
        KeyError,
        TypeError,
        ValueError,
        RecursionError,
        OverflowError,
    ):
        raise CorruptFileError(
            f"{path} is damaged and was ignored; the next change keeps a copy of it "
            f"beside it and starts a new record."
        ) from None


def read_record(path: StrPath) -> tuple[ConsentRecord | None, str | None]:
    """Like :func:`load_record`, but a damaged record becomes ``(None, warning)``."""
    try:
        return load_record(path), None
    except (CorruptFileError, StorageError) as exc:
        return None, str(exc)


def _from_toml(data: dict[str, Any]) -> ConsentRecord:
    client_id = str(uuid.UUID(_expect(data, "client_id", str)))
    ack = data.get("acknowledgement")
    notice = data.get("notice")
    history = data.get("history", [])
    if not isinstance(history, list):
        raise TypeError("history")
    return ConsentRecord(
        client_id=client_id,
        acknowledgement=None if ack is None else _ack_from(ack),
        notice=None if notice is None else _notice_from(notice),
        history=tuple(_ack_from(item) for item in history),
    )


def _expect(table: object, key: str, kind: type) -> Any:
    if not isinstance(table, dict):
        raise TypeError(key)
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(key)
    return value


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _ack_from(table: object) -> Acknowledgement:
    decision = _expect(table, "decision", str)
    via = _expect(table, "via", str)
    if decision not in CHOICES or via not in VIAS:
        raise ValueError("decision")
    schema_table = table.get("schema", {}) if isinstance(table, dict) else {}
    if not isinstance(schema_table, dict):
        raise TypeError("schema")
    schema: dict[str, tuple[str, str]] = {}
    for name, kind_category in schema_table.items():
        kind, _, category = str(kind_category).partition("/")
        schema[name] = (kind, category)
    return Acknowledgement(
        version=_expect(table, "version", int),
        fingerprint=_expect(table, "fingerprint", str),
        decision=decision,
        at=_utc(_expect(table, "at", dt.datetime)),
        via=via,
        schema=schema,
    )


def _notice_from(table: object) -> Notice:
    return Notice(
        version=_expect(table, "version", int),
        fingerprint=_expect(table, "fingerprint", str),
        at=_utc(_expect(table, "at", dt.datetime)),
    )


# -- writing -------------------------------------------------------------------------------

# No command is named here: the record serves whichever host's CLI the user has.
_HEADER = (
    "# Usage-statistics consent record, written by skyplane-consent. Change it with the "
    "`stats` commands of your tool, not by hand.\n"
)


def _written_at(value: dt.datetime) -> dt.datetime:
    # the record keeps times to the second, in UTC, as utc_now() makes them
    return _utc(value).replace(microsecond=0)


def _ack_table(ack: Acknowledgement) -> dict[str, Any]:
    return {
        "version": ack.version,
        "fingerprint": ack.fingerprint,
        "decision": ack.decision,
        "at": _written_at(ack.at),
        "via": ack.via,
    }


def dumps_record(record: ConsentRecord) -> str:
    """The record as TOML. tomli-w is imported here: only a run that writes the record pays."""
    import tomli_w

    doc: dict[str, Any] = {"client_id": record.client_id}
    if record.acknowledgement is not None:
        ack = record.acknowledgement
        schema = {
            name: f"{kind}/{category}" for name, (kind, category) in sorted(ack.schema.items())
        }
        doc["acknowledgement"] = {**_ack_table(ack), "schema": schema}
    if record.notice is not None:
        doc["notice"] = {
            "version": record.notice.version,
            "fingerprint": record.notice.fingerprint,
            "at": _written_at(record.notice.at),
        }
    if record.history:
        doc["history"] = [_ack_table(ack) for ack in record.history]
    return _HEADER + tomli_w.dumps(doc)


def update_record(
    path: StrPath, change: Callable[[ConsentRecord], ConsentRecord | None]
) -> ConsentRecord:
    """Read-modify-write the record under its lock, creating it (with a client id) if needed.

    ``change`` returns the new record, or ``None`` to leave the file as it is. A
    damaged record is kept beside the new one as ``consent.toml.damaged-<time>``.
    """
    with locked(path) as target:
        try:
            current = load_record(target)
        except CorruptFileError:
            backup = f"{target}.damaged-{utc_now():%Y%m%dT%H%M%SZ}"
            try:
                os.replace(target, backup)
            except OSError as exc:
                raise StorageError(f"Cannot set aside damaged {path}: {exc.strerror}.") from None
            current = None
        base = current or ConsentRecord(client_id=new_client_id())
        new = change(base)
        if new is None:
            if current is not None:
                return current
            new = base
        if new != current:
            write_atomically(target, dumps_record(new).encode())
        return new
