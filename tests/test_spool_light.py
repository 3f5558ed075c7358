"""The cold path's spool writer (consent._spoolwrite) agrees with consent.spool.

The host path writes a new session without importing consent.spool (bench/cold.py);
these tests hold the two to one layout and one set of rules for choosing the root.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from consent import _spoolwrite
from consent._exceptions import ConsentError, InvalidValueError
from consent.profile import AppProfile, Scope
from consent.spool import Entry, Spool, State, _state_bytes

CLIENT = "0b6f1c9e-3f1d-4d8e-9a57-6c0f3e1d2a4b"
SESSION = "5d0c2a1e-8b7f-4c3d-a2e1-9f8b7c6d5e4f"


def test_state_bytes_are_the_spools(tmp_path: Path) -> None:
    for state, withheld in (("held", ()), ("pending", ("error", "ünïcode"))):
        entry = Entry(
            CLIENT,
            SESSION,
            State(state),
            tmp_path,
            (),
            None,
            "2026-01-02T03:04:05Z",
            tuple(withheld),
        )
        assert _spoolwrite.state_bytes(state, "2026-01-02T03:04:05Z", withheld) == _state_bytes(
            entry
        )


@pytest.mark.parametrize("state", ["held", "pending"])
def test_the_spool_reads_what_the_light_writer_wrote(spool: Spool, state: str) -> None:
    payload = b'{"session_id":"x"}'
    _spoolwrite.write_new(
        str(spool.root), CLIENT, SESSION, payload, state, durable=False, withheld=["error"]
    )
    (entry,) = spool.entries()
    assert (entry.client_id, entry.session_id, entry.state) == (CLIENT, SESSION, State(state))
    assert entry.withheld == ("error",)
    assert spool.read_payload(entry) == payload
    assert oct((entry.directory / "usage_stats.json").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(InvalidValueError, match="already in the spool"):
        _spoolwrite.write_new(str(spool.root), CLIENT, SESSION, payload, state, durable=False)


@pytest.mark.parametrize(
    ("client_id", "session_id", "state"),
    [("../x", SESSION, "held"), (CLIENT, "", "held"), (CLIENT, SESSION, "sent")],
)
def test_bad_ids_and_states_are_refused(
    spool: Spool, client_id: str, session_id: str, state: str
) -> None:
    with pytest.raises(InvalidValueError):
        _spoolwrite.write_new(str(spool.root), client_id, session_id, b"{}", state, durable=False)
    assert spool.entries() == []


def test_a_retired_client_id_is_not_written(spool: Spool) -> None:
    (spool.root / ".retired").write_text(f"{CLIENT}\n")
    _spoolwrite.write_new(str(spool.root), CLIENT, SESSION, b"{}", "held", durable=False)
    assert not (spool.root / CLIENT).exists()


def _outcome(call: object) -> tuple[object, ...]:
    try:
        result = call()  # type: ignore[operator]
    except ConsentError as exc:
        return (type(exc).__name__, str(exc))
    if isinstance(result, Spool):
        return (str(result.root), list(result.warnings), result.durable)
    root, warnings, durable = result
    return (root, warnings, durable)


def _arrange(setup: str, shared: Path, override: Path) -> None:
    if setup == "hostile shared chain":
        (shared / "skyplane").mkdir()
        (shared / "skyplane").chmod(0o757)  # writable by others
    elif setup == "root is a file":
        (shared / "skyplane").mkdir()
        (shared / "skyplane" / "usage").write_text("x")
    elif setup == "root and fallback blocked":
        (shared / "skyplane").write_text("x")
        (shared / f"skyplane-{os.getuid()}").write_text("x")
    elif setup == "override is a file":
        override.write_text("x")


@pytest.mark.parametrize(
    "setup",
    [
        "default root",
        "hostile shared chain",
        "root is a file",
        "root and fallback blocked",
        "override is a file",
    ],
)
def test_the_root_is_chosen_as_the_spool_chooses_it(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: str
) -> None:
    profile = AppProfile(shared_temp_root=shared)
    override = tmp_path / "chosen" / "spool"
    if setup == "override is a file":
        override.parent.mkdir()
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_DIR", str(override))
    else:
        monkeypatch.delenv("SKYPLANE_USAGE_STATS_DIR", raising=False)
    _arrange(setup, shared, override)
    light = _outcome(lambda: _spoolwrite.open_root(Scope(profile)))
    # the spool is asked second, so it sees what the light writer left (both create)
    full = _outcome(lambda: Spool.open(Scope(profile)))
    assert light == full
    assert json.dumps(light)  # plain values, comparable across the two
