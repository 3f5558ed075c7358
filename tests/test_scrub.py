"""Redaction of argv, error text and region tags (docs/architecture.md §3.5, §4 "Write PII").

Example tables pin the behaviour on realistic Skyplane, boto and Google errors; the
property tests plant secrets of every kind among filler words and check that none
survives, and that no input makes a scrubber raise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent._exceptions import BadInputError, InvalidValueError
from consent.scrub import (
    MARKERS,
    is_region_tag,
    normalize_region,
    scrub_arguments,
    scrub_error,
    scrub_text,
)
from consent.scrub.argv import _SAFE_WORDS
from consent.scrub.regions import REGION_PROVIDERS as PROVIDERS
from tests.probes import imports_of
from tests.scrub_corpus.regions import REAL_REGIONS, WORDS

REPO = Path(__file__).resolve().parent.parent

# the autouse sandbox fixture is function-scoped; these tests never touch it
_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
_PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=_HEALTH)
# the leak hunts are the point of the file: they get more examples
_LEAK_HUNT = settings(max_examples=200, deadline=None, suppress_health_check=_HEALTH)

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
REGION_OUTPUT = re.compile(r"^(local|(aws|gcp|azure|ibmcloud|cloudflare):[a-z0-9][a-z0-9-]*)$")
# the options Skyplane 0.3.2 declares on its commands, as a host passes them, plus the
# made-up ones these tables use
KNOWN_FLAGS = frozenset(
    [
        "max-instances",
        "solver",
        "src",
        "dst",
        "debug",
        "multipart",
        "confirm",
        "y",
        "r",
        "n",
        "setting",
        "value",
        "tier",
        "offset",
        "scale",
        "tag",
        "aws-secret",
        "password",
        "api-key",
        "aws-secret-access-key",
        "sas-token",
        "auth",
        "use-token",
        "odd-dashes",
    ]
)


def scrub(argv: list[str], **kwargs: Any) -> dict[str, object]:
    """scrub_arguments as a host calls it: with the flags its command declares."""
    return scrub_arguments(argv, known_flags=KNOWN_FLAGS, **kwargs)


BUILTIN_SAFE = _SAFE_WORDS  # the values argv keeps as they are
COMMANDS = {"cp", "sync", "init", "deprovision", "ssh", "config"}


def _strings(value: object) -> Iterator[str]:
    """Every string in a scrub_arguments result, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _leaks(secret: str, result: dict[str, object]) -> bool:
    # checked on the strings themselves: json.dumps escapes the backslashes of a
    # Windows path, so a substring test on the dump alone could miss one
    variants = {secret, secret.replace("-", "_")}
    dumped = json.dumps(result)
    return any(v in s for v in variants for s in _strings(result)) or secret in dumped


# -- value markers -------------------------------------------------------------------

MARKER_TABLE = [
    ("s3://my-bucket/data", "<uri:s3>"),
    ("S3://My-Bucket/Key", "<uri:s3>"),
    ("s3a://bucket/key", "<uri:s3>"),
    ("gs://bucket/obj/part-1", "<uri:gs>"),
    ("gcs://bucket/obj", "<uri:gs>"),
    ("az://account/container/blob", "<uri:azure>"),
    ("https://acct.blob.core.windows.net/container/blob", "<uri:azure>"),
    ("acct.blob.core.windows.net/container/blob", "<uri:azure>"),
    ("https://example.com/x?token=1", "<uri:http>"),
    ("http://10.0.0.1:8080/path", "<uri:http>"),
    ("https://storage.googleapis.com/b/acme", "<uri:http>"),
    ("ftp://files.example.com/a.txt", "<uri>"),
    ("file:///etc/passwd", "<uri>"),
    ("hdfs://namenode:8020/data", "<uri>"),
    ("alice@example.com", "<email>"),
    ("first.last+tag@corp.example.co.uk", "<email>"),
    ("mailto:bob@corp.io", "<email>"),
    ("10.0.3.4", "<ip>"),
    ("10.0.3.4:443", "<ip>"),
    ("10.0.0.0/16", "<ip>"),
    ("2001:db8::1", "<ip>"),
    ("[2001:db8::1]:8443", "<ip>"),
    ("fe80::1%eth0", "<ip>"),
    ("::1", "<ip>"),
    ("db.prod.example.com", "<host>"),
    ("minio.internal:9000", "<host>"),
    ("AKIAIOSFODNN7EXAMPLE", "<secret>"),
    ("ASIAY34FZKBOKMUTVV7A", "<secret>"),
    (AWS_SECRET, "<secret>"),
    ("AIzaSyD-1234567890abcdefghijklmnopqrstu", "<secret>"),
    (JWT, "<secret>"),
    ("ghp_" + "a1B2c3D4e5" * 3 + "a1B2c3", "<secret>"),
    ("xoxb-1234567890-0987654321-AbCdEfGhIjKl", "<secret>"),
    ("3f786850e387550fdab836ed7e6dc881de23001b", "<secret>"),
    ("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA", "<secret>"),
    ("/etc/passwd", "<path>"),
    ("/home/alice/secret.txt", "<path>"),
    ("~/data", "<path>"),
    ("~bob/data", "<path>"),
    ("./relative", "<path>"),
    ("../up/one", "<path>"),
    ("data/part-0001.parquet", "<path>"),
    ("C:\\Users\\bob\\file.txt", "<path>"),
    ("\\\\server\\share", "<path>"),
    ("dir\\file", "<path>"),
    ("payroll.csv", "<path>"),
    ("my_data.json", "<path>"),
    ("arn:aws:iam::123456789012:user/alice", "<redacted>"),
    ("my-bucket", "<redacted>"),
    ("hello world", "<redacted>"),
    ("Standard", "<redacted>"),
    ("", "<redacted>"),
]


