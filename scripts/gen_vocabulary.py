"""Build the error-text vocabulary of ``consent.scrub`` from well-kept sources.

Two stages, so that CI can check the shipped file without the sources installed:

``collect``
    Reads the dev-time sources and writes their raw facts, sorted, to
    ``scripts/vocabulary/inputs.tsv.gz`` (the recorded inputs):

    - English words with their frequency: the ``wordfreq`` package's ``large``
      English list (ranked by frequency across Wikipedia, subtitles, news, books,
      web text and more);
    - given names and surnames with their share of the population: the ``names``
      package, which ships the US Census Bureau's 1990 name-frequency lists;
    - exception and error-code names: botocore's service models and
      ``botocore.exceptions``; ``google.api_core.exceptions`` and the gRPC status
      names; ``azure.core.exceptions`` and azure-storage-blob's
      ``StorageErrorCode``; ``paramiko``; ``urllib3`` and ``requests``; Python's
      builtins and ``errno``; Skyplane 0.3.2's exception classes; botocore's
      operation names (every ``ClientError`` names one);
    - module names of those packages and of the standard library;
    - the option, parameter and setting names Skyplane 0.3.2 declares (for flag
      names only);
    - words of HTTP reason phrases (``http.HTTPStatus``) and of the C library's
      ``strerror`` texts;
    - the English words of the string literals in those SDKs' exception modules and
      of the messages Skyplane raises: the words their error messages are written with.

``build``
    A pure function of the recorded inputs (no third-party import): writes
    ``consent/scrub/vocabulary.txt``. ``tests/test_scrub_vocabulary.py`` runs it and
    fails when the output differs from the shipped file, and re-runs ``collect`` when
    the sources happen to be installed.

Run ``python scripts/gen_vocabulary.py`` for both stages (needs the dev-time
packages: wordfreq, names, botocore, google-api-core, azure-core,
azure-storage-blob, paramiko, requests, and skyplane 0.3.2 installed with
``--no-deps``: its sources are read, never imported); ``--build-only`` for the second.
"""

from __future__ import annotations

import argparse
import errno
import gzip
import hashlib
import http
import importlib
import importlib.util
import io
import json
import os
import pkgutil
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INPUTS = REPO / "scripts" / "vocabulary" / "inputs.tsv.gz"
OUTPUT = REPO / "consent" / "scrub" / "vocabulary.txt"
FLAG_OUTPUT = REPO / "consent" / "scrub" / "flagwords.txt"

# The size of the English part, chosen on the corpus (docs/security.md, "The
# vocabulary"): leaks of planted names grow with it, kept facts barely do past it.
ENGLISH_WORDS = 10_000
# Flag names are checked against the most common words only, in a separate small
# file, so that scrubbing argv never loads the vocabulary.
FLAG_WORDS = 10_000
# How many candidates are recorded, so the size can be tuned without the sources.
RECORDED_WORDS = 60_000
# A word that is also a name is kept only when it is written as a word at least this
# many times as often as a person bears it ("will", "key", "white" stay; "john",
# "smith", "jane" go). Both are shares: of English tokens, and of the US population.
WORD_TO_NAME_RATIO = 0.05
# Given names are what user names are made of, so for them the bar is higher: used as
# a word at least as often as borne ("will", "may", "hope"), or a word of the SDKs'
# own messages ("max"). "alex", "bob", "mike", "boris" go.
GIVEN_NAME_RATIO = 1.0
# Identifier parts longer than this are not acronyms (``SSL``, ``EC2``, ``KMS``).
MAX_ACRONYM = 8

_ALPHA_RE = re.compile(r"[a-z]+")
_IDENT_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{1,80}")
# CamelCase parts: an upper run before a capitalised word, a capitalised word, digits
_PART_RE = re.compile(r"[A-Z]+[0-9]*(?=[A-Z][a-z]|[^A-Za-z0-9]|$)|[A-Z]?[a-z]+[0-9]*|[0-9]+")
_MODULE_RE = re.compile(r"[a-z][a-z0-9_]{0,40}")


def split_identifier(name: str) -> list[str]:
    """``BucketAlreadyOwnedByYou`` -> Bucket, Already, Owned, By, You (also ``_.-``)."""
    return [part for chunk in re.split(r"[_.\-]+", name) for part in _PART_RE.findall(chunk)]


# -- collect -------------------------------------------------------------------------


def _english() -> Iterator[tuple[str, str, str]]:
    import wordfreq

    for word in wordfreq.top_n_list("en", RECORDED_WORDS * 2, wordlist="large"):
        if _ALPHA_RE.fullmatch(word):
            yield "word", word, f"{wordfreq.word_frequency(word, 'en', wordlist='large'):.3e}"


