"""The host's command line as ``{flag: value}``, keeping only what is known to be safe.

An allow-list: a flag name is kept when the host declared it or when every part of it
is a common English word; a value is kept when it is a boolean, a short number, a
built-in or host-declared safe word, or a valid region tag. Everything else becomes a
typed marker. Importing this module and scrubbing argv never loads the error-text
vocabulary: undeclared flag names are checked against a small list of common words
(``flagwords.txt``), read on first need.
"""

from __future__ import annotations

import os

from consent.scrub._rules import (
    FLAG,
    ID,
    REDACTED,
    REGION,
    SECRET,
    _classify,
    _find_secret,
    _int_value,
    _is_flag_name,
    _is_float,
    _is_negative_number,
    _is_path_start,
    _is_secret_name,
    _may_be_number,
    _name_kind,
    _scheme_of,
)
from consent.scrub.regions import REGION_PROVIDERS, bare_region, strict_region

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

__all__ = ["scrub_arguments"]

_MAX_KEYS = 64
_MAX_LIST = 32
# no real command line is longer; the cap bounds the work on a hostile argv
_MAX_TOKENS = 4096
# Numbers with more digits are account ids, project numbers and phone numbers far
# more often than settings: six digits still hold a port or a size in megabytes.
_MAX_NUMBER_DIGITS = 6
# the AWS console writes account ids in groups of four
_DASHED_ID = r"[0-9]{3,6}(?:-[0-9]{3,6}){1,4}"

_COMMANDS = frozenset({"cp", "sync", "init", "deprovision", "ssh", "config"})
_SAFE_WORDS = frozenset(
    {
        # solvers
        "ilp",
        "direct",
        "ron",
        "greedy",
        # compression
        "lz4",
        "zstd",
        "gzip",
        "none",
        # switches
        "auto",
        "on",
        "off",
        # providers
        "aws",
        "gcp",
        "azure",
        "ibmcloud",
        "cloudflare",
        "local",
    }
)


_words: list[str] = []  # functools.cache, without importing functools


def _flag_words() -> str:
    """The common English words a flag name may be made of (generated, see the file),
    each between spaces: ``f" {word} " in _flag_words()`` is a lookup.

    Searching the text costs a host far less than building a set of its ten
    thousand words, and a command line has only a few words to look up. The file is
    its words between spaces and newlines, under comment lines: it is read as bytes
    and its newlines made spaces (``encoding="ascii"`` in ``open`` would load a codec
    module, and splitting it into lines would build a string per line).
    """
    if not _words:
        path = os.path.join(os.path.dirname(__file__), "flagwords.txt")
        with open(path, "rb") as file:
            text = file.read().decode("ascii")
        start = 0
        while text.startswith("#", start):
            start = text.find("\n", start) + 1 or len(text)
        body = text[start:].replace("\n", " ").replace("\r", " ")
        _words.append(f" {body} ")
    return _words[0]


def is_flag_word(word: str) -> bool:
    """Whether ``word`` (lowercase, no spaces) is one of the flag words."""
    return " " not in word and f" {word} " in _flag_words()


def _wordy_flag(name: str) -> bool:
    if len(name) == 1:
        return name.isalpha()  # -r, -y: a letter cannot name anything
    # a flag name has only letters, digits, "_" and "-": these are the splits
    # _TOKEN_SPLIT_RE ([-_./+=]+) makes in it
    parts = [part for part in name.lower().replace("_", "-").split("-") if part]
    return bool(parts) and all(is_flag_word(part) or part.isdigit() for part in parts)


_flag_infos: dict[tuple[str, bool], tuple[str, bool] | None] = {}


def _flag_info(name: str, declared: bool) -> tuple[str, bool] | None:
    """``(key, names a credential)`` for a flag name kept as it is, else None.

    Cached: a host passes the same few flags on every run.
    """
    try:
        return _flag_infos[name, declared]
    except KeyError:
        pass
    if len(_flag_infos) >= 256:
        _flag_infos.clear()
    info = _flag_infos[name, declared] = _find_flag_info(name, declared)
    return info


def _find_flag_info(name: str, declared: bool) -> tuple[str, bool] | None:
    if not _is_flag_name(name) or _find_secret(name):
        return None
    # A flag name is kept verbatim as a key, so unless the host declared it, it must
    # be made of common words: ``--acme-payroll-prod`` names a customer.
    if not declared and not _wordy_flag(name):
        return None
    key = name.replace("-", "_")
    return key, _is_secret_name(key)


def _takes_value(name: str, following: str) -> bool:
    if following.startswith("-"):
        return _is_negative_number(following)
    # a one-letter flag before a URI or a path is a switch (``cp -r SRC DST``): the
    # URI is the command's operand, and reads better under _positional
    return not (len(name) == 1 and (_scheme_of(following) is not None or _is_path_start(following)))