@pytest.mark.parametrize(("value", "marker"), MARKER_TABLE)
def test_value_becomes_typed_marker(value: str, marker: str) -> None:
    assert scrub(["--value", value]) == {"value": marker}
    assert scrub([f"--value={value}"]) == {"value": marker}
    assert scrub_arguments(["cp", value]) == {"_command": "cp", "_positional": [marker]}


def test_markers_are_the_documented_set() -> None:
    assert set(MARKERS) == {
        "<uri:s3>",
        "<uri:gs>",
        "<uri:azure>",
        "<uri:http>",
        "<uri>",
        "<email>",
        "<ip>",
        "<host>",
        "<secret>",
        "<path>",
        "<redacted>",
        "<name>",
        "<region>",
        "<flag>",
        "<id>",
    }


# -- argv parsing --------------------------------------------------------------------


def test_skyplane_example() -> None:
    argv = [
        "cp",
        "-r",
        "s3://my-bucket/data",
        "gs://other/x",
        "--max-instances",
        "8",
        "--solver",
        "ilp",
        "--aws-secret=abc123...",
    ]
    assert scrub(argv) == {
        "_command": "cp",
        "r": True,
        "max_instances": 8,
        "solver": "ilp",
        "aws_secret": "<secret>",
        "_positional": ["<uri:s3>", "<uri:gs>"],
    }


def test_equals_and_space_forms_agree() -> None:
    assert scrub(["--max-instances=8"]) == scrub(["--max-instances", "8"])
    assert scrub(["--max-instances=8"]) == {"max_instances": 8}


def test_flag_without_value_is_true() -> None:
    assert scrub(["--debug"]) == {"debug": True}
    assert scrub(["--debug", "--multipart"]) == {"debug": True, "multipart": True}
    assert scrub(["-y", "--confirm"]) == {"y": True, "confirm": True}


def test_repeated_flag_becomes_list() -> None:
    result = scrub(["--dst", "aws:us-east-1", "--dst", "gcp:us-central1", "--dst=x"])
    assert result == {"dst": ["aws:us-east-1", "gcp:us-central1", "<redacted>"]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("false", False),
        ("True", True),
        ("FALSE", False),
        ("8", 8),
        ("0", 0),
        ("-3", -3),
        ("+12", 12),
        ("0.5", 0.5),
        ("-2.25", -2.25),
        ("1e3", 1000.0),
        ("999999", 999999),
        # more than six digits: an account id, a project number or a phone number
        ("9999999", "<id>"),
        ("123456789012", "<id>"),
        ("1234-5678-9012", "<id>"),
        # a leading zero marks an id (a PIN, a zip code), not a count
        ("007", "<redacted>"),
        ("nan", "<redacted>"),
        ("inf", "<redacted>"),
        ("1e999", "<redacted>"),
        ("0x1f", "<redacted>"),
        ("1_000", "<redacted>"),
    ],
)
def test_booleans_and_numbers(value: str, expected: object) -> None:
    result = scrub(["--setting", value])
    assert result == {"setting": expected}
    assert type(result["setting"]) is type(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ilp", "ilp"),
        ("ILP", "ilp"),
        ("direct", "direct"),
        ("ron", "ron"),
        ("greedy", "greedy"),
        ("lz4", "lz4"),
        ("zstd", "zstd"),
        ("gzip", "gzip"),
        ("none", "none"),
        ("auto", "auto"),
        ("on", "on"),
        ("off", "off"),
        ("aws", "aws"),
        ("gcp", "gcp"),
        ("azure", "azure"),
        ("ibmcloud", "ibmcloud"),
        ("cloudflare", "cloudflare"),
        ("local", "local"),
        ("aws:us-east-1", "aws:us-east-1"),
        ("GCP:US-Central1", "gcp:us-central1"),
        ("azure:eastus2", "azure:eastus2"),
        ("aws:US_EAST", "<region>"),
        ("ilp2", "<redacted>"),
    ],
)
def test_known_safe_values_are_kept(value: str, expected: str) -> None:
    assert scrub(["--solver", value]) == {"solver": expected}


def test_caller_safe_values() -> None:
    assert scrub(["--tier", "Standard"]) == {"tier": "<redacted>"}
    assert scrub(["--tier", "Standard"], safe_values={"Standard"}) == {"tier": "Standard"}
    assert scrub(["--tier=Premium"], safe_values=["Standard", "Premium"]) == {"tier": "Premium"}
    # a safe word does not make its positional verbatim
    assert scrub(["cp", "Standard"], safe_values={"Standard"}) == {
        "_command": "cp",
        "_positional": ["<redacted>"],
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["--password", "ilp"],
        ["--password=8"],
        ["--api-key", "Standard"],
        ["--aws-secret-access-key", AWS_SECRET],
        ["--sas-token", "sv=2021&sig=abc"],
        ["--auth", "12345"],
    ],
)
def test_credential_flags_hide_any_value(argv: list[str]) -> None:
    result = scrub(argv, safe_values={"Standard"})
    assert list(result.values()) == ["<secret>"]


def test_credential_flag_keeps_a_boolean() -> None:
    assert scrub(["--use-token"]) == {"use_token": True}
    assert scrub(["--use-token", "false"]) == {"use_token": False}


def test_positionals_are_never_verbatim() -> None:
    result = scrub(["sync", "8", "ilp", "aws:us-east-1", "true", "local"])
    assert result == {"_command": "sync", "_positional": ["<redacted>"] * 5}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_first_positional_command(command: str) -> None:
    assert scrub([command]) == {"_command": command}
    assert scrub([command, "--debug", "x"]) == {
        "_command": command,
        "debug": "<redacted>",
    }
    assert scrub([command, "x", "--debug"]) == {
        "_command": command,
        "debug": True,
        "_positional": ["<redacted>"],
    }


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["CP"], {"_positional": ["<redacted>"]}),
        (["copy"], {"_positional": ["<redacted>"]}),
        (["foo", "cp"], {"_positional": ["<redacted>", "<redacted>"]}),
        (["cp", "sync"], {"_command": "cp", "_positional": ["<redacted>"]}),
        (["cp", "--", "sync"], {"_command": "cp", "_positional": ["<redacted>"]}),
        (["--", "cp"], {"_positional": ["<redacted>"]}),
    ],
)
def test_command_only_for_first_plain_positional(
    argv: list[str], expected: dict[str, object]
) -> None:
    assert scrub(argv) == expected