def _names() -> Iterator[tuple[str, str, str]]:
    import names

    folder = Path(names.__file__).parent
    share: dict[str, float] = {}
    given: set[str] = set()
    # the given-name lists give shares of one sex: halve them to compare with surnames
    for file, scale in (
        ("dist.all.last", 1.0),
        ("dist.male.first", 0.5),
        ("dist.female.first", 0.5),
    ):
        for line in (folder / file).read_text(encoding="ascii").splitlines():
            fields = line.split()
            if len(fields) >= 2:
                name, percent = fields[0].lower(), float(fields[1]) / 100 * scale
                share[name] = max(share.get(name, 0.0), percent)
                if file.endswith(".first"):
                    given.add(name)
    for name in given:
        yield "given", name, "census"
    for name, value in share.items():
        yield "name", name, f"{value:.3e}"


def _exception_names(module_name: str) -> Iterator[str]:
    module = importlib.import_module(module_name)
    for name, value in vars(module).items():
        if isinstance(value, type) and issubclass(value, BaseException):
            yield name


def _botocore_codes() -> Iterator[str]:
    import botocore

    yield from _exception_names("botocore.exceptions")
    data = Path(botocore.__file__).parent / "data"
    for model in sorted(data.glob("*/*/service-2.json*")):
        raw = model.read_bytes()
        if model.suffix == ".gz":
            raw = gzip.decompress(raw)
        service = json.loads(raw)
        # operation names appear in every ClientError ("when calling the X operation")
        yield from service.get("operations", {})
        shapes = service.get("shapes", {})
        for shape_name, shape in shapes.items():
            if shape.get("exception"):
                yield shape_name
                code = shape.get("error", {}).get("code")
                if isinstance(code, str):
                    yield code


def _google_codes() -> Iterator[str]:
    yield from _exception_names("google.api_core.exceptions")
    yield from _exception_names("google.auth.exceptions")
    from google.rpc import code_pb2

    yield from code_pb2.Code.keys()


def _azure_codes() -> Iterator[str]:
    yield from _exception_names("azure.core.exceptions")
    from azure.storage.blob import StorageErrorCode

    for member in StorageErrorCode:
        yield member.name
        yield member.value


def _python_codes() -> Iterator[str]:

    yield from _exception_names("builtins")
    # the standard library's network errors, which urllib3, requests and botocore wrap
    for module in ("socket", "ssl", "http.client", "urllib.error", "shutil", "subprocess"):
        yield from _exception_names(module)
    yield from errno.errorcode.values()
    for status in http.HTTPStatus:
        yield status.name


def _skyplane_root() -> Path:
    # read, not imported: importing skyplane pulls in every cloud SDK it supports
    spec = importlib.util.find_spec("skyplane")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install skyplane==0.3.2 with --no-deps to collect the sources")
    return Path(next(iter(spec.submodule_search_locations)))


def _skyplane_codes() -> Iterator[str]:
    import ast

    for source in sorted(_skyplane_root().rglob("*.py")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # its own odd escapes
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse(source.read_bytes())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Exception", "Error")):
                yield node.name


def _codes() -> Iterator[tuple[str, str, str]]:
    sources = (
        ("botocore", _botocore_codes),
        ("google", _google_codes),
        ("azure", _azure_codes),
        ("paramiko", lambda: _exception_names("paramiko.ssh_exception")),
        ("urllib3", lambda: _exception_names("urllib3.exceptions")),
        ("requests", lambda: _exception_names("requests.exceptions")),
        ("python", _python_codes),
        ("skyplane", _skyplane_codes),
    )
    for source, collect in sources:
        for code in collect():
            if _IDENT_RE.fullmatch(code):
                yield "code", code, source


def _walk_modules(package: str) -> Iterator[str]:
    module = importlib.import_module(package)
    yield package
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), package + "."):
        yield info.name


def _modules() -> Iterator[tuple[str, str, str]]:
    roots: tuple[str, ...] = ("botocore", "google.api_core", "google.auth", "azure.core")
    roots += ("google.cloud.storage", "azure.storage.blob", "paramiko", "urllib3", "requests")
    for root in roots:
        for name in _walk_modules(root):
            for part in name.split("."):
                if _MODULE_RE.fullmatch(part) and not part.startswith("_"):
                    yield "module", part, root.split(".")[0]
    skyplane = _skyplane_root()
    for source in sorted(skyplane.rglob("*.py")):
        for part in ("skyplane", *source.relative_to(skyplane).with_suffix("").parts):
            if _MODULE_RE.fullmatch(part) and not part.startswith("_"):
                yield "module", part, "skyplane"
    for name in sys.stdlib_module_names:
        if _MODULE_RE.fullmatch(name) and not name.startswith("_"):
            yield "module", name, "python"


