"""Fuzz the scrubber: it never raises, and no planted secret survives, whole or in part.

tests/test_scrub.py plants secrets among filler words in a dozen one-line
templates. Here they hide where real error text carries them: inside JSON bodies
(compact, pretty, nested), quoted strings of every kind, URLs with userinfo,
query strings (``?token=...``), HTTP headers and shell exports, base64 blobs
wrapped over several lines, and multi-line Python tracebacks. The check is
stricter too: no 16-character window of a long secret may survive, at any
``max_length``.

Low-entropy passwords (``hunter2...``) can only be found by their context, so they
are planted only where a credential-named key announces them; free-text forms
the scrubber misses are pinned as regressions in test_regressions.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

from hypothesis import example, given
from hypothesis import strategies as st

from consent.scrub import (
    MARKERS,
    scrub_arguments,
    scrub_error,
    scrub_text,
)
from consent.scrub.argv import _scrub_arguments
from consent.scrub.text import _scrub_text
from tests.fuzz._toml import FUZZ, FUZZ_SLOW

SEED = st.integers(min_value=0, max_value=2**63)


def _random(seed: int, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


def _alnum(seed: int, size: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % len(alphabet)] for b in _random(seed, size))


# Secrets that can be recognised on their own: known formats and random tokens.
tokens = st.one_of(
    SEED.map(
        lambda n: (
            "AKIA" + "".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[b % 32] for b in _random(n, 16))
        )
    ),
    SEED.map(lambda n: base64.b64encode(_random(n, 30)).decode()),  # AWS secret key shape
    st.builds(
        lambda n, size: base64.b64encode(_random(n, size)).decode(), SEED, st.integers(24, 66)
    )
    # "+/" inside standard base64 splits the token: test_base64_with_plus_slash_is_scrubbed
    .filter(lambda token: "+/" not in token),
    SEED.map(lambda n: "ghp_" + _alnum(n, 36)),
    SEED.map(lambda n: "github_pat_" + _alnum(n, 22) + "_" + _alnum(n + 1, 59)),
    SEED.map(lambda n: f"xoxb-{n % 10**12}-" + _alnum(n, 24)),
    SEED.map(lambda n: "sk_live_" + _alnum(n, 24)),
    SEED.map(lambda n: "AIza" + _alnum(n, 35)),
    SEED.map(lambda n: "ya29." + _alnum(n, 40)),
    SEED.map(
        lambda n: (
            "eyJhbGciOiJIUzI1NiJ9.eyJ"
            + base64.urlsafe_b64encode(_random(n, 24)).decode().rstrip("=")
            + "."
            + base64.urlsafe_b64encode(_random(n + 1, 32)).decode().rstrip("=")
        )
    ),
    st.builds(lambda n, size: _random(n, size).hex(), SEED, st.integers(16, 32)),
    st.builds(
        lambda n, size: base64.urlsafe_b64encode(_random(n, size)).decode().rstrip("="),
        SEED,
        st.integers(18, 48),
    ),
    st.builds(lambda n, size: _alnum(n, size), SEED, st.integers(24, 64)),
)
# Secrets only their context gives away.
passwords = st.builds(
    lambda word, digits: f"{word}{digits}",
    st.sampled_from(
        ["hunter", "Summer", "letmein", "correcthorse", "P@ssw0rd", "qwerty", "dragon"]
    ),
    st.integers(min_value=10, max_value=99999),
)
SECRET_KEYS = st.sampled_from(
    [
        "password",
        "Password",
        "PASSWORD",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apiKey",
        "x-api-key",
        "private_key",
        "aws_secret_access_key",
        "AWS_SESSION_TOKEN",
        "sas_token",
        "credentials",
        "auth",
        "signature",
    ]
)
PLAIN_KEYS = st.sampled_from(["data", "value", "id", "message", "detail", "body", "result", "x"])
FILLER = st.sampled_from(
    ["error", "failed", "while", "calling", "the", "upload", "retrying", "(403)", "status", "500"]
)
USERS = st.sampled_from(["alice", "bob", "svc-copy"])
HOSTS = st.sampled_from(["db.internal", "10.1.2.3", "example.com", "storage.googleapis.com"])


def _json_blob(key: str, secret: str, pretty: bool, nested: bool) -> str:
    doc: dict[str, object] = {"status": 403, key: secret, "retry": False}
    if nested:
        doc = {"error": {"code": "AccessDenied", "details": [doc]}}
    return json.dumps(doc, indent=2 if pretty else None)


def _traceback(user: str, call: str, secret: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        f'  File "/home/{user}/proj/run.py", line 12, in <module>\n'
        f"    {call}\n"
        '  File "/usr/lib/python3/site-packages/botocore/client.py", line 960, in _make_api_call\n'
        "    raise error_class(parsed_response, operation_name)\n"
        f"botocore.exceptions.ClientError: An error occurred (InvalidToken): {secret} is invalid"
    )


def _blob(seed: int, size: int, width: int) -> str:
    """Random bytes in base64, wrapped at ``width`` columns as PEM and MIME do."""
    blob = base64.b64encode(_random(seed, size)).decode()
    return "\n".join(blob[i : i + width] for i in range(0, len(blob), width))


# (text, secret): a token anywhere, in any context
token_contexts = st.one_of(
    st.builds(
        lambda key, s, pretty, nested: (_json_blob(key, s, pretty, nested), s),
        PLAIN_KEYS | SECRET_KEYS,
        tokens,
        st.booleans(),
        st.booleans(),
    ),
    st.builds(
        lambda q, s: (q[0] + s + q[1], s),
        st.sampled_from(["''", '""', "``", "\u2018\u2019", "\u201c\u201d", "()", "[]", "<>"]),
        tokens,
    ),
    st.builds(
        lambda q, s: (f"b{q}{s}{q}", s),
        st.sampled_from(["'", '"']),
        tokens,
    ),
    st.builds(
        lambda user, s, host, path: (f"https://{user}:{s}@{host}/{path}", s),
        USERS,
        tokens,
        HOSTS,
        st.sampled_from(["", "v1/items", "bucket/key.csv"]),
    ),
    st.builds(
        lambda host, key, s, tail: (f"https://{host}/v1/items?{key}={s}{tail}", s),
        HOSTS,
        PLAIN_KEYS | SECRET_KEYS,
        tokens,
        st.sampled_from(["", "&page=2", "#top"]),
    ),
    st.builds(lambda key, s: (f"GET /v1/items?{key}={s} HTTP/1.1", s), SECRET_KEYS, tokens),
    st.builds(lambda key, s: (f"?{key}={s}&x=1", s), PLAIN_KEYS | SECRET_KEYS, tokens),
    st.builds(
        lambda form, s: (form.format(s), s),
        st.sampled_from(
            [
                "Authorization: Bearer {}",
                "authorization: token {}",
                "X-Api-Key: {}",
                "Cookie: session={}; theme=dark",
                "export GITHUB_TOKEN={}",
                "AWS_SECRET_ACCESS_KEY={}",
                "set-cookie: sid={}; HttpOnly",
                "{}",
                "data: {}",
                "= {} =",
            ]
        ),
        tokens,
    ),
    st.builds(
        lambda n, size, width: (blob := _blob(n, size, width), blob),
        SEED,
        st.integers(24, 300),
        st.sampled_from([64, 76, 10_000]),
    ).filter(lambda planted: "+/" not in planted[1]),
    st.builds(
        lambda user, call, s: (_traceback(user, call.format(s), s), s),
        USERS,
        st.sampled_from(
            [
                'boto3.client("s3", aws_secret_access_key="{}")',
                "connect(token={!r})",
                'session.get(url, headers={{"Authorization": "Bearer {}"}})',
                "run({})",
            ]
        ),
        tokens,
    ),
)
# (text, secret): a low-entropy password announced by a credential-named key
password_contexts = st.one_of(
    st.builds(
        lambda key, s, pretty, nested: (_json_blob(key, s, pretty, nested), s),
        SECRET_KEYS,
        passwords,
        st.booleans(),
        st.booleans(),
    ),
    st.builds(
        lambda key, sep, q, s: (f"{key}{sep}{q}{s}{q}", s),
        SECRET_KEYS,
        st.sampled_from(["=", ": ", " = ", ":"]),
        st.sampled_from(["", "'", '"']),
        passwords,
    ),
    st.builds(
        lambda scheme, user, s, host: (f"{scheme}://{user}:{s}@{host}:5432/db", s),
        st.sampled_from(["postgres", "mysql", "redis", "https", "amqp"]),
        USERS,
        passwords,
        HOSTS,
    ),
    st.builds(
        lambda host, key, s: (f"https://{host}/login?{key}={s}&next=/", s),
        HOSTS,
        SECRET_KEYS,
        passwords,
    ),
    st.builds(
        lambda user, key, s: (_traceback(user, f'login({key}="{s}")', "the request"), s),
        USERS,
        SECRET_KEYS,
        passwords,
    ),
)


def _windows(secret: str, size: int = 16) -> set[str]:
    """The secret, and every ``size``-character piece of each of its lines.

    Lines shorter than 20 characters (the shortest unlabelled token the scrubber
    treats as a credential) are left out: the short last line of a wrapped base64
    blob is the regression test_the_tail_of_a_wrapped_base64_blob_is_scrubbed.
    """
    pieces = {secret}
    for line in secret.splitlines():
        if len(line) >= 20:
            pieces.update(line[i : i + size] for i in range(len(line) - size + 1))
    return pieces


def _survivors(secret: str, output: str) -> list[str]:
    return sorted(piece for piece in _windows(secret) if piece in output)


_MAX_LENGTHS = st.sampled_from([100_000, 512, 80, 24, 1])


@FUZZ
@given(
    planted=token_contexts | password_contexts,
    before=st.lists(FILLER, max_size=4),
    after=st.lists(FILLER, max_size=4),
    joiner=st.sampled_from([" ", "\n", ": ", "\t", " | "]),
    max_length=_MAX_LENGTHS,
)
@example(
    planted=('{"password": "hunter2024"}', "hunter2024"),
    before=[],
    after=[],
    joiner=" ",
    max_length=100_000,
)
@example(
    planted=("https://alice:Summer2024@db.internal:5432/db", "Summer2024"),
    before=["error"],
    after=[],
    joiner=" ",
    max_length=24,
)
def test_no_planted_secret_survives(
    planted: tuple[str, str], before: list[str], after: list[str], joiner: str, max_length: int
) -> None:
    text, secret = planted
    whole = joiner.join([*before, text, *after])
    result = scrub_text(whole, max_length=max_length)
    assert isinstance(result, str)
    assert len(result) <= max_length
    assert not _survivors(secret, result), (whole, result)


@FUZZ
@given(
    planted=token_contexts | password_contexts,
    place=st.sampled_from(["value", "equals", "positional", "after-dashes", "config"]),
)
def test_no_planted_secret_survives_in_argv(planted: tuple[str, str], place: str) -> None:
    text, secret = planted
    argv = {
        "value": ["cp", "--src", "aws:us-east-1", "--config", text],
        "equals": ["cp", f"--header={text}"],
        "positional": ["cp", text, "s3://bucket/key"],
        "after-dashes": ["cp", "--", text],
        "config": ["cp", "-c", text, "--max-instances", "4"],
    }[place]
    result = scrub_arguments(argv)
    dumped = json.dumps(result, ensure_ascii=False)
    assert not _survivors(secret, dumped)
    for key, value in result.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and key != "_command":
                assert item in MARKERS or item.isalnum() or ":" in item, (key, item)


@FUZZ_SLOW
@given(planted=token_contexts | password_contexts)
def test_no_planted_secret_survives_in_an_exception(planted: tuple[str, str]) -> None:
    text, secret = planted
    for exc in (RuntimeError(text), OSError(13, text), KeyError(text), ValueError(text, 42)):
        assert not _survivors(secret, scrub_error(exc))


# -- total functions: the private core raises on nothing, so the fail-closed fallback
# (which would blank a whole error message) is never what keeps a secret out.

_odd_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0xD700, max_codepoint=0xE0FF)),
    st.text(alphabet=st.sampled_from(list("'\"`\u2018\u201c:=/\\@.%[]-_+ \n\t\x00\x85\u2028"))),
    st.builds(lambda t, s: t + s + t, st.text(max_size=5), tokens),
)


@FUZZ
@given(text=_odd_text, max_length=st.integers(min_value=-3, max_value=700))
@example(text="\ud800token=\udfffabc", max_length=512)
@example(text="'" * 600, max_length=512)
def test_the_scrubber_core_never_raises(text: str, max_length: int) -> None:
    result = _scrub_text(text, max_length, frozenset())
    assert len(result) <= max(max_length, 0)
    result.encode("utf-8")  # no lone surrogate gets through
    assert scrub_text(text, max_length) == result


@FUZZ
@given(argv=st.lists(_odd_text, max_size=12))
def test_scrub_arguments_core_never_raises(argv: list[str]) -> None:
    result = _scrub_arguments(argv, frozenset(), frozenset())
    assert scrub_arguments(argv) == result
    json.dumps(result)


# -- bounded work on hostile input (no catastrophic backtracking) ----------------------------

_PIECES = [
    "a",
    "A",
    "0",
    ".",
    ":",
    "=",
    "/",
    "\\",
    "@",
    "-",
    "_",
    "+",
    "'",
    '"',
    "%",
    "[",
    "]",
    " ",
    "password=",
    "bucket ",
    "Bearer ",
    "://",
    "::",
    "1.",
    "eyJ",
]


@FUZZ_SLOW
@given(
    pieces=st.lists(st.sampled_from(_PIECES), min_size=1, max_size=6),
    repeat=st.integers(min_value=200, max_value=2500),
)
def test_hostile_text_is_scrubbed_quickly(pieces: list[str], repeat: int) -> None:
    text = ("".join(pieces) * repeat)[:20_000]
    started = time.perf_counter()
    scrub_text(text)
    scrub_arguments([text, "--x", text])
    # real inputs take milliseconds; a backtracking regex would take minutes
    assert time.perf_counter() - started < 2.0
