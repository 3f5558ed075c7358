"""The spool: layout, states, receipts, hostile directories, concurrency and crashes.

Everything runs on the real filesystem under ``tmp_path``. The default ``/tmp`` logic
is exercised through ``AppProfile(shared_temp_root=tmp_path / "tmp")`` (mode 1777).
The tests run as root, so they can hand directories to a foreign uid with chown.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from consent._exceptions import InvalidValueError, StorageError, UnknownSessionError
from consent._fileio import atomic_write, file_lock
from consent.profile import AppProfile, Scope
from consent.spool import PAYLOAD_FILE, STATE_FILE, Entry, Receipt, Spool, State

REPO = Path(__file__).resolve().parents[1]
FOREIGN_UID = 12345
CLIENT = "0b6c1e9f-3f52-4c38-9a43-0d1f1a1b2c3d"
ENDPOINT_A = "https://a.example/loki/api/v1/push"
ENDPOINT_B = "https://b.example/ingest"


# -- helpers and fixtures ------------------------------------------------------------------


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def payload_bytes(**fields: object) -> bytes:
    body = {"schema_version": "3", "session_id": str(uuid.uuid4()), **fields}
    return json.dumps(body, sort_keys=True).encode()


def new_id() -> str:
    return str(uuid.uuid4())


def write_legacy(root: Path, client_id: str, session_id: str) -> bytes:
    """A Skyplane 0.3.x payload: plain mkdir/open, no state file."""
    directory = root / client_id / session_id
    directory.mkdir(parents=True, mode=0o755)
    data = json.dumps({"schema_version": "0.2", "session_id": session_id}).encode()
    (directory / PAYLOAD_FILE).write_bytes(data)
    return data


def set_updated_at(entry: Entry, when: str) -> None:
    state_path = entry.directory / STATE_FILE
    doc = json.loads(state_path.read_bytes())
    doc["updated_at"] = when
    state_path.write_text(json.dumps(doc))


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def restore_umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    try:
        yield
    finally:
        os.umask(old)


# -- layout --------------------------------------------------------------------------------


def test_layout_exact_bytes_and_state_file(spool: Spool, shared: Path) -> None:
    session = new_id()
    data = payload_bytes(runtime_s=1.5)
    entry = spool.write(CLIENT, session, data, State.PENDING)

    directory = shared / "skyplane" / "usage" / CLIENT / session
    assert spool.root == shared / "skyplane" / "usage"
    assert entry.directory == directory
    assert entry.payload_path == directory / "usage_stats.json"
    assert (directory / "usage_stats.json").read_bytes() == data
    assert spool.read_payload(entry) == data
    state = json.loads((directory / "state.json").read_bytes())
    assert set(state) == {"state", "updated_at", "receipts", "reason", "withheld"}
    assert state["state"] == "pending"
    assert state["receipts"] == []
    assert state["reason"] is None
    assert state["withheld"] == []
    assert time.strptime(state["updated_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert entry.updated_at == state["updated_at"]
    assert sorted(p.name for p in directory.iterdir()) == ["state.json", "usage_stats.json"]
    assert spool.warnings == []


def test_withheld_fields_are_kept_beside_the_payload(spool: Spool) -> None:
    data = payload_bytes()
    entry = spool.write(CLIENT, new_id(), data, State.HELD, withheld=["error", "kernel_version"])
    assert entry.withheld == ("error", "kernel_version")
    state = json.loads((entry.directory / STATE_FILE).read_bytes())
    assert state["withheld"] == ["error", "kernel_version"]
    entry = spool.set_state(entry, State.PENDING)
    entry = spool.add_receipt(
        entry, Receipt.for_payload(ENDPOINT_A, 204, data), required_endpoints=[ENDPOINT_A]
    )
    assert spool.find(entry.session_id).withheld == ("error", "kernel_version")
    with pytest.raises(InvalidValueError, match="withheld"):
        spool.write(CLIENT, new_id(), data, State.HELD, withheld="error")


def test_state_file_without_withheld_key_reads_as_none_withheld(spool: Spool) -> None:
    entry = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    (entry.directory / STATE_FILE).write_text(
        '{"state": "held", "updated_at": "2026-01-01T00:00:00Z", "receipts": [], "reason": null}'
    )
    listed = spool.find(entry.session_id)
    assert listed.state is State.HELD
    assert listed.withheld == ()


def test_modes_are_private(spool: Spool, shared: Path) -> None:
    entry = spool.write(CLIENT, new_id(), payload_bytes(), State.HELD)
    for directory in (shared / "skyplane", spool.root, spool.root / CLIENT, entry.directory):
        assert mode_of(directory) == 0o700, directory
    assert mode_of(entry.directory / STATE_FILE) == 0o600
    assert mode_of(entry.payload_path) == 0o600
    assert mode_of(shared) == 0o1777  # the shared temp root is never touched


def test_restrictive_umask_still_gives_usable_private_dirs(
    profile: AppProfile, restore_umask: None
) -> None:
    os.umask(0o277)
    spool = Spool.open(Scope(profile, {}))
    entry = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    os.umask(0o022)
    for directory in (spool.root.parent, spool.root, spool.root / CLIENT, entry.directory):
        assert mode_of(directory) == 0o700, directory
    assert mode_of(entry.payload_path) == 0o600


def test_write_order_state_file_first(spool: Spool, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[str] = []
    real = atomic_write

    def recording(path: str, data: bytes, mode: int = 0o600, **options: bool) -> None:
        written.append(os.path.basename(path))
        assert os.path.isdir(os.path.dirname(path))
        real(path, data, mode, **options)

    # the spool writes new sessions through its light writer (the host's path too)
    monkeypatch.setattr("consent._spoolwrite.atomic_write", recording)
    spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    assert written == [STATE_FILE, PAYLOAD_FILE]


def test_write_dying_before_payload_is_incomplete_and_cleaned_later(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = atomic_write

    def dies_on_payload(path: str, data: bytes, mode: int = 0o600, **options: bool) -> None:
        if os.path.basename(path) == PAYLOAD_FILE:
            raise OSError(28, "No space left on device")
        real(path, data, mode, **options)

    monkeypatch.setattr("consent._spoolwrite.atomic_write", dies_on_payload)
    session = new_id()
    with pytest.raises(StorageError, match="No space left"):
        spool.write(CLIENT, session, payload_bytes(), State.PENDING)
    monkeypatch.undo()

    directory = spool.root / CLIENT / session
    assert (directory / STATE_FILE).exists()
    assert spool.entries() == []
    assert spool.counts()["pending"] == 0
    with pytest.raises(UnknownSessionError):
        spool.find(session)

    assert spool.cleanup_incomplete() == 0  # too fresh: it might still be being written
    assert directory.exists()
    old = time.time() - 7200
    os.utime(directory, (old, old))
    assert spool.cleanup_incomplete() == 1
    assert not directory.exists()


def test_rewriting_an_incomplete_session_completes_it(spool: Spool) -> None:
    session = new_id()
    directory = spool.root / CLIENT / session
    directory.mkdir(parents=True, mode=0o700)
    (directory / STATE_FILE).write_text('{"state": "pending"')  # torn by a crash
    data = payload_bytes()
    spool.write(CLIENT, session, data, State.PENDING)
    assert [e.session_id for e in spool.entries()] == [session]
    assert spool.entries()[0].state is State.PENDING


def test_cleanup_removes_stale_temp_files_but_keeps_complete_sessions(spool: Spool) -> None:
    entry = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    stale = entry.directory / ".state.json.999.abcd.tmp"
    stale.write_bytes(b"{")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    os.utime(entry.directory, (old, old))
    assert spool.cleanup_incomplete() == 0
    assert not stale.exists()
    assert spool.entries() == [entry]


def test_existing_session_is_never_overwritten(spool: Spool) -> None:
    session = new_id()
    first = payload_bytes(n=1)
    entry = spool.write(CLIENT, session, first, State.PENDING)
    with pytest.raises(InvalidValueError, match="already in the spool"):
        spool.write(CLIENT, session, payload_bytes(n=2), State.PENDING)
    assert spool.read_payload(entry) == first


@pytest.mark.parametrize("state", [State.SENT, State.FAILED, State.LEGACY])
def test_new_sessions_are_pending_or_held_only(spool: Spool, state: State) -> None:
    with pytest.raises(InvalidValueError):
        spool.write(CLIENT, new_id(), payload_bytes(), state)
    assert spool.entries() == []


def test_states_given_as_words(spool: Spool) -> None:
    entry = spool.write(CLIENT, new_id(), payload_bytes(), "held")  # type: ignore[arg-type]
    assert entry.state is State.HELD
    assert spool.set_state(entry, "pending").state is State.PENDING  # type: ignore[arg-type]
    assert spool.entries(["pending"]) == spool.entries()  # type: ignore[list-item]
    with pytest.raises(InvalidValueError, match="not a spool state"):
        spool.set_state(entry, "done")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "../etc", "a/b", ".hidden", "-x", "a b", "x" * 129, "caf\u00e9"]
)
def test_ids_must_be_safe_path_components(spool: Spool, bad: str) -> None:
    with pytest.raises(InvalidValueError):
        spool.write(bad, new_id(), payload_bytes(), State.PENDING)
    with pytest.raises(InvalidValueError):
        spool.write(CLIENT, bad, payload_bytes(), State.PENDING)
    assert list(spool.root.iterdir()) == []


def test_legacy_style_ids_are_accepted(spool: Spool) -> None:
    entry = spool.write("unknown", "20230322_171911-1a2b3c4d", payload_bytes(), State.PENDING)
    assert spool.find("20230322_171911").session_id == entry.session_id


# -- states and transitions ----------------------------------------------------------------


def test_every_legal_transition(spool: Spool) -> None:
    entry = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    held = spool.set_state(entry, State.HELD, reason="review mode")
    assert held.state is State.HELD
    assert held.reason == "review mode"
    pending = spool.set_state(held, State.PENDING)
    assert pending.state is State.PENDING
    assert pending.reason is None
    failed = spool.set_state(pending, State.FAILED, reason="HTTP 400 from endpoint")
    assert failed.state is State.FAILED
    assert failed.reason == "HTTP 400 from endpoint"
    assert spool.find(entry.session_id) == failed
    on_disk = json.loads((entry.directory / STATE_FILE).read_bytes())
    assert on_disk["state"] == "failed"
    assert on_disk["reason"] == "HTTP 400 from endpoint"


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (State.HELD, State.FAILED),
        (State.HELD, State.SENT),
        (State.PENDING, State.SENT),
        (State.PENDING, State.LEGACY),
        (State.FAILED, State.PENDING),
        (State.FAILED, State.HELD),
        (State.SENT, State.PENDING),
        (State.SENT, State.HELD),
        (State.SENT, State.FAILED),
    ],
)
def test_illegal_transitions(spool: Spool, start: State, target: State) -> None:
    data = payload_bytes()
    entry = spool.write(
        CLIENT, new_id(), data, State.HELD if start is State.HELD else State.PENDING
    )
    if start is State.FAILED:
        entry = spool.set_state(entry, State.FAILED, reason="HTTP 400")
    elif start is State.SENT:
        entry = spool.add_receipt(
            entry, Receipt.for_payload(ENDPOINT_A, 204, data), required_endpoints=[ENDPOINT_A]
        )
    assert entry.state is start
    before = (entry.directory / STATE_FILE).read_bytes()
    with pytest.raises(InvalidValueError):
        spool.set_state(entry, target, reason="x")
    assert (entry.directory / STATE_FILE).read_bytes() == before


def test_failed_needs_a_reason(spool: Spool) -> None:
    entry = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    with pytest.raises(InvalidValueError, match="reason"):
        spool.set_state(entry, State.FAILED)
    assert spool.find(entry.session_id).state is State.PENDING


def test_setting_the_current_state_changes_nothing(spool: Spool) -> None:
    entry = spool.write(CLIENT, new_id(), payload_bytes(), State.HELD)
    before = (entry.directory / STATE_FILE).read_bytes()
    assert spool.set_state(entry, State.HELD).state is State.HELD
    assert (entry.directory / STATE_FILE).read_bytes() == before


def test_transition_uses_the_state_on_disk_not_a_stale_entry(spool: Spool) -> None:
    stale = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    spool.set_state(stale, State.HELD)
    # the stale entry still says pending; pending -> failed would be legal, held -> failed is not
    with pytest.raises(InvalidValueError, match="from held"):
        spool.set_state(stale, State.FAILED, reason="x")


def test_transition_of_a_deleted_session(spool: Spool) -> None:
    entry = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    spool.delete(entry)
    with pytest.raises(UnknownSessionError):
        spool.set_state(entry, State.HELD)


def test_payload_bytes_never_change_across_transitions(spool: Spool) -> None:
    data = payload_bytes(arguments={"multipart": True})
    entry = spool.write(CLIENT, new_id(), data, State.HELD)
    entry = spool.set_state(entry, State.PENDING)
    entry = spool.add_receipt(
        entry, Receipt.for_payload(ENDPOINT_A, 204, data), required_endpoints=[ENDPOINT_A]
    )
    assert entry.payload_path.read_bytes() == data


# -- receipts ------------------------------------------------------------------------------


def test_receipt_round_trip_and_digest() -> None:
    receipt = Receipt.for_payload(ENDPOINT_A, 204, b"{}", at="2026-11-28T10:00:00Z")
    assert receipt.sha256 == hashlib.sha256(b"{}").hexdigest()
    assert receipt.to_dict() == {
        "endpoint": ENDPOINT_A,
        "at": "2026-11-28T10:00:00Z",
        "status": 204,
        "sha256": receipt.sha256,
    }
    assert Receipt.from_dict(receipt.to_dict()) == receipt
    assert receipt.ok
    assert not Receipt(ENDPOINT_A, "t", 500, receipt.sha256).ok
    bad_receipts: list[object] = [[], {"endpoint": 1, "at": "t", "status": 204, "sha256": "x"}]
    for bad in bad_receipts:
        with pytest.raises(ValueError, match="receipt"):
            Receipt.from_dict(bad)
    with pytest.raises(ValueError, match="status"):
        Receipt.from_dict({"endpoint": "e", "at": "t", "status": True, "sha256": "x"})


def test_single_endpoint_receipt_marks_sent(spool: Spool) -> None:
    data = payload_bytes()
    entry = spool.write(CLIENT, new_id(), data, State.PENDING)
    receipt = Receipt.for_payload(ENDPOINT_A, 204, data)
    sent = spool.add_receipt(entry, receipt, required_endpoints=[ENDPOINT_A])
    assert sent.state is State.SENT
    assert sent.receipts == (receipt,)
    listed = spool.find(entry.session_id)
    assert listed.receipts == (receipt,)
    on_disk = json.loads((entry.directory / STATE_FILE).read_bytes())
    assert on_disk["receipts"] == [receipt.to_dict()]
    assert on_disk["receipts"][0]["sha256"] == hashlib.sha256(data).hexdigest()


def test_multi_endpoint_sent_needs_every_endpoint_2xx(spool: Spool) -> None:
    data = payload_bytes()
    required = [ENDPOINT_A, ENDPOINT_B]
    entry = spool.write(CLIENT, new_id(), data, State.PENDING)

    entry = spool.add_receipt(
        entry, Receipt.for_payload(ENDPOINT_A, 204, data), required_endpoints=required
    )
    assert entry.state is State.PENDING
    entry = spool.add_receipt(
        entry, Receipt.for_payload(ENDPOINT_B, 503, data), required_endpoints=required
    )
    assert entry.state is State.PENDING
    assert [r.status for r in entry.receipts] == [204, 503]
    entry = spool.add_receipt(
        entry, Receipt.for_payload(ENDPOINT_B, 200, data), required_endpoints=required
    )
    assert entry.state is State.SENT
    assert sorted((r.endpoint, r.status) for r in entry.receipts) == [
        (ENDPOINT_A, 204),
        (ENDPOINT_B, 200),
    ]
    assert spool.find(entry.session_id) == entry


def test_receipts_on_sent_and_failed_sessions_keep_their_state(spool: Spool) -> None:
    data = payload_bytes()
    entry = spool.write(CLIENT, new_id(), data, State.PENDING)
    entry = spool.add_receipt(
        entry, Receipt.for_payload(ENDPOINT_A, 204, data), required_endpoints=[ENDPOINT_A]
    )
    entry = spool.add_receipt(
        entry, Receipt.for_payload(ENDPOINT_B, 204, data), required_endpoints=[ENDPOINT_A]
    )
    assert entry.state is State.SENT
    assert len(entry.receipts) == 2

    other = payload_bytes()
    failed = spool.write(CLIENT, new_id(), other, State.PENDING)
    failed = spool.set_state(failed, State.FAILED, reason="HTTP 400 from a.example")
    failed = spool.add_receipt(
        failed, Receipt.for_payload(ENDPOINT_B, 204, other), required_endpoints=[ENDPOINT_B]
    )
    assert failed.state is State.FAILED
    assert failed.reason == "HTTP 400 from a.example"


def test_receipt_refusals(spool: Spool, tmp_path: Path) -> None:
    data = payload_bytes()
    held = spool.write(CLIENT, new_id(), data, State.HELD)
    good = Receipt.for_payload(ENDPOINT_A, 204, data)
    with pytest.raises(InvalidValueError, match="never sent"):
        spool.add_receipt(held, good, required_endpoints=[ENDPOINT_A])

    pending = spool.write(CLIENT, new_id(), data, State.PENDING)
    with pytest.raises(InvalidValueError, match="does not match"):
        spool.add_receipt(
            pending, Receipt.for_payload(ENDPOINT_A, 204, b"other"), required_endpoints=[ENDPOINT_A]
        )
    with pytest.raises(InvalidValueError, match="hex"):
        spool.add_receipt(
            pending, Receipt(ENDPOINT_A, "t", 204, "ABC"), required_endpoints=[ENDPOINT_A]
        )
    with pytest.raises(InvalidValueError, match="endpoint"):
        spool.add_receipt(pending, good, required_endpoints=[])
    assert spool.find(pending.session_id).receipts == ()

    legacy_data = write_legacy(spool.root, "unknown", "20230101_000000-deadbeef")
    legacy = spool.find("20230101_000000-deadbeef")
    with pytest.raises(InvalidValueError):
        spool.add_receipt(
            legacy,
            Receipt.for_payload(ENDPOINT_A, 204, legacy_data),
            required_endpoints=[ENDPOINT_A],
        )
    assert not (legacy.directory / STATE_FILE).exists()


# -- listing, finding, counting ------------------------------------------------------------


def test_find_by_prefix_ambiguous_unknown(spool: Spool) -> None:
    a = spool.write(CLIENT, "abcd1111-0000-4000-8000-000000000001", payload_bytes(), State.PENDING)
    spool.write(CLIENT, "abcd2222-0000-4000-8000-000000000002", payload_bytes(), State.PENDING)
    assert spool.find("abcd1").session_id == a.session_id
    assert spool.find("ABCD1111").session_id == a.session_id
    assert spool.find(a.session_id) == a
    with pytest.raises(UnknownSessionError, match="ambiguous") as info:
        spool.find("abcd")
    assert "abcd1111" in str(info.value)
    assert "abcd2222" in str(info.value)
    with pytest.raises(UnknownSessionError, match="No session"):
        spool.find("ffff0000")
    with pytest.raises(UnknownSessionError, match="at least 4"):
        spool.find("abc")


def test_find_prefers_an_exact_id(spool: Spool) -> None:
    spool.write(CLIENT, "sess", payload_bytes(), State.PENDING)
    spool.write(CLIENT, "session-2", payload_bytes(), State.PENDING)
    assert spool.find("sess").session_id == "sess"


def test_counts_always_have_every_state(spool: Spool) -> None:
    assert spool.counts() == {"pending": 0, "held": 0, "sent": 0, "failed": 0, "legacy": 0}
    data = payload_bytes()
    spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    spool.write(CLIENT, new_id(), payload_bytes(), State.HELD)
    sent = spool.write(CLIENT, new_id(), data, State.PENDING)
    spool.add_receipt(
        sent, Receipt.for_payload(ENDPOINT_A, 204, data), required_endpoints=[ENDPOINT_A]
    )
    failed = spool.write("other-client", new_id(), payload_bytes(), State.PENDING)
    spool.set_state(failed, State.FAILED, reason="retries used up")
    write_legacy(spool.root, "unknown", "20230101_000000-0000aaaa")
    assert spool.counts() == {"pending": 2, "held": 1, "sent": 1, "failed": 1, "legacy": 1}
    assert {e.state for e in spool.entries([State.PENDING, State.HELD])} == {
        State.PENDING,
        State.HELD,
    }
    assert len(spool.entries([State.PENDING])) == 2


def test_entries_sorted_by_update_time_then_session_id(spool: Spool) -> None:
    late = spool.write(CLIENT, "cccc-late", payload_bytes(), State.PENDING)
    early_b = spool.write(CLIENT, "bbbb-early", payload_bytes(), State.PENDING)
    early_a = spool.write("client-2", "aaaa-early", payload_bytes(), State.HELD)
    set_updated_at(late, "2026-01-03T00:00:00Z")
    set_updated_at(early_b, "2026-01-01T00:00:00Z")
    set_updated_at(early_a, "2026-01-01T00:00:00Z")
    write_legacy(spool.root, "unknown", "20260102_000000-legacy00")
    middle = time.mktime((2026, 1, 2, 0, 0, 0, 0, 0, 0)) - time.timezone
    legacy_payload = spool.root / "unknown" / "20260102_000000-legacy00" / PAYLOAD_FILE
    os.utime(legacy_payload, (middle, middle))
    order = [e.session_id for e in spool.entries()]
    assert order == ["aaaa-early", "bbbb-early", "20260102_000000-legacy00", "cccc-late"]


# -- corrupt state and legacy ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[]",
        b'{"state": "sent-ish", "updated_at": "t", "receipts": [], "reason": null}',
        b'{"state": "legacy", "updated_at": "t", "receipts": [], "reason": null}',
        b'{"state": "pending", "updated_at": 5, "receipts": [], "reason": null}',
        b'{"state": "pending", "updated_at": "t", "receipts": [{"endpoint": 1}], "reason": null}',
        b'{"state": "pending", "updated_at": "t", "receipts": [], "reason": 7}',
        b'{"state": "held", "updated_at": "t", "receipts": [], "reason": null, "withheld": "x"}',
        b'{"state": "held", "updated_at": "t", "receipts": [], "reason": null, "withheld": [1]}',
        b"\xff\xfe",
        b"[" * 100_000,
    ],
)
def test_corrupt_state_file_reads_as_failed(spool: Spool, content: bytes) -> None:
    entry = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    (entry.directory / STATE_FILE).write_bytes(content)
    (listed,) = spool.entries()
    assert listed.state is State.FAILED
    assert listed.reason == "unreadable state file"
    assert spool.counts()["failed"] == 1
    with pytest.raises(InvalidValueError):
        spool.set_state(listed, State.PENDING)
    spool.delete(listed)
    assert spool.entries() == []


def test_symlinked_state_file_is_not_followed(spool: Spool, tmp_path: Path) -> None:
    entry = spool.write(CLIENT, new_id(), payload_bytes(), State.HELD)
    decoy = tmp_path / "decoy.json"
    decoy.write_text('{"state": "pending", "updated_at": "t", "receipts": [], "reason": null}')
    state_path = entry.directory / STATE_FILE
    state_path.unlink()
    state_path.symlink_to(decoy)
    (listed,) = spool.entries()
    assert listed.state is State.FAILED
    assert listed.reason == "unreadable state file"


def test_legacy_payloads_are_shown_never_changed(spool: Spool) -> None:
    data = write_legacy(spool.root, "a1b2c3d4e5f60718293a4b5c6d7e8f90", "20230322_171911-1a2b3c4d")
    (entry,) = spool.entries()
    assert entry.state is State.LEGACY
    assert entry.updated_at is None
    assert entry.receipts == ()
    assert spool.read_payload(entry) == data
    assert json.loads(spool.read_payload(entry))["schema_version"] == "0.2"
    for target in (State.PENDING, State.HELD, State.SENT, State.FAILED):
        with pytest.raises(InvalidValueError, match=r"never changed|cannot go"):
            spool.set_state(entry, target, reason="x")
    assert not (entry.directory / STATE_FILE).exists()
    assert spool.delete_unsent() == 0
    assert spool.entries() == [entry]
    assert spool.entries([State.LEGACY]) == [entry]
    assert spool.entries([State.PENDING]) == []
    spool.delete(entry)  # only on the user's word, one session at a time
    assert spool.entries() == []


def test_any_stateless_payload_is_legacy(spool: Spool) -> None:
    directory = spool.root / CLIENT / new_id()
    directory.mkdir(parents=True)
    (directory / PAYLOAD_FILE).write_bytes(b'{"schema_version": "3"}')
    assert [e.state for e in spool.entries()] == [State.LEGACY]


# -- deletion ------------------------------------------------------------------------------


def test_delete_one(spool: Spool) -> None:
    keep = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    gone = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    (gone.directory / ".usage_stats.json.1.ab.tmp").write_bytes(b"{")
    spool.delete(gone)
    assert not gone.directory.exists()
    assert spool.entries() == [keep]
    spool.delete(gone)  # already gone: nothing to do


def test_delete_unsent_keeps_sent_failed_and_legacy(spool: Spool) -> None:
    data = payload_bytes()
    pending = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    held = spool.write("client-2", new_id(), payload_bytes(), State.HELD)
    sent = spool.write(CLIENT, new_id(), data, State.PENDING)
    sent = spool.add_receipt(
        sent, Receipt.for_payload(ENDPOINT_A, 204, data), required_endpoints=[ENDPOINT_A]
    )
    failed = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    failed = spool.set_state(failed, State.FAILED, reason="HTTP 413")
    write_legacy(spool.root, "unknown", "20230101_000000-00000001")

    assert spool.delete_unsent() == 2
    assert not pending.directory.exists()
    assert not held.directory.exists()
    assert spool.counts() == {"pending": 0, "held": 0, "sent": 1, "failed": 1, "legacy": 1}


def test_wipe_removes_everything_but_the_root(spool: Spool, tmp_path: Path) -> None:
    data = payload_bytes()
    spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    spool.write("client-2", new_id(), payload_bytes(), State.HELD)
    sent = spool.write(CLIENT, new_id(), data, State.PENDING)
    spool.add_receipt(
        sent, Receipt.for_payload(ENDPOINT_A, 204, data), required_endpoints=[ENDPOINT_A]
    )
    failed = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    spool.set_state(failed, State.FAILED, reason="HTTP 400")
    write_legacy(spool.root, "unknown", "20230101_000000-00000001")
    incomplete = spool.root / CLIENT / new_id()
    incomplete.mkdir()
    (incomplete / STATE_FILE).write_text("{}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (spool.root / "linked-client").symlink_to(outside)

    with spool.lock():
        assert spool.wipe() == 5  # re-entrant: wipe inside the caller's lock
    assert spool.root.is_dir()
    assert sorted(p.name for p in spool.root.iterdir()) == [".forget.lock", ".send.lock"]
    assert (outside / "keep.txt").read_text() == "keep"
    assert spool.counts() == dict.fromkeys(("pending", "held", "sent", "failed", "legacy"), 0)
    assert spool.wipe() == 0
    spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    assert spool.counts()["pending"] == 1


# -- symlinks inside the spool --------------------------------------------------------------


def test_symlinked_session_and_client_dirs_are_skipped(spool: Spool, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    planted = outside / "client" / "planted-session"
    planted.mkdir(parents=True)
    (planted / PAYLOAD_FILE).write_bytes(b'{"secret": 1}')
    (planted / STATE_FILE).write_text(
        '{"state": "pending", "updated_at": "t", "receipts": [], "reason": null}'
    )
    real = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    (spool.root / CLIENT / "planted-session").symlink_to(planted)
    (spool.root / "planted-client").symlink_to(outside / "client")

    assert spool.entries() == [real]
    with pytest.raises(UnknownSessionError):
        spool.find("planted")
    spool.delete(Entry(CLIENT, "planted-session", State.PENDING, planted))
    assert (planted / PAYLOAD_FILE).exists()
    assert not (spool.root / CLIENT / "planted-session").is_symlink()


def test_client_dir_that_is_a_symlink_is_refused_for_writing(spool: Spool, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (spool.root / CLIENT).symlink_to(outside)
    with pytest.raises(StorageError):
        spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    assert list(outside.iterdir()) == []


def test_symlinked_payload_is_skipped_and_refused(spool: Spool, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_bytes(b'{"private": true}')
    entry = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    entry.payload_path.unlink()
    entry.payload_path.symlink_to(secret)
    assert spool.entries() == []
    assert spool.counts()["pending"] == 0
    with pytest.raises(StorageError):
        spool.read_payload(entry)
    spool.delete(entry)
    assert secret.read_bytes() == b'{"private": true}'


# -- locking -------------------------------------------------------------------------------


def test_lock_excludes_other_holders_and_is_reentrant(spool: Spool) -> None:
    other = Spool(spool.root)
    entry = spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    with spool.lock() as held:
        assert held
        with other.lock(blocking=False) as got:
            assert not got
        with spool.lock(blocking=False) as again:
            assert again
        assert spool.set_state(entry, State.HELD).state is State.HELD
    with other.lock(blocking=False) as got:
        assert got
    assert mode_of(spool.root / ".send.lock") == 0o600
    with pytest.raises(InvalidValueError):
        spool.lock("../x").__enter__()


def test_lock_on_a_missing_root_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError), Spool(tmp_path / "missing").lock():
        pass


# -- choosing the root ---------------------------------------------------------------------


def fallback_of(shared: Path) -> Path:
    return shared / f"skyplane-{os.getuid()}" / "usage"


def test_default_root_created_one_private_level_at_a_time(
    profile: AppProfile, shared: Path
) -> None:
    spool = Spool.open(Scope(profile, {}))
    assert spool.root == shared / "skyplane" / "usage"
    assert mode_of(shared / "skyplane") == 0o700
    assert mode_of(spool.root) == 0o700
    assert spool.warnings == []
    again = Spool.open(Scope(profile, {}))
    assert again.root == spool.root
    assert again.warnings == []


def test_skyplane_03_directories_are_accepted(profile: AppProfile, shared: Path) -> None:
    (shared / "skyplane" / "usage").mkdir(parents=True, mode=0o755)
    (shared / "skyplane").chmod(0o755)
    (shared / "skyplane" / "usage").chmod(0o755)
    write_legacy(shared / "skyplane" / "usage", "unknown", "20230322_171911-1a2b3c4d")
    spool = Spool.open(Scope(profile, {}))
    assert spool.root == shared / "skyplane" / "usage"
    assert spool.warnings == []
    assert mode_of(spool.root) == 0o755  # someone else's choice of mode is never "fixed"
    assert spool.counts()["legacy"] == 1


def assert_fell_back(spool: Spool, shared: Path, refused: Path, why: str) -> None:
    assert spool.root == fallback_of(shared)
    assert len(spool.warnings) == 1
    warning = spool.warnings[0]
    assert str(refused) in warning
    assert why in warning
    assert str(fallback_of(shared)) in warning
    assert mode_of(spool.root) == 0o700
    assert mode_of(spool.root.parent) == 0o700


def test_symlinked_root_falls_back_with_one_warning(
    profile: AppProfile, shared: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (shared / "skyplane").mkdir(mode=0o700)
    (shared / "skyplane" / "usage").symlink_to(elsewhere)
    spool = Spool.open(Scope(profile, {}))
    assert_fell_back(spool, shared, shared / "skyplane" / "usage", "symbolic link")
    spool.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    assert list(elsewhere.iterdir()) == []


def test_symlinked_tool_dir_falls_back(profile: AppProfile, shared: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "usage").mkdir(parents=True, mode=0o700)
    elsewhere.chmod(0o700)
    (shared / "skyplane").symlink_to(elsewhere)
    spool = Spool.open(Scope(profile, {}))
    assert_fell_back(spool, shared, shared / "skyplane", "symbolic link")
    assert str(shared / "skyplane" / "usage") in spool.warnings[0]


@pytest.mark.parametrize("level", ["skyplane", "skyplane/usage"])
def test_foreign_owned_dir_falls_back_and_is_left_alone(
    profile: AppProfile, shared: Path, level: str
) -> None:
    (shared / "skyplane" / "usage").mkdir(parents=True, mode=0o700)
    (shared / "skyplane").chmod(0o700)
    hostile = shared / level
    os.chown(hostile, FOREIGN_UID, FOREIGN_UID)
    spool = Spool.open(Scope(profile, {}))
    assert_fell_back(spool, shared, hostile, "owned by another user")
    assert os.lstat(hostile).st_uid == FOREIGN_UID
    assert mode_of(hostile) == 0o700


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777])
def test_group_or_world_writable_dir_falls_back_and_is_left_alone(
    profile: AppProfile, shared: Path, mode: int
) -> None:
    (shared / "skyplane" / "usage").mkdir(parents=True, mode=0o700)
    (shared / "skyplane").chmod(0o700)
    hostile = shared / "skyplane" / "usage"
    hostile.chmod(mode)
    spool = Spool.open(Scope(profile, {}))
    assert_fell_back(spool, shared, hostile, "writable by group or others")
    assert mode_of(hostile) == mode


def test_a_file_in_place_of_the_dir_falls_back(profile: AppProfile, shared: Path) -> None:
    (shared / "skyplane").write_text("squatter")
    spool = Spool.open(Scope(profile, {}))
    assert_fell_back(spool, shared, shared / "skyplane", "not a directory")


def test_fallback_also_hostile_is_a_storage_error(
    profile: AppProfile, shared: Path, tmp_path: Path
) -> None:
    (shared / "skyplane").symlink_to(tmp_path)
    hostile_fallback = fallback_of(shared).parent
    hostile_fallback.mkdir(mode=0o700)
    os.chown(hostile_fallback, FOREIGN_UID, FOREIGN_UID)
    with pytest.raises(StorageError) as info:
        Spool.open(Scope(profile, {}))
    message = str(info.value)
    assert str(shared / "skyplane") in message
    assert str(hostile_fallback) in message
    assert "SKYPLANE_USAGE_STATS_DIR" in message
    assert message.count(".") <= 6  # one or two sentences, not a traceback


def test_env_override_root_is_created_and_checked(tmp_path: Path, profile: AppProfile) -> None:
    root = tmp_path / "custom" / "nested" / "spool"
    spool = Spool.open(Scope(profile, {"SKYPLANE_USAGE_STATS_DIR": str(root)}))
    assert spool.root == root
    assert mode_of(root) == 0o700
    assert spool.warnings == []
    assert not (profile.shared_temp_root / "skyplane").exists()


@pytest.mark.parametrize("hostility", ["world-writable", "symlink", "foreign"])
def test_hostile_env_override_is_refused_never_replaced_by_the_fallback(
    tmp_path: Path, profile: AppProfile, shared: Path, hostility: str
) -> None:
    root = tmp_path / "custom"
    if hostility == "symlink":
        (tmp_path / "target").mkdir(mode=0o700)
        root.symlink_to(tmp_path / "target")
    else:
        root.mkdir(mode=0o700)
        if hostility == "foreign":
            os.chown(root, FOREIGN_UID, FOREIGN_UID)
        else:
            root.chmod(0o777)
    env = {"SKYPLANE_USAGE_STATS_DIR": str(root)}
    # the shared fallback exists and holds another home's session: it must stay unused
    other_root = fallback_of(shared)
    other_root.parent.mkdir(mode=0o700)
    other_root.mkdir(mode=0o700)
    Spool(other_root).write("c" * 8, "s" * 8, b"{}", State.PENDING)
    with pytest.raises(StorageError) as info:
        Spool.open(Scope(profile, env))
    message = str(info.value)
    assert str(root) in message
    assert "SKYPLANE_USAGE_STATS_DIR" in message
    assert str(other_root) not in message
    assert message.count(". ") <= 1  # one or two sentences
    assert Spool.existing(Scope(profile, env)) is None
    refusal = Spool.refusal(Scope(profile, env))
    assert refusal is not None
    assert "SKYPLANE_USAGE_STATS_DIR" in refusal
    assert str(other_root) not in refusal
    assert {e.session_id for e in Spool(other_root).entries()} == {"s" * 8}


def test_direct_constructor_does_no_checks(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "nowhere")
    assert spool.root == tmp_path / "nowhere"
    assert spool.warnings == []
    assert spool.entries() == []
    assert spool.counts()["pending"] == 0
    assert not (tmp_path / "nowhere").exists()


# -- existing(): look, never create -------------------------------------------------------


def test_existing_creates_nothing(profile: AppProfile, shared: Path, tmp_path: Path) -> None:
    assert Spool.existing(Scope(profile, {})) is None
    assert list(shared.iterdir()) == []
    override = tmp_path / "not" / "there"
    assert Spool.existing(Scope(profile, {"SKYPLANE_USAGE_STATS_DIR": str(override)})) is None
    assert not (tmp_path / "not").exists()
    (shared / "skyplane").mkdir(mode=0o700)
    assert Spool.existing(Scope(profile, {})) is None
    assert [p.name for p in shared.iterdir()] == ["skyplane"]
    assert list((shared / "skyplane").iterdir()) == []


def test_existing_finds_what_open_made(profile: AppProfile) -> None:
    made = Spool.open(Scope(profile, {}))
    made.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    found = Spool.existing(Scope(profile, {}))
    assert found is not None
    assert found.root == made.root
    assert found.warnings == []
    assert found.counts()["pending"] == 1


def test_existing_applies_the_same_checks(
    profile: AppProfile, shared: Path, tmp_path: Path
) -> None:
    (shared / "skyplane").symlink_to(tmp_path)
    assert Spool.existing(Scope(profile, {})) is None
    assert not fallback_of(shared).parent.exists()

    made = Spool.open(Scope(profile, {}))
    assert made.root == fallback_of(shared)
    made.write(CLIENT, new_id(), payload_bytes(), State.HELD)
    found = Spool.existing(Scope(profile, {}))
    assert found is not None
    assert found.root == fallback_of(shared)
    assert len(found.warnings) == 1
    assert found.counts()["held"] == 1


# -- processes: concurrency, crashes, imports ----------------------------------------------

WRITER = textwrap.dedent(
    """
    import json, sys, uuid
    from pathlib import Path
    from consent.profile import AppProfile, Scope
    from consent.spool import Spool, State

    shared, worker, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    spool = Spool.open(Scope(AppProfile(shared_temp_root=shared), {}))
    assert not spool.warnings, spool.warnings
    n = 0
    while count < 0 or n < count:
        session = str(uuid.uuid4())
        body = {"worker": worker, "n": n, "session_id": session, "pad": "x" * int(sys.argv[4])}
        spool.write(f"client-{n % 3}", session, json.dumps(body).encode(), State.PENDING)
        n += 1
        if count < 0:
            print(n, flush=True)
    """
)


def test_eight_processes_write_1000_sessions_concurrently(shared: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(shared), str(worker), "125", "100"],
            env=subprocess_env(),
            stderr=subprocess.PIPE,
        )
        for worker in range(8)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    spool = Spool(shared / "skyplane" / "usage")
    entries = spool.entries()
    assert len(entries) == 1000
    seen = set()
    for entry in entries:
        assert entry.state is State.PENDING
        body = json.loads(spool.read_payload(entry))
        assert body["session_id"] == entry.session_id
        seen.add((body["worker"], body["n"]))
    assert seen == {(w, n) for w in range(8) for n in range(125)}
    assert spool.counts()["pending"] == 1000


def test_writer_killed_mid_loop_leaves_no_partial_json(shared: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(shared), "0", "-1", "200000"],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        for _ in range(25):
            assert proc.stdout.readline(), proc.stderr.read().decode() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    spool = Spool(shared / "skyplane" / "usage")
    entries = spool.entries()
    assert len(entries) >= 25
    for entry in entries:
        assert entry.state is State.PENDING
        assert json.loads(spool.read_payload(entry))["session_id"] == entry.session_id
    # No visible file is torn, listed or not: only hidden temp files may be partial.
    for path in spool.root.glob("*/*/*"):
        if not path.name.startswith("."):
            json.loads(path.read_bytes())
    spool.cleanup_incomplete(older_than_s=0)
    assert spool.entries() == entries


def test_importing_the_spool_loads_only_the_standard_library() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        before = set(sys.modules)
        import consent.spool
        new = sorted({name.split(".")[0] for name in set(sys.modules) - before})
        print(json.dumps(new))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(),
        capture_output=True,
        check=True,
        text=True,
    )
    loaded = json.loads(result.stdout)
    assert "consent" in loaded
    foreign = [m for m in loaded if m != "consent" and m not in sys.stdlib_module_names]
    assert foreign == []
    assert "tempfile" not in loaded
    assert "hashlib" not in loaded


def test_a_spool_in_the_shared_temp_dir_is_not_fsynced_elsewhere_it_is(
    tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/tmp is emptied at boot, so fsync there buys nothing; a spool elsewhere is durable."""
    in_tmp = Spool.open(Scope(AppProfile(shared_temp_root=shared), {}))
    elsewhere = Spool.open(
        Scope(
            AppProfile(shared_temp_root=shared),
            {"SKYPLANE_USAGE_STATS_DIR": str(tmp_path / "persistent" / "spool")},
        )
    )
    assert (in_tmp.durable, elsewhere.durable) == (False, True)

    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    in_tmp.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    assert synced == []
    elsewhere.write(CLIENT, new_id(), payload_bytes(), State.PENDING)
    assert len(synced) == 3  # both files, then the directory once