def test_tokens_after_double_dash_are_positionals() -> None:
    result = scrub(["sync", "--debug", "--", "--max-instances", "8", "s3://b/k"])
    assert result == {
        "_command": "sync",
        "debug": True,
        "_positional": ["<redacted>", "<redacted>", "<uri:s3>"],
    }


def test_short_flag_before_uri_is_a_switch() -> None:
    assert scrub(["-r", "s3://b/k"]) == {"r": True, "_positional": ["<uri:s3>"]}
    assert scrub(["-n", "8"]) == {"n": 8}


def test_negative_number_is_a_value() -> None:
    assert scrub(["--offset", "-5", "--scale", "-0.5"]) == {
        "offset": -5,
        "scale": -0.5,
    }


@pytest.mark.parametrize(
    ("token", "marker"),
    [
        ("--AKIAIOSFODNN7EXAMPLE", "<secret>"),
        ("--alice@example.com", "<email>"),
        ("--/etc/passwd=x", "<path>"),
        ("--9lives", "<redacted>"),
        ("--" + "a" * 41, "<redacted>"),
        ("--" + "ghp_" + "a1B2c3D4e5" * 3 + "a1B2c3", "<secret>"),
        ("-", "<redacted>"),
    ],
)
def test_odd_flag_name_is_scrubbed_as_a_value(token: str, marker: str) -> None:
    assert scrub([token]) == {"_positional": [marker]}


def test_flag_names_are_normalised() -> None:
    assert scrub(["--max-instances", "1", "-n", "2", "---odd-dashes", "3"]) == {
        "max_instances": 1,
        "n": 2,
        "odd_dashes": 3,
    }


def test_undeclared_flag_names_are_hidden() -> None:
    # a flag name made of a customer's words leaks unless the host declared it
    assert scrub_arguments(["--acme-payroll-prod", "8"]) == {"<flag>": 8}
    assert scrub_arguments(["--acme-payroll-prod", "8"], known_flags=["--acme-payroll-prod"]) == {
        "acme_payroll_prod": 8
    }
    # declared with or without dashes, in either spelling
    assert scrub_arguments(["--src_region=aws:us-east-1"], known_flags=["src-region"]) == {
        "src_region": "aws:us-east-1"
    }
    # common English words need no declaration; several unknown flags share the key
    assert scrub_arguments(["--max-instances", "8", "--zorvak", "--quibnet=x"]) == {
        "max_instances": 8,
        "<flag>": [True, "<redacted>"],
    }
    # a credential-named undeclared flag still hides its value
    assert scrub_arguments(["--zorvak-password", "hunter2"]) == {"<flag>": "<secret>"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--account", "42"],
        ["--project-number", "123"],
        ["--subscription", "1234-5678-9012"],
        ["--value", "1234-5678-9012"],
        ["--value", "123456789"],
        ["--value", "+1234567"],
    ],
)
def test_account_ids_of_any_length_are_hidden(argv: list[str]) -> None:
    assert list(scrub(argv).values()) == ["<id>"]


def test_region_flags_keep_only_real_regions() -> None:
    assert scrub_arguments(["--region", "us-east-1"]) == {"region": "us-east-1"}
    assert scrub_arguments(["--region", "acme"]) == {"region": "<region>"}
    assert scrub(["--src", "aws:acmeland"]) == {"src": "<region>"}


def test_key_cap_keeps_command_and_positionals() -> None:
    argv = ["cp", "s3://b/k"] + [f"--flag{i}" for i in range(100)]
    result = scrub_arguments(argv, known_flags=[f"flag{i}" for i in range(100)])
    assert len(result) == 64
    assert result["_command"] == "cp"
    assert result["_positional"] == ["<uri:s3>"]
    assert "flag0" in result
    assert "flag70" not in result


def test_list_caps() -> None:
    result = scrub(["cp"] + ["--tag", "x"] * 100 + [f"/p/{i}" for i in range(100)])
    tags = result["tag"]
    positional = result["_positional"]
    assert isinstance(tags, list)
    assert isinstance(positional, list)
    assert len(tags) == 32
    assert len(positional) == 32


def test_non_string_tokens_do_not_leak() -> None:
    argv: list[object] = ["cp", None, 12345, b"s3://bucket"]
    result = scrub(argv)  # type: ignore[arg-type]
    assert result == {"_command": "cp", "_positional": ["<redacted>"] * 3}


# -- free text ------------------------------------------------------------------------

