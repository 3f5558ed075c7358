"""`stats review` and `stats forget`: the JSON contract, the human views, approval,
opt-out, forgetting, and Skyplane 0.3's legacy payloads.

Payloads are made the way a host makes them (``build_payload`` → ``project`` →
``encode_payload`` → ``Spool.write``) after an in-process ``init --yes``, or by the
real ``consent record`` command. Every CLI call runs the real CLI in a subprocess.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sys
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from consent._exceptions import InvalidValueError, UnknownSessionError
from consent.actions import apply_choice
from consent.payload import build_payload, encode_payload, project
from consent.policy import load_policy
from consent.profile import Scope
from consent.record import load_record
from consent.scrub import scrub_arguments
from consent.spool import PAYLOAD_FILE, STATE_FILE, Entry, Receipt, Spool, State
from tests.conftest import CLOSED_ENDPOINT, Result, Sandbox, run_cli
from tests.pty_screen import DOWN, TICKED, Terminal

ITEM_KEYS = {"session_id", "client_id", "state", "path", "payload", "withheld", "receipt"}
RECEIPT_KEYS = {"endpoint", "at", "status", "sha256"}
OTHER_ENDPOINT = "https://mirror.example/ingest"
STATES = ("pending", "held", "sent", "failed", "legacy")
# Skyplane 0.3 derived its client id from the MAC address, as bare hex
LEGACY_CLIENT = uuid.UUID(int=0x0242AC110002).hex
LEGACY_SENT = uuid.UUID(int=0x0242AC110003).hex
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>]")


# -- making payloads -----------------------------------------------------------------------


def share(review: bool = False) -> str:
    """`init --yes` (or `--review`) in-process; the client id."""
    result = apply_choice("review" if review else "share", "init-flag", scope=Scope())
    return result.record.client_id


def spool_payload(
    state: str = "pending",
    *,
    session_id: str | None = None,
    minute: int = 0,
    argv: Sequence[str] = ("cp", "-r", "/home/ana/data", "s3://ana-bucket/k", "--solver", "ilp"),
    error: str | None = None,
    acknowledged: Mapping[str, tuple[str, str]] | None = None,
    receipts: Sequence[tuple[str, int]] = ((CLOSED_ENDPOINT, 204),),
) -> Entry:
    """One realistic payload in ``state``, collected ``minute`` minutes into the day."""
    policy = load_policy(Scope().policy_path)
    record = load_record(Path.home() / ".skyplane" / "consent.toml")
    assert record is not None
    assert record.acknowledgement is not None
    session_id = session_id or str(uuid.uuid4())
    full = build_payload(
        policy=policy,
        client_id=record.client_id,
        session_id=session_id,
        host_version="0.3.2",
        source_region="aws:us-east-1",
        destination_regions=["gcp:us-central1"],
        arguments=scrub_arguments(argv, ()),
        runtime_s=3.0 + minute,
        throughput_gbps=1.25,
        error=error,
        collected_at=dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC) + dt.timedelta(minutes=minute),
    )
    schema = record.acknowledgement.schema if acknowledged is None else acknowledged
    projected, withheld = project(full, policy, schema)
    body = encode_payload(projected)
    spool = Spool.open(Scope())
    first = State.HELD if state == "held" else State.PENDING
    entry = spool.write(record.client_id, session_id, body, first, withheld=withheld)
    if state == "sent":
        endpoints = [endpoint for endpoint, _ in receipts]
        for endpoint, status in receipts:
            receipt = Receipt.for_payload(endpoint, status, body)
            entry = spool.add_receipt(entry, receipt, required_endpoints=endpoints)
    elif state == "failed":
        entry = spool.set_state(entry, State.FAILED, reason="HTTP 400 from the endpoint")
    return entry


def legacy_payload(
    sandbox: Sandbox, client_id: str = LEGACY_CLIENT, *, sent_ms: int | None = None
) -> Path:
    """A Skyplane 0.3.x payload as it wrote them: plain mkdir and open, no state file."""
    session_id = "20230322_171911-1a2b3c4d"
    directory = sandbox.spool / client_id / session_id
    directory.mkdir(parents=True)
    doc = {
        "skyplane_version": "0.3.2",
        "python_version": "3.10.9",
        "schema_version": "0.2",
        "client_id": client_id,
        "session_id": session_id,
        "source_region": "us-east-1",
        "destination_regions": ["us-central1"],
        "source_cloud_provider": "aws",
        "destination_cloud_providers": ["gcp"],
        "os": "linux",
        "session_start_timestamp_ms": 1679505551000,
        "arguments_dict": {"recursive": True, "src": "s3://bucket/path"},
        "transfer_stats": {"total_runtime_s": 12.5, "throughput_gbits": 3.2},
        "error_dict": None,
        "sent_time_ms": sent_ms,
    }
    path = directory / PAYLOAD_FILE
    path.write_text(json.dumps(doc))
    return path


def one_of_each(sandbox: Sandbox) -> dict[str, str]:
    """A payload in every state; state name → session id."""
    share()
    ids = {state: spool_payload(state, minute=i).session_id for i, state in enumerate(STATES[:4])}
    legacy_payload(sandbox)
    ids["legacy"] = "20230322_171911-1a2b3c4d"
    return ids


def states_on_disk() -> dict[str, str]:
    spool = Spool.existing(Scope())
    return {} if spool is None else {e.session_id: e.state.value for e in spool.entries()}


def review_json(*args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    result = run_cli("stats", "review", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert isinstance(data, list)
    return data


def ok(*args: str, env: dict[str, str] | None = None) -> Result:
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def bad_input(*args: str) -> Result:
    result = run_cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()
    return result


# -- the JSON contract ------------------------------------------------------------------


def test_json_items_have_the_contract_shape(sandbox: Sandbox) -> None:
    ids = one_of_each(sandbox)
    items = review_json()
    assert {item["session_id"] for item in items} == set(ids.values())
    for item in items:
        assert set(item) >= ITEM_KEYS, item.keys()
        assert item["state"] in STATES
        path = Path(item["path"])
        assert path.name == PAYLOAD_FILE
        assert path.parent.name == item["session_id"]
        assert path.parent.parent.name == item["client_id"]
        # the payload is exactly what the file holds, which is what is (or was) sent
        assert item["payload"] == json.loads(path.read_bytes())
        assert isinstance(item["withheld"], list)
        if item["state"] == "sent":
            assert set(item["receipt"]) == RECEIPT_KEYS
            assert item["receipt"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
            assert item["receipt"]["status"] == 204
            assert "receipts" not in item  # one endpoint: the receipt says it all
        else:
            assert item["receipt"] is None
    failed = next(item for item in items if item["state"] == "failed")
    assert failed["reason"] == "HTTP 400 from the endpoint"


def test_json_is_the_only_thing_on_stdout_and_parses_strictly(sandbox: Sandbox) -> None:
    one_of_each(sandbox)
    result = ok("stats", "review", "--json")

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in --json output")

    json.loads(result.stdout, parse_constant=refuse)
    assert result.stdout.startswith("[")


def test_json_of_an_empty_or_missing_spool_is_an_empty_list(sandbox: Sandbox) -> None:
    assert review_json() == []
    share()
    Spool.open(Scope())
    assert review_json() == []


def test_several_endpoints_give_the_first_receipt_and_all_of_them(sandbox: Sandbox) -> None:
    share()
    entry = spool_payload("sent", receipts=[(CLOSED_ENDPOINT, 204), (OTHER_ENDPOINT, 200)])
    [item] = review_json()
    assert item["session_id"] == entry.session_id
    assert item["receipt"]["endpoint"] == CLOSED_ENDPOINT
    assert [r["endpoint"] for r in item["receipts"]] == [CLOSED_ENDPOINT, OTHER_ENDPOINT]
    assert all(set(r) == RECEIPT_KEYS for r in item["receipts"])


def test_a_payload_that_is_not_json_is_listed_with_its_problem(sandbox: Sandbox) -> None:
    share()
    entry = spool_payload("pending")
    (entry.directory / PAYLOAD_FILE).write_bytes(b'{"runtime_s": NaN}')
    [item] = review_json()
    assert item["payload"] is None
    assert "not valid JSON" in item["problem"]


@pytest.mark.parametrize("state", [*STATES, "all"])
def test_every_state_filter(sandbox: Sandbox, state: str) -> None:
    ids = one_of_each(sandbox)
    items = review_json("--state", state)
    if state == "all":
        assert {item["state"] for item in items} == set(STATES)
    else:
        assert [(item["state"], item["session_id"]) for item in items] == [(state, ids[state])]


def test_an_unknown_state_is_bad_usage(sandbox: Sandbox) -> None:
    bad_input("stats", "review", "--state", "lost")


def test_json_of_one_session_is_a_list_of_one(sandbox: Sandbox) -> None:
    ids = one_of_each(sandbox)
    items = review_json("--session", ids["sent"][:8])
    assert [item["session_id"] for item in items] == [ids["sent"]]


# -- the human views ---------------------------------------------------------------------


def test_summary_shows_each_session_counts_mode_and_where_the_files_are(
    sandbox: Sandbox,
) -> None:
    ids = one_of_each(sandbox)
    out = ok("stats", "review", env={"COLUMNS": "200"}).stdout
    for column in ("State", "Collected", "From → to", "Runtime", "Gbps", "Error", "Session"):
        assert column in out
    for state, session_id in ids.items():
        row = next(line for line in out.splitlines() if session_id[:8] in line)
        assert row.split()[0] == state
    assert "aws:us-east-1 → gcp:us-central1" in out
    assert "Payloads     1 pending · 1 held · 1 sent · 1 failed · 1 legacy" in out
    assert "Review mode  off: payloads are sent after each transfer" in out
    assert f"{sandbox.spool}/<client id>/<session id>/usage_stats.json" in out


def test_summary_of_an_empty_spool_says_so(sandbox: Sandbox) -> None:
    out = ok("stats", "review").stdout
    assert "Nothing collected yet" in out
    assert "(not created yet)" in out


def test_summary_shows_the_newest_rows_and_says_how_many_more(sandbox: Sandbox) -> None:
    share()
    entries = [spool_payload("pending", minute=i) for i in range(7)]
    out = ok("stats", "review", "--limit", "3", env={"COLUMNS": "200"}).stdout
    shown = [e.session_id[:8] for e in entries if e.session_id[:8] in out]
    assert shown == [e.session_id[:8] for e in entries[-3:]]
    assert "4 older payloads not shown (newest 3 of 7)" in out
    assert "--json" in out
    everything = ok("stats", "review", "--limit", "0").stdout
    assert all(e.session_id[:8] in everything for e in entries)


def test_detail_shows_every_field_with_the_policys_reason(sandbox: Sandbox) -> None:
    share()
    entry = spool_payload("sent", error="OSError: /home/ana/data/k.csv: no such file")
    out = ok("stats", "review", "--session", entry.session_id[:6], env={"COLUMNS": "250"}).stdout
    for spec in load_policy(Scope().policy_path).fields.values():
        assert spec.name in out
        assert spec.description in out, spec.name
    # the redaction markers are pointed out as such
    assert "<path>" in out
    assert "<uri:s3>" in out
    assert "Redacted here: <uri:s3>, <path>" in out
    assert "redaction markers" in out
    # the receipt, and the digest of the exact bytes it matches
    body = (entry.directory / PAYLOAD_FILE).read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    assert "Receipts" in out
    assert CLOSED_ENDPOINT in out
    assert "204" in out
    assert out.count(digest) == 2  # the file's digest, and the receipt's
    assert "differs" not in out
    assert str(entry.directory / PAYLOAD_FILE) in out


def test_detail_fits_80_columns_with_the_reason_under_each_value(sandbox: Sandbox) -> None:
    share()
    entry = spool_payload("sent")
    out = ok("stats", "review", "--session", entry.session_id, env={"COLUMNS": "80"}).stdout
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80
    flowing = " ".join(out.split())
    for spec in load_policy(Scope().policy_path).fields.values():
        assert " ".join(spec.description.split()) in flowing, spec.name
    # ids are never folded in the middle at this width
    assert entry.session_id in out
    assert entry.client_id in out


def test_detail_shows_withheld_fields_as_withheld(sandbox: Sandbox) -> None:
    share()
    policy = load_policy(Scope().policy_path)
    acknowledged = {k: v for k, v in policy.schema.items() if k != "throughput_gbps"}
    entry = spool_payload("held", acknowledged=acknowledged)
    [item] = review_json()
    assert item["withheld"] == ["throughput_gbps"]
    assert "throughput_gbps" not in item["payload"]
    out = ok("stats", "review", "--session", entry.session_id, env={"COLUMNS": "250"}).stdout
    row = next(line for line in out.splitlines() if line.startswith("throughput_gbps"))
    assert "withheld" in row
    assert "not acknowledged" in row
    assert "Not sent yet." in out


def test_detail_of_a_legacy_payload_explains_its_fields(sandbox: Sandbox) -> None:
    legacy_payload(sandbox)
    out = ok("stats", "review", "--session", "20230322", env={"COLUMNS": "250"}).stdout
    assert "legacy" in out
    assert "Skyplane 0.3" in out
    assert "never sent again" in out
    assert "When the transfer started" in out  # session_start_timestamp_ms, explained
    assert "2023-03-22 17:19" in out


# -- approve and discard ----------------------------------------------------------------


def test_approve_by_flag_moves_held_to_pending_and_nothing_else(sandbox: Sandbox) -> None:
    share(review=True)
    first, second, third = (spool_payload("held", minute=i) for i in range(3))
    out = ok(
        "stats", "review", "--approve", first.session_id[:8], "--approve", second.session_id
    ).stdout
    assert "Approved 2 payloads" in out
    assert states_on_disk() == {
        first.session_id: "pending",
        second.session_id: "pending",
        third.session_id: "held",
    }
    # approving again is harmless
    ok("stats", "review", "--approve", first.session_id)
    assert states_on_disk()[first.session_id] == "pending"


def test_approve_takes_several_ids_after_one_flag(sandbox: Sandbox) -> None:
    """The contract's `--approve ID...`: the ids after the flag are approved too."""
    share(review=True)
    first, second, third = (spool_payload("held", minute=i) for i in range(3))
    out = ok("stats", "review", "--approve", first.session_id, second.session_id[:8]).stdout
    assert "Approved 2 payloads" in out
    assert states_on_disk() == {
        first.session_id: "pending",
        second.session_id: "pending",
        third.session_id: "held",
    }


