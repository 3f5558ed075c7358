"""The regular-expression half of the scrubber's shared rules (see :mod:`._rules`).

Loaded on first need: by the error-text scrubber, and by :mod:`._rules` for a value
whose shape its plain string checks cannot decide. Importing ``re``, ``ipaddress``
and ``collections`` costs about half a bare interpreter's start-up, which a host that
records one transfer per process would pay on every run (bench/cold.py): the patterns
come compiled from :mod:`._cache`, and ``ipaddress`` loads only for a value shaped
like an address.
"""

from __future__ import annotations

from consent.scrub._cache import compile_pattern
from consent.scrub._rules import (
    _FILE_EXTENSIONS,
    EMAIL,
    HOST,
    IP,
    PATH,
    REDACTED,
    SECRET,
    URI_AZURE,
    _aws_secret_like,
)

TYPE_CHECKING = False

# -- low-level shapes (the plain-string checks in ._rules agree with these) ------------

_FLAG_NAME_RE = compile_pattern(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
# Ten digits at most: longer integers are account ids, project numbers and phone
# numbers far more often than settings. A leading zero marks an id ("0042"), not a count.
_INT_RE = compile_pattern(r"[+-]?(?:0|[1-9][0-9]{0,9})")
_FLOAT_RE = compile_pattern(
    r"[+-]?(?:[0-9]{1,10}\.[0-9]{0,12}|\.[0-9]{1,12})(?:[eE][+-]?[0-9]{1,3})?"
    r"|[+-]?[0-9]{1,10}[eE][+-]?[0-9]{1,3}"
)
_NEGATIVE_NUMBER_RE = compile_pattern(r"-(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_QUALNAME_RE = compile_pattern(r"[A-Za-z_][A-Za-z0-9_]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}")

_SCHEME_RE = compile_pattern(r"([A-Za-z][A-Za-z0-9+.-]{0,30})://")
_AZURE_HOST_RE = compile_pattern(
    r"(?i)\.(?:blob|dfs|file|queue|table)\.core\.windows\.net(?![\w.-])"
)
_EMAIL_FULL_RE = compile_pattern(r"[^\s@/\\:]+@[\w-]+(?:\.[\w-]+)*\.?")
# every shape _is_ip accepts: brackets, a zone, a port, a prefix length
_IP_SHAPE_RE = compile_pattern(
    r"\[?[0-9A-Fa-f:.]{2,45}(?:%[\w.-]+)?\]?(?::[0-9]{1,5})?(?:/[0-9]{1,3})?"
)
_PATH_START_RE = compile_pattern(r"(?:/|~|\.{1,2}[/\\]|[A-Za-z]:[/\\]|\\\\)")
_HOST_FULL_RE = compile_pattern(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,62}\.?(?::[0-9]{1,5})?"
)
# longest first, then alphabetical: the same text in every process (a set's order is
# not), so the compiled pattern is found in the cache
_EXT_ALTERNATION = "|".join(sorted(_FILE_EXTENSIONS, key=lambda ext: (-len(ext), ext)))
_FILENAME_FULL_RE = compile_pattern(rf"(?i)[\w.-]*\w\.(?:{_EXT_ALTERNATION})")

