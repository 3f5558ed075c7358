"""The scrub corpus and the structural properties of issue 10.

Every real error format in tests/scrub_corpus/templates.txt is scrubbed with names
of every shape planted in it: no planted name may survive, and every fact marked in
the template (an SDK type name, an error code, a region, an HTTP status) must.

The properties go further. Hypothesis makes up names outside the vocabulary, in
every shape, plants them in any template, and records the error through the real
session path into a spool in a temporary directory: the name never appears in the
bytes written. And the type names and error codes the SDKs define survive.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import consent
from consent.actions import apply_choice
from consent.profile import Scope
from consent.scrub import scrub_error, scrub_text
from consent.scrub.text import vocabulary
from tests.conftest import Sandbox
from tests.scrub_corpus import Template, cases, name_shapes, templates

CASES = list(cases())
TEMPLATES = templates()
_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def test_the_corpus_is_large_and_covers_every_source() -> None:
    assert len(CASES) >= 300
    sources = {template.source for template in TEMPLATES}
    assert sources >= {
        "botocore",
        "s3xml",
        "gcs",
        "azure",
        "paramiko",
        "openssh",
        "oserror",
        "urllib3",
        "requests",
        "skyplane",
    }
    shapes = {shape for _, _, shape, _, _ in CASES}
    assert shapes == set(name_shapes("a", "b", 1))


@pytest.mark.parametrize(
    ("template", "text", "unknown"),
    [
        pytest.param(template, text, unknown, id=case_id)
        for case_id, template, _, text, unknown in CASES
    ],
)
def test_no_planted_name_survives_and_facts_do(
    template: Template, text: str, unknown: list[str]
) -> None:
    out = scrub_text(text)
    for word in unknown:
        assert word not in out.lower(), out
    for fact in template.facts:
        assert fact in out, (fact, out)
    assert scrub_text(out) == out  # scrubbing twice changes nothing


# -- the properties, through the recording path ------------------------------------------

_LETTERS = "bcdfghjklmnprstvwxz"
_VOWELS = "aeiou"


@st.composite
def unknown_words(draw: st.DrawFn) -> str:
    """A pronounceable made-up word of 5 to 9 letters that no vocabulary holds."""
    syllables = draw(
        st.lists(
            st.tuples(st.sampled_from(_LETTERS), st.sampled_from(_VOWELS)), min_size=2, max_size=4
        )
    )
    word = "".join(a + b for a, b in syllables) + draw(st.sampled_from(_LETTERS))
    vocab = vocabulary()
    ok = (
        word not in vocab.words and word not in vocab.modules and word.upper() not in vocab.acronyms
    )
    return draw(st.just(word).filter(lambda _: ok))


def _record(sandbox_spool: Path, error: BaseException) -> bytes:
    session_id = consent.record_session(
        argv=["cp", "s3://b/k", "gs://c/k"],
        src="aws:us-east-1",
        dst="gcp:us-central1",
        runtime_s=1.0,
        error=error,
    )
    assert session_id is not None
    (payload,) = sandbox_spool.glob(f"*/{session_id}/usage_stats.json")
    return payload.read_bytes()


@given(
    template=st.sampled_from(TEMPLATES),
    first=unknown_words(),
    second=unknown_words(),
    number=st.integers(min_value=0, max_value=10**6),
    shape=st.sampled_from(sorted(name_shapes("a", "b", 1))),
)
@settings(max_examples=150, deadline=None, suppress_health_check=_HEALTH)
def test_no_unknown_name_reaches_a_written_payload(
    sandbox: Sandbox, template: Template, first: str, second: str, number: int, shape: str
) -> None:
    # the template's own text is not a planted name
    assume(first not in template.text.lower() and second not in template.text.lower())
    apply_choice("review", "init-flag", scope=Scope())  # review holds payloads: nothing is sent
    text = template.plant(name_shapes(first, second, number)[shape])
    raw = _record(sandbox.spool, RuntimeError(text)).decode("utf-8").lower()
    assert json.loads(raw)["error"].startswith("runtimeerror: ")  # the error was written
    assert first not in raw and second not in raw, json.loads(raw)["error"]


def _sdk_codes() -> list[str]:
    import gzip

    inputs = Path(__file__).resolve().parent.parent / "scripts" / "vocabulary" / "inputs.tsv.gz"
    rows = gzip.decompress(inputs.read_bytes()).decode("ascii").splitlines()
    return sorted({line.split("\t")[1] for line in rows if line.startswith("code\t")})


SDK_CODES = _sdk_codes()


@given(code=st.sampled_from(SDK_CODES), template=st.sampled_from(TEMPLATES))
@settings(max_examples=300, deadline=None, suppress_health_check=_HEALTH)
def test_sdk_type_names_and_error_codes_survive(code: str, template: Template) -> None:
    text = template.plant("zorvak")
    if code.isidentifier():
        assert scrub_error(type(code, (Exception,), {})(text)).startswith(f"{code}: ")
    assert code in scrub_text(f"failed ({code}) while {text}", max_length=4096).split("(")[1]


def test_every_sdk_code_survives_in_text() -> None:
    lost = [code for code in SDK_CODES if f"({code})" not in scrub_text(f"error ({code}) here")]
    assert lost == []


_PIECES = st.sampled_from(
    [
        "error",
        "bucket",
        "zorvak",
        "'x'",
        '"a b"',
        "s3://a/b",
        "10.0.0.1",
        "--",
        "<name>",
        "<secret>",
        "NoSuchKey",
        "us-east-1",
        "acme-prod",
        "key=val",
        "password=x",
        ":",
        "a.b",
        "Bob",
        "x_y",
        "123456789",
        "\u00e9",
        "%2F",
        "(",
        "<Key>v</Key>",
    ]
)


@given(
    first=unknown_words(),
    template=st.sampled_from(TEMPLATES),
    pieces=st.lists(_PIECES, max_size=12),
    separator=st.sampled_from([" ", "\n", ", "]),
)
@settings(max_examples=300, deadline=None, suppress_health_check=_HEALTH)
def test_scrubbing_a_scrubbed_text_changes_nothing(
    first: str, template: Template, pieces: list[str], separator: str
) -> None:
    for text in (template.plant(first), separator.join(pieces)):
        once = scrub_text(text, max_length=10_000)
        assert scrub_text(once, max_length=10_000) == once, text