def test_discard_takes_several_ids_after_one_flag(sandbox: Sandbox) -> None:
    share(review=True)
    first, second, third = (spool_payload("held", minute=i) for i in range(3))
    ok("stats", "review", "--discard", first.session_id, second.session_id)
    assert states_on_disk() == {third.session_id: "held"}


def test_several_ids_without_approve_or_discard_are_bad_input(sandbox: Sandbox) -> None:
    share(review=True)
    held = spool_payload("held")
    other = spool_payload("held", minute=1)
    err = bad_input("stats", "review", held.session_id, other.session_id).stderr
    assert "--approve or --discard" in err
    assert states_on_disk() == {held.session_id: "held", other.session_id: "held"}


def test_approve_all(sandbox: Sandbox) -> None:
    share(review=True)
    held = [spool_payload("held", minute=i).session_id for i in range(3)]
    sent = spool_payload("sent").session_id
    changes = review_json("--approve-all")
    assert sorted(c["session_id"] for c in changes) == sorted(held)
    assert {(c["before"], c["after"]) for c in changes} == {("held", "pending")}
    assert states_on_disk() == {**dict.fromkeys(held, "pending"), sent: "sent"}
    assert "No held payload to approve." in ok("stats", "review", "--approve-all").stdout


@pytest.mark.parametrize("state", ["sent", "failed", "legacy"])
def test_only_held_payloads_can_be_approved(sandbox: Sandbox, state: str) -> None:
    ids = one_of_each(sandbox)
    before = states_on_disk()
    err = bad_input("stats", "review", "--approve", ids["held"], "--approve", ids[state]).stderr
    assert ids[state] in err
    assert states_on_disk() == before  # one bad id changes nothing, not even the good one