# Known-format credentials. Each is anchored so that it cannot start inside a longer
# token, which keeps the scan linear.
_SECRET_TOKEN_RE = compile_pattern(
    r"(?<![A-Za-z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}"
    r"(?![A-Za-z0-9])"
    r"|(?<![\w-])AIza[\w-]{30,}"
    r"|(?<![\w-])eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*"
    r"|(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,})"
    r"|(?<![\w-])xox[abposre]-[\w-]{10,}"
    r"|(?<![\w-])ya29\.[\w-]{20,}"
    r"|(?<![\w-])(?:sk|rk|pk)_(?:live|test)_\w{16,}"
)
_PEM_RE = compile_pattern(
    r"(?s)-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----.*?(?:-----END[A-Z ]{0,40}PRIVATE KEY-----|$)"
)
# An AWS secret access key: exactly 40 characters of base64 without padding.
_AWS_SECRET_RE = compile_pattern(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_RANDOM_CANDIDATE_RE = compile_pattern(r"[\w+/=-]{20,}")
_TOKEN_SPLIT_RE = compile_pattern(r"[-_./+=]+")
_WORD_PART_RE = compile_pattern(r"([A-Za-z]+)([0-9]{0,3})|[0-9]{1,6}")
_CASE_RUN_RE = compile_pattern(r"[A-Z]+|[a-z]+")
_VOWEL_RE = compile_pattern(r"[aeiouy]")
_NAME_PART_RE = compile_pattern(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


# -- classification --------------------------------------------------------------------


def _spread_at_least(token: str, bits: float) -> bool:
    """Whether the Shannon entropy of ``token``'s characters is at least ``bits``.

    ``2 ** -H`` is the product of ``p ** p`` over the characters' shares ``p``, so no
    logarithm is needed: ``math`` is a shared library, and loading it costs a host that
    records one error a tenth of a millisecond. The margin keeps a token exactly at the
    threshold (shares that are powers of two) on the side of a credential.
    """
    counts: dict[str, int] = {}
    for char in token:
        counts[char] = counts.get(char, 0) + 1
    total = len(token)
    product = 1.0
    for count in counts.values():
        share = count / total
        factor: float = share**share  # a positive base: a float, never complex
        product *= factor
    threshold: float = 2.0**-bits
    return product <= threshold * (1 + 1e-9)


def _letters_wordy(letters: str) -> bool:
    """Whether a run of letters reads like words (``SignatureDoesNotMatch``), not noise."""
    if letters.islower() or letters.isupper():
        return True
    for index, run in enumerate(_CASE_RUN_RE.findall(letters)):
        if run.isupper():
            if len(run) > 6:
                return False
        # a lone lowercase letter between capitals, or a long run with no vowel, is
        # what random mixed-case text looks like; CamelCase words have neither
        elif (index > 0 and len(run) < 2) or (len(run) >= 5 and not _VOWEL_RE.search(run)):
            return False
    return True


def _part_wordy(part: str) -> bool:
    match = _WORD_PART_RE.fullmatch(part)
    if match is None:
        return False
    letters = match.group(1)
    return letters is None or _letters_wordy(letters)


def _looks_random(token: str) -> bool:
    """A long token that is neither words nor a number: treated as a credential."""
    if len(token) < 20:
        return False
    parts = [part for part in _TOKEN_SPLIT_RE.split(token) if part]
    if all(_part_wordy(part) for part in parts):
        return False
    if not any(char.isdigit() for char in token):
        # without digits, only noise-like mixed case gets this far; ask for more
        # spread than words have, so a long unusual identifier is not taken for a key
        return _spread_at_least(token, 3.5)
    return _spread_at_least(token, 2.5)


def _is_ip(value: str) -> bool:
    candidate = value
    if candidate.startswith("["):
        close = candidate.find("]")
        if close > 0:
            candidate = candidate[1:close]
    elif candidate.count(":") == 1 and "." in candidate:
        candidate = candidate.split(":", 1)[0]
    candidate = candidate.split("%", 1)[0]
    import ipaddress

    try:
        ipaddress.ip_address(candidate)
        return True
    except ValueError:
        pass
    if "/" in candidate:
        try:
            ipaddress.ip_network(candidate, strict=False)
            return True
        except ValueError:
            return False
    return False


def find_secret(value: str) -> bool:
    """Whether ``value`` holds a known-format credential (see ``_rules._find_secret``)."""
    if _SECRET_TOKEN_RE.search(value):
        return True
    return any(_aws_secret_like(m.group()) for m in _AWS_SECRET_RE.finditer(value))


def azure_host(host: str) -> bool:
    return _AZURE_HOST_RE.search(host + " ") is not None


def name_parts(name: str) -> list[str]:
    return [part.lower() for part in _NAME_PART_RE.findall(name)]


def classify_rest(v: str) -> str:
    """:func:`._rules._classify` for a stripped value that is neither a URI nor a path."""
    if v[:4] == "arn:":
        return REDACTED
    if "@" in v and (v[:7].lower() == "mailto:" or _EMAIL_FULL_RE.fullmatch(v)):
        return EMAIL
    if _IP_SHAPE_RE.fullmatch(v) and _is_ip(v):
        return IP
    if len(v) >= 15 and find_secret(v):
        return SECRET
    if "core.windows.net" in v.lower() and _AZURE_HOST_RE.search(v):
        return URI_AZURE
    if "/" in v or "\\" in v:
        return PATH
    if len(v) >= 20 and any(_looks_random(m.group()) for m in _RANDOM_CANDIDATE_RE.finditer(v)):
        return SECRET
    if "." in v:
        if _HOST_FULL_RE.fullmatch(v):
            last = v.rstrip(".").split(":", 1)[0].rsplit(".", 1)[-1].lower()
            return PATH if last in _FILE_EXTENSIONS else HOST
        if _FILENAME_FULL_RE.fullmatch(v):
            return PATH
    return REDACTED
