"""The scrubber's plain string checks say exactly what the patterns they replace say.

``consent.scrub._rules`` and ``consent.scrub.regions`` decide the common shapes
without ``re`` (the host's cold path, bench/cold.py) and ask the patterns of
``consent.scrub._shapes`` about the rest. Each check is compared with its pattern on
generated text made of the characters that matter to it.
"""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from consent.scrub import _rules, _shapes, regions

ALPHABET = st.sampled_from(list("aAzZ059-_./\\:~+=eE@%[] é\u017f\u212a"))
TEXT = st.text(ALPHABET, max_size=45)
# region names: the words of every provider's pattern, run together with digits and dashes
REGION_PART = st.sampled_from(
    [
        *regions._AWS_AREAS.split("|"),
        *regions._GCP_AREAS.split("|"),
        *regions._DIRECTIONS.split("|"),
        *regions._AZURE_PLACES.split("|"),
        *regions._IBM_NAMES,
        *regions._CLOUDFLARE.split("|"),
        "euap",
        "stage",
        "lax",
        "infer",
        *"-0123456789abz",
    ]
)
REGION = st.lists(REGION_PART, max_size=7).map("".join)


@settings(max_examples=3000)
@given(TEXT)
@example("s3://bucket/key")
@example("C:\\Users")
@example("-5")
@example("-.5e3")
@example("+0012")
@example("1.")
def test_the_plain_checks_match_their_patterns(text: str) -> None:
    assert _rules._is_flag_name(text) == bool(_shapes._FLAG_NAME_RE.fullmatch(text))
    assert _rules._is_negative_number(text) == bool(_shapes._NEGATIVE_NUMBER_RE.fullmatch(text))
    scheme = _shapes._SCHEME_RE.match(text)
    assert _rules._scheme_of(text) == (scheme.group(1) if scheme else None)
    assert _rules._is_path_start(text) == bool(_shapes._PATH_START_RE.match(text))
    expected_int = int(text) if _shapes._INT_RE.fullmatch(text) else None
    assert _rules._int_value(text) == expected_int
    assert _rules._is_float(text) == bool(_shapes._FLOAT_RE.fullmatch(text))
    if not _rules._may_be_number(text):
        assert not _shapes._INT_RE.fullmatch(text)
        assert not _shapes._FLOAT_RE.fullmatch(text)
    assert _rules._name_parts(text) == _shapes.name_parts(text)
    assert _rules._find_secret(text) == _shapes.find_secret(text)


@settings(max_examples=1500)
@given(st.sampled_from(["http", "https", "s3", "az"]), TEXT)
@example("https", "acct.blob.core.windows.net/c")
@example("https", "acct.blob.core.windo\u017fs.net/c")
def test_uri_markers_match_the_pattern(scheme: str, rest: str) -> None:
    authority = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
    marker = _rules._uri_marker(scheme, rest)
    if scheme.startswith("http"):
        assert (marker == _rules.URI_AZURE) == _shapes.azure_host(host)


def test_no_secret_pattern_matches_shorter_text_than_the_gate() -> None:
    parser = re._parser  # type: ignore[attr-defined]
    for pattern in (_shapes._SECRET_TOKEN_RE, _shapes._AWS_SECRET_RE):
        shortest = parser.parse(pattern.pattern, pattern.flags).getwidth()[0]
        assert shortest >= _rules._MIN_SECRET_LENGTH, pattern.pattern


@settings(max_examples=4000)
@given(REGION)
@example("us-gov-west-1")
@example("us-west-2-lax-1a")
@example("northamerica-northeast1-b")
@example("eastus2euap")
@example("germanywestcentral")
@example("southafricanorth")
@example("usgovarizona")
def test_the_plain_region_checks_accept_only_what_the_patterns_accept(region: str) -> None:
    for provider in regions._SOURCES:
        plain = regions._NAMES[provider](region)
        pattern = regions._pattern(provider).fullmatch(region) is not None
        assert not plain or pattern, (provider, region)


def test_the_plain_region_checks_know_every_real_region() -> None:
    # the names a host passes on every run must not need the patterns
    real = {
        "aws": ["us-east-1", "us-west-2", "eu-central-1", "ap-southeast-2", "us-gov-west-1"],
        "gcp": ["us-central1", "us-central1-a", "europe-west4", "asia-northeast1-b"],
        "azure": ["eastus", "westeurope", "germanywestcentral", "eastus2euap", "uksouth"],
        "ibmcloud": ["us-south", "eu-de"],
        "cloudflare": ["auto", "wnam"],
    }
    for provider, names in real.items():
        for name in names:
            assert regions._NAMES[provider](name), (provider, name)


def test_the_flag_words_text_holds_exactly_the_files_words() -> None:
    import os

    from consent.scrub import argv

    path = os.path.join(os.path.dirname(argv.__file__), "flagwords.txt")
    with open(path, encoding="ascii") as file:
        lines = file.read().splitlines()
    words = {word for line in lines if line[:1] != "#" for word in line.split()}
    text = argv._flag_words()
    assert set(text.split()) == words
    assert all(f" {word} " in text for word in words)
    comment_words = {w for line in lines if line[:1] == "#" for w in line.split()} - words
    assert comment_words, "the check must see a word that only a comment holds"
    assert not any(f" {word} " in text for word in comment_words)


def test_a_flag_word_is_a_whole_word_not_a_piece_of_one() -> None:
    """The lookup text holds every word between spaces: a fragment must not match."""
    from consent.scrub import argv
    from consent.scrub.text import _flag_like

    words = set(argv._flag_words().split())
    word = next(w for w in sorted(words) if len(w) >= 6 and w[1:-1] not in words)
    fragment = word[1:-1]
    assert argv.is_flag_word(word)
    assert not argv.is_flag_word(fragment)
    assert not argv.is_flag_word(f"{word} {word}")
    assert _flag_like(word)
    assert not _flag_like(fragment)
    assert not _flag_like(f"{word}-{fragment}")


def test_the_flag_words_file_separates_words_only_by_spaces_and_newlines() -> None:
    # _flag_words turns newlines into spaces and nothing else: another separator (a
    # tab) would join two words into one that no flag name is made of
    import os

    from consent.scrub import argv

    path = os.path.join(os.path.dirname(argv.__file__), "flagwords.txt")
    with open(path, "rb") as file:
        body = b"".join(line for line in file if not line.startswith(b"#"))
    assert set(body) <= set(b"abcdefghijklmnopqrstuvwxyz0123456789 \n"), set(body) - set(
        b"abcdefghijklmnopqrstuvwxyz0123456789 \n"
    )