def test_discard_by_flag_deletes_held_and_pending_payloads(sandbox: Sandbox) -> None:
    ids = one_of_each(sandbox)
    out = ok("stats", "review", "--discard", ids["held"], "--discard", ids["pending"][:8]).stdout
    assert "Deleted 2 payloads" in out
    assert set(states_on_disk().values()) == {"sent", "failed", "legacy"}


def test_sent_payloads_cannot_be_discarded(sandbox: Sandbox) -> None:
    ids = one_of_each(sandbox)
    err = bad_input("stats", "review", "--discard", ids["sent"]).stderr
    assert "stats forget" in err
    assert ids["sent"] in states_on_disk()


def test_discard_all_takes_held_or_the_state_given(sandbox: Sandbox) -> None:
    ids = one_of_each(sandbox)
    ok("stats", "review", "--discard-all")
    assert ids["held"] not in states_on_disk()
    ok("stats", "review", "--discard-all", "--state", "failed")
    assert set(states_on_disk().values()) == {"pending", "sent", "legacy"}
    bad_input("stats", "review", "--discard-all", "--state", "sent")
    assert set(states_on_disk().values()) == {"pending", "sent", "legacy"}


def test_discard_in_bulk_never_takes_sent_payloads(sandbox: Sandbox) -> None:
    from consent import review

    ids = one_of_each(sandbox)
    with pytest.raises(InvalidValueError, match="stats forget"):
        review.discard(None, states=[State.SENT, State.HELD], scope=Scope())
    changes = review.discard(
        None, states=[State.PENDING, State.FAILED, State.LEGACY], scope=Scope()
    )
    assert {c.before.value for c in changes} == {"pending", "failed", "legacy"}
    assert {c.after for c in changes} == {None}
    assert states_on_disk() == {ids["held"]: "held", ids["sent"]: "sent"}