TEXT_TABLE = [
    (
        "botocore.exceptions.ClientError: An error occurred (AccessDenied) when calling the "
        "GetObject operation: Access Denied for s3://acme-prod/payroll/2024.csv",
        "botocore.exceptions.ClientError: An error occurred (AccessDenied) when calling the "
        "GetObject operation: Access Denied for <uri:s3>",
    ),
    (
        "FileNotFoundError: [Errno 2] No such file or directory: '/home/alice/secret.txt'",
        "FileNotFoundError: [Errno 2] No such file or directory: '<path>'",
    ),
    ("Could not connect to 10.0.3.4:443", "Could not connect to <ip>:443"),
    (
        "Invalid credentials: aws_secret_access_key=" + AWS_SECRET + " region=us-east-1",
        "Invalid credentials: aws_secret_access_key=<secret> region=us-east-1",
    ),
    (
        "An error occurred (NoSuchBucket) when calling the ListObjectsV2 operation: "
        "The specified bucket does not exist",
        "An error occurred (NoSuchBucket) when calling the ListObjectsV2 operation: "
        "The specified bucket does not exist",
    ),
    ("Bucket my-bucket not found", "Bucket <name> not found"),
    ("bucket 'my-bucket' is not empty", "bucket '<name>' is not empty"),
    ("NoSuchKey: key 'a/b.txt' does not exist", "NoSuchKey: key '<path>' does not exist"),
    ("cannot open container named acme-data", "cannot open container named <name>"),
    (
        "An error occurred (SignatureDoesNotMatch) when calling the PutObject operation: "
        "Check your key and signing method.",
        "An error occurred (SignatureDoesNotMatch) when calling the PutObject operation: "
        "Check your key and signing method.",
    ),
    (
        "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: "
        "s3:ListBucket on resource: arn:aws:s3:::acme-prod",
        "User: <name> is not authorized to perform: s3:ListBucket on resource: <redacted>",
    ),
    ("password=hunter2 and token: abc123", "password=<secret> and token: <secret>"),
    ('{"password": "two words", "retries": 3}', '{"password": "<secret>", "retries": 3}'),
    ("Authorization: Bearer " + JWT, "Authorization: Bearer <secret>"),
    ("header Bearer abc.def-123 rejected", "header Bearer <secret> rejected"),
    (
        "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=YWJjZGVm==;",
        "DefaultEndpointsProtocol=https;AccountName=<name>;AccountKey=<secret>;",
    ),
    ("mail alice.smith@example.com now", "mail <email> now"),
    ("ssh ubuntu@10.1.2.3 failed", "ssh <email> failed"),
    ("resolve db.prod.acme.io:5432 failed", "resolve <host>:5432 failed"),
    ("connect [2001:db8::1]:443 or fe80::1%eth0 or ::1.", "connect [<ip>]:443 or <ip> or <ip>."),
    ("network 10.0.0.0/16 is in use", "network <ip> is in use"),
    ("see C:\\Users\\bob\\x.log or ~/logs/x.log", "see <path> or <path>"),
    ("wrote ./out/part-1 and ../up", "wrote <path> and <path>"),
    ("copy data/2024/01.parquet", "copy <path>"),
    ("saved payroll.csv", "saved <path>"),
    ("keys AKIAIOSFODNN7EXAMPLE and " + AWS_SECRET, "keys <secret> and <secret>"),
    ("gcp key AIzaSyD-1234567890abcdefghijklmnopqrstu", "gcp key <secret>"),
    ("request id 3f786850e387550fdab836ed7e6dc881de23001b", "request id <secret>"),
    ("account 123456789012 is closed", "account <id> is closed"),
    ("project acme-analytics-123456 was deleted", "project <name> was deleted"),
    (
        "I/O error, HTTP/1.1 500 at 1.5 Gbps, 3 of 10 MB/s",
        "I/O error, HTTP/1.1 500 at 1.5 Gbps, 3 of 10 MB/s",
    ),
    (
        "<Error><Code>AccessDenied</Code><Key>/a/b</Key></Error>",
        "<Error><Code>AccessDenied</Code><Key><path></Key></Error>",
    ),
    (
        "don't do it, it's 'fine' and \"Access Denied\"",
        "don't do it, it's '<name>' and \"Access Denied\"",
    ),
    # an identifier of vocabulary words is code; a made-up word in quotes is data
    ("KeyError: 'max_instances'", "KeyError: 'max_instances'"),
    ("KeyError: 'zorvak'", "KeyError: '<name>'"),
    # the leak shapes
    (
        "NoSuchBucket: The specified bucket acme-payroll does not exist",
        "NoSuchBucket: The specified bucket <name> does not exist",
    ),
    (
        "<Error><Code>NoSuchBucket</Code><BucketName>payroll</BucketName></Error>",
        "<Error><Code>NoSuchBucket</Code><BucketName><name></BucketName></Error>",
    ),
    ("Failed to list objects in acme-raw", "Failed to list objects in <name>"),
    ("FileNotFoundError: acme-raw", "FileNotFoundError: <name>"),
    (
        "(AccountNameInvalid) acme_data is not a valid storage account name",
        "(AccountNameInvalid) <name> is not a valid storage account name",
    ),
    (
        "The config profile (acme-prod-admin) could not be found",
        "The config profile (<name>) could not be found",
    ),
    ("Authentication failed for jane.doe", "Authentication failed for <name>"),
    ('for user "keenan"', 'for user "<name>"'),
    ("bucket 'payslips'", "bucket '<name>'"),
    ("host ip-172-31-5-17 at minio-prod:9000", "host <name> at <name>:9000"),
    ("aws:us-east-1:i-0a1b2c3d4e5f67890", "aws:us-east-1:<name>"),
    ("see C:\\Users\\Bob Jones\\x.txt", "see <path> <path>"),
    ("name acme%2Dpayroll here", "name <name> here"),
    ("Grüße from Zoë Müller", "<name> from <name>"),
    (
        "NoCredentialsError: Unable to locate credentials",
        "NoCredentialsError: Unable to locate credentials",
    ),
    (
        "BucketAlreadyOwnedByYou NoSuchObjectException",
        "BucketAlreadyOwnedByYou NoSuchObjectException",
    ),
    ("proxy http://bob:hunter2@proxy.acme.io:3128 failed", "proxy <uri:http> failed"),
    (
        "Authorization: Negotiate YIIBhwYGKwYBBQUCoIIBezCCAXeg",
        "Authorization: Negotiate <secret>",
    ),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc", "<secret>"),
    ("console id 1234-5678-9012 closed", "console id <id> closed"),
    # an account id of any length; a short number after "file" is a count
    ("account 42 is closed", "account <id> is closed"),
    ("project: 7 was deleted", "project: <id> was deleted"),
    ("file 2 of 3 failed", "file 2 of 3 failed"),
    # a given name kept as a word is a name with a capital inside a sentence
    ("copy started by Will at noon", "copy started by <name> at noon"),
    ("Will retry: 3 attempts left. May fail.", "Will retry: 3 attempts left. May fail."),
    ("login failed for alex", "login failed for <name>"),
    (
        "ProvisionedThroughputExceededException: rate exceeded",
        "ProvisionedThroughputExceededException: rate exceeded",
    ),
]


