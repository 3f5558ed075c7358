"""The expected forms and the long views: `stats review ID`, the pager, the dry-run
preview, the send progress, `policy accept` on a fresh HOME, and the manners of
every screen (one number format, singular and plural, time order, whole ids)."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from consent.cli._init import QUESTION
from tests.conftest import CLOSED_ENDPOINT, Sandbox, run_cli
from tests.test_screens import Terminal, on_screen
from tests.upload_helpers import acknowledge, make_payloads

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def record() -> str:
    result = run_cli(
        "record", "--src", "aws:us-east-1", "--dst", "gcp:us-central1", "--runtime-s", "3"
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# -- stats review ID ---------------------------------------------------------------------


def test_review_with_an_id_prefix_shows_that_payload(sandbox: Sandbox) -> None:
    session = record()
    result = run_cli("stats", "review", session[:6])
    assert result.returncode == 0, result.stderr
    assert f"Session    {session}" in result.stdout
    assert "Value, and why it is collected" in result.stdout
    as_json = run_cli("stats", "review", session[:6], "--json").json()
    assert [item["session_id"] for item in as_json] == [session]


def test_review_with_an_unknown_id_is_bad_input(sandbox: Sandbox) -> None:
    record()
    result = run_cli("stats", "review", "ffffffff")
    assert result.returncode == 2
    assert "ffffffff" in result.stderr
    assert "Traceback" not in result.stderr


# -- pager ---------------------------------------------------------------------------------


def test_a_long_detail_goes_through_the_pager_on_a_terminal(sandbox: Sandbox) -> None:
    session = record()
    paged = Terminal(sandbox, ["stats", "review", session[:8]], 24, 80, PAGER="sed s/^/PAGED:/")
    code, _ = paged.finish()
    assert code == 0
    text = "\n".join(paged.screen.display)
    assert "PAGED:" in text

    plain = Terminal(
        sandbox, ["stats", "review", session[:8], "--no-pager"], 24, 80, PAGER="sed s/^/PAGED:/"
    )
    code, screen = plain.finish()
    assert code == 0
    assert not on_screen(screen, "PAGED:")
    assert on_screen(screen, "Not sent yet")


def test_no_pager_without_a_terminal(sandbox: Sandbox) -> None:
    session = record()
    result = run_cli("stats", "review", session[:8], env={"PAGER": "sed s/^/PAGED:/"})
    assert result.returncode == 0
    assert "PAGED:" not in result.stdout


# -- dry run -------------------------------------------------------------------------------


def test_dry_run_previews_a_bounded_pretty_body_and_counts(sandbox: Sandbox) -> None:
    acknowledge()
    make_payloads(1500)
    result = run_cli("stats", "send", "--dry-run", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert len(out.splitlines()) < 80
    assert len(out) < 8_000
    assert '    "streams": [' in out  # indented, not one line
    assert "more lines of JSON not shown" in out
    assert "would carry 1,500 payloads" in out
    assert "Dry run: nothing was sent." in out

    whole = run_cli("stats", "send", "--dry-run", "--json")
    requests = whole.json()
    assert sum(len(request["session_ids"]) for request in requests) == 1500
    # the unpacked preview is for reading; --json keeps every body byte for byte
    assert all(isinstance(request["body"], str) for request in requests)


# -- send progress -------------------------------------------------------------------------


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A loopback port that takes connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/push"
    done.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_slow_send_shows_progress_and_states_the_timeout(
    sandbox: Sandbox, silent_endpoint: str
) -> None:
    acknowledge()
    make_payloads(1)
    term = Terminal(
        sandbox, ["stats", "send"], 24, 80, SKYPLANE_USAGE_STATS_ENDPOINT=silent_endpoint
    )
    screen = term.wait_for("Sending")
    assert on_screen(screen, "5 s to answer")
    code, screen = term.finish()
    assert code == 1
    assert on_screen(screen, "no answer within 5 s")
    status = run_cli("stats", "status", env={"SKYPLANE_USAGE_STATS_ENDPOINT": silent_endpoint})
    assert "no answer within 5 s" in " ".join(status.stderr.split())


# -- policy accept, unwritable HOME, damaged record ----------------------------------------


def test_policy_accept_on_a_fresh_home_does_not_choose_for_the_user(sandbox: Sandbox) -> None:
    result = run_cli("policy", "accept")
    assert result.returncode == 0, result.stderr
    assert "Acknowledged policy version 3" in result.stdout
    assert "does not answer whether to share" in result.stdout
    assert "consent init" in result.stdout
    assert not sandbox.config.exists()
    status = run_cli("stats", "status", "--json").json()
    assert status["source"] == "default"
    assert status["policy"]["up_to_date"] is True
    assert run_cli("policy", "accept", "--json").json()["chosen"] is False


def test_an_unwritable_home_names_the_opt_outs_that_work(sandbox: Sandbox, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    env = {"HOME": str(not_a_dir)}
    result = run_cli("init", "--no", env=env)
    assert result.returncode == 1
    err = " ".join(result.stderr.split())
    assert "DO_NOT_TRACK=1" in err
    assert "SKYPLANE_USAGE_STATS_ENABLED=0" in err
    assert "Traceback" not in err
    # and they do work there
    for opt_out in ({"DO_NOT_TRACK": "1"}, {"SKYPLANE_USAGE_STATS_ENABLED": "0"}):
        status = run_cli("stats", "status", "--json", env={**env, **opt_out}).json()
        assert status["enabled"] is False


def test_init_says_it_moved_a_damaged_record_aside(sandbox: Sandbox) -> None:
    sandbox.record.parent.mkdir(parents=True, exist_ok=True)
    sandbox.record.write_text("garbage [[[\n")
    result = run_cli("init", "--yes")
    assert result.returncode == 0, result.stderr
    backups = list(sandbox.record.parent.glob("consent.toml.damaged-*"))
    assert len(backups) == 1
    err = " ".join(result.stderr.split())
    assert "was damaged, so it was moved aside to" in err
    assert backups[0].name in err


# -- CI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "false", ""])
def test_ci_off_values_still_ask(sandbox: Sandbox, value: str) -> None:
    term = Terminal(sandbox, ["init"], 24, 80, CI=value)
    screen = term.wait_for("No, don't share")
    term.cancel()
    assert on_screen(screen, QUESTION)


def test_ci_true_never_asks(sandbox: Sandbox) -> None:
    term = Terminal(sandbox, ["init"], 24, 80, CI="true")
    code, screen = term.finish()
    assert code == 0
    assert not on_screen(screen, QUESTION)
    assert on_screen(screen, "Not asked (CI is set)")


# -- manners -------------------------------------------------------------------------------


def test_a_suggestion_ends_its_sentence_once(sandbox: Sandbox) -> None:
    result = run_cli("stat")
    assert result.returncode == 2
    assert "Did you mean 'stats'? See" in result.stderr
    assert "?." not in result.stderr


def test_one_held_payload_is_singular(sandbox: Sandbox) -> None:
    assert run_cli("init", "--review").returncode == 0
    record()
    result = run_cli("stats", "send")
    assert "1 payload held for your review is not sent" in " ".join(result.stderr.split())


def test_counts_use_one_number_format(sandbox: Sandbox) -> None:
    acknowledge()
    make_payloads(1500)
    status = run_cli("stats", "status", env={"COLUMNS": "200"}).stdout
    assert "1,500 pending" in status
    review = run_cli("stats", "review", env={"COLUMNS": "200"}).stdout
    assert "1,500 pending" in review
    assert "1,450 older payloads not shown (newest 50 of 1,500)" in review


def test_rows_from_one_second_are_in_the_order_they_were_written(sandbox: Sandbox) -> None:
    acknowledge()
    made = [entry for entry, _ in make_payloads(6)]  # one collected_at for all six
    # written last, first: the file times decide, not the (random) ids
    for index, entry in enumerate(reversed(made)):
        stamp = 1_800_000_000 + index
        os.utime(entry.payload_path, (stamp, stamp))
    expected = [entry.session_id for entry in reversed(made)]
    items = run_cli("stats", "review", "--json").json()
    assert [item["session_id"] for item in items] == expected
    out = run_cli("stats", "review", env={"COLUMNS": "200"}).stdout
    order = [session_id[:8] for session_id in expected]
    shown = re.findall(r"\b[0-9a-f]{8}\b", out)
    assert [short for short in shown if short in order] == order


@pytest.mark.parametrize("columns", ["80", "120"])
def test_paths_never_break_inside_an_id(sandbox: Sandbox, columns: str) -> None:
    session = record()
    out = run_cli("stats", "review", session[:8], env={"COLUMNS": columns}).stdout
    file_rows = [line.split()[-1] for line in out.splitlines() if line.startswith("File")]
    file_rows += [line.strip() for line in out.splitlines() if line.startswith("           /")]
    assert "".join(file_rows).endswith(f"{session}/usage_stats.json"), out
    for row in file_rows:
        # every id on a File row is whole: 36 characters, never cut short
        for piece in re.findall(r"[0-9a-f-]{9,}", row):
            assert UUID.fullmatch(piece), (piece, out)


def test_review_detail_json_is_whole(sandbox: Sandbox) -> None:
    session = record()
    data = json.loads(run_cli("stats", "review", session[:8], "--json").stdout)
    assert data[0]["session_id"] == session


def test_policy_show_lists_every_endpoint_in_force(sandbox: Sandbox) -> None:
    sandbox.write_config({"usage_stats_extra_endpoints": ["https://a.example/push"]})
    out = run_cli("policy", "show", env={"COLUMNS": "120"}).stdout
    assert f"Sent to {CLOSED_ENDPOINT}" in out
    assert "https://a.example/push" in out
    assert "instead of the policy's own endpoint" in out
    data = run_cli("policy", "show", "--json").json()
    assert data["endpoints_in_force"] == [CLOSED_ENDPOINT, "https://a.example/push"]