@pytest.mark.parametrize(
    "flags",
    [
        ("--approve", "X", "--approve-all"),
        ("--discard", "X", "--discard-all"),
        ("--approve-all", "--discard-all"),
        ("--session", "abcd", "--approve-all"),
        ("--approve-all", "--state", "sent"),
    ],
)
def test_conflicting_flags_are_bad_usage(sandbox: Sandbox, flags: tuple[str, ...]) -> None:
    one_of_each(sandbox)
    before = states_on_disk()
    bad_input("stats", "review", *flags)
    assert states_on_disk() == before


def test_unknown_short_and_ambiguous_ids_exit_2(sandbox: Sandbox) -> None:
    from consent import review

    share(review=True)
    spool_payload("held", session_id="abcd1111-0000-4000-8000-000000000001")
    spool_payload("held", session_id="abcd2222-0000-4000-8000-000000000002")
    before = states_on_disk()
    assert "No session" in bad_input("stats", "review", "--session", "ffff0000").stderr
    assert "ambiguous" in bad_input("stats", "review", "--discard", "abcd").stderr
    for call, wanted, message in [
        (review.approve, "ab", "too short"),
        (review.approve, "0000ffff", "No session"),
        (review.discard, "abcd", "ambiguous"),
        (review.find_item, "abcd3", "No session"),
    ]:
        ids: Any = wanted if call is review.find_item else [wanted]
        with pytest.raises(UnknownSessionError, match=message) as caught:
            call(ids, scope=Scope())
        assert caught.value.exit_code == 2
    assert states_on_disk() == before