# -- the shared file helpers the record and the config use ---------------------------------


def test_locked_yields_the_symlink_target_and_serialises(tmp_path: Path) -> None:
    from consent._fileio import locked

    real = tmp_path / "dotfiles" / "consent.toml"
    real.parent.mkdir()
    real.write_text("x")
    link = tmp_path / "elsewhere" / "consent.toml"
    link.parent.mkdir()
    link.symlink_to(real)
    with locked(link) as target:
        assert target == str(real)
        # a second holder is refused while the first holds it
        with file_lock(str(real) + ".lock", blocking=False) as got:
            assert got is False
    with file_lock(str(real) + ".lock", blocking=False) as got:
        assert got is True


def test_locked_and_save_file_fail_with_one_sentence(tmp_path: Path) -> None:
    from consent._fileio import locked, save_file

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with (
        pytest.raises(StorageError, match=r"^Cannot write in .*a-file"),
        locked(blocker / "consent.toml"),
    ):
        pass
    with pytest.raises(StorageError, match=r"The file is unchanged\.$"):
        save_file(blocker / "consent.toml", b"x")


def test_file_lock_shared_holders_exclude_an_exclusive_one(tmp_path: Path) -> None:
    lock = tmp_path / ".x.lock"
    with file_lock(lock, shared=True) as one, file_lock(lock, shared=True, blocking=False) as two:
        assert one and two
        with file_lock(lock, blocking=False) as exclusive:
            assert exclusive is False
    with file_lock(lock, blocking=False) as exclusive:
        assert exclusive is True