@pytest.mark.parametrize(("text", "expected"), TEXT_TABLE)
def test_scrub_text_examples(text: str, expected: str) -> None:
    result = scrub_text(text)
    assert result == expected
    assert scrub_text(result) == result  # scrubbing a scrubbed text changes nothing


def test_shape_words_survive() -> None:
    assert scrub_text("I/O error, HTTP/1.1 500 at 1.5 Gbps, 3 of 10 MB/s") == (
        "I/O error, HTTP/1.1 500 at 1.5 Gbps, 3 of 10 MB/s"
    )
    assert scrub_text("<Error><Code>AccessDenied</Code><Key>/a/b</Key></Error>") == (
        "<Error><Code>AccessDenied</Code><Key><path></Key></Error>"
    )
    # a quoted word is data; a quoted phrase is judged word by word
    assert scrub_text("don't do it, it's 'fine' and \"Access Denied\"") == (
        "don't do it, it's '<name>' and \"Access Denied\""
    )
    assert scrub_text("ProvisionedThroughputExceededException: rate exceeded") == (
        "ProvisionedThroughputExceededException: rate exceeded"
    )


def test_gcp_forbidden_error() -> None:
    text = (
        "google.api_core.exceptions.Forbidden: 403 POST "
        "https://storage.googleapis.com/storage/v1/b?project=acme-analytics-123456: "
        "skyplane-sa@acme-analytics-123456.iam.gserviceaccount.com does not have "
        "storage.buckets.create access to the Google Cloud project."
    )
    result = scrub_text(text)
    assert "acme-analytics" not in result
    assert "skyplane-sa" not in result
    assert result.startswith("google.api_core.exceptions.Forbidden: 403 POST <uri:http>: <email>")
    assert result.endswith("access to the Google Cloud project.")


def test_gcp_not_found_project() -> None:
    text = "google.api_core.exceptions.NotFound: 404 Project acme-analytics-123456 not found"
    assert scrub_text(text) == ("google.api_core.exceptions.NotFound: 404 Project <name> not found")


def test_urllib3_connection_error() -> None:
    text = (
        "HTTPSConnectionPool(host='acme.s3.amazonaws.com', port=443): Max retries exceeded "
        "with url: /payroll/2024.csv?uploadId=abc (Caused by NewConnectionError('<urllib3."
        "connection.HTTPSConnection object at 0x7f3a2c1d5e80>: Failed to establish a new "
        "connection: [Errno 111] Connection refused'))"
    )
    result = scrub_text(text)
    assert "acme" not in result
    assert "payroll" not in result
    assert result.startswith("HTTPSConnectionPool(host='<host>', port=443): Max retries")
    assert "(Caused by NewConnectionError(" in result


def test_azure_error() -> None:
    text = (
        "azure.core.exceptions.ResourceNotFoundError: The specified container does not "
        "exist. RequestId:2c0b3f6e-801e-0039-1b5e-6d2b3c000000 ErrorCode:ContainerNotFound "
        "url https://acmestore.blob.core.windows.net/backups/db.bak"
    )
    result = scrub_text(text)
    assert "acmestore" not in result
    assert "2c0b3f6e" not in result
    assert "ErrorCode:ContainerNotFound" in result
    assert result.endswith("url <uri:azure>")


def test_private_key_block() -> None:
    text = (
        "bad key -----BEGIN RSA PRIVATE KEY----- MIIEowIBAAKCAQEA1 abc "
        "-----END RSA PRIVATE KEY----- end"
    )
    assert scrub_text(text) == "bad key <secret> end"


def test_control_characters_and_surrogates() -> None:
    result = scrub_text("one\ntwo\tthree\x00four\x1b[31m\ud800five\u202esix\ue001")
    # the pieces join up ("threefour"), and what they join into is no word
    assert result == "one two <name>[<name>"
    result.encode("utf-8")  # no lone surrogate left


def test_unicode_whitespace_separates_like_a_space() -> None:
    text = "password=\u00a0hunter2 and\u3000bucket\u2003acme9"
    assert scrub_text(text) == "password= <secret> and bucket <name>"


def test_split_secret_is_rejoined_before_matching() -> None:
    assert scrub_text("key AKIAIOSF\u200bODNN7EXAMPLE") == "key <secret>"


def test_truncation() -> None:
    long = "word " * 300
    result = scrub_text(long)
    assert len(result) == 512
    assert result.endswith("\u2026")
    assert scrub_text("short", max_length=512) == "short"
    assert scrub_text("access", max_length=3) == "ac\u2026"
    assert scrub_text("anything", max_length=0) == ""


def test_truncation_does_not_cut_a_marker() -> None:
    result = scrub_text("see s3://bucket/key for more", max_length=10)
    assert result == "see \u2026"


def test_huge_text_is_bounded_and_scrubbed() -> None:
    text = ("s3://bucket-1/key " * 10000) + "AKIAIOSFODNN7EXAMPLE"
    result = scrub_text(text, max_length=100)
    assert len(result) <= 100
    assert "bucket-1" not in result
    assert result.endswith("\u2026")


# -- scrub_error ----------------------------------------------------------------------


def test_scrub_error_formats_type_and_message() -> None:
    error = FileNotFoundError(2, "No such file or directory")
    error.filename = "/home/alice/x"
    assert scrub_error(error) == "FileNotFoundError: [Errno 2] No such file or directory: '<path>'"
    assert scrub_error(KeyError("aws-secret")) == "KeyError: '<name>'"
    assert scrub_error(ValueError("plain words")) == "ValueError: plain words"