def test_unknown_id_in_an_empty_spool_exits_2(sandbox: Sandbox) -> None:
    bad_input("stats", "review", "--session", "abcdef")
    bad_input("stats", "review", "--approve", "abcdef")


def test_every_state_word_comes_from_the_one_list_of_states() -> None:
    from consent.cli._review import StateOption
    from consent.review import StateFilter
    from consent.status import STATES as STATUS_STATES

    words = [s.value for s in State]
    assert [s.value for s in StateOption] == [*words, "all"]
    assert [s.value for s in StateFilter] == [*words, "all"]
    assert list(STATUS_STATES) == words
    assert list(ok("stats", "status", "--json").json()["counts"]) == words
    assert "--state <pending|held|sent|failed|legacy|all>" in " ".join(
        ok("stats", "review", "--help", env={"COLUMNS": "200"}).stdout.split()
    )


# -- the checkbox on a real terminal --------------------------------------------------------


def spawn_review(sandbox: Sandbox, *args: str) -> Terminal:
    env = {k: v for k, v in sandbox.env.items() if k not in ("CI", "COLUMNS", "LINES")}
    env["TERM"] = "xterm"
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"  # pexpect never answers the cursor-position request
    return Terminal(
        [sys.executable, "-m", "consent", "stats", *args], env, rows=40, cols=100, timeout=20
    )


def finish(term: Terminal) -> tuple[int, str]:
    code = term.finish()
    assert term.child.signalstatus is None
    return code, _ESCAPES.sub("", term.transcript)


def open_checkbox(sandbox: Sandbox) -> tuple[Terminal, int]:
    """The checkbox of held payloads, up; and the row its pointer starts on."""
    term = spawn_review(sandbox, "review")
    term.wait_for("Esc cancels")
    term.wait_until(lambda: term.pointer_row() is not None)
    first = term.pointer_row()
    assert first is not None
    return term, first


def tick(term: Terminal, row: int) -> None:
    term.child.send(" ")
    term.wait_until(lambda: TICKED in term.rows()[row])


def test_checkbox_approves_what_is_ticked_and_keeps_the_rest_held(sandbox: Sandbox) -> None:
    share(review=True)
    held = [spool_payload("held", minute=i).session_id for i in range(3)]
    term, first = open_checkbox(sandbox)
    term.child.send(DOWN)  # the second, in collected order
    term.wait_until(lambda: term.pointer_row() == first + 1)
    tick(term, first + 1)
    term.child.send("\r")
    code, screen = finish(term)
    assert code == 0, screen
    assert "Approved 1 payload:" in screen
    assert "2 payloads stay held" in screen
    assert states_on_disk() == {held[0]: "held", held[1]: "pending", held[2]: "held"}


def test_checkbox_with_nothing_ticked_approves_nothing(sandbox: Sandbox) -> None:
    share(review=True)
    held = spool_payload("held").session_id
    term, _ = open_checkbox(sandbox)
    term.child.send("\r")
    code, screen = finish(term)
    assert code == 0, screen
    assert "Nothing approved." in screen
    assert states_on_disk() == {held: "held"}


@pytest.mark.parametrize("key", ["\x03", "\x1b"], ids=["ctrl-c", "esc"])
def test_checkbox_cancelled_changes_nothing(sandbox: Sandbox, key: str) -> None:
    share(review=True)
    held = [spool_payload("held", minute=i).session_id for i in range(2)]
    term, first = open_checkbox(sandbox)
    tick(term, first)  # ticked, but never confirmed
    term.child.send(key)
    code, screen = finish(term)
    assert code == 130, screen
    assert "nothing was changed" in screen
    assert states_on_disk() == dict.fromkeys(held, "held")


def test_no_checkbox_without_held_payloads_or_with_a_filter(sandbox: Sandbox) -> None:
    share(review=True)
    spool_payload("sent")
    code, screen = finish(spawn_review(sandbox, "review"))
    assert code == 0
    assert "Approve which" not in screen
    spool_payload("held")
    code, screen = finish(spawn_review(sandbox, "review", "--state", "sent"))
    assert code == 0
    assert "Approve which" not in screen


