"""Markers and the value classifier shared by the argv and error-text scrubbers.

Standard library only, and cheap to import: the host imports this on the path of every
transfer, in a process that records one transfer and exits (bench/cold.py). So this
module imports neither ``re`` nor ``ipaddress``: the common shapes (flag names,
numbers, URIs, paths, short names) are decided with plain string checks, each exact,
and a value they cannot decide goes to the regular expressions of :mod:`._shapes`,
loaded on first need. Those patterns are also served from here by name (PEP 562),
for the error-text rules (``consent.scrub.text``), which load with the vocabulary
only when an error is scrubbed.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    # served by __getattr__ below, from ._shapes
    from consent.scrub._shapes import (
        _AWS_SECRET_RE as _AWS_SECRET_RE,
    )
    from consent.scrub._shapes import (
        _PEM_RE as _PEM_RE,
    )
    from consent.scrub._shapes import (
        _QUALNAME_RE as _QUALNAME_RE,
    )
    from consent.scrub._shapes import (
        _SECRET_TOKEN_RE as _SECRET_TOKEN_RE,
    )
    from consent.scrub._shapes import (
        _looks_random as _looks_random,
    )

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


_FILE_EXTENSIONS = _words(
    "csv tsv txt text json jsonl ndjson parquet orc avro gz bz2 xz zst lz4 zip tar tgz 7z"
    " rar log yaml yml toml ini cfg conf env pem key crt cer p12 pfx der pub py ipynb sh"
    " bat ps1 sql db sqlite pdf doc docx xls xlsx ppt pptx png jpg jpeg gif bmp tif tiff"
    " mp4 mov avi mkv mp3 wav bin dat npy npz pkl pickle h5 hdf5 pt pth ckpt onnx"
    " safetensors tfrecord arrow feather xml html md rst iso img vmdk qcow2 bak tmp"
)

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

_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")
_FLAG_CHARS = _ASCII_LETTERS | _DIGITS | frozenset("_-")
_SCHEME_CHARS = _ASCII_LETTERS | _DIGITS | frozenset("+.-")
_NUMBER_CHARS = _DIGITS | frozenset("+-.eE")
_PATH_STARTS = ("/", "~", "./", ".\\", "../", "..\\", "\\\\")
# The shortest text _SECRET_TOKEN_RE or _AWS_SECRET_RE can match (``xoxb-`` and ten
# more, an ``eyJ`` token with two dots); tests/test_lazy_scrub.py measures it.
_MIN_SECRET_LENGTH = 15


def _shapes() -> ModuleType:
    from consent.scrub import _shapes

    return _shapes


def __getattr__(name: str) -> object:
    # the patterns and regex-based helpers of ._shapes, under their old names here
    if not name.startswith("__"):  # the import system asks for __path__ and the like
        shapes = _shapes().__dict__
        if name in shapes:
            return shapes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- plain string checks: each is exactly the regular expression it names ---------------


def _is_flag_name(name: str) -> bool:
    """``_FLAG_NAME_RE.fullmatch(name)``: a letter, then up to 39 letters, digits, _ or -."""
    return 0 < len(name) <= 40 and name[0] in _ASCII_LETTERS and all(c in _FLAG_CHARS for c in name)


def _is_negative_number(text: str) -> bool:
    """``_NEGATIVE_NUMBER_RE.fullmatch(text)``."""
    if len(text) < 2 or text[0] != "-" or text[1] not in "0123456789.":
        return False  # every flag: the pattern needs a digit or a dot after the dash
    if all(c in _DIGITS for c in text[1:]):
        return True
    return _shapes()._NEGATIVE_NUMBER_RE.fullmatch(text) is not None


def _scheme_of(text: str) -> str | None:
    """The scheme ``_SCHEME_RE.match(text)`` finds (``s3`` in ``s3://b/k``), or None.

    The scheme's characters exclude ``:``, so only the first ``://`` can end it.
    """
    end = text.find("://")
    if not 0 < end <= 31 or text[0] not in _ASCII_LETTERS:
        return None
    return text[:end] if all(c in _SCHEME_CHARS for c in text[1:end]) else None


def _is_path_start(text: str) -> bool:
    """``_PATH_START_RE.match(text)``: ``/``, ``~``, ``./``, ``../``, ``C:\\`` or ``\\\\``."""
    if text.startswith(_PATH_STARTS):
        return True
    return len(text) >= 3 and text[0] in _ASCII_LETTERS and text[1] == ":" and text[2] in "/\\"


def _int_value(text: str) -> int | None:
    """``int(text)`` when ``_INT_RE.fullmatch(text)`` (ten digits at most, no leading 0)."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not 0 < len(digits) <= 10 or not all(c in _DIGITS for c in digits):
        return None
    return int(text) if digits == "0" or digits[0] != "0" else None


def _is_float(text: str) -> bool:
    """``_FLOAT_RE.fullmatch(text)``; a plain decimal is decided without the pattern."""
    if not all(c in _NUMBER_CHARS for c in text):
        return False  # the pattern has only these characters
    whole, dot, fraction = (text[1:] if text[:1] in ("+", "-") else text).partition(".")
    if (
        dot
        and 0 < len(whole) <= 10
        and len(fraction) <= 12
        and all(c in _DIGITS for c in whole + fraction)
    ):
        return True
    return _shapes()._FLOAT_RE.fullmatch(text) is not None


def _may_be_number(text: str) -> bool:
    """False when no number pattern (_INT_RE, _FLOAT_RE, a dashed id) can match ``text``."""
    return all(c in _NUMBER_CHARS for c in text)


# -- classification --------------------------------------------------------------------


def _aws_secret_like(candidate: str) -> bool:
    has_upper = any(c.isupper() for c in candidate)
    has_lower = any(c.islower() for c in candidate)
    has_other = any(c.isdigit() or c in "/+" for c in candidate)
    return has_upper and has_lower and has_other


def _find_secret(value: str) -> bool:
    if len(value) < _MIN_SECRET_LENGTH:
        return False
    return bool(_shapes().find_secret(value))


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
        # an ASCII host without the Azure suffix cannot match _AZURE_HOST_RE
        if (not host.isascii() or "core.windows.net" in host.lower()) and _shapes().azure_host(
            host
        ):
            return URI_AZURE
        return URI_HTTP
    return URI


def _classify(value: str) -> str:
    """The marker for a value that is not kept. Never returns the value itself."""
    v = value.strip()[:_MAX_VALUE_SCAN]
    if not v:
        return REDACTED
    scheme = _scheme_of(v)
    if scheme is not None:
        return _uri_marker(scheme, v[len(scheme) + 3 :])
    if _is_path_start(v):
        return PATH
    return str(_shapes().classify_rest(v))


def _name_parts(name: str) -> list[str]:
    """``[p.lower() for p in _NAME_PART_RE.findall(name)]``.

    Without capitals (``max_instances``) the parts are the runs of letters and of
    digits; CamelCase goes to the pattern.
    """
    if not (name.isascii() and name == name.lower()):
        return list(_shapes().name_parts(name))
    parts: list[str] = []
    run, kind = "", ""
    for char in name:
        now = "a" if "a" <= char <= "z" else "0" if "0" <= char <= "9" else ""
        if now != kind:
            if run:
                parts.append(run)
            run, kind = "", now
        if now:
            run += char
    if run:
        parts.append(run)
    return parts


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