def test_scrub_error_nested_class_name() -> None:
    class Outer:
        class Inner(Exception):
            pass

    # defined in a function, so its __qualname__ holds "<locals>"
    assert scrub_error(Outer.Inner("boom")) == "<redacted>: boom"


def test_scrub_error_plain_qualname() -> None:
    assert scrub_error(InvalidValueError("x")) == "InvalidValueError: x"


class Hostile(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_scrub_error_when_str_raises() -> None:
    assert scrub_error(Hostile()) == "Hostile: <redacted>"


def test_scrub_error_when_type_name_is_odd() -> None:
    odd = type("Odd Name!", (Exception,), {})
    assert scrub_error(odd("/etc/passwd")) == "<redacted>: <path>"


# -- regions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("aws:us-east-1", "aws:us-east-1"),
        ("AWS:US-EAST-1", "aws:us-east-1"),
        ("  gcp:us-central1 ", "gcp:us-central1"),
        ("gcp:northamerica-northeast1", "gcp:northamerica-northeast1"),
        ("azure:eastus2euap", "azure:eastus2euap"),
        ("ibmcloud:us-south", "ibmcloud:us-south"),
        ("cloudflare:auto", "cloudflare:auto"),
        ("aws:us-west-2-lax-1a", "aws:us-west-2-lax-1a"),
        ("aws:us-gov-west-1", "aws:us-gov-west-1"),
        ("gcp:europe-west4-a", "gcp:europe-west4-a"),
        ("azure:germanywestcentral", "azure:germanywestcentral"),
        ("ibmcloud:eu-de", "ibmcloud:eu-de"),
        ("cloudflare:weur", "cloudflare:weur"),
        ("aws:infer", "aws:infer"),
        ("cloudflare:infer", "cloudflare:infer"),
        ("local", "local"),
        ("LOCAL", "local"),
        ("local:/data/x", "local"),
        ("local:anything", "local"),
        ("/data/x", "local"),
        ("~/data", "local"),
        ("./data", "local"),
        ("../data", "local"),
        ("data/x", "local"),
        ("C:\\data", "local"),
    ],
)
def test_normalize_region_valid(tag: str, expected: str) -> None:
    assert normalize_region(tag) == expected
    assert is_region_tag(tag)


@pytest.mark.parametrize(
    "tag",
    [
        "",
        "foo",
        "us-east-1",
        "aws",
        "aws:",
        "aws:us_east_1",
        "aws:-east",
        "aws:us east",
        "oracle:us-ashburn-1",
        "s3://bucket",
        "aws:" + "a" * 49,
        "aws:AKIAIOSFODNN7EXAMPLE",
        "gcp:us-central1:extra",
        "alice@example.com",
        # a provider with a word, a bucket or a name where its region belongs
        "aws:payroll",
        "aws:acme-prod",
        "gcp:keenan",
        "azure:my-storage",
        "ibmcloud:us-north",
        "cloudflare:acme",
        "scp:korea-west-1",
        "infer",
    ],
)
def test_normalize_region_invalid(tag: str) -> None:
    with pytest.raises(InvalidValueError):
        normalize_region(tag)
    assert not is_region_tag(tag)


def test_region_error_message_quotes_short_tags() -> None:
    with pytest.raises(InvalidValueError) as caught:
        normalize_region("foo")
    assert str(caught.value) == (
        "'foo' is not a region tag: use provider:region, for example aws:us-east-1, "
        "gcp:us-central1, azure:eastus, or local."
    )
    assert isinstance(caught.value, BadInputError)


