"""Upload (docs/architecture.md §3.7, §3.8, §4): bodies, retries, refusals, endpoints,
what is never sent.

Every test talks to a real HTTP server on loopback. In-process sends use short
timeouts and backoff so the suite stays quick; the CLI cases run the real command
with the real limits, which is how the time bounds are checked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from consent._exceptions import InsecureEndpointError, UploadError
from consent.profile import DEFAULT_PROFILE, AppProfile, Scope
from consent.record import load_record
from consent.spool import Entry, Spool, State
from consent.upload import (
    SEND_LOG,
    Limits,
    last_error,
    plan_send,
    run_background,
    send_deletion_request,
    send_pending,
    start_background_flush,
)
from tests.conftest import CLOSED_ENDPOINT, REPO, Sandbox, run_cli
from tests.upload_helpers import (
    PUSH_PATH,
    BlackHole,
    Receiver,
    Request,
    acknowledge,
    entries_by_id,
    iter_values,
    make_payloads,
    states,
)

FAST = Limits(
    connect_timeout_s=0.5,
    request_timeout_s=1.0,
    backoff_base_s=0.01,
    backoff_cap_s=0.05,
    retry_window_s=3.0,
)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with Receiver() as server:
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", server.url)
        yield server


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def json_policy(tmp_path: Path) -> Path:
    """The shipped policy with `format = "json"`: same fields, so the same fingerprint."""
    text = (REPO / "consent" / "policies" / "skyplane.toml").read_text()
    assert 'format = "loki"' in text
    path = tmp_path / "json-policy.toml"
    path.write_text(text.replace('format = "loki"', 'format = "json"'))
    return path


# -- bodies -------------------------------------------------------------------------------


def test_loki_body_field_by_field(receiver: Receiver) -> None:
    acknowledge()
    usage = make_payloads(2)
    failed_run = make_payloads(1, error="TimeoutError: transfer stalled")
    before_ns = time.time_ns()

    result = send_pending(limits=FAST, scope=Scope())

    assert (result.due, result.sent, result.failed, result.pending) == (3, 3, 0, 0)
    assert result.ok
    assert result.error is None
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.path == PUSH_PATH
    assert request.headers["Content-Type"] == "application/json"
    body = request.json()
    assert set(body) == {"streams"}
    labels = [stream["stream"] for stream in body["streams"]]
    assert sorted(labels, key=lambda s: s["type"]) == [
        {"type": "error", "schema": "3"},
        {"type": "usage", "schema": "3"},
    ]
    by_line = {line: (stream, ts) for stream, ts, line in iter_values(body)}
    for (entry, data), kind in [(p, "usage") for p in usage] + [(failed_run[0], "error")]:
        line = data.decode()
        assert line in by_line, "the line is exactly the spooled bytes, decoded"
        stream, ts = by_line[line]
        assert stream["type"] == kind
        assert ts.isdigit()
        assert len(ts) == 19
        assert before_ns <= int(ts) <= time.time_ns()
        assert json.loads(line)["session_id"] == entry.session_id
    ids = [entry.session_id for entry, _ in usage + failed_run]
    assert sorted(request.session_ids()) == sorted(ids)
    assert request.headers["Idempotency-Key"] == sha(",".join(sorted(ids)).encode())

    entries = entries_by_id()
    for entry, data in usage + failed_run:
        sent = entries[entry.session_id]
        assert sent.state is State.SENT
        (receipt,) = sent.receipts
        assert (receipt.endpoint, receipt.status, receipt.sha256) == (receiver.url, 204, sha(data))


def test_json_body_is_an_array_of_the_spooled_bytes(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SKYPLANE_USAGE_STATS_POLICY", str(json_policy(tmp_path)))
    acknowledge()
    made = make_payloads(3) + make_payloads(1, error="ValueError: <path>")

    data_by_id = {entry.session_id: data for entry, data in made}
    order = [entry.session_id for entry in Spool.open(Scope()).entries([State.PENDING])]

    assert send_pending(limits=FAST, scope=Scope()).sent == 4

    (request,) = receiver.requests
    assert request.body == b"[" + b",".join(data_by_id[sid] for sid in order) + b"]"
    items = request.json()
    assert isinstance(items, list)
    assert {item["session_id"]: item for item in items} == {
        entry.session_id: json.loads(data) for entry, data in made
    }
    assert sum("error" in item for item in items) == 1
    assert all(state == "sent" for state in states().values())


def test_dry_run_prints_the_exact_bodies_and_sends_nothing(receiver: Receiver) -> None:
    acknowledge()
    made = make_payloads(2)

    plain = run_cli("stats", "send", "--dry-run")
    as_json = run_cli("stats", "send", "--dry-run", "--json")

    assert plain.returncode == 0, plain.stderr
    assert as_json.returncode == 0, as_json.stderr
    assert receiver.requests == []
    assert set(states().values()) == {"pending"}
    (planned,) = as_json.json()
    assert planned["endpoint"] == receiver.url
    assert planned["format"] == "loki"
    assert sorted(planned["session_ids"]) == sorted(e.session_id for e, _ in made)
    lines = [line for _, _, line in iter_values(json.loads(planned["body"]))]
    assert sorted(lines) == sorted(data.decode() for _, data in made)
    # without --json, a bounded and indented preview; --json above gives the bodies whole
    assert '    "streams": [' in plain.stdout
    assert "would carry 2 payloads" in plain.stdout
    assert "nothing was sent" in plain.stdout.lower()


def test_byte_cap_splits_a_batch(receiver: Receiver) -> None:
    acknowledge()
    made = make_payloads(12)
    cap = 2500

    plan = plan_send(limits=Limits(max_body_bytes=cap), scope=Scope())
    result = send_pending(limits=Limits(max_body_bytes=cap), scope=Scope())

    assert len(plan.requests) > 2
    assert all(len(r.body) <= cap for r in plan.requests)
    assert result.sent == 12
    assert len(receiver.requests) == len(plan.requests)
    assert all(len(r.body) <= cap for r in receiver.requests)
    assert sorted(receiver.session_ids()) == sorted(e.session_id for e, _ in made)


# -- retries and refusals -----------------------------------------------------------------


def test_500_then_503_then_204_is_sent_once(httpserver: HTTPServer, sandbox: Sandbox) -> None:
    acknowledge()
    ((entry, data),) = make_payloads(1)
    for status in (500, 503, 204):
        httpserver.expect_ordered_request(PUSH_PATH, method="POST").respond_with_data(
            "", status=status
        )
    url = httpserver.url_for(PUSH_PATH)

    result = send_pending(endpoint=url, limits=FAST, scope=Scope())

    httpserver.check_assertions()
    assert len(httpserver.log) == 3
    keys = {request.headers["Idempotency-Key"] for request, _ in httpserver.log}
    assert len(keys) == 1, "a retry is the same request"
    assert (result.sent, result.pending) == (1, 0)
    sent = entries_by_id()[entry.session_id]
    assert sent.state is State.SENT
    assert [(r.endpoint, r.status, r.sha256) for r in sent.receipts] == [(url, 204, sha(data))]
    assert send_pending(endpoint=url, limits=FAST, scope=Scope()).due == 0
    assert len(httpserver.log) == 3


def test_429_honours_retry_after(httpserver: HTTPServer) -> None:
    acknowledge()
    make_payloads(1)
    httpserver.expect_ordered_request(PUSH_PATH).respond_with_data(
        "slow down", status=429, headers={"Retry-After": "0"}
    )
    httpserver.expect_ordered_request(PUSH_PATH).respond_with_data("", status=204)

    assert (
        send_pending(endpoint=httpserver.url_for(PUSH_PATH), limits=FAST, scope=Scope()).sent == 1
    )
    assert len(httpserver.log) == 2


def test_429_honours_retry_after_given_as_an_http_date(httpserver: HTTPServer) -> None:
    acknowledge()
    make_payloads(1)
    # our own backoff (at least 50 s) would not fit the 3 s retry window: only the
    # receiver's date, already past, lets the retry start in this run
    patient = dataclasses.replace(FAST, backoff_base_s=100.0, backoff_cap_s=100.0)
    httpserver.expect_ordered_request(PUSH_PATH).respond_with_data(
        "slow down", status=429, headers={"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT"}
    )
    httpserver.expect_ordered_request(PUSH_PATH).respond_with_data("", status=204)

    assert (
        send_pending(endpoint=httpserver.url_for(PUSH_PATH), limits=patient, scope=Scope()).sent
        == 1
    )
    assert len(httpserver.log) == 2


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Thu, 01 Jan 2026 00:02:00 GMT", 120.0),  # IMF-fixdate
        ("Thursday, 01-Jan-26 00:02:00 GMT", 120.0),  # RFC 850
        ("Thu Jan  1 00:02:00 2026", 120.0),  # asctime, which is GMT
        ("Wed, 31 Dec 2025 23:00:00 GMT", 0.0),  # already past: now
        ("Fri, 02 Jan 2026 00:00:00 GMT", None),  # a day or more: our own backoff
        ("-5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str, seconds: float | None) -> None:
    from consent.upload.transport import _retry_after

    now = 1767225600.0  # 2026-01-01T00:00:00Z
    assert _retry_after(header, now) == seconds


def test_400_is_failed_with_the_reason_and_never_retried(httpserver: HTTPServer) -> None:
    acknowledge()
    ((entry, _),) = make_payloads(1)
    httpserver.expect_request(PUSH_PATH).respond_with_data(
        "entry too far behind\n\x1b[31m", status=400
    )
    url = httpserver.url_for(PUSH_PATH)

    result = send_pending(endpoint=url, limits=FAST, scope=Scope())

    assert len(httpserver.log) == 1
    assert (result.sent, result.failed, result.pending, result.ok) == (0, 1, 0, False)
    failed = entries_by_id()[entry.session_id]
    assert failed.state is State.FAILED
    assert failed.reason is not None
    assert "HTTP 400" in failed.reason
    assert "entry too far behind" in failed.reason
    assert "\x1b" not in failed.reason, "the receiver's words are shown, never its escapes"
    assert [f.session_id for f in result.failures] == [entry.session_id]
    again = send_pending(endpoint=url, limits=FAST, scope=Scope())
    assert (again.due, len(httpserver.log)) == (0, 1)


def test_400_on_a_batch_fails_only_the_refused_payload() -> None:
    acknowledge()
    made = make_payloads(9)
    bad = made[4][0].session_id

    def respond(request: Request) -> int:
        return 400 if bad in request.session_ids() else 204

    with Receiver(respond) as server:
        result = send_pending(endpoint=server.url, limits=FAST, scope=Scope())

    assert (result.sent, result.failed, result.pending) == (8, 1, 0)
    final = states()
    assert final.pop(bad) == "failed"
    assert set(final.values()) == {"sent"}
    assert len(server.requests) <= 1 + 2 * 4, "split in halves, not one request per payload"


def test_cli_400_exits_1_and_names_the_session(httpserver: HTTPServer) -> None:
    acknowledge()
    ((entry, _),) = make_payloads(1)
    httpserver.expect_request(PUSH_PATH).respond_with_data("bad labels", status=400)

    result = run_cli("stats", "send", "--endpoint", httpserver.url_for(PUSH_PATH))

    assert result.returncode == 1
    assert entry.session_id in result.stderr
    assert "Traceback" not in result.stderr
    assert states()[entry.session_id] == "failed"


def test_a_redirect_is_not_followed(httpserver: HTTPServer) -> None:
    acknowledge()
    make_payloads(1)
    httpserver.expect_request(PUSH_PATH).respond_with_data(
        "", status=307, headers={"Location": "http://203.0.113.9/push"}
    )

    result = send_pending(endpoint=httpserver.url_for(PUSH_PATH), limits=FAST, scope=Scope())

    assert len(httpserver.log) == 1
    assert (result.pending, result.failed) == (1, 0)
    assert result.error is not None
    assert "redirect" in result.error
    assert set(states().values()) == {"pending"}


# -- endpoints that do not answer ---------------------------------------------------------


def test_closed_port_keeps_pending_and_exits_1(sandbox: Sandbox) -> None:
    acknowledge()
    made = make_payloads(3)
    started = time.monotonic()

    result = run_cli("stats", "send")

    assert time.monotonic() - started < 15
    assert result.returncode == 1
    assert "3 payloads could not be sent" in result.stderr
    assert CLOSED_ENDPOINT in result.stderr
    assert "Traceback" not in result.stderr
    assert set(states().values()) == {"pending"}
    assert all(not e.receipts for e in entries_by_id().values())
    assert len(made) == 3
    status = run_cli("stats", "status", "--json").json()
    assert any("The last upload failed" in w for w in status["warnings"]), status["warnings"]


def test_black_hole_keeps_pending_exits_1_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acknowledge()
    make_payloads(2)
    with BlackHole() as hole:
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", hole.url)
        started = time.monotonic()
        result = run_cli("stats", "send", "--json")
        elapsed = time.monotonic() - started

    assert result.returncode == 1, result.stderr
    assert elapsed < 15, f"took {elapsed:.1f} s"
    data = result.json()
    assert (data["pending"], data["sent"], data["ok"]) == (2, 0, False)
    assert "no answer in time" in data["endpoints"][0]["error"]
    assert set(states().values()) == {"pending"}


def test_plain_http_to_a_remote_host_is_refused_with_exit_2() -> None:
    acknowledge()
    make_payloads(1)

    result = run_cli("stats", "send", "--endpoint", "http://198.51.100.7/loki/api/v1/push")

    assert result.returncode == 2, result.stderr
    assert "refusing plain http to 198.51.100.7" in result.stderr
    assert "Traceback" not in result.stderr
    assert set(states().values()) == {"pending"}


@pytest.mark.parametrize("how", ["argument", "env", "extra"])
def test_plain_http_is_refused_wherever_it_comes_from(
    how: str, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    acknowledge()
    make_payloads(1)
    url = "http://198.51.100.7/loki/api/v1/push"
    if how == "env":
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", url)
    elif how == "extra":
        sandbox.write_config({"usage_stats": True, "usage_stats_extra_endpoints": [url]})

    with pytest.raises(InsecureEndpointError, match=r"refusing plain http to 198\.51\.100\.7"):
        send_pending(endpoint=url if how == "argument" else None, scope=Scope())
    with pytest.raises(InsecureEndpointError):
        plan_send(endpoint=url if how == "argument" else None, scope=Scope())
    assert set(states().values()) == {"pending"}


# -- several endpoints --------------------------------------------------------------------


def test_extra_endpoints_each_get_a_receipt(
    receiver: Receiver, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    acknowledge()
    made = make_payloads(3)
    extra_up = {"up": False}

    def flaky(_request: Request) -> int:
        return 204 if extra_up["up"] else 503

    with Receiver(flaky) as extra:
        sandbox.write_config(
            {"usage_stats": True, "usage_stats_review": False,
             "usage_stats_extra_endpoints": [extra.url]}
        )  # fmt: skip
        first = send_pending(limits=FAST, scope=Scope())

        assert (first.sent, first.pending, first.ok) == (0, 3, False)
        assert [o.url for o in first.endpoints] == [receiver.url, extra.url]
        assert first.endpoints[0].accepted == 3
        assert first.endpoints[0].error is None
        assert first.endpoints[1].error is not None
        assert "HTTP 503" in first.endpoints[1].error
        for entry in entries_by_id().values():
            assert entry.state is State.PENDING, "not sent until every endpoint has it"
            assert [(r.endpoint, r.status) for r in entry.receipts] == [(receiver.url, 204)]

        extra_up["up"] = True
        second = send_pending(limits=FAST, scope=Scope())

    assert (second.sent, second.pending) == (3, 0)
    assert len(receiver.requests) == 1, "the primary already has them: not sent again"
    assert sorted(receiver.session_ids()) == sorted(e.session_id for e, _ in made)
    assert sorted(set(extra.session_ids())) == sorted(e.session_id for e, _ in made)
    for entry, data in made:
        sent = entries_by_id()[entry.session_id]
        assert sent.state is State.SENT
        assert {r.endpoint: (r.status, r.sha256) for r in sent.receipts} == {
            receiver.url: (204, sha(data)),
            extra.url: (204, sha(data)),
        }


# -- what is never sent -------------------------------------------------------------------


def test_held_and_legacy_payloads_are_never_sent(receiver: Receiver, sandbox: Sandbox) -> None:
    acknowledge()
    pending = make_payloads(2)
    held = make_payloads(3, state=State.HELD)
    legacy_dir = sandbox.spool / "unknown" / "20230322_171911-1a2b3c4d"
    legacy_dir.mkdir(parents=True, mode=0o700)
    (legacy_dir / "usage_stats.json").write_text('{"schema_version": "0.2"}')

    result = run_cli("stats", "send")

    assert result.returncode == 0, result.stderr
    assert "3 payloads held for your review are not sent" in result.stderr
    assert sorted(receiver.session_ids()) == sorted(e.session_id for e, _ in pending)
    final = states()
    assert {final[e.session_id] for e, _ in held} == {"held"}
    assert final["20230322_171911-1a2b3c4d"] == "legacy"
    assert b"0.2" not in b"".join(r.body for r in receiver.requests)


def test_nothing_is_sent_while_disabled(receiver: Receiver) -> None:
    acknowledge()
    make_payloads(2)
    off = {"SKYPLANE_USAGE_STATS_ENABLED": "0"}

    result = run_cli("stats", "send", env=off)
    dry = run_cli("stats", "send", "--dry-run", "--json", env=off)

    assert result.returncode == 0, result.stderr
    assert "nothing was sent" in result.stderr
    assert dry.returncode == 0
    assert dry.json() == []
    assert receiver.requests == []
    assert set(states().values()) == {"pending"}


def test_do_not_track_sends_nothing(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    acknowledge()
    make_payloads(2)
    monkeypatch.setenv("DO_NOT_TRACK", "1")

    result = send_pending(limits=FAST, scope=Scope())

    assert (result.enabled, result.due, result.ok) == (False, 0, True)
    assert result.note is not None
    assert "do_not_track" in result.note
    assert plan_send(scope=Scope()).requests == ()
    assert receiver.requests == []
    assert set(states().values()) == {"pending"}


def test_turned_off_mid_run_stops_before_the_next_request(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    acknowledge()
    make_payloads(6)

    def respond(request: Request) -> int:
        # the user opts out while the first batch is in flight
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENABLED", "0")
        return 204

    with Receiver(respond) as server:
        result = send_pending(endpoint=server.url, limits=Limits(max_batch=2), scope=Scope())

    assert len(server.requests) == 1
    assert (result.sent, result.pending) == (2, 4)
    assert result.note == "collection was turned off during the send"


def test_a_field_outside_the_acknowledged_schema_is_never_sent(receiver: Receiver) -> None:
    acknowledge()
    good = make_payloads(1)
    ((bad, _),) = make_payloads(1, extra={"hostname": "build-7.internal"})

    plan = plan_send(scope=Scope())
    result = send_pending(limits=FAST, scope=Scope())

    assert [f.session_id for f in plan.refused] == [bad.session_id]
    assert states()[bad.session_id] == "failed"
    reason = entries_by_id()[bad.session_id].reason
    assert reason is not None
    assert "hostname" in reason
    assert (result.sent, result.failed) == (1, 1)
    assert receiver.session_ids() == [good[0][0].session_id]
    assert b"build-7" not in b"".join(r.body for r in receiver.requests)


def test_without_an_acknowledgement_nothing_is_sent(receiver: Receiver, sandbox: Sandbox) -> None:
    acknowledge()
    make_payloads(2)
    sandbox.record.unlink()

    result = send_pending(limits=FAST, scope=Scope())

    assert receiver.requests == []
    assert (result.pending, result.ok) == (2, False)
    assert result.note is not None
    assert "init" in result.note
    assert set(states().values()) == {"pending"}


# -- exactly once -------------------------------------------------------------------------


class _Crash(BaseException):
    """Stands for the process dying: nothing in the sender catches it."""


def test_crash_between_answer_and_receipt_resends_only_unreceipted(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    acknowledge()
    made = make_payloads(6)
    real_rewrite = Spool._rewrite
    written: list[str] = []

    def dying_rewrite(changed: Entry, *, durable: bool = True) -> Entry:
        # the process dies after the receiver answered, with two receipts on disk
        if len(written) == 2:
            raise _Crash
        out = real_rewrite(changed, durable=durable)
        written.append(out.session_id)
        return out

    monkeypatch.setattr(Spool, "_rewrite", staticmethod(dying_rewrite))
    with pytest.raises(_Crash):
        send_pending(limits=FAST, scope=Scope())
    monkeypatch.setattr(Spool, "_rewrite", staticmethod(real_rewrite))

    again = send_pending(limits=FAST, scope=Scope())

    assert (again.due, again.sent) == (4, 4)
    ids = receiver.session_ids()
    assert sorted(set(ids)) == sorted(e.session_id for e, _ in made)
    twice = {sid for sid in ids if ids.count(sid) > 1}
    assert twice == {e.session_id for e, _ in made} - set(written)
    assert all(ids.count(sid) == 1 for sid in written)
    assert set(states().values()) == {"sent"}


# -- deletion requests --------------------------------------------------------------------


def test_deletion_request_loki(receiver: Receiver) -> None:
    accepted = send_deletion_request(["c1d2e3", "a9b8c7"], scope=Scope())

    assert accepted == [receiver.url]
    (request,) = receiver.requests
    ((labels, ts, line),) = list(iter_values(request.json()))
    assert labels == {"type": "deletion_request"}
    assert ts.isdigit()
    record = json.loads(line)
    assert set(record) == {"type", "client_ids", "requested_at"}
    assert record["type"] == "deletion_request"
    assert record["client_ids"] == ["c1d2e3", "a9b8c7"]
    assert record["requested_at"].endswith("Z")
    assert "T" in record["requested_at"]


def test_deletion_request_json_and_extra_endpoints(
    receiver: Receiver, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SKYPLANE_USAGE_STATS_POLICY", str(json_policy(tmp_path)))
    sandbox.write_config({"usage_stats_extra_endpoints": [CLOSED_ENDPOINT]})

    accepted = send_deletion_request(["c1"], scope=Scope(environ=dict(os.environ)))

    assert accepted == [receiver.url]
    ((record,),) = [r.json() for r in receiver.requests]
    assert record["type"] == "deletion_request"
    assert record["client_ids"] == ["c1"]


def test_deletion_request_raises_when_nobody_accepts(sandbox: Sandbox) -> None:
    with pytest.raises(UploadError, match="could not be delivered"):
        send_deletion_request(["c1"], scope=Scope())


def test_deletion_request_with_an_insecure_endpoint_raises_upload_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", "http://198.51.100.7/push")
    with pytest.raises(UploadError, match="refusing plain http"):
        send_deletion_request(["c1"], scope=Scope())


# -- the background flush, its log and its backoff ----------------------------------------


def _wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_detached_flush_after_a_recorded_session(receiver: Receiver, sandbox: Sandbox) -> None:
    assert run_cli("init", "--yes").returncode == 0

    recorded = run_cli(
        "record", "--src", "aws:us-east-1", "--dst", "gcp:us-central1", "--runtime-s", "4",
        "--", "cp", "-r", "s3://acme/x", "gs://acme/y",
    )  # fmt: skip

    assert recorded.returncode == 0, recorded.stderr
    session_id = recorded.stdout.strip()
    assert _wait_for(lambda: session_id in receiver.session_ids(), 15), "flush never arrived"
    assert _wait_for(lambda: states().get(session_id) == "sent", 5)
    with Spool.open(Scope()).lock():  # the sender logs its run just before it lets go
        log = (sandbox.spool / SEND_LOG).read_text().splitlines()
    assert json.loads(log[-1])["mode"] == "background"
    assert last_error(Spool.open(Scope())) is None


def test_the_detached_sender_runs_niced_as_a_batch_job(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender lowers its own priority; the host makes no call about it after the spawn."""
    import threading

    from consent.upload import _children

    release = threading.Event()

    def hold(_request: Request) -> int:
        release.wait(60)  # keeps the sender alive, mid-request, while it is looked at
        return 204

    with Receiver(hold) as held:
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", held.url)
        acknowledge()
        make_payloads(1)
        earlier = list(_children)
        start_background_flush(Spool.open(Scope()), scope=Scope())
        (child,) = [c for c in _children if c not in earlier]
        own = os.getpriority(os.PRIO_PROCESS, 0)
        try:
            assert _wait_for(lambda: held.requests, 60), "the sender never sent"
            assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(own + 10, 19)
            assert os.sched_getscheduler(child.pid) == os.SCHED_BATCH
        finally:
            release.set()
        assert child.wait(timeout=60) == 0
    assert set(states().values()) == {"sent"}


