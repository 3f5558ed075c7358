"""Inputs the fuzzers found, kept as plain tests so they are checked on every run.

Each guards a bug the fuzzers found and that is fixed; docs/security.md lists them.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import httpx
import pytest

from consent._exceptions import InsecureEndpointError, PolicyError
from consent._urls import check_endpoint
from consent.config import parse_json
from consent.policy import load_policy
from consent.profile import DEFAULT_PROFILE
from consent.record import Acknowledgement, ConsentRecord, dumps_record, load_record
from consent.record import update_record as _update_record
from consent.scrub import scrub_text

# -- the policy loader ------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["version", "summary"])
def test_a_policy_with_a_huge_integer_is_a_policy_error(tmp_path: Path, key: str) -> None:
    text = DEFAULT_PROFILE.policy_file.read_text()
    if key == "version":
        text = text.replace("version = 3", "version = " + "9" * 4301)
    else:
        text += "\n[fields.os.extra]\nlimit = " + "1" * 5000 + "\n"
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError):
        load_policy(path)


# -- the config parser ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"1\x00",
        '{"usage_stats": false}'.encode("utf-16-le"),
        '{"usage_stats": false}'.encode("utf-16-be"),
        "[true]".encode("utf-32-le"),
    ],
    ids=["digit-nul", "utf-16-le", "utf-16-be", "utf-32-le"],
)
def test_parse_json_reads_bomless_utf16_like_json_loads(raw: bytes) -> None:
    assert parse_json(raw) == json.loads(raw)


# -- the consent record -------------------------------------------------------------------------

_AT_999 = dt.datetime(999, 12, 31, 23, 0, tzinfo=dt.UTC)


def test_dumps_record_writes_years_before_1000(tmp_path: Path) -> None:
    # A record another tool (or a clock set wrong) wrote: valid TOML, accepted by the reader.
    client_id = str(uuid.uuid4())
    path = tmp_path / "consent.toml"
    path.write_text(
        f'client_id = "{client_id}"\n\n[acknowledgement]\nversion = 3\nfingerprint = "f"\n'
        'decision = "share"\nat = 0999-12-31T23:00:00Z\nvia = "init-flag"\n'
    )
    record = load_record(path)
    assert record is not None and record.acknowledgement is not None
    assert record.acknowledgement.at == _AT_999

    # The next acknowledgement moves it to the history, and the file is rewritten...
    newer = Acknowledgement(4, "e", "share", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "notice")
    _update_record(path, lambda current: current.acknowledge(newer))
    # ...and can no longer be read: the client id is lost on the next change
    again = load_record(path)
    assert again is not None and again.client_id == client_id


def test_dumps_record_of_year_1000_round_trips(tmp_path: Path) -> None:
    at = dt.datetime(1000, 1, 1, tzinfo=dt.UTC)
    record = ConsentRecord(
        str(uuid.uuid4()), Acknowledgement(1, "f", "share", at, "init-flag"), None, ()
    )
    path = tmp_path / "consent.toml"
    path.write_text(dumps_record(record))
    assert load_record(path) == record


# -- endpoints ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://loc\talhost:3100/push", " https://example.com/push", "\x01http://localhost/"],
    ids=["tab", "leading-space", "control"],
)
def test_accepted_endpoint_is_a_url_httpx_can_use(url: str) -> None:
    try:
        check_endpoint(url)
    except InsecureEndpointError:
        return
    parsed = httpx.URL(url)  # raises InvalidURL for the tab and the control character
    assert parsed.scheme in ("http", "https")


@pytest.mark.parametrize(
    "url", ["ftp://user:s3cret-pw@example.com/x", "https://user:s3cret-pw@[::1/x"]
)
def test_endpoint_refusals_never_quote_a_password(url: str) -> None:
    with pytest.raises(InsecureEndpointError) as caught:
        check_endpoint(url)
    assert "s3cret-pw" not in str(caught.value)


def test_endpoint_refusal_for_credentials_does_not_quote_them() -> None:
    with pytest.raises(InsecureEndpointError) as caught:
        check_endpoint("https://user:s3cret-pw@example.com/x")
    assert "s3cret-pw" not in str(caught.value)


# -- the scrubber ---------------------------------------------------------------------------

# 88 characters of standard base64, the shape of an Azure storage account key
_KEY_WITH_PLUS_SLASH = (
    "l8V3X5Nq7bRk2sW9Tg+/Hy4Jm6Cz1Pd0Fa3Lu5Ke8Qo7Iv2Ew9Sr4Ox6Ub1Yn3Gt5Mh7Bj0Di2Zc8Ap6Vx4Nf9Wl1Ks3=="
)


@pytest.mark.parametrize(
    "text",
    [
        _KEY_WITH_PLUS_SLASH,
        f"signing with {_KEY_WITH_PLUS_SLASH} failed",
        "Xk9fQ2mZp7Lr4Tb8wq+/Yc3vN8sK1pD5hG7jR2tU6xW9zA0bC4eF",
    ],
)
def test_base64_with_plus_slash_is_scrubbed(text: str) -> None:
    token = text.split()[2] if " " in text else text
    head = token.split("+/")[0]
    assert head not in scrub_text(text)


def test_the_tail_of_a_wrapped_base64_blob_is_scrubbed() -> None:
    blob = (
        "VRPj6rum11QCwcNMc2XG+sAQJFidCmmWMpJVzRj+xcypOHX+UJrC+uDgk50+xxxNl4JExzmN1xhc\n"
        "pow5NCalpp3GNmogA9QYrOa2x04pmA94RKu8NRGnibRxKq3jVmW2sfEn8Zo1gXDcLa7eTy5HuPOv\n"
        "bXYNg6O8CVfDpQ=="
    )
    result = scrub_text(f"certificate data:\n{blob}\nend")
    assert "bXYNg6O8CVfDpQ" not in result


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "running: mysql -h db --password hunter2xyz -e 'select 1'",
            id="flag-space-value",
        ),
        pytest.param(
            "retrying with --sas-token hunter2xyz",
            id="sas-token-space-value",
        ),
        pytest.param(
            "aws configure set aws_secret_access_key hunter2xyz failed",
            id="secret-word-space-value",
        ),
        pytest.param(
            "connect failed: DB_PASS=hunter2xyz",
            id="db-pass",
        ),
        pytest.param(
            "<Error><Password>hunter2xyz</Password></Error>",
            id="xml-element",
        ),
        pytest.param("password=hunter2xyz", id="password-equals"),
        pytest.param('{"password": "hunter2xyz"}', id="json"),
        pytest.param("mysql://root:hunter2xyz@localhost/db", id="userinfo"),
        pytest.param("https://h.example/login?token=hunter2xyz&next=/", id="query"),
    ],
)
def test_a_password_named_by_its_context_is_scrubbed(text: str) -> None:
    assert "hunter2xyz" not in scrub_text(text)