@pytest.mark.parametrize(
    "tag",
    [
        "aws:AKIAIOSFODNN7EXAMPLE",
        "gcp:" + AWS_SECRET,
        "s3://acme-prod/payroll",
        "alice@example.com",
        "x" * 60,
    ],
)
def test_region_error_message_hides_suspicious_values(tag: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        normalize_region(tag)
    message = str(caught.value)
    assert tag not in message
    assert tag.lower() not in message
    assert message.startswith("The value given ")
    assert message.endswith(".")
    assert message.count(". ") == 0  # one sentence


def test_region_error_names_the_shape() -> None:
    with pytest.raises(InvalidValueError, match="unknown provider"):
        normalize_region("oracle:us-ashburn-1")
    with pytest.raises(InvalidValueError, match="names no region aws has"):
        normalize_region("aws:us_east_1")


# -- properties: planted secrets never survive ------------------------------------------

FILLER = st.sampled_from(
    [
        "error",
        "failed",
        "to",
        "copy",
        "the",
        "from",
        "region",
        "AccessDenied",
        "(403)",
        "operation:",
        "Errno",
        "2",
        "retry",
        "after",
        "timeout,",
        "Transfer",
        "chunk",
        "with",
        "status",
        "500.",
    ]
)
TLDS = st.sampled_from(["com", "net", "org", "io", "internal", "dev", "cloud", "local"])
LABEL = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
# names carry a digit so they can never be mistaken for a filler word
NAME = st.from_regex(r"[a-z][a-z0-9-]{2,20}[0-9]", fullmatch=True)
KEY_PATH = st.from_regex(r"[A-Za-z0-9_.-]{1,12}(/[A-Za-z0-9_.-]{1,12}){0,3}", fullmatch=True)
SEED = st.integers(min_value=0, max_value=2**63)


def _random_bytes(seed: int, size: int) -> bytes:
    # real credentials are random; hashing the seed keeps them random while
    # hypothesis shrinks the seed
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return out[:size]


def _b64(seed: int, size: int) -> str:
    return base64.b64encode(_random_bytes(seed, size)).decode()


def _b64url(seed: int, size: int) -> str:
    return base64.urlsafe_b64encode(_random_bytes(seed, size)).decode().rstrip("=")


aws_access_keys = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["AKIA", "ASIA"]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16),
)
aws_secret_keys = SEED.map(lambda n: _b64(n, 30))
gcp_keys = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=35,
    max_size=35,
).map(lambda body: "AIza" + body)
jwts = SEED.map(
    lambda n: "eyJhbGciOiJIUzI1NiJ9." + "eyJ" + _b64url(n, 24) + "." + _b64url(n + 1, 32)
)
github_tokens = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    min_size=36,
    max_size=36,
).map(lambda body: "ghp_" + body)
slack_tokens = st.builds(
    lambda a, b: f"xoxb-{a}-{b}",
    st.integers(min_value=10**9, max_value=10**12),
    SEED.map(lambda n: _b64url(n, 18)),
)
long_tokens = st.one_of(
    SEED.map(lambda n: _random_bytes(n, 20).hex()),
    st.builds(lambda n, size: _b64url(n, size), SEED, st.integers(min_value=16, max_value=48)),
)
emails = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    st.from_regex(r"[a-z][a-z0-9._+-]{0,12}[a-z0-9]", fullmatch=True),
    st.lists(LABEL, min_size=1, max_size=3),
    TLDS,
)
ips = st.ip_addresses().map(str).filter(lambda ip: ip != "::")
hostnames = st.builds(
    lambda labels, tld: ".".join(labels) + "." + tld,
    st.lists(LABEL, min_size=1, max_size=3),
    TLDS,
)
s3_uris = st.builds(lambda b, k: f"s3://{b}/{k}", NAME, KEY_PATH)
gs_uris = st.builds(lambda b, k: f"gs://{b}/{k}", NAME, KEY_PATH)
azure_uris = st.one_of(
    st.builds(lambda a, c, k: f"az://{a}/{c}/{k}", NAME, NAME, KEY_PATH),
    st.builds(
        lambda a, c, k: f"https://{a}.blob.core.windows.net/{c}/{k}",
        st.from_regex(r"[a-z][a-z0-9]{2,20}[0-9]", fullmatch=True),
        NAME,
        KEY_PATH,
    ),
)
home_paths = st.builds(
    lambda form, user, rest: form.format(user=user, rest=rest),
    st.sampled_from(
        [
            "/home/{user}/{rest}",
            "/Users/{user}/{rest}",
            "~{user}/{rest}",
            "~/{user}/{rest}",
            "C:\\Users\\{user}\\{rest}",
        ]
    ),
    st.from_regex(r"[a-z][a-z0-9_]{2,12}[0-9]", fullmatch=True),
    KEY_PATH,
)

SECRETS = st.one_of(
    aws_access_keys,
    aws_secret_keys,
    gcp_keys,
    jwts,
    github_tokens,
    slack_tokens,
    long_tokens,
    emails,
    ips,
    hostnames,
    s3_uris,
    gs_uris,
    azure_uris,
    home_paths,
)
# the identifying part of a URI or a path must go too, not only the whole string
_NAME_IN = re.compile(
    r"^(?:s3|gs|az)://([^/]+)/|^https://([^.]+)\.blob|(?:home|Users)[/\\]([^/\\]+)"
)

TEXT_TEMPLATES = st.sampled_from(
    [
        "{}",
        "'{}'",
        '"{}"',
        "({})",
        "[{}]",
        "<{}>",
        "{}.",
        "{},",
        "{}:",
        "at {}:443",
        "value={}",
        "url: {}",
        "for {} failed",
    ]
)


def _identifying_parts(secret: str) -> list[str]:
    match = _NAME_IN.search(secret)
    return [group for group in match.groups() if group] if match else []


@given(
    secret=SECRETS,
    before=st.lists(FILLER, max_size=6),
    after=st.lists(FILLER, max_size=6),
    template=TEXT_TEMPLATES,
)
@_LEAK_HUNT
def test_scrub_text_never_leaks_a_planted_secret(
    secret: str, before: list[str], after: list[str], template: str
) -> None:
    text = " ".join([*before, template.format(secret), *after])
    # a generous limit: the secret must be scrubbed, not merely cut off
    result = scrub_text(text, max_length=100_000)
    assert secret not in result
    for part in _identifying_parts(secret):
        assert part not in result
    for word in before + after:
        assert word in result


@given(
    secret=SECRETS,
    before=st.lists(FILLER, max_size=4),
    place=st.sampled_from(["positional", "value", "equals", "name", "after-dashes"]),
)
@_LEAK_HUNT
def test_scrub_arguments_never_leaks_a_planted_secret(
    secret: str, before: list[str], place: str
) -> None:
    planted = {
        "positional": [secret],
        "value": ["--src", secret],
        "equals": [f"--dst={secret}"],
        "name": [f"--{secret}"],
        "after-dashes": ["--", secret],
    }[place]
    argv = ["cp", *before, "--max-instances", "4", *planted]
    result = scrub_arguments(argv)
    assert not _leaks(secret, result)
    for part in _identifying_parts(secret):
        assert not _leaks(part, result)
    assert result["max_instances"] == 4


@given(secret=SECRETS)
@_PROPERTY
def test_scrub_error_never_leaks_a_planted_secret(secret: str) -> None:
    result = scrub_error(RuntimeError(f"transfer failed for {secret}"))
    assert result.startswith("RuntimeError: transfer failed for ")
    assert secret not in result


@given(words=st.lists(FILLER, max_size=40))
@_PROPERTY
def test_scrub_text_keeps_ordinary_words(words: list[str]) -> None:
    text = " ".join(words)
    assert scrub_text(text, max_length=10_000) == text


# -- properties: total functions ---------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@given(text=st.text(), max_length=st.integers(min_value=-5, max_value=600))
@_PROPERTY
def test_scrub_text_accepts_any_text(text: str, max_length: int) -> None:
    result = scrub_text(text, max_length=max_length)
    assert isinstance(result, str)
    assert len(result) <= max(max_length, 0)
    assert not _CONTROL.search(result)
    result.encode("utf-8")