def test_host_does_not_wait_for_a_black_holed_endpoint(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import consent

    acknowledge()
    with BlackHole() as hole:
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", hole.url)
        started = time.perf_counter()
        session_id = consent.record_session(
            argv=["cp", "a", "b"], src="aws:us-east-1", dst=["gcp:us-central1"], runtime_s=2.0
        )
        elapsed = time.perf_counter() - started
        assert session_id is not None
        assert (sandbox.spool / ".flush.stamp").exists(), "a flush was started"
        assert _wait_for(lambda: len(hole.held) >= 1, 10), "the flush reached the endpoint"
    assert elapsed < 0.5, f"the host waited {elapsed:.3f} s"
    # the closed hole makes the sender give up; wait so it does not outlive the test
    with Spool.open(Scope()).lock():
        pass
    assert states()[session_id] == "pending"


def test_flushes_are_rate_limited(receiver: Receiver, sandbox: Sandbox) -> None:
    acknowledge()
    spool = Spool.open(Scope())
    make_payloads(1)
    start_background_flush(spool, scope=Scope())
    stamp = (sandbox.spool / ".flush.stamp").stat().st_mtime
    make_payloads(1)
    start_background_flush(spool, scope=Scope())

    assert _wait_for(lambda: set(states().values()) == {"sent"}, 15)
    with spool.lock():
        runs = (sandbox.spool / SEND_LOG).read_text().splitlines()
    assert len(runs) == 1, "the second start within the interval started nothing"
    assert (sandbox.spool / ".flush.stamp").stat().st_mtime == stamp


def test_a_failed_background_run_is_logged_and_backs_off(sandbox: Sandbox) -> None:
    acknowledge()
    make_payloads(2)
    spool = Spool.open(Scope())

    result = run_background(scope=Scope(), spool_root=spool.root)

    assert result is not None
    assert result.pending == 2
    error = last_error(spool)
    assert error is not None
    assert CLOSED_ENDPOINT in error
    backoff = json.loads((sandbox.spool / ".flush.json").read_text())
    assert backoff["failures"] == 1
    assert backoff["retry_at"] > time.time() + 10
    start_background_flush(spool, scope=Scope())
    assert not (sandbox.spool / ".flush.stamp").exists(), "no flush before the backoff ends"


def test_a_good_run_clears_the_last_error_and_the_backoff(
    receiver: Receiver, sandbox: Sandbox
) -> None:
    acknowledge()
    made = make_payloads(1)
    spool = Spool.open(Scope())
    (sandbox.spool / ".flush.json").write_text('{"failures": 3, "retry_at": 9e99}')
    (sandbox.spool / SEND_LOG).write_text('{"error": "earlier trouble"}\n')
    assert last_error(spool) == "earlier trouble"

    assert send_pending(limits=FAST, scope=Scope()).sent == 1, "a manual send ignores the backoff"

    assert last_error(spool) is None
    # the log keeps which client ids reached an endpoint: `stats forget` asks by e-mail
    # only for those, even if a receipt was lost
    assert spool.logged_client_ids() == {made[0][0].client_id}
    assert json.loads((sandbox.spool / ".flush.json").read_text())["failures"] == 0


def test_the_send_log_stays_small(receiver: Receiver, sandbox: Sandbox) -> None:
    acknowledge()
    spool = Spool.open(Scope())
    (sandbox.spool / SEND_LOG).write_text('{"error": null}\n' * 5000)

    send_pending(limits=FAST, scope=Scope())

    assert (sandbox.spool / (SEND_LOG + ".1")).stat().st_size > 64 * 1024
    assert len((sandbox.spool / SEND_LOG).read_text().splitlines()) == 1
    assert last_error(spool) is None


def test_a_custom_profile_reaches_the_detached_sender(
    receiver: Receiver, sandbox: Sandbox, shared: Path
) -> None:
    """A host's own profile (its env prefix, home dir) rules the detached child too.

    Everything the child needs is only under the custom profile: its consent record
    in ~/.acme, its endpoint in ACME_STATS_ENDPOINT. A child that fell back to the
    default profile would find no acknowledgement and the closed default endpoint,
    and would deliver nothing.
    """
    from consent.actions import apply_choice
    from consent.upload import _children, _profile_from_json, _profile_json

    profile = AppProfile(
        name="acme",
        env_prefix="ACME_STATS",
        home_dir_name=".acme",
        shared_temp_root=shared,
        policy_file=DEFAULT_PROFILE.policy_file,
        cli_name="acme",
    )
    assert _profile_from_json(_profile_json(profile)) == profile
    scope = Scope(profile, {**sandbox.env, "ACME_STATS_ENDPOINT": receiver.url})
    apply_choice("share", "init-flag", scope=scope)
    spool = Spool.open(scope)
    assert spool.root != sandbox.spool
    record = load_record(scope.record_path)
    assert record is not None
    session_id = str(uuid.uuid4())
    payload = {"client_id": record.client_id, "session_id": session_id}
    spool.write(record.client_id, session_id, json.dumps(payload).encode(), State.PENDING)

    earlier = list(_children)  # the call reaps those that have exited meanwhile
    start_background_flush(spool, scope=scope)

    started = [child for child in _children if child not in earlier]
    assert len(started) == 1, "a detached sender was started"
    assert started[0].wait(timeout=60) == 0
    assert receiver.session_ids() == [session_id]
    assert {e.session_id: e.state for e in spool.entries()} == {session_id: State.SENT}


def test_session_path_does_not_import_httpx(sandbox: Sandbox) -> None:
    import subprocess

    acknowledge()
    code = (
        "import sys, consent\n"
        "sid = consent.record_session(src='local', dst=['aws:us-east-1'], runtime_s=1)\n"
        "assert sid, 'recorded'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    with contextlib.suppress(Exception), Spool.open(Scope()).lock():
        pass  # let the flush it started finish before the sandbox goes


def test_a_background_run_logs_a_bad_endpoint(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    acknowledge()
    make_payloads(1)
    monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", "http://198.51.100.7/push")
    spool = Spool.open(Scope())

    assert run_background(scope=Scope(), spool_root=spool.root) is None

    error = last_error(spool)
    assert error is not None
    assert "refusing plain http" in error
    assert set(states().values()) == {"pending"}


def test_the_hidden_background_option_sends_quietly(receiver: Receiver) -> None:
    acknowledge()
    made = make_payloads(2)

    result = run_cli("stats", "send", "--background")

    assert result.returncode == 0
    assert (result.stdout, result.stderr) == ("", "")
    assert sorted(receiver.session_ids()) == sorted(e.session_id for e, _ in made)
    assert "--background" not in run_cli("stats", "send", "--help").stdout


ACME_HOST = """
import sys

import typer

from consent.cli import mount
from consent.profile import DEFAULT_PROFILE, AppProfile

host = typer.Typer(name="acme")


@host.command("version")
def version() -> None:
    pass


mount(host, AppProfile(
    name="acme", cli_name="acme", env_prefix="ACME_STATS", home_dir_name=".acme",
    policy_file=DEFAULT_PROFILE.policy_file, host_package="acme", config_env=None,
))
host(prog_name="acme")
"""


def test_a_hosts_hidden_background_option_sends_that_hosts_spool(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import consent
    from consent.actions import apply_choice
    from tests.faults.support import block_background_flush

    acme = AppProfile(
        name="acme",
        cli_name="acme",
        env_prefix="ACME_STATS",
        home_dir_name=".acme",
        policy_file=DEFAULT_PROFILE.policy_file,
        host_package="acme",
        config_env=None,
    )
    host = tmp_path / "acme.py"
    host.write_text(ACME_HOST)
    with Receiver() as acme_receiver, Receiver() as skyplane_receiver:
        monkeypatch.setenv("ACME_STATS_ENDPOINT", acme_receiver.url)
        monkeypatch.setenv("ACME_STATS_DIR", str(tmp_path / "acme-spool"))
        monkeypatch.setenv("SKYPLANE_USAGE_STATS_ENDPOINT", skyplane_receiver.url)
        scope = Scope(acme)
        apply_choice("share", "init-flag", scope=scope)
        block_background_flush(Spool.open(scope))  # only the command below may send
        made = [
            consent.record_session(src="local", dst="local", runtime_s=1.0, profile=acme)
            for _ in range(2)
        ]
        assert None not in made
        result = subprocess.run(
            [sys.executable, str(host), "stats", "send", "--background"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        assert sorted(acme_receiver.session_ids()) == sorted(filter(None, made))
        assert skyplane_receiver.requests == []


def test_the_background_sender_removes_stale_incomplete_sessions(sandbox: Sandbox) -> None:
    """A writer killed between state file and payload leaves a husk; the sender tidies it."""
    acknowledge()
    (kept,) = make_payloads(1)
    spool = Spool.open(Scope())
    husk = spool.root / kept[0].client_id / str(uuid.uuid4())
    husk.mkdir(mode=0o700)
    (husk / "state.json").write_text('{"state": "pending", "receipts": [], "reason": null}')
    fresh = spool.root / kept[0].client_id / str(uuid.uuid4())
    fresh.mkdir(mode=0o700)
    (fresh / "state.json").write_text('{"state": "pending", "receipts": [], "reason": null}')
    hour_ago = time.time() - 3700
    os.utime(husk, (hour_ago, hour_ago))

    run_background(scope=Scope(), spool_root=spool.root)

    assert not husk.exists(), "an hour-old husk is removed"
    assert fresh.exists(), "a writer may still be finishing a fresh one"
    assert kept[0].payload_path.exists()
