"""The scrubber's cache (consent.scrub._cache) changes its cost, never its answers.

The cache lives beside the package's bytecode; each test that writes one gives its
interpreter a private ``PYTHONPYCACHEPREFIX``, so nothing here touches the repo's
``__pycache__``.
"""

from __future__ import annotations

import _sre  # type: ignore[import-not-found]
import marshal
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.scrub import _cache, text
from tests import redteam_corpus, scrub_corpus

REPO = Path(__file__).resolve().parent.parent

# Every error text of both corpora, and argv values that reach the lazy patterns.
TEXTS = [case[3] for case in scrub_corpus.cases()] + [case[0] for case in redteam_corpus.cases()]

# No json in the child: it imports re, which is what the test looks for.
_SCRUB_ALL = """
import marshal, sys
from consent.scrub import scrub_arguments, scrub_text
texts = marshal.loads(sys.stdin.buffer.read())
out = [scrub_text(t) for t in texts]
out.append(scrub_arguments(["cp", "--id", "123-4567-890", "--region", "mx-central-1"]))
sys.stdout.buffer.write(marshal.dumps([out, "re" in sys.modules]))
"""


def _cache_env(prefix: Path) -> dict[str, str]:
    """An interpreter's environment whose bytecode (and scrub cache) go to ``prefix``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPYCACHEPREFIX=str(prefix), PYTHONPATH=str(REPO))
    return env


def _scrub_all(prefix: Path, *, write: bool = True) -> tuple[list[object], bool]:
    """Scrub every text in a fresh interpreter whose bytecode (and cache) go to ``prefix``."""
    env = _cache_env(prefix)
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", _SCRUB_ALL],
        input=marshal.dumps(TEXTS),
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out, re_loaded = marshal.loads(proc.stdout)  # noqa: S302
    return out, re_loaded


def _cache_files(prefix: Path) -> dict[str, Path]:
    files = {path.name.split(".")[0]: path for path in prefix.rglob("*.marshal")}
    assert set(files) == {"patterns", "vocabulary"}, files
    return files


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[object]:
    """Every answer with nothing cached and nothing written: ``re`` compiled each pattern."""
    out, re_loaded = _scrub_all(tmp_path_factory.mktemp("nocache"), write=False)
    assert re_loaded
    return out


def test_a_warm_cache_gives_the_same_answers_without_re(
    tmp_path: Path, reference: list[object]
) -> None:
    cold, _ = _scrub_all(tmp_path)
    _cache_files(tmp_path)
    warm, re_loaded = _scrub_all(tmp_path)
    assert cold == reference
    assert warm == reference
    assert not re_loaded


def test_each_cached_pattern_is_what_re_compiles(tmp_path: Path) -> None:
    _scrub_all(tmp_path)
    stored = marshal.loads(_cache_files(tmp_path)["patterns"].read_bytes())  # noqa: S302
    version, engine, entries = stored
    assert (version, engine) == (_cache._CACHE_FORMAT, _cache._ENGINE)
    # the module's own patterns, the lazily compiled region and argv ones among them
    assert text._TOKEN_RE.pattern in entries
    assert text._QUOTED_RE.pattern in entries
    assert len(entries) >= 60
    for pattern, stored in entries.items():
        entry = marshal.loads(stored)  # noqa: S302
        compiled, fresh = _cache._compile_with_re(pattern)
        assert fresh == entry, pattern
        rebuilt = _sre.compile(pattern, *entry)
        assert (rebuilt.pattern, rebuilt.flags, rebuilt.groups, rebuilt.groupindex) == (
            compiled.pattern,
            compiled.flags,
            compiled.groups,
            compiled.groupindex,
        )


def _damage_entries(path: Path) -> None:
    if path.name.startswith("patterns"):
        version, key, entries = marshal.loads(path.read_bytes())  # noqa: S302
        for index, pattern in enumerate(list(entries)):
            if index % 3 == 0:
                # code the engine refuses (an opcode past the last): compiled afresh
                flags, code, groups, groupindex, indexgroup = marshal.loads(entries[pattern])  # noqa: S302
                entry = (flags, [10_000, *code[1:]], groups, groupindex, indexgroup)
                entries[pattern] = marshal.dumps(entry)
            elif index % 3 == 1:
                entries[pattern] = b"\xffnot an entry"
        path.write_bytes(marshal.dumps((version, key, entries)))
    else:
        # every group's bytes, past the index, made undecodable: each group asked about
        # is read from vocabulary.txt instead
        data = bytearray(path.read_bytes())
        size = int.from_bytes(data[:4], "little")
        data[4 + size :] = b"\xff" * (len(data) - 4 - size)
        path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda path: path.write_bytes(b"\x00garbage\xff" * 50), id="garbage"),
        pytest.param(lambda path: path.write_bytes(path.read_bytes()[:1000]), id="truncated"),
        pytest.param(lambda path: path.write_bytes(marshal.dumps([1, 2, 3])), id="wrong-shape"),
        pytest.param(
            lambda path: path.write_bytes(marshal.dumps((_cache._CACHE_FORMAT, ("other",), {}))),
            id="another-interpreter",
        ),
        pytest.param(_damage_entries, id="damaged-entries"),
        pytest.param(lambda path: path.write_bytes(b""), id="empty"),
    ],
)
def test_a_damaged_cache_is_rebuilt_and_changes_no_answer(
    tmp_path: Path, reference: list[object], damage: object
) -> None:
    _scrub_all(tmp_path)
    files = _cache_files(tmp_path)
    for path in files.values():
        damage(path)  # type: ignore[operator]
    damaged, _ = _scrub_all(tmp_path)
    assert damaged == reference
    # rewritten whole: the next run reads it without compiling
    again, re_loaded = _scrub_all(tmp_path)
    assert again == reference
    assert not re_loaded


def test_a_cache_path_that_cannot_be_a_directory_is_not_an_error(
    tmp_path: Path, reference: list[object]
) -> None:
    # a file where the cache directory would be: every write fails, even for root
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    out, re_loaded = _scrub_all(blocked)
    assert out == reference
    assert re_loaded
    assert blocked.read_text() == "not a directory"


def test_a_regenerated_vocabulary_is_not_read_from_a_stale_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "vocabulary.txt"
    source.write_text("# test\n[words]\nalpha beta\n[codes]\nNoSuchThing\n", encoding="ascii")
    monkeypatch.setattr(text, "VOCABULARY_FILE", str(source))
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "pycache"))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    first = text.load_vocabulary()
    assert "alpha" in first.words and "gamma" not in first.words
    assert "NoSuchThing" in first.codes and "alpha" not in first.codes
    assert any((tmp_path / "pycache").rglob("vocabulary.*.marshal"))
    assert first.words.source is None  # parsed from the source, not read from the cache
    # a longer file: a different size, so a different key
    source.write_text("# test\n[words]\nalpha beta gamma\n", encoding="ascii")
    second = text.load_vocabulary()
    assert "gamma" in second.words
    assert "NoSuchThing" not in second.codes
    # and read back from the cache, the same words
    third = text.load_vocabulary()
    assert sorted(third.words) == ["alpha", "beta", "gamma"]


WORD = st.text(st.sampled_from(list("aAbz0_.-é")), min_size=0, max_size=6)


@given(st.lists(WORD.filter(bool), max_size=40), WORD)
def test_a_word_set_answers_as_a_set_does(words: list[str], probe: str) -> None:
    word_set = text.WordSet.of(words)
    assert (probe in word_set) == (probe in set(words))
    assert sorted(word_set) == sorted(words)
    assert len(word_set) == len(words)
    assert all(word in word_set for word in words)


def test_the_cache_holds_only_the_packages_own_text(tmp_path: Path) -> None:
    _scrub_all(tmp_path)
    planted = [case[1] for case in redteam_corpus.cases()]
    for path in _cache_files(tmp_path).values():
        data = path.read_bytes()
        for values in planted:
            for value in values.values():
                if len(value) >= 8 and not re.fullmatch(r"[a-z]+", value):
                    assert value.encode() not in data


def _cached_vocabulary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str
) -> tuple[text.Vocabulary, Path]:
    """A vocabulary from ``body``, cached under ``tmp_path`` and read back lazily."""
    source = tmp_path / "vocabulary.txt"
    source.write_text(f"# test\n{body}", encoding="ascii")
    monkeypatch.setattr(text, "VOCABULARY_FILE", str(source))
    monkeypatch.setattr(text, "_from_source", None)
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "pycache"))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    text.load_vocabulary()  # parses the source and writes the cache
    monkeypatch.setattr(text, "_from_source", None)
    lazy = text.load_vocabulary()
    assert lazy.words.source is not None, "read back from the cache"
    (cache,) = (tmp_path / "pycache").rglob("vocabulary.*.marshal")
    return lazy, cache


def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> text.Vocabulary:
    """The shipped vocabulary, cached under ``tmp_path`` and read back from there."""
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "pycache"))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    text.load_vocabulary()
    lazy = text.load_vocabulary()
    assert lazy.words.source is not None, "read back from the cache"
    return lazy


def test_the_vocabulary_read_from_its_cache_is_the_parsed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(text.VOCABULARY_FILE, "rb") as file:
        parsed = text.Vocabulary.from_text(file.read().decode("ascii"))
    lazy = _private_cache(tmp_path, monkeypatch)
    for section in ("words", "acronyms", "codes", "modules", "given"):
        expected = sorted(getattr(parsed, section))
        assert expected, section
        assert sorted(getattr(lazy, section)) == expected, section
    fresh = _private_cache(tmp_path, monkeypatch)
    for probe in ["bucket", "Bucket", "NoSuchBucket", "nosuchbucket", "acme", "", "a b", "zz"]:
        assert (probe in fresh.words) == (probe in parsed.words), probe
        assert (probe in fresh.codes) == (probe in parsed.codes), probe


def test_a_cache_replaced_after_its_index_was_read_is_not_read_with_that_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lazy, cache = _cached_vocabulary(tmp_path, monkeypatch, "[words]\nalpha beta\n")
    # another file in its place, its words at the same offsets: an index read from the
    # first file must not be used to read the second
    swapped = cache.read_bytes().replace(b" alpha ", b" gamma ")
    replacement = cache.with_suffix(".new")
    replacement.write_bytes(swapped)
    os.replace(replacement, cache)
    assert "alpha" in lazy.words
    assert "gamma" not in lazy.words


def test_a_cache_cut_short_is_refused_before_a_group_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cache = _cached_vocabulary(tmp_path, monkeypatch, "[words]\nalpha beta\n[codes]\nNoSuch\n")
    cache.write_bytes(cache.read_bytes()[:-3])
    monkeypatch.setattr(text, "_from_source", None)
    again = text.load_vocabulary()
    assert again.words.source is None  # parsed from vocabulary.txt, and cached again
    assert "alpha" in again.words and "NoSuch" in again.codes


def test_scrubbing_one_error_reads_a_small_part_of_the_vocabulary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lazy = _private_cache(tmp_path, monkeypatch)
    monkeypatch.setattr(text, "_vocabulary", lazy)
    scrubbed = text.scrub_error(
        RuntimeError(
            "An error occurred (NoSuchBucket) when calling the ListObjectsV2 operation: "
            "The specified bucket does not exist: acme-payroll-prod"
        )
    )
    assert "NoSuchBucket" in scrubbed and "acme" not in scrubbed
    sections = [lazy.words, lazy.acronyms, lazy.codes, lazy.modules, lazy.given]
    read = sum(len(group) for words in sections for group in words.groups.values())
    assert 0 < read < os.path.getsize(text.VOCABULARY_FILE) / 4


_SCRUB_ONE = """
import sys
from consent.scrub import _cache, text
text.scrub_text(sys.argv[1])
built = sum(1 for pattern in _cache._declared if pattern in _cache._compiled)
print(built, len(_cache._declared), int("re" in sys.modules))
"""


def _scrub_one(prefix: Path, message: str) -> tuple[int, int, bool]:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRUB_ONE, message],
        env=_cache_env(prefix),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    built, declared, re_loaded = proc.stdout.split()
    return int(built), int(declared), re_loaded == "1"


def test_a_scrub_builds_only_the_patterns_it_uses_and_the_cache_gets_them_all(
    tmp_path: Path,
) -> None:
    plain = "The specified bucket does not exist"
    built, declared, re_loaded = _scrub_one(tmp_path, plain)
    assert re_loaded  # a cold cache: what was used was compiled by re
    # warm: a plain message builds a fraction of the rules, and never needs re
    built, declared, re_loaded = _scrub_one(tmp_path, plain)
    assert not re_loaded
    assert 0 < built < declared / 2
    # the cold run cached every declared pattern, not only those it used: a message
    # that runs other rules (a key, a URL, an address, a PEM block) needs no re either
    rich = (
        "password=hunter2 at https://acme.example.com/x?sig=abc&se=1 from 10.1.2.3 "
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- <Key>a/b</Key>"
    )
    built_rich, _, re_loaded = _scrub_one(tmp_path, rich)
    assert not re_loaded
    assert built_rich > built


@pytest.mark.parametrize("pattern", [r"(?i)a(?P<x>b)+", r"[0-9]{2,}", r"(?s)x.*?y"])
def test_a_pattern_built_on_first_use_is_the_one_re_compiles(pattern: str) -> None:
    lazy = _cache.compile_pattern(pattern)
    assert lazy.pattern == pattern  # known before it is built
    compiled = re.compile(pattern)
    assert (lazy.flags, lazy.groups, lazy.groupindex) == (
        compiled.flags,
        compiled.groups,
        compiled.groupindex,
    )
    for sample in ["", "aBbB", "x12 345y", "xay\nxby"]:
        assert lazy.sub("#", sample) == compiled.sub("#", sample)
        assert lazy.findall(sample) == compiled.findall(sample)
        assert bool(lazy.search(sample)) == bool(compiled.search(sample))


def test_where_no_cache_is_written_the_unused_patterns_are_not_compiled_at_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unused = r"(?:never-used-by-a-scrub)+[0-9]"
    _cache.compile_pattern(unused)
    monkeypatch.setattr(_cache, "_patterns", {})
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    _cache._save_patterns()
    assert unused not in _cache._patterns  # type: ignore[operator]
    # where the cache is written, the same exit compiles it for the next process
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    written: list[dict[str, bytes]] = []
    monkeypatch.setattr(_cache, "store", lambda name, key, value: written.append(value))
    _cache._save_patterns()
    assert unused in written[0]


def test_words_asked_about_and_absent_leave_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a long-lived host scrubs errors for months: only groups that exist are kept
    lazy = _private_cache(tmp_path, monkeypatch)
    assert lazy.words.source is not None
    keys = len(lazy.words.source.group_keys())
    for index in range(3000):
        probe = chr(0x4E00 + index) + "x"  # CJK: no group starts so
        assert probe not in lazy.words and probe not in lazy.codes
    assert len(lazy.words.groups) == 0 and len(lazy.codes.groups) == 0
    assert "bucket" in lazy.words
    assert len(lazy.words.groups) == 1 <= keys


def test_a_cached_word_set_can_be_asked_while_it_is_iterated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lazy, _ = _cached_vocabulary(tmp_path, monkeypatch, "[words]\na alpha beta\n")
    seen = [word for word in lazy.words if (word + "qzx") not in lazy.words]
    assert sorted(seen) == ["a", "alpha", "beta"]
    # a newline pads the index's keys: a "word" holding one is never one of them
    assert "a\n" not in lazy.words and "\nalpha" not in lazy.words
    assert sorted(lazy.words) == ["a", "alpha", "beta"] and len(lazy.words) == 3