def test_no_prompt_without_a_terminal(sandbox: Sandbox) -> None:
    share(review=True)
    held = spool_payload("held").session_id
    out = ok("stats", "review").stdout
    assert "Approve      consent stats review --approve ID" in out
    assert states_on_disk() == {held: "held"}


# -- opting out drops what was not sent ----------------------------------------------------


@pytest.mark.parametrize(
    "command", [("config", "set", "usage_stats", "false"), ("init", "--no")], ids=str
)
def test_opting_out_deletes_pending_and_held_but_keeps_sent(
    sandbox: Sandbox, command: tuple[str, ...]
) -> None:
    ids = one_of_each(sandbox)
    result = ok(*command)
    assert "Deleted 2 unsent payload" in result.stdout + result.stderr
    assert states_on_disk() == {
        ids["sent"]: "sent",
        ids["failed"]: "failed",
        ids["legacy"]: "legacy",
    }


def test_first_recorded_session_is_held_and_shown_for_review(sandbox: Sandbox) -> None:
    transfer = ("--src", "aws:us-east-1", "--dst", "gcp:us-central1", "--runtime-s", "3")
    result = ok("record", *transfer, "--", "cp", "s3://b/k", "gs://c/k")
    session_id = result.stdout.strip()
    [item] = review_json()
    assert item["session_id"] == session_id
    assert item["state"] == "held"
    assert item["payload"]["arguments"]["_positional"] == ["<uri:s3>", "<uri:gs>"]
    ok("config", "set", "usage_stats", "false")
    assert review_json() == []


# -- forget ------------------------------------------------------------------------------


def read_record(sandbox: Sandbox) -> dict[str, Any]:
    return tomllib.loads(sandbox.record.read_text())


def test_forget_wipes_this_users_payloads_rotates_the_id_and_prints_the_email(
    sandbox: Sandbox,
) -> None:
    one_of_each(sandbox)  # its sent payload has a 2xx receipt: the old id reached a server
    legacy_payload(sandbox, client_id=LEGACY_SENT, sent_ms=1679505560000)
    # another home of this account recording into the same spool root: not this user's
    other_client = str(uuid.uuid4())
    other = Spool.open(Scope()).write(other_client, str(uuid.uuid4()), b"{}", State.PENDING)
    before = read_record(sandbox)
    old_id = before["client_id"]

    result = ok("stats", "forget", "--yes")

    assert states_on_disk() == {other.session_id: "pending"}
    assert [p.name for p in sandbox.spool.iterdir() if not p.name.startswith(".")] == [other_client]
    after = read_record(sandbox)
    assert after["client_id"] != old_id
    uuid.UUID(after["client_id"])
    assert after["acknowledgement"] == before["acknowledgement"]  # the choice is kept
    out = result.stdout
    assert re.search(r"Deleted\s+6 payloads?", out)
    assert f"{after['client_id']} (new)" in out
    # the endpoint is a closed port: the e-mail to send, naming the ids that ever sent
    assert "To: admin@skyplane.org" in out
    assert "Subject: Please delete my Skyplane usage statistics" in out
    email = out.split("Subject:")[1]
    for client_id in (old_id, LEGACY_SENT):
        assert f"    {client_id}\n" in email
    assert LEGACY_CLIENT not in email  # Skyplane 0.3 never sent that one
    assert other_client not in out
    assert after["client_id"] not in email
    assert dt.datetime.now(dt.UTC).date().isoformat() in out
    assert "deletion request" in result.stderr.lower()


def test_forget_prints_no_email_when_nothing_was_ever_sent(sandbox: Sandbox) -> None:
    share()
    spool_payload("pending")
    spool_payload("held", minute=1)
    old_id = read_record(sandbox)["client_id"]

    result = ok("stats", "forget", "--yes")

    assert states_on_disk() == {}
    assert read_record(sandbox)["client_id"] != old_id
    assert re.search(r"Deleted\s+2 payloads", result.stdout)
    assert "To: " not in result.stdout
    assert "Subject:" not in result.stdout
    assert old_id not in result.stdout.split("Deleted")[1].split("Client id")[0]
    assert "nothing was ever sent" in " ".join(result.stdout.split())


def test_forget_prints_the_email_when_the_send_log_says_an_id_was_delivered(
    sandbox: Sandbox,
) -> None:
    # the receipt of a delivery can be lost (a sender killed after the 2xx): the log
    # line the run wrote still says the id reached the endpoint
    share()
    spool_payload("pending")
    old_id = read_record(sandbox)["client_id"]
    spool = Spool.existing(Scope())
    assert spool is not None
    spool.log_send({"mode": "manual", "error": None, "delivered_client_ids": [old_id]})

    out = ok("stats", "forget", "--yes").stdout

    assert "To: admin@skyplane.org" in out
    assert f"    {old_id}\n" in out.split("Subject:")[1]
    assert not (sandbox.spool / ".send.log").exists()  # the log is local data too