def _string_words(source: Path, raised_only: bool) -> Iterator[str]:
    import ast

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(source.read_bytes())
    # In Skyplane only the messages it raises count: its help texts and examples
    # name made-up buckets ("acme-bucket") that must not become vocabulary.
    roots = (
        [node for node in ast.walk(tree) if isinstance(node, ast.Raise)] if raised_only else [tree]
    )
    for root in roots:
        for node in ast.walk(root):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for word in re.findall(r"[A-Za-z]+", node.value):
                    yield word.lower()


def _message_words() -> Iterator[tuple[str, str, str]]:
    """Words of the string literals in the SDKs' exception modules and of the
    messages Skyplane raises: the words their error messages are written with."""
    files: list[tuple[str, Path, bool]] = []
    for module_name in (
        "botocore.exceptions",
        "google.api_core.exceptions",
        "google.auth.exceptions",
        "azure.core.exceptions",
        "paramiko.ssh_exception",
        "urllib3.exceptions",
        "requests.exceptions",
    ):
        spec = importlib.util.find_spec(module_name)
        assert spec is not None and spec.origin is not None
        files.append((module_name.split(".")[0], Path(spec.origin), False))
    files += [("skyplane", path, True) for path in sorted(_skyplane_root().rglob("*.py"))]
    for source, path, raised_only in files:
        for word in _string_words(path, raised_only):
            yield "phrase", word, source


