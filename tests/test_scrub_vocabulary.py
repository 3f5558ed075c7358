"""The shipped vocabulary is exactly what scripts/gen_vocabulary.py makes of its inputs.

The generator's sources (wordfreq, the Census name lists, the cloud SDKs) are
dev-time packages, too heavy for CI. So the generator records what it read, and
here its second stage runs on that record: the shipped files must come out byte for
byte. When the sources happen to be installed, the record itself is re-collected
and compared, so a stale record fails too.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from consent.scrub import scrub_error, scrub_text
from consent.scrub.text import vocabulary

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("wordfreq", "names", "botocore", "google.api_core", "azure.core", "paramiko")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_vocabulary", REPO / "scripts" / "gen_vocabulary.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_vocabulary", module)
    spec.loader.exec_module(module)
    return module


def test_shipped_files_are_what_the_generator_makes() -> None:
    generator = _generator()
    vocabulary_text, flag_words = generator.build(generator.read_inputs())
    assert (REPO / "consent" / "scrub" / "vocabulary.txt").read_text("ascii") == vocabulary_text, (
        "consent/scrub/vocabulary.txt differs from the generator's output: "
        "run python scripts/gen_vocabulary.py --build-only"
    )
    assert (REPO / "consent" / "scrub" / "flagwords.txt").read_text("ascii") == flag_words


def test_a_hand_edit_is_caught() -> None:
    generator = _generator()
    vocabulary_text, _ = generator.build(generator.read_inputs())
    edited, _ = generator.build([*generator.read_inputs(), ("word", "zorvak", "1.0e-03")])
    assert "zorvak" in edited.split()
    assert edited != vocabulary_text


def test_the_recorded_inputs_match_the_sources() -> None:
    missing = [name for name in SOURCES if importlib.util.find_spec(name.split(".")[0]) is None]
    if missing:
        pytest.skip(f"the generator's dev-time sources are not installed: {', '.join(missing)}")
    generator = _generator()
    assert generator.collect() == generator.read_inputs()


def test_the_vocabulary_holds_words_not_people() -> None:
    vocab = vocabulary()
    words, given = frozenset(vocab.words), frozenset(vocab.given)
    assert {"bucket", "denied", "the", "key", "will", "white"} <= words
    # given names and surnames used more as names than as words are left out
    assert not {"john", "jane", "smith", "james", "keenan", "alice", "alex", "bob"} & words
    # a given name kept as a word is listed apart, for the capitalised-name rule
    assert {"will", "may"} <= given <= words


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("NoCredentialsError", "Unable to locate credentials"),
        ("NoSuchObjectException", "Object missing"),
        ("BucketAlreadyOwnedByYou", "Your previous request succeeded"),
        ("ClientError", "An error occurred (AccessDenied)"),
        ("SSLError", "certificate verify failed"),
    ],
)
def test_sdk_type_names_survive_scrub_error(name: str, message: str) -> None:
    error_type = type(name, (Exception,), {})
    assert scrub_error(error_type(message)).startswith(f"{name}: ")


def test_a_type_name_with_an_unknown_part_is_marked() -> None:
    error_type = type("ZorvakWidgetError", (Exception,), {})
    assert scrub_error(error_type("boom")) == "<name>: boom"


def test_dotted_code_names_survive_but_dotted_people_do_not() -> None:
    assert scrub_text("botocore.exceptions.ClientError raised") == (
        "botocore.exceptions.ClientError raised"
    )
    assert scrub_text("Authentication failed for jane.doe") == "Authentication failed for <name>"