def test_forget_in_a_shared_fallback_touches_only_this_users_client_id(
    sandbox: Sandbox, shared: Path
) -> None:
    from consent.forget import forget
    from consent.profile import AppProfile

    profile = AppProfile(shared_temp_root=shared)
    env = {k: v for k, v in sandbox.env.items() if k != "SKYPLANE_USAGE_STATS_DIR"}
    (shared / "skyplane").mkdir(mode=0o777)  # a hostile default root: the fallback is used
    (shared / "skyplane").chmod(0o777)
    share()
    own_id = read_record(sandbox)["client_id"]
    spool = Spool.open(Scope(profile, env))
    assert spool.root == Scope(profile, {}).fallback_spool_root
    mine = spool.write(own_id, str(uuid.uuid4()), b"{}", State.PENDING)
    spool.add_receipt(
        mine, Receipt.for_payload(CLOSED_ENDPOINT, 204, b"{}"), required_endpoints=[CLOSED_ENDPOINT]
    )
    other_id = str(uuid.uuid4())
    theirs = spool.write(other_id, str(uuid.uuid4()), b"{}", State.PENDING)

    result = forget(scope=Scope(profile, env))

    assert result.removed == 1
    assert result.old_client_ids == (own_id,)
    assert result.email is not None
    assert own_id in result.email.body
    assert other_id not in result.email.body
    assert [e.session_id for e in spool.entries()] == [theirs.session_id]


def test_forget_never_asks_to_delete_the_shared_unknown_id(sandbox: Sandbox) -> None:
    share()
    legacy_payload(sandbox, client_id="unknown")
    out = ok("stats", "forget", "--yes").stdout
    assert re.search(r"Deleted\s+1 payload\b", out)
    assert "unknown" not in out
    assert not (sandbox.spool / "unknown").exists()


def test_forget_refuses_without_a_terminal_and_deletes_nothing(sandbox: Sandbox) -> None:
    ids = one_of_each(sandbox)
    client_id = read_record(sandbox)["client_id"]
    err = bad_input("stats", "forget").stderr
    assert "--yes" in err
    assert set(states_on_disk()) == set(ids.values())
    assert read_record(sandbox)["client_id"] == client_id


def test_forget_without_any_data(sandbox: Sandbox) -> None:
    out = ok("stats", "forget", "--yes").stdout
    assert re.search(r"Deleted\s+0 payloads", out)
    assert "nothing to ask for" in out
    assert not sandbox.record.exists()  # forgetting does not leave a new trace behind


def test_forget_asks_on_a_terminal(sandbox: Sandbox) -> None:
    one_of_each(sandbox)
    client_id = read_record(sandbox)["client_id"]
    term = spawn_review(sandbox, "forget")
    term.wait_for("Delete your usage statistics?")
    term.child.send("\x03")
    code, screen = finish(term)
    assert code == 130, screen
    assert len(states_on_disk()) == 5
    assert read_record(sandbox)["client_id"] == client_id

    term = spawn_review(sandbox, "forget")
    term.wait_for("Delete your usage statistics?")
    term.child.send("y")
    code, screen = finish(term)
    assert code == 0, screen
    assert re.search(r"Deleted\s+5 payloads", screen)
    assert states_on_disk() == {}


def test_forget_sends_the_deletion_request_to_a_live_endpoint(
    sandbox: Sandbox, httpserver: HTTPServer
) -> None:
    httpserver.expect_oneshot_request("/loki/api/v1/push", method="POST").respond_with_data(
        "", status=204
    )
    one_of_each(sandbox)
    old_id = read_record(sandbox)["client_id"]
    endpoint = httpserver.url_for("/loki/api/v1/push")
    result = ok("stats", "forget", "--yes", env={"SKYPLANE_USAGE_STATS_ENDPOINT": endpoint})
    assert f"deletion request sent to {endpoint}" in " ".join(result.stdout.split())
    assert "To: admin@skyplane.org" not in result.stdout
    [(request, _)] = httpserver.log
    body = request.get_data(as_text=True)
    assert json.loads(body)["streams"][0]["stream"] == {"type": "deletion_request"}
    assert old_id in body
    assert LEGACY_CLIENT in body  # Skyplane 0.3's id is an old id too
    assert read_record(sandbox)["client_id"] not in body
    httpserver.check_assertions()


# -- legacy payloads are read-only --------------------------------------------------------