def _skyplane_flags() -> Iterator[tuple[str, str, str]]:
    """The option names Skyplane's commands declare: ``"--max-instances"`` literals,
    the parameters of its Typer commands, and the settings of ``skyplane config``."""
    import ast

    for path in sorted((_skyplane_root() / "cli").rglob("*.py")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse(path.read_bytes())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if re.fullmatch(r"--[a-z][a-z0-9-]{1,40}", node.value):
                    yield "flag", node.value[2:], "skyplane"
            elif isinstance(node, ast.FunctionDef) and any(
                isinstance(default, ast.Call)
                and ast.unparse(default.func).endswith(("Option", "Argument"))
                for default in node.args.defaults
            ):
                # a command: every parameter is an option or argument Typer declares
                for arg in node.args.args:
                    yield "flag", arg.arg.replace("_", "-"), "skyplane"
    # the settings `skyplane config set` accepts, which hosts pass as flags too
    config = ast.parse((_skyplane_root() / "config.py").read_bytes())
    for node in ast.walk(config):
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "_FLAG_TYPES" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            for key in node.value.keys:
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    yield "flag", key.value.replace("_", "-"), "skyplane"


def _phrases() -> Iterator[tuple[str, str, str]]:
    for status in http.HTTPStatus:
        for word in re.findall(r"[A-Za-z]+", status.phrase):
            yield "phrase", word.lower(), "http"
    for number in sorted(errno.errorcode):
        for word in re.findall(r"[A-Za-z]+", os.strerror(number)):
            yield "phrase", word.lower(), "strerror"


def collect() -> list[tuple[str, str, str]]:
    rows: set[tuple[str, str, str]] = set()
    english = list(_english())[:RECORDED_WORDS]
    rows.update(english)
    candidates = {word for _, word, _ in english}
    # only the names that could ever be a candidate matter
    rows.update(row for row in _names() if row[1] in candidates or row[1] in _phrase_words())
    rows.update(_codes())
    rows.update(_modules())
    rows.update(_phrases())
    rows.update(_skyplane_flags())
    # only message words that are English words: the literals also hold format codes
    rows.update(row for row in _message_words() if row[1] in candidates)
    return sorted(rows)


def _phrase_words() -> set[str]:
    return {word for _, word, _ in _phrases()}


def write_inputs(rows: list[tuple[str, str, str]], path: Path = INPUTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join("\t".join(row) + "\n" for row in rows).encode("ascii")
    buffer = io.BytesIO()
    # mtime 0: the same inputs give the same bytes
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        gz.write(text)
    path.write_bytes(buffer.getvalue())


# -- build ---------------------------------------------------------------------------


def read_inputs(path: Path = INPUTS) -> list[tuple[str, str, str]]:
    rows = []
    for line in gzip.decompress(path.read_bytes()).decode("ascii").splitlines():
        kind, value, extra = line.split("\t")
        rows.append((kind, value, extra))
    return rows


def build(rows: Iterable[tuple[str, str, str]], size: int = ENGLISH_WORDS) -> tuple[str, str]:
    """The texts of the vocabulary and flag-word files, from the recorded inputs alone."""
    rows = list(rows)
    english: list[tuple[float, str]] = []
    name_share: dict[str, float] = {}
    codes: set[str] = set()
    modules: set[str] = set()
    phrase_words: set[str] = set()
    flag_names: set[str] = set()
    given: set[str] = set()
    for kind, value, extra in rows:
        if kind == "word":
            english.append((float(extra), value))
        elif kind == "name":
            name_share[value] = float(extra)
        elif kind == "given":
            given.add(value)
        elif kind == "code":
            codes.add(value)
        elif kind == "module":
            modules.add(value)
        elif kind == "phrase":
            phrase_words.add(value)
        elif kind == "flag":
            flag_names.add(value)
    frequency = {word: share for share, word in english}

    def is_name(word: str) -> bool:
        share = name_share.get(word)
        if share is None:
            return False
        if word in given and word not in phrase_words:
            return frequency.get(word, 0.0) < GIVEN_NAME_RATIO * share
        return frequency.get(word, 0.0) < WORD_TO_NAME_RATIO * share

    english.sort(key=lambda item: (-item[0], item[1]))
    words = {word for _, word in english[:size] if not is_name(word)}
    flag_words = {word for _, word in english[:FLAG_WORDS] if not is_name(word)}
    words |= {word for word in phrase_words if not is_name(word)}
    acronyms: set[str] = set()
    for code in codes:
        for part in split_identifier(code):
            upper = part.isupper() or (part[:1].isupper() and part[1:].isdigit())
            if upper and not part.isdigit() and len(part) <= MAX_ACRONYM:
                acronyms.add(part)
            # The other parts do not become words: SDK names hold product and
            # protocol names ("CreateAcmeEndpoint") that are also how customers
            # name things. A code with such a part is listed whole instead.
    modules = {module for module in modules if not is_name(module)}
    # A code whose parts are all words or acronyms is kept by the scrubber's
    # identifier rule; listing it too would only make the file slower to load.
    codes = {code for code in codes if not _derivable(code, words, acronyms)}

    digest = hashlib.sha256(
        "".join("\t".join(row) + "\n" for row in sorted(rows)).encode("ascii")
    ).hexdigest()
    flag_words |= {acronym.lower() for acronym in acronyms if acronym.isalnum()}
    # the host's own option names are declared by the host: their parts are safe
    flag_words |= {part for name in flag_names for part in name.split("-") if part}
    head = (
        f"# inputs sha256 {digest}; english words {size}; word/name ratio "
        f"{WORD_TO_NAME_RATIO}, given names {GIVEN_NAME_RATIO}"
    )
    vocabulary = [
        "# consent.scrub error-text vocabulary: made by scripts/gen_vocabulary.py; do not edit.",
        head,
    ]
    for title, items in (
        ("words", words),
        ("acronyms", acronyms),
        ("codes", codes),
        ("modules", modules),
        # given names that are also kept as words ("will", "may", "bob"): written
        # with a capital in the middle of a sentence they are taken for a name
        ("given", given & words),
    ):
        vocabulary.append(f"[{title}]")
        vocabulary.extend(_fill(items))
    flags = [
        "# consent.scrub flag-name words: made by scripts/gen_vocabulary.py; do not edit.",
        f"# inputs sha256 {digest}; english words {FLAG_WORDS}, and the acronyms",
        *_fill(flag_words),
    ]
    return "\n".join(vocabulary) + "\n", "\n".join(flags) + "\n"


def _derivable(code: str, words: set[str], acronyms: set[str]) -> bool:
    """Whether ``consent.scrub.text`` keeps ``code`` from its parts alone (kept in step)."""
    if not code.isalnum() or not code[:1].isupper():
        return False
    parts = _PART_RE.findall(code)
    if sum(len(part) for part in parts) != len(code):
        return False
    for index, part in enumerate(parts):
        letters = part.rstrip("0123456789")
        digits = len(part) - len(letters)
        if part.isdigit():
            if index == 0 or len(part) > 3:
                return False
        elif not (
            part in acronyms
            or (letters in acronyms and digits <= 2)
            or (
                (letters.istitle() or letters.islower() or letters.isupper())
                and letters.lower() in words
                and (digits == 0 or digits <= 2)
            )
        ):
            return False
    return True


def _fill(items: Iterable[str], width: int = 100) -> list[str]:
    lines: list[str] = []
    line: list[str] = []
    used = 0
    for item in sorted(items):
        if used + len(item) > width and line:
            lines.append(" ".join(line))
            line, used = [], 0
        line.append(item)
        used += len(item) + 1
    if line:
        lines.append(" ".join(line))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-only", action="store_true", help="skip collecting the sources")
    parser.add_argument("--size", type=int, default=ENGLISH_WORDS, help="English words to keep")
    args = parser.parse_args(argv)
    if not args.build_only:
        write_inputs(collect())
    vocabulary, flag_words = build(read_inputs(), args.size)
    OUTPUT.write_text(vocabulary, encoding="ascii")
    FLAG_OUTPUT.write_text(flag_words, encoding="ascii")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