def _parse_number(value: str) -> int | float | str | None:
    """The number, :data:`ID` for a number too long to be a setting, or None."""
    digits = value[1:] if value[:1] in "+-" else value
    if digits.isascii() and digits.isdigit() and len(digits) > _MAX_NUMBER_DIGITS:
        return ID
    if not _may_be_number(value):
        return None  # a word: none of the number patterns can match it
    integer = _int_value(value)
    if integer is not None:
        return integer
    if _is_float(value):
        number = float(value)
        if abs(number) < 1e10:  # never true of inf or nan
            return number
    if "-" in value:
        from consent.scrub._cache import compile_pattern

        if compile_pattern(_DASHED_ID).fullmatch(value):
            return ID
    return None


def _scrub_value(
    value: str, secret_named: bool, identifying: bool, safe_values: Collection[str]
) -> object:
    stripped = value.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if secret_named:
        return SECRET
    number = _parse_number(stripped)
    if number is not None:
        # under --account or --project any number is an id, whatever its length
        return ID if identifying and not isinstance(number, float) else number
    if value in safe_values:
        return value
    if lowered in _SAFE_WORDS:
        return lowered
    region = strict_region(stripped)
    if region is not None:
        return region
    provider, sep, _ = lowered.partition(":")
    if sep and provider in REGION_PROVIDERS:
        return REGION
    if bare_region(stripped):
        return lowered
    return _classify(value)


def _has_room(flags: dict[str, object], key: str) -> bool:
    existing = flags.get(key)
    if existing is None:
        return len(flags) < _MAX_KEYS
    return not isinstance(existing, list) or len(existing) < _MAX_LIST


def _add_flag(flags: dict[str, object], key: str, value: object) -> None:
    existing = flags.get(key)
    if existing is None:
        flags[key] = value
    elif isinstance(existing, list):
        existing.append(value)
    else:
        flags[key] = [existing, value]


def _declared_names(known_flags: Collection[str]) -> frozenset[str]:
    names = set()
    for flag in known_flags:
        if isinstance(flag, str):
            # one spelling for both: --src-region and --src_region are one flag
            names.add(flag.lstrip("-").partition("=")[0].replace("_", "-"))
    return frozenset(names)


def _scrub_arguments(
    argv: Sequence[str], safe_values: Collection[str], known_flags: Collection[str]
) -> dict[str, object]:
    safe: Collection[str] = (
        safe_values if isinstance(safe_values, set | frozenset) else frozenset(safe_values)
    )
    declared = _declared_names(known_flags)
    args = list(argv[:_MAX_TOKENS])
    flags: dict[str, object] = {}
    positional: list[str] = []
    command: str | None = None
    seen_positional = False
    after_separator = False
    index = 0
    # Work past the caps is skipped, not just dropped: a hostile argv stays cheap.
    while index < len(args):
        arg = args[index]
        index += 1
        if after_separator or not isinstance(arg, str):
            if len(positional) < _MAX_LIST:
                positional.append(_classify(arg) if isinstance(arg, str) else REDACTED)
            continue
        if arg == "--":
            after_separator = True
            continue
        if arg[:1] == "-" and len(arg) > 1 and not _is_negative_number(arg):
            body = arg.lstrip("-")
            name, has_value, value = body.partition("=")
            if len(name) > 64 or not _is_flag_name(name) or _find_secret(name):
                # not a flag at all: a value, perhaps a key pasted in the wrong place
                if len(positional) < _MAX_LIST:
                    positional.append(_classify(body))
                continue
            info = _flag_info(name, name.replace("_", "-") in declared)
            secret_named, identifying = _name_kind(name.replace("-", "_"))
            key = FLAG if info is None else info[0]
            if not has_value and index < len(args):
                following = args[index]
                if isinstance(following, str) and _takes_value(name, following):
                    value, has_value = following, "="
                    index += 1
            if _has_room(flags, key):
                scrubbed = (
                    _scrub_value(value, secret_named, identifying, safe) if has_value else True
                )
                if scrubbed == REDACTED and "region" in name.lower():
                    scrubbed = REGION  # --region acme: a word where a region belongs
                _add_flag(flags, key, scrubbed)
            continue
        if command is None and not seen_positional and arg in _COMMANDS:
            command = arg
        elif len(positional) < _MAX_LIST:
            positional.append(_classify(arg))
        seen_positional = True

    result: dict[str, object] = {}
    if command is not None:
        result["_command"] = command
    room = _MAX_KEYS - len(result) - (1 if positional else 0)
    for key in list(flags)[:room]:
        result[key] = flags[key]
    if positional:
        result["_positional"] = positional
    return result


def scrub_arguments(
    argv: Sequence[str], safe_values: Collection[str] = (), known_flags: Collection[str] = ()
) -> dict[str, object]:
    """Parse a command line into ``{flag: value}`` keeping only values known to be safe.

    Booleans, short numbers, built-in safe words, ``safe_values`` and valid region
    tags are kept; every other value, and every positional argument, becomes a marker
    from :data:`~consent.scrub.MARKERS`. A flag name is kept when it is in
    ``known_flags`` (the host's own options, with or without dashes) or made of
    common English words; any other goes under ``<flag>``. The first positional is
    kept under ``_command`` when it is a Skyplane subcommand; the other positionals
    go, as markers, under ``_positional``.
    """
    try:
        return _scrub_arguments(argv, safe_values, known_flags)
    except Exception:
        # fail closed: a parsing bug must not let the raw argv through
        return {"_positional": [REDACTED]}
