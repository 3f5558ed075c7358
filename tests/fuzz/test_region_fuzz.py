"""Fuzz the region-tag parser: a tag in the allowed grammar, or :class:`InvalidValueError`.

tests/test_scrub.py fuzzes ASCII-ish tags. Here the inputs are built to slip past a
grammar check: Unicode case folding (the Kelvin sign lowers to ``k``, dotless and
dotted i), full-width letters and colons, non-ASCII digits, invisible characters,
Unicode whitespace, a path or a URI dressed as a tag, and very long regions.
"""

from __future__ import annotations

import contextlib
import re

from hypothesis import example, given
from hypothesis import strategies as st

from consent._exceptions import InvalidValueError
from consent.scrub import is_region_tag, normalize_region
from consent.scrub.regions import REGION_PROVIDERS, region_name_ok
from tests.fuzz._toml import FUZZ

GRAMMAR = re.compile(r"local|(?:aws|gcp|azure|ibmcloud|cloudflare):[a-z0-9][a-z0-9-]{0,47}")

_tricky_chars = [
    "\u212a",  # Kelvin sign, lowers to "k"
    "\u0131",  # dotless i
    "\u0130",  # dotted capital I, lowers to two characters
    "\uff41",  # full-width a
    "\uff1a",  # full-width colon
    "\u0661",  # Arabic-Indic one
    "\u00b2",  # superscript two
    "\u200b",  # zero-width space
    "\u00a0",  # no-break space
    "\u2028",  # line separator
    "\x00",
    "\u0430",  # Cyrillic a
    "\u017f",  # long s, uppercases to S
]
_region_chars = st.sampled_from(
    [*"abcdefghijklmnopqrstuvwxyz0123456789-", *"ABCXYZ_:./\\ @", *_tricky_chars]
)
_providers = st.one_of(
    st.sampled_from(sorted(REGION_PROVIDERS)),
    st.sampled_from(sorted(REGION_PROVIDERS)).map(str.upper),
    st.sampled_from(["a\u0455s", "gc\u0440", "\uff41ws", "ibmcl\u043eud", "local", "LOCAL", "s3"]),
    st.text(max_size=6),
)
_tags = st.one_of(
    st.builds(
        lambda pad, provider, sep, region: f"{pad}{provider}{sep}{region}{pad}",
        st.sampled_from(["", " ", "\t", "\u3000", "\x1c", "\u2028"]),
        _providers,
        st.sampled_from([":", "\uff1a", "::", " : ", ""]),
        st.text(alphabet=_region_chars, max_size=60),
    ),
    st.sampled_from(
        [
            "/home/alice/data",
            "~/data",
            "C:\\Users\\bob",
            "s3://bucket/key",
            "local:/srv/x",
            "aws:us-east-1/../../etc",
            "aws:" + "a" * 48,
            "aws:" + "a" * 49,
            "aws:" + "a1b2c3d4e5f6g7h8i9",
        ]
    ),
    st.text(max_size=40),
)


@FUZZ
@given(tag=_tags)
@example(tag="aws:\u212aorea")
@example(tag="AWS:US-EAST-1")
@example(tag="aws\uff1aus-east-1")
@example(tag="aws:us-east-\u0661")
@example(tag="\u0130aws:x")
def test_normalize_region_gives_the_grammar_or_invalid_value_error(tag: str) -> None:
    try:
        normalized = normalize_region(tag)
    except InvalidValueError as exc:
        assert not is_region_tag(tag)
        message = str(exc)
        assert "provider:region" in message
        stripped = tag.strip()
        if len(stripped) > 32 or not stripped.isascii():
            # a long or odd value is described, never quoted back
            assert stripped not in message or not stripped
        return
    assert GRAMMAR.fullmatch(normalized), normalized
    assert normalized.isascii()
    if normalized != "local":
        # the region is one its provider could use, not any lowercase text
        provider, _, region = normalized.partition(":")
        assert region_name_ok(provider, region), normalized
    assert is_region_tag(tag)
    assert normalize_region(normalized) == normalized
    if normalized != "local":
        # nothing is invented: the tag is the input, trimmed and lowered
        assert normalized == tag.strip().lower()


@FUZZ
@given(tag=_tags)
def test_normalize_region_never_raises_anything_else(tag: str) -> None:
    for value in (tag, tag.encode("utf-8", "surrogatepass").decode("latin-1")):
        with contextlib.suppress(InvalidValueError):
            normalize_region(value)