def test_legacy_payloads_are_listed_counted_and_never_changed(sandbox: Sandbox) -> None:
    path = legacy_payload(sandbox)
    before = path.read_bytes()
    [item] = review_json("--state", "legacy")
    assert item["state"] == "legacy"
    assert item["payload"]["schema_version"] == "0.2"
    assert item["receipt"] is None
    assert ok("stats", "status", "--json").json()["counts"]["legacy"] == 1
    err = bad_input("stats", "review", "--approve", "20230322").stderr
    assert "Skyplane 0.3" in err
    from consent import review

    assert review.approve(None, scope=Scope()) == []
    ok("config", "set", "usage_stats", "false")  # opting out keeps it, as it is not ours to send
    assert path.read_bytes() == before
    assert not (path.parent / STATE_FILE).exists()
    # the summary reads its route and figures from the 0.3 fields
    out = ok("stats", "review", env={"COLUMNS": "200"}).stdout
    row = next(line for line in out.splitlines() if "20230322" in line)
    assert "aws:us-east-1 → gcp:us-central1" in row
    assert "12.5 s" in row
    assert "3.20" in row


def test_a_legacy_payload_can_be_discarded_by_its_id(sandbox: Sandbox) -> None:
    path = legacy_payload(sandbox)
    ok("stats", "review", "--discard", "20230322_171911")
    assert not path.exists()


# -- the library beneath -----------------------------------------------------------------


def test_fields_are_described_in_policy_order_with_their_status(sandbox: Sandbox) -> None:
    from consent.review import describe_fields, find_item

    share()
    policy = load_policy(Scope().policy_path)
    acknowledged = {k: v for k, v in policy.schema.items() if k != "throughput_gbps"}
    entry = spool_payload("pending", acknowledged=acknowledged)
    (entry.directory / PAYLOAD_FILE).write_bytes(
        encode_payload({**json.loads((entry.directory / PAYLOAD_FILE).read_bytes()), "extra": 1})
    )
    views = {
        view.name: view
        for view in describe_fields(find_item(entry.session_id, scope=Scope()), policy)
    }
    assert list(views)[: len(policy.fields)] == list(policy.fields)
    assert views["throughput_gbps"].status == "withheld"
    assert views["error"].status == "absent"  # the transfer worked
    assert views["extra"].status == "undeclared"
    assert views["arguments"].markers == ("<uri:s3>", "<path>")
    assert views["os"].status == "included"
    assert views["os"].description == policy.fields["os"].description


def test_markers_are_found_anywhere_in_a_value() -> None:
    from consent.review import markers_in

    assert markers_in({"k<email>": ["x", {"y": "a <ip> b"}]}) == ("<email>", "<ip>")
    assert markers_in({"solver": "ilp", "n": 3}) == ()


def test_the_deletion_email_names_every_id_and_the_day() -> None:
    from consent.forget import deletion_email

    email = deletion_email(
        ["id-1", "id-2"], "admin@example.org", tool="Skyplane", on=dt.date(2026, 1, 2)
    )
    text = email.text()
    assert text.startswith("To: admin@example.org\nSubject: Please delete my Skyplane usage")
    assert "    id-1\n    id-2\n" in text
    assert "2026-01-02" in text


def test_json_text_holds_the_exact_payload_bytes(sandbox: Sandbox) -> None:
    from consent.review import list_review

    share()
    spool_payload("sent")
    legacy_payload(sandbox)
    for item in list_review(scope=Scope()).items:
        assert json.loads(item.json_text()) == item.to_json()
        assert item.raw.decode() in item.json_text()


def test_forget_plan_counts_what_would_go(sandbox: Sandbox) -> None:
    from consent.forget import plan_forget

    one_of_each(sandbox)
    plan = plan_forget(scope=Scope())
    assert plan.payloads == 5
    assert plan.spool_dirs == (str(sandbox.spool),)
    assert set(plan.client_ids) == {read_record(sandbox)["client_id"], LEGACY_CLIENT}
    assert states_on_disk()  # planning deletes nothing


def test_short_ids_are_the_shortest_unique_prefixes() -> None:
    from consent.review import unique_prefixes

    ids = [
        "20230322_171911-1a2b3c4d",
        "20230322_180102-99aa88bb",
        "0b6c1e9f-3f52-4c38-9a43-0d1f1a1b2c3d",
        "0b6c1e9A-0000-4000-8000-000000000000",
    ]
    assert unique_prefixes(ids) == {
        # two Skyplane 0.3 transfers on one day: the time tells them apart
        "20230322_171911-1a2b3c4d": "20230322_17",
        "20230322_180102-99aa88bb": "20230322_18",
        # prefixes match without regard to case, as Spool.find does
        "0b6c1e9f-3f52-4c38-9a43-0d1f1a1b2c3d": "0b6c1e9f",
        "0b6c1e9A-0000-4000-8000-000000000000": "0b6c1e9A",
    }
    assert unique_prefixes(["abc"]) == {"abc": "abc"}
