"""Fuzz the config parser: ``load_config`` gives a dict or :class:`CorruptFileError`.

``parse_json`` (the decision path's ``json.loads`` without importing ``json``) must
agree with ``json.loads``. tests/test_decision.py checks that on small documents and
random bytes; here the inputs are what a real config file can hold that those do
not reach: other encodings with a BOM, deep nesting, huge numbers, duplicate keys,
escaped surrogates, raw control characters, Unicode spaces, and byte-level edits
of real config documents. ``update_config`` must keep every key it does not own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from consent._exceptions import CorruptFileError
from consent.config import FALSE_WORDS, TRUE_WORDS, load_config, parse_json, parse_switch
from consent.config import update_config as _update_config
from tests.fuzz._toml import FUZZ, FUZZ_SLOW, mutate_bytes

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)
_config_objects = st.dictionaries(
    st.one_of(
        st.sampled_from(
            [
                "usage_stats",
                "usage_stats_review",
                "usage_stats_endpoint",
                "usage_stats_extra_endpoints",
                "aws_enabled",
                "gcp_project_id",
            ]
        ),
        st.text(max_size=10),
    ),
    _json_values,
    max_size=6,
)
_encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"])


def _documents() -> st.SearchStrategy[bytes]:
    plain = st.builds(
        lambda value, indent, ascii_only: json.dumps(
            value, indent=indent, ensure_ascii=ascii_only
        ).encode(),
        _json_values | _config_objects,
        st.sampled_from([None, 0, 2, "\t"]),
        st.booleans(),
    )
    encoded = st.builds(
        lambda value, encoding: json.dumps(value, ensure_ascii=False).encode(encoding),
        _config_objects,
        _encodings,
    )
    edits = st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=400),
            st.integers(min_value=0, max_value=4),
            st.sampled_from(
                [
                    *(b"", b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\\u", b"\\ud800"),
                    *(
                        b"0",
                        b"-",
                        b"e",
                        b"1e999",
                        b"NaN",
                        b" ",
                        b"\x0b",
                        b"\xc2\xa0",
                        b"\xff",
                        b"\t",
                    ),
                ]
            ),
        ),
        min_size=1,
        max_size=5,
    )
    mutated = st.builds(mutate_bytes, plain, edits)
    special = st.sampled_from(
        [
            b"[" * 5000 + b"]" * 5000,
            b'{"a":' * 3000 + b"1" + b"}" * 3000,
            b"1" * 5000,
            b"-" + b"9" * 4301,
            b'{"usage_stats": 1e999}',
            b'{"usage_stats": -0.0}',
            b'{"usage_stats": true, "usage_stats": false}',
            b'{"k": "\\ud800"}',
            b'{"k": "\\udc00\\ud800"}',
            b'{"k": "a\x01b"}',
            b'{"k": "tab\there"}',
            b"\xc2\xa0{}",
            b"{}\x0c",
            b"\x00",
            b"\xef\xbb\xbf",
            b"\xef\xbb\xbf\xef\xbb\xbf{}",
            b"{}\n\x00",
        ]
    )
    return st.one_of(plain, encoded, mutated, special, st.binary(max_size=80))


def _json_outcome(raw: bytes) -> tuple[str, object]:
    try:
        return "ok", json.loads(raw)
    except (ValueError, RecursionError):
        return "error", None


def _ours(raw: bytes) -> tuple[str, object]:
    try:
        return "ok", parse_json(raw)
    except (ValueError, RecursionError):
        return "error", None


def _same(a: object, b: object) -> bool:
    # NaN is the one JSON value not equal to itself; compare through a dump
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _bomless_wide(raw: bytes) -> bool:
    """Bytes that ``json.loads`` reads as UTF-16/32 without a BOM: a known divergence.

    See ``test_parse_json_reads_bomless_utf16_like_json_loads`` in test_regressions.py.
    """
    return json.detect_encoding(raw) in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")


@FUZZ
@given(raw=_documents())
@example(raw=b'{"usage_stats": false}\n')
@example(raw='{"usage_stats": false}'.encode("utf-16"))
@example(raw=b'{"a": NaN, "b": Infinity, "c": -Infinity}')
def test_parse_json_agrees_with_json_loads(raw: bytes) -> None:
    ours, theirs = _ours(raw), _json_outcome(raw)
    if _bomless_wide(raw):
        assert ours[0] == "error" or _same(ours[1], theirs[1])
        return
    assert ours[0] == theirs[0], (raw[:80], ours, theirs)
    if ours[0] == "ok":
        assert _same(ours[1], theirs[1])


@FUZZ
@given(raw=_documents())
@example(raw=b"")
@example(raw=b"null")
@example(raw=b"[]")
def test_load_config_gives_a_dict_or_corrupt_file_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(raw)
    try:
        data = load_config(path)
    except CorruptFileError as exc:
        message = str(exc)
        assert str(path) in message
        assert "Fix it by hand, or delete it" in message
        if not _bomless_wide(raw):
            outcome = _json_outcome(raw)
            assert outcome[0] == "error" or not isinstance(outcome[1], dict)
        return
    assert isinstance(data, dict)
    assert _same(data, json.loads(raw))


@FUZZ_SLOW
@given(existing=_config_objects, value=st.booleans())
def test_update_config_keeps_every_other_key_in_order(
    tmp_path: Path, existing: dict[str, Any], value: bool
) -> None:
    path = tmp_path / "home" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(existing))

    def turn(data: dict[str, Any]) -> None:
        data["usage_stats"] = value

    before, after = _update_config(path, turn)
    assert _same(before, existing)
    stored = json.loads(path.read_bytes())
    assert stored["usage_stats"] is value
    assert [k for k in stored if k != "usage_stats"] == [k for k in existing if k != "usage_stats"]
    for key, item in existing.items():
        if key != "usage_stats":
            assert _same(stored[key], item)
    assert _same(after, stored)
    assert path.stat().st_mode & 0o077 == 0


_words = sorted(TRUE_WORDS | FALSE_WORDS)


@FUZZ
@given(
    word=st.one_of(
        st.text(max_size=12),
        st.builds(
            lambda w, pad, upper: pad + (w.upper() if upper else w) + pad,
            st.sampled_from(_words),
            st.sampled_from(["", " ", "\t", "\n", "\u3000", "\x1f", "\x00"]),
            st.booleans(),
        ),
        st.sampled_from(["\u0131", "\u0130", "\uff54\uff52\uff55\uff45", "tru\u0435", "0\u0660"]),
    )
)
def test_parse_switch_accepts_only_the_ascii_words(word: str) -> None:
    parsed = parse_switch(word)
    key = word.strip().lower()
    if parsed is not None:
        # only the words themselves, in any case, with white space around at most
        assert key in (TRUE_WORDS if parsed else FALSE_WORDS)
        assert key.isascii()
    if word.strip(" \t\n").lower() in TRUE_WORDS | FALSE_WORDS:
        assert parsed is (word.strip(" \t\n").lower() in TRUE_WORDS)
