"""Markers and the value classifier shared by the argv and error-text scrubbers.

Standard library only, and cheap to import: the host imports this on the path of every
transfer. The error-text rules (``consent.scrub.text``) and the vocabulary load only
when an error is scrubbed.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter

URI_S3 = "<uri:s3>"
URI_GS = "<uri:gs>"
URI_AZURE = "<uri:azure>"
URI_HTTP = "<uri:http>"
URI = "<uri>"
EMAIL = "<email>"
IP = "<ip>"
HOST = "<host>"
SECRET = "<secret>"  # noqa: S105 -- the marker that replaces one
PATH = "<path>"
REDACTED = "<redacted>"
# a word or run of words outside the vocabulary: usually a name
NAME = "<name>"
# a region tag that no provider uses
REGION = "<region>"
# a flag name neither declared by the host nor made of vocabulary words
FLAG = "<flag>"
# an account id, project number or other long number
ID = "<id>"

MARKERS: tuple[str, ...] = (
    URI_S3,
    URI_GS,
    URI_AZURE,
    URI_HTTP,
    URI,
    EMAIL,
    IP,
    HOST,
    SECRET,
    PATH,
    REDACTED,
    NAME,
    REGION,
    FLAG,
    ID,
)

# While scrubbing text, each marker is held as one private-use character so that later
# passes cannot match inside a marker (``<uri:s3>`` is not a URI, ``</Key>`` is not a
# path). Private-use characters are stripped from the input, so they cannot be forged.
SENTINEL = {marker: chr(0xE000 + index) for index, marker in enumerate(MARKERS)}
SENTINEL_CHARS = frozenset(SENTINEL.values())
EXPAND_PAIRS = tuple((char, marker) for marker, char in SENTINEL.items())

# a longer value is classified by its prefix: every marker is decided near the start
_MAX_VALUE_SCAN = 2048


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# -- low-level shapes ------------------------------------------------------------------

_FLAG_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
# Ten digits at most: longer integers are account ids, project numbers and phone
# numbers far more often than settings. A leading zero marks an id ("0042"), not a count.
_INT_RE = re.compile(r"[+-]?(?:0|[1-9][0-9]{0,9})")
_FLOAT_RE = re.compile(
    r"[+-]?(?:[0-9]{1,10}\.[0-9]{0,12}|\.[0-9]{1,12})(?:[eE][+-]?[0-9]{1,3})?"
    r"|[+-]?[0-9]{1,10}[eE][+-]?[0-9]{1,3}"
)
_NEGATIVE_NUMBER_RE = re.compile(r"-(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")
# Real region names keep digits at the end of a part ("northeast1") or in a short one
# ("eastus2euap"); a long part with letters after a digit is more likely a key.
_REGION_ODD_PART_RE = re.compile(r"[0-9][a-z]")
_QUALNAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}")
_QUOTABLE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,32}")

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,30})://")
_AZURE_HOST_RE = re.compile(r"\.(?:blob|dfs|file|queue|table)\.core\.windows\.net(?![\w.-])", re.I)
_EMAIL_FULL_RE = re.compile(r"[^\s@/\\:]+@[\w-]+(?:\.[\w-]+)*\.?")
# every shape _is_ip accepts: brackets, a zone, a port, a prefix length
_IP_SHAPE_RE = re.compile(r"\[?[0-9A-Fa-f:.]{2,45}(?:%[\w.-]+)?\]?(?::[0-9]{1,5})?(?:/[0-9]{1,3})?")
_PATH_START_RE = re.compile(r"(?:/|~|\.{1,2}[/\\]|[A-Za-z]:[/\\]|\\\\)")
_HOST_FULL_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,62}\.?(?::[0-9]{1,5})?"
)
_FILE_EXTENSIONS = _words(
    "csv tsv txt text json jsonl ndjson parquet orc avro gz bz2 xz zst lz4 zip tar tgz 7z"
    " rar log yaml yml toml ini cfg conf env pem key crt cer p12 pfx der pub py ipynb sh"
    " bat ps1 sql db sqlite pdf doc docx xls xlsx ppt pptx png jpg jpeg gif bmp tif tiff"
    " mp4 mov avi mkv mp3 wav bin dat npy npz pkl pickle h5 hdf5 pt pth ckpt onnx"
    " safetensors tfrecord arrow feather xml html md rst iso img vmdk qcow2 bak tmp"
)
_EXT_ALTERNATION = "|".join(sorted(_FILE_EXTENSIONS, key=len, reverse=True))
_FILENAME_FULL_RE = re.compile(rf"[\w.-]*\w\.(?:{_EXT_ALTERNATION})", re.I)

# Known-format credentials. Each is anchored so that it cannot start inside a longer
# token, which keeps the scan linear.
_SECRET_TOKEN_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}"
    r"(?![A-Za-z0-9])"
    r"|(?<![\w-])AIza[\w-]{30,}"
    r"|(?<![\w-])eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*"
    r"|(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,})"
    r"|(?<![\w-])xox[abposre]-[\w-]{10,}"
    r"|(?<![\w-])ya29\.[\w-]{20,}"
    r"|(?<![\w-])(?:sk|rk|pk)_(?:live|test)_\w{16,}"
)
_PEM_RE = re.compile(
    r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----.*?(?:-----END[A-Z ]{0,40}PRIVATE KEY-----|$)", re.S
)
# An AWS secret access key: exactly 40 characters of base64 without padding.
_AWS_SECRET_RE = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_RANDOM_CANDIDATE_RE = re.compile(r"[\w+/=-]{20,}")
_TOKEN_SPLIT_RE = re.compile(r"[-_./+=]+")
_WORD_PART_RE = re.compile(r"([A-Za-z]+)([0-9]{0,3})|[0-9]{1,6}")
_CASE_RUN_RE = re.compile(r"[A-Z]+|[a-z]+")
_VOWEL_RE = re.compile(r"[aeiouy]")
_NAME_PART_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

_SECRET_NAME_PARTS = _words(
    "secret secrets password passwd passphrase pass pwd token apikey credential credentials"
    " authorization auth sas signature sig cookie privatekey"
)
_KEY_QUALIFIERS = _words(
    "access secret api private account sas master signing encryption client session shared"
    " storage auth subscription primary secondary service ssh host"
)
_IDENTIFYING_NAME_PARTS = _words(
    "user username login account accountname project projectid bucket container host"
    " hostname email owner tenant subscription"
)


# -- classification --------------------------------------------------------------------


def _entropy(token: str) -> float:
    counts = Counter(token)
    total = len(token)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


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
        return _entropy(token) >= 3.5
    return _entropy(token) >= 2.5


def _aws_secret_like(candidate: str) -> bool:
    has_upper = any(c.isupper() for c in candidate)
    has_lower = any(c.islower() for c in candidate)
    has_other = any(c.isdigit() or c in "/+" for c in candidate)
    return has_upper and has_lower and has_other


def _find_secret(value: str) -> bool:
    if _SECRET_TOKEN_RE.search(value):
        return True
    return any(_aws_secret_like(m.group()) for m in _AWS_SECRET_RE.finditer(value))


def _is_ip(value: str) -> bool:
    candidate = value
    if candidate.startswith("["):
        close = candidate.find("]")
        if close > 0:
            candidate = candidate[1:close]
    elif candidate.count(":") == 1 and "." in candidate:
        candidate = candidate.split(":", 1)[0]
    candidate = candidate.split("%", 1)[0]
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


def _uri_marker(scheme: str, rest: str) -> str:
    scheme = scheme.lower()
    if scheme in ("s3", "s3a", "s3n"):
        return URI_S3
    if scheme in ("gs", "gcs"):
        return URI_GS
    if scheme in ("az", "azure", "abfs", "abfss", "wasb", "wasbs"):
        return URI_AZURE
    if scheme in ("http", "https"):
        authority = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
        host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
        if _AZURE_HOST_RE.search(host + " "):
            return URI_AZURE
        return URI_HTTP
    return URI


def _classify(value: str) -> str:
    """The marker for a value that is not kept. Never returns the value itself."""
    v = value.strip()[:_MAX_VALUE_SCAN]
    if not v:
        return REDACTED
    scheme = _SCHEME_RE.match(v)
    if scheme is not None:
        return _uri_marker(scheme.group(1), v[scheme.end() :])
    if _PATH_START_RE.match(v):
        return PATH
    if v[:4] == "arn:":
        return REDACTED
    if "@" in v and (v[:7].lower() == "mailto:" or _EMAIL_FULL_RE.fullmatch(v)):
        return EMAIL
    if _IP_SHAPE_RE.fullmatch(v) and _is_ip(v):
        return IP
    if len(v) >= 15 and _find_secret(v):
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


def _name_parts(name: str) -> list[str]:
    return [part.lower() for part in _NAME_PART_RE.findall(name)]


def _name_kind(name: str) -> tuple[bool, bool]:
    """Whether a key names a credential, and whether it names something identifying."""
    parts = _name_parts(name)
    if _is_secret_parts(parts):
        return True, False
    return False, any(part in _IDENTIFYING_NAME_PARTS for part in parts)


def _is_secret_name(name: str) -> bool:
    return _is_secret_parts(_name_parts(name))


def _is_secret_parts(parts: list[str]) -> bool:
    if any(part in _SECRET_NAME_PARTS for part in parts):
        return True
    # "key" alone names an object key ("NoSuchKey", "KeyError"); with one of these
    # words before it, it names a credential
    return any(
        part == "key" and index > 0 and parts[index - 1] in _KEY_QUALIFIERS
        for index, part in enumerate(parts)
    )