@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=2000))
@_PROPERTY
def test_scrub_text_keeps_within_default_limit(text: str) -> None:
    assert len(scrub_text(text)) <= 512


_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


def _allowed_value(value: object) -> bool:
    if isinstance(value, bool | int | float):
        return True
    if isinstance(value, str):
        return value in MARKERS or value in BUILTIN_SAFE or bool(REGION_OUTPUT.match(value))
    return False


@given(argv=st.lists(st.text(), max_size=40))
@_PROPERTY
def test_scrub_arguments_accepts_any_argv(argv: list[str]) -> None:
    result = scrub_arguments(argv)
    json.dumps(result)
    assert len(result) <= 64
    for key, value in result.items():
        if key == "_command":
            assert value in COMMANDS
        elif key == "_positional":
            assert isinstance(value, list)
            assert 0 < len(value) <= 32
            assert all(item in MARKERS for item in value)
        else:
            assert _KEY.match(key)
            items = value if isinstance(value, list) else [value]
            assert len(items) <= 32
            assert all(_allowed_value(item) for item in items)


@given(
    argv=st.lists(
        st.one_of(
            st.sampled_from(["--", "-", "--x", "-r", "cp", "--a=b", "--flag", "1", "-1"]),
            st.text(max_size=10).map(lambda s: "--" + s),
            st.text(max_size=10),
        ),
        max_size=80,
    )
)
@_PROPERTY
def test_scrub_arguments_flag_shaped_input(argv: list[str]) -> None:
    result = scrub_arguments(argv)
    assert len(result) <= 64
    json.dumps(result)


@given(text=st.text())
@_PROPERTY
def test_scrub_error_accepts_any_message(text: str) -> None:
    result = scrub_error(ValueError(text))
    assert result.startswith("ValueError: ")
    assert len(result) <= len("ValueError: ") + 512


TAGISH = st.one_of(
    st.text(),
    st.builds(
        lambda provider, region: f"{provider}:{region}",
        st.sampled_from(["aws", "AWS", "gcp", "azure", "ibmcloud", "cloudflare", "x"]),
        st.text(alphabet="abcxyzABC019-_:/ .", max_size=60),
    ),
)


@given(tag=TAGISH)
@_PROPERTY
def test_normalize_region_output_shape(tag: str) -> None:
    try:
        normalized = normalize_region(tag)
    except InvalidValueError as error:
        assert not is_region_tag(tag)
        message = str(error)
        if len(tag.strip()) > 32 or "/" in tag:
            assert tag.strip() not in message or not tag.strip()
        return
    assert REGION_OUTPUT.match(normalized)
    assert is_region_tag(tag)
    assert normalize_region(normalized) == normalized


@pytest.mark.parametrize(("provider", "region"), REAL_REGIONS)
def test_real_regions_are_accepted(provider: str, region: str) -> None:
    assert normalize_region(f"{provider}:{region}") == f"{provider}:{region}"
    assert scrub(["--src", f"{provider.upper()}:{region}"]) == {"src": f"{provider}:{region}"}


@given(provider=st.sampled_from(sorted(PROVIDERS)), word=st.sampled_from(WORDS))
@_PROPERTY
def test_arbitrary_words_are_not_regions(provider: str, word: str) -> None:
    tag = f"{provider}:{word}"
    assert not is_region_tag(tag)
    assert scrub(["--src", tag]) == {"src": "<region>"}


# -- import hygiene ----------------------------------------------------------------------


def test_import_loads_only_the_standard_library() -> None:
    probe = imports_of("import consent.scrub")
    assert "consent.scrub" in probe.new
    assert probe.foreign == []


def test_argv_path_loads_neither_text_rules_nor_vocabulary() -> None:
    probe = imports_of(
        "import sys\n"
        "import consent.scrub as scrub\n"
        "scrub.scrub_arguments(['cp', '--max-instances', '8', '--acme-x', 'y'],"
        " known_flags=['max-instances'])\n"
        "text_for_argv = 'consent.scrub.text' in sys.modules\n"
        "scrub.scrub_text('NoSuchBucket: zorvak')\n"
        "from consent.scrub import text\n"
        "result = [text_for_argv, text._vocabulary is not None]\n"
    )
    # the text rules were not imported for argv; the first text scrub loaded the vocabulary
    assert probe.result == [False, True]


def _entropy_bits(token: str) -> float:
    import math

    total = len(token)
    return -sum(token.count(c) / total * math.log2(token.count(c) / total) for c in set(token))


@given(
    token=st.text(alphabet="ab01+/=_-AZxyz9", min_size=1, max_size=80),
    bits=st.sampled_from([2.5, 3.5, 1.0, 2.0]),
)
def test_the_spread_check_agrees_with_shannon_entropy(token: str, bits: float) -> None:
    # _looks_random asks for entropy without importing math (a shared library); it must
    # decide as the logarithm does, and a token at the threshold counts as random
    from consent.scrub._shapes import _spread_at_least

    entropy = _entropy_bits(token)
    if abs(entropy - bits) < 1e-9:
        assert _spread_at_least(token, bits)
    else:
        assert _spread_at_least(token, bits) == (entropy >= bits)


@pytest.mark.parametrize(
    ("token", "bits"),
    [("aabbcdef", 2.5), ("abcd", 2.0), ("ab", 1.0), ("abcdefghijklmnop", 4.0)],
)
def test_a_token_exactly_at_the_spread_threshold_counts_as_random(token: str, bits: float) -> None:
    from consent.scrub._shapes import _spread_at_least

    assert _entropy_bits(token) == bits
    assert _spread_at_least(token, bits)
    assert not _spread_at_least(token, bits + 0.01)
