"""Redaction of argv, error text and region tags before anything reaches the spool.

Standard library only: the host imports this on the path of every transfer, and a
scrubber that pulled in a third-party module could break the host for telemetry's
sake. The scrubbing functions fail closed: on anything unexpected they return a
marker rather than raise or pass text through.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Collection, Sequence

from consent._exceptions import InvalidValueError

__all__ = [
    "MARKERS",
    "is_region_tag",
    "normalize_region",
    "scrub_arguments",
    "scrub_error",
    "scrub_text",
]

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
)

# While scrubbing text, each marker is held as one private-use character so that later
# passes cannot match inside a marker (``<uri:s3>`` is not a URI, ``</Key>`` is not a
# path). Private-use characters are stripped from the input, so they cannot be forged.
_SENTINEL = {marker: chr(0xE000 + index) for index, marker in enumerate(MARKERS)}
_SENTINEL_CHARS = frozenset(_SENTINEL.values())
_EXPAND_PAIRS = tuple((char, marker) for marker, char in _SENTINEL.items())

_MAX_KEYS = 64
_MAX_LIST = 32
# no real command line is longer; the cap bounds the work on a hostile argv
_MAX_TOKENS = 4096
# a longer value is classified by its prefix: every marker is decided near the start
_MAX_VALUE_SCAN = 2048

REGION_PROVIDERS = frozenset({"aws", "gcp", "azure", "ibmcloud", "cloudflare", "scp"})
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
        "scp",
        "local",
    }
)


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

# -- text passes -----------------------------------------------------------------------

# every whitespace but the space itself, so that words split on " " and the rules that
# allow "[ \t]" around a separator see what a reader sees
_CONTROL_AS_SPACE_RE = re.compile(r"[^\S ]")
# control and invisible format characters, lone surrogates, and the private-use range
# the sentinels live in; deleting them joins the pieces of a secret split by them
_STRIP_RE = re.compile(
    r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff\ue000-\uf8ff\U000e0000-\U000e007f]"
)
_URI_TEXT_RE = re.compile(r"(?<![\w+.-])([A-Za-z][A-Za-z0-9+.-]{0,30})://[^\s'\"<>`]*")
_AZURE_TEXT_RE = re.compile(
    r"(?<![\w.-])[A-Za-z0-9-]+\.(?:blob|dfs|file|queue|table)\.core\.windows\.net"
    r"(?:[:/][^\s'\"<>`]*)?",
    re.I,
)
_ARN_RE = re.compile(r"(?<![\w-])arn:aws[\w-]*:[^\s'\"<>`,;]*")
_KV_RE = re.compile(
    r"(?<![\w.])(?P<key>[A-Za-z][\w.-]{0,63}+)(?P<q>[\"']?)(?P<sep>[ \t]*+[:=][ \t]*+)"
    r"(?P<val>\"[^\"]{0,512}\"|'[^']{0,512}'"
    r"|(?:(?i:bearer|basic|token|digest)[ \t]+)?[^\s\"',;&)}\]]+)"
)
_BEARER_RE = re.compile(r"(?<![\w-])(Bearer|Basic|bearer|basic)([ \t]+)([A-Za-z0-9._~+/=-]{8,})")
_EMAIL_TEXT_RE = re.compile(r"(?<![\w.+%-])[\w.+%-]+@[\w-]+(?:\.[\w-]+)*")
# Generous on purpose (up to nine groups, no right boundary): _ipv6_sub keeps the
# longest prefix that parses, so "addr:443" and "addr." are still found. Addresses,
# hosts and IPv4 may follow a label ("error:addr") or a lone dot (".example.com"),
# but never start inside a longer dotted or hex name.
_IPV6_TEXT_RE = re.compile(
    r"(?<![\w%])(?<!\w\.)(?:[0-9A-Fa-f]{0,4}:){2,8}[0-9A-Fa-f.]{0,15}(?:%[\w.-]+)?"
)
_IPV4_TEXT_RE = re.compile(
    r"(?<!\w)(?<!\w\.)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?:/[0-9]{1,2})?(?![\w]|\.[0-9]|/[0-9])"
)
# Starts at the quote so the engine can skip ahead to one; the look-behinds then ask
# that the quote opens a string (not "don't"), allowing a b/r/u prefix (b'...').
_QUOTED_RE = re.compile(
    r"['\"\u2018\u201c`](?:(?<!\w.)|(?<=(?<!\w)[bBrRuU].))"
    r"(?:(?<=')(?P<a>[^']{0,256})'|(?<=\")(?P<b>[^\"]{0,256})\""
    r"|(?<=\u2018)(?P<c>[^\u2019]{0,256})\u2019|(?<=\u201c)(?P<d>[^\u201d]{0,256})\u201d"
    r"|(?<=`)(?P<e>[^`']{0,256})[`'])(?!\w)"
)
_PLAIN_WORD_RE = re.compile(r"[A-Za-z][a-z]{0,15}|[A-Z]{2,8}")
_WIN_PATH_RE = re.compile(r"(?<![^\s'\"(\[{=:,<>`])[^\s'\"<>`|]*\\[^\s'\"<>`|]*")
# "</Key>" closes an XML element in a cloud error body; it is not a path
_POSIX_PATH_RE = re.compile(
    r"(?<![\w.~/\\+=-])(?!(?<=<)/[A-Za-z][\w.:-]*>)"
    r"(?:~[\w.-]*|\.{1,2})?/(?=[^\s'\"<>`])[^\s'\"<>`]*"
)
_REL_PATH_RE = re.compile(r"(?<![\w.~/\\-])[\w.~+-]+/[^\s'\"<>`]*")
# a dotted name: a file name, a host, or harmless (``botocore.exceptions.ClientError``)
_DOTTED_RE = re.compile(r"(?<![\w@/\\~-])(?<![\w-]\.)[\w-]++(?:\.[\w-]++)++")
_HOST_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# base64 wrapped at 64 or 76 columns: the short last line is part of the secret too
_WRAPPED_BASE64_RE = re.compile(
    r"(?<![A-Za-z0-9+/=])(?:[A-Za-z0-9+/]{40,}\r?\n)+[A-Za-z0-9+/]+={0,2}(?![A-Za-z0-9+/=])"
)
# <Password>...</Password> in a cloud error body
_XML_ELEMENT_RE = re.compile(r"<(?P<tag>[A-Za-z][\w.-]{0,63})>(?P<val>[^<]{1,512})</(?P=tag)>")
# a lowercase word short enough to be English ("the password is wrong"), not a value
_ENGLISH_WORD_RE = re.compile(r"[a-z]{1,8}[.,;:!?]?")
_CREDENTIAL_NAME_RE = re.compile(r"[A-Za-z][\w.-]{1,63}")
_SECRET_WORD_HINTS = (
    "pass",
    "secret",
    "token",
    "pwd",
    "auth",
    "sas",
    "sig",
    "cookie",
    "cred",
    "key",
)
_LONG_TOKEN_RE = re.compile(r"(?<![\w+/=-])[\w+/=-]{20,}(?![\w+/=-])")
_CONTEXT_WORDS = _words(
    "bucket buckets container containers project projects account accounts user users"
    " username usernames object objects blob blobs key keys file files prefix prefixes"
    " dataset datasets table tables host hosts hostname hostnames database databases"
    " namespace namespaces tenant tenants subscription subscriptions owner owners"
)
_CONTEXT_FORMS = (
    _CONTEXT_WORDS
    | {word.capitalize() for word in _CONTEXT_WORDS}
    | {word.upper() for word in _CONTEXT_WORDS}
)
# "bucket: NAME" and "(bucket NAME" name a bucket; "the key." ends a sentence
_CONTEXT_TRAILERS = frozenset(":=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_CONTEXT_VALUE_STOP = frozenset(",;'\"`()[]{}<>")
# substrings of every key that _kv_sub acts on, to skip the pass (and the callback)
_KV_KEY_HINTS = _words(
    "secret pass pwd token key cred auth sas sig cookie user login account"
    " project bucket container host email owner tenant subscription"
)
_KV_HINT_RE = re.compile("|".join(sorted(_KV_KEY_HINTS)))
_SECRET_HINTS = _words(
    "AKIA ASIA AGPA AIDA AROA AIPA ANPA ANVA ABIA ACCA AIza eyJ ghp_ gho_ ghu_ ghs_ ghr_"
    " github_pat_ xox ya29. _live_ _test_ -----BEGIN"
)
_IPV4_HINT_RE = re.compile(r"[0-9]\.[0-9]")
_DIGITS_HINT_RE = re.compile(r"[0-9]{5}")
_PLAIN_PUNCTUATION = "()[]{},;:!?."
_QUOTE_CHARS = "'\"`\u2018\u201c"
_LONG_NUMBER_RE = re.compile(
    r"(?<![\w.])[0-9]{10,}(?![\w.]|\.[0-9])|(?<![\w.-])[A-Za-z][\w-]*-[0-9]{5,}(?![\w-])"
)

_SLASH_WORDS = _words(
    "and/or i/o n/a read/write tcp/ip udp/ip yes/no on/off true/false input/output"
    " client/server he/she s/he y/n w/o r/w"
)
_HARMLESS_SLASH_RE = re.compile(
    r"[0-9]+(?:[/.:-][0-9]+)*"
    r"|[A-Za-z]{1,6}/(?:s|sec|h|hr|min|ms|day)"
    r"|HTTPS?/[0-9.]+"
    r"|(?:text|application|image|audio|video|multipart|font)/[\w.+-]+",
    re.I,
)
# Only names under these labels are taken for hosts without a dotted lowercase tail:
# ``botocore.exceptions.ClientError`` must survive, ``db.acme.io`` must not.
_TLDS = _words(
    "com net org edu gov mil int io ai co dev app cloud tech info biz uk de fr jp cn eu"
    " ca au nl ch se ru br es kr tw sg hk internal local localdomain localhost lan corp"
    " intranet arpa xyz site online"
)
# Words that follow "bucket", "key", "file"... in ordinary prose: the next word is only
# a name when it is none of these.
_STOPWORDS = _words(
    "a an the and or but not no nor of to in on at by for from with without into onto"
    " over under is are was were be been being has have had do does did done can cannot"
    " could should would will shall may might must exists exist existed found named name"
    " names id ids that this these those which who whom whose what when where why how it"
    " its if then than so as such all any some each every other another same already"
    " also still yet only just either neither both there here you your we our they their"
    " he she his her i me my access permission permissions policy policies owner owned"
    " size type list listing operation error errors failed failure denied missing"
    " invalid version versions region regions level metadata data path paths key keys"
    " value values lock locked limit quota count object objects bucket buckets file files"
    " directory directories empty too format"
    " length lengths encryption configuration settings request requests storage system"
    " upload download transfer copy prefix"
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


# -- regions ---------------------------------------------------------------------------


def _region_ok(region: str) -> bool:
    if not _REGION_RE.fullmatch(region):
        return False
    return not any(
        len(part) >= 16 and _REGION_ODD_PART_RE.search(part) for part in region.split("-")
    )


def _strict_region(value: str) -> str | None:
    provider, sep, region = value.strip().lower().partition(":")
    if sep and provider in REGION_PROVIDERS and _region_ok(region):
        return f"{provider}:{region}"
    return None


def _looks_local(tag: str) -> bool:
    if tag in (".", "..") or tag.startswith(("/", "~", "./", "../", ".\\", "..\\", "\\\\")):
        return True
    if len(tag) >= 3 and tag[0].isascii() and tag[0].isalpha() and tag[1:2] == ":":
        return tag[2] in "/\\"
    return ":" not in tag and ("/" in tag or "\\" in tag)


def _region_error(tag: str) -> str:
    quotable = _QUOTABLE_RE.fullmatch(tag) is not None and _classify(tag) == REDACTED
    shown = f"'{tag}'" if quotable else "The value given"
    if not tag:
        shown = "An empty value"
    provider, sep, _ = tag.lower().partition(":")
    example = "for example aws:us-east-1, or local."
    if not sep:
        return f"{shown} is not a region tag: use provider:region, {example}"
    if provider not in REGION_PROVIDERS:
        names = "aws, gcp, azure, ibmcloud, cloudflare or scp"
        return f"{shown} has an unknown provider: use provider:region with {names}, {example}"
    return (
        f"{shown} has an invalid region: use provider:region with lowercase letters, "
        f"digits and hyphens, {example}"
    )


def normalize_region(tag: str) -> str:
    """Return ``provider:region`` in lowercase, or ``local`` for a local path.

    Raises :class:`InvalidValueError` for anything else; the message quotes the tag
    only when it is short and cannot be a secret or a path.
    """
    if not isinstance(tag, str):
        raise InvalidValueError(
            "The value given is not a region tag: use provider:region, "
            "for example aws:us-east-1, or local."
        )
    text = tag.strip()
    if _looks_local(text):
        return "local"
    lowered = text.lower()
    if lowered == "local" or lowered.startswith("local:"):
        return "local"
    normalized = _strict_region(lowered)
    if normalized is None:
        raise InvalidValueError(_region_error(text))
    return normalized


def is_region_tag(tag: str) -> bool:
    """Whether :func:`normalize_region` accepts ``tag``."""
    try:
        normalize_region(tag)
    except InvalidValueError:
        return False
    return True


# -- argv ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _flag_info(name: str) -> tuple[str, bool] | None:
    """``(key, names a credential)`` for a usable flag name, else None.

    Cached: a host passes the same few flags on every run.
    """
    if not _FLAG_NAME_RE.fullmatch(name) or _find_secret(name):
        return None
    # A flag name is kept verbatim as a key, so it must read like words: a random
    # token after "--" may be a key pasted in the wrong place.
    if not all(_part_wordy(part) for part in _TOKEN_SPLIT_RE.split(name) if part):
        return None
    key = name.replace("-", "_")
    return key, _is_secret_name(key)


def _takes_value(name: str, following: str) -> bool:
    if following.startswith("-"):
        return _NEGATIVE_NUMBER_RE.fullmatch(following) is not None
    # a one-letter flag before a URI or a path is a switch (``cp -r SRC DST``): the
    # URI is the command's operand, and reads better under _positional
    return not (len(name) == 1 and (_SCHEME_RE.match(following) or _PATH_START_RE.match(following)))


def _parse_number(value: str) -> int | float | None:
    if _INT_RE.fullmatch(value):
        return int(value)
    if _FLOAT_RE.fullmatch(value):
        number = float(value)
        if math.isfinite(number) and abs(number) < 1e10:
            return number
    return None


def _scrub_value(value: str, secret_named: bool, safe_values: Collection[str]) -> object:
    stripped = value.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if secret_named:
        return SECRET
    number = _parse_number(stripped)
    if number is not None:
        return number
    if value in safe_values:
        return value
    if lowered in _SAFE_WORDS:
        return lowered
    region = _strict_region(stripped)
    if region is not None:
        return region
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


def _scrub_arguments(argv: Sequence[str], safe_values: Collection[str]) -> dict[str, object]:
    safe: Collection[str] = (
        safe_values if isinstance(safe_values, set | frozenset) else frozenset(safe_values)
    )
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
        if arg[:1] == "-" and len(arg) > 1 and not _NEGATIVE_NUMBER_RE.fullmatch(arg):
            body = arg.lstrip("-")
            name, has_value, value = body.partition("=")
            info = _flag_info(name[:64])
            if info is None or len(name) > 64:
                if len(positional) < _MAX_LIST:
                    positional.append(_classify(body))
                continue
            key, secret_named = info
            if not has_value and index < len(args):
                following = args[index]
                if isinstance(following, str) and _takes_value(name, following):
                    value, has_value = following, "="
                    index += 1
            if _has_room(flags, key):
                _add_flag(
                    flags, key, _scrub_value(value, secret_named, safe) if has_value else True
                )
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

    Booleans, numbers, built-in safe words, ``safe_values`` and region tags are kept;
    every other value, and every positional argument, becomes a marker from
    :data:`MARKERS`. The first positional is kept under ``_command`` when it is a
    Skyplane subcommand; the other positionals go, as markers, under ``_positional``.
    """
    try:
        return _scrub_arguments(argv, safe_values)
    except Exception:
        # fail closed: a parsing bug must not let the raw argv through
        return {"_positional": [REDACTED]}


# -- free text -------------------------------------------------------------------------


def _split_trailing(text: str) -> tuple[str, str]:
    """Split sentence punctuation (and unbalanced closers) off the end of a match."""
    end = len(text)
    while end > 0:
        char = text[end - 1]
        if char in ".,;:!?":
            end -= 1
        elif char in ")]}":
            opener = {")": "(", "]": "[", "}": "{"}[char]
            if text.count(opener, 0, end) < text.count(char, 0, end):
                end -= 1
            else:
                break
        else:
            break
    return text[:end], text[end:]


def _only_sentinels(text: str) -> bool:
    stripped = text.strip(" .,:;")
    return bool(stripped) and all(c in _SENTINEL_CHARS or c.isspace() for c in stripped)


def _uri_sub(match: re.Match[str]) -> str:
    core, tail = _split_trailing(match.group())
    scheme_end = match.end(1) - match.start() + 3
    return _SENTINEL[_uri_marker(match.group(1), core[scheme_end:])] + tail


def _azure_sub(match: re.Match[str]) -> str:
    _, tail = _split_trailing(match.group())
    return _SENTINEL[URI_AZURE] + tail


def _kv_sub(match: re.Match[str]) -> str:
    key, quote, sep, value = match.group("key", "q", "sep", "val")
    head = f"{key}{quote}{sep}"
    if _KV_HINT_RE.search(key.lower()) is None:
        secret = identifying = False
    else:
        secret, identifying = _name_kind(key)
    if (secret or identifying) and value[:1] not in "'\"":
        nested = _KV_RE.match(value)
        if nested is not None and any(_name_kind(nested.group("key"))):
            # "credentials: aws_secret_access_key=...": the outer key is a label
            return head + _KV_RE.sub(_kv_sub, value)
    if secret:
        marker = SECRET
    elif identifying:
        inner = value[1:-1] if value[:1] in "'\"" and len(value) >= 2 else value
        if _only_sentinels(inner) or not inner.strip():
            return match.group()
        marker = _classify(inner)
    else:
        # the value may itself hold ``password=...``; it was consumed by this match
        if ":" in value or "=" in value:
            return head + _KV_RE.sub(_kv_sub, value)
        return match.group()
    if value[:1] in "'\"" and len(value) >= 2:
        return f"{head}{value[0]}{_SENTINEL[marker]}{value[-1]}"
    core, tail = _split_trailing(value)
    if " " in core or "\t" in core:
        # "Bearer abc": keep the scheme word, hide the credential
        scheme, _, _ = core.partition(" ") if " " in core else core.partition("\t")
        return f"{head}{scheme} {_SENTINEL[marker]}{tail}"
    return head + _SENTINEL[marker] + tail


def _bearer_sub(match: re.Match[str]) -> str:
    credential = match.group(3)
    if _PLAIN_WORD_RE.fullmatch(credential) or credential.isalpha():
        return match.group()
    return match.group(1) + match.group(2) + _SENTINEL[SECRET]


def _aws_secret_sub(match: re.Match[str]) -> str:
    return _SENTINEL[SECRET] if _aws_secret_like(match.group()) else match.group()


def _ipv6_sub(match: re.Match[str]) -> str:
    text = match.group()
    # Keep the longest piece that parses: a port or punctuation may be glued on the
    # right ("addr:443", "addr."), stray colons on the left (":addr", "x::addr").
    leading = len(text) - len(text.lstrip(":"))
    best: tuple[int, int] | None = None
    for start in range(max(0, leading - 2), leading + 1):
        for end in range(len(text), start + 1, -1):
            if best is not None and end - start <= best[1] - best[0]:
                break
            piece = text[start:end].split("%", 1)[0]
            colons = piece.count(":")
            # cheap shape test first: parsing and raising costs microseconds a try
            if "::" not in piece and colons != 7 and not (colons == 6 and "." in piece):
                continue
            if piece[-1] == ":" and piece[-2:] != "::":
                continue
            try:
                ipaddress.IPv6Address(piece)
            except ValueError:
                continue
            best = (start, end)
            break
    if best is None:
        return text
    return text[: best[0]] + _SENTINEL[IP] + text[best[1] :]


def _ipv4_sub(match: re.Match[str]) -> str:
    address = match.group().split("/", 1)[0]
    if all(int(octet) <= 255 for octet in address.split(".")):
        return _SENTINEL[IP]
    return match.group()


def _quoted_sub(match: re.Match[str]) -> str:
    body = next(group for group in match.group("a", "b", "c", "d", "e") if group is not None)
    text = match.group()
    if not body.strip() or _only_sentinels(body) or _PLAIN_WORD_RE.fullmatch(body):
        return text
    marker = REDACTED if any(c in _SENTINEL_CHARS for c in body) else _classify(body)
    return f"{text[0]}{_SENTINEL[marker]}{text[-1]}"


def _context_value(token: str) -> str:
    """Hide the name that follows "bucket", "key", "file"... unless it is a plain word."""
    if not token or token[0] in _CONTEXT_VALUE_STOP:
        return token
    end = 0
    while end < len(token) and token[end] not in _CONTEXT_VALUE_STOP:
        end += 1
    value, tail = _split_trailing(token[:end])
    if (
        not value
        or _only_sentinels(value)
        or value.lower() in _STOPWORDS
        or (value.isdigit() and len(value) <= 4)
    ):
        return token
    return _SENTINEL[_classify(value)] + tail + token[end:]


def _path_sub(match: re.Match[str]) -> str:
    core, tail = _split_trailing(match.group())
    if not core:
        return match.group()
    return _SENTINEL[PATH] + tail


def _relative_path_sub(match: re.Match[str]) -> str:
    core, tail = _split_trailing(match.group())
    if "/" not in core or core.lower() in _SLASH_WORDS or _HARMLESS_SLASH_RE.fullmatch(core):
        return match.group()
    return _SENTINEL[PATH] + tail


def _dotted_sub(match: re.Match[str]) -> str:
    text = match.group()
    labels = text.split(".")
    last = labels[-1].lower()
    if last in _FILE_EXTENSIONS:
        return _SENTINEL[PATH]
    if not last[:1].isalpha() or not all(_HOST_LABEL_RE.fullmatch(label) for label in labels):
        return text
    if last in _TLDS or (len(labels) >= 3 and text == text.lower()):
        return _SENTINEL[HOST]
    return text


def _long_token_sub(match: re.Match[str]) -> str:
    return _SENTINEL[SECRET] if _looks_random(match.group()) else match.group()


def _scrub_token(token: str) -> str:
    """Run the single-token rules over one whitespace-free piece of text.

    Each rule runs only when a cheap test says it could match, and the tests look at
    the token as it is now, after the earlier rules shrank it.
    """
    if "://" in token:
        token = _URI_TEXT_RE.sub(_uri_sub, token)
    if "core.windows.net" in token.lower():
        token = _AZURE_TEXT_RE.sub(_azure_sub, token)
    if "arn:" in token:
        token = _ARN_RE.sub(_SENTINEL[REDACTED], token)
    if "@" in token:
        token = _EMAIL_TEXT_RE.sub(_SENTINEL[EMAIL], token)
    # the shortest known-format credential ("xoxb-" and ten more) has 15 characters
    if len(token) >= 15 and any(hint in token for hint in _SECRET_HINTS):
        token = _SECRET_TOKEN_RE.sub(_SENTINEL[SECRET], token)
    if len(token) >= 40:
        token = _AWS_SECRET_RE.sub(_aws_secret_sub, token)
    if token.count(":") >= 2:
        token = _IPV6_TEXT_RE.sub(_ipv6_sub, token)
    if "." in token and _IPV4_HINT_RE.search(token):
        token = _IPV4_TEXT_RE.sub(_ipv4_sub, token)
    if "\\" in token:
        token = _WIN_PATH_RE.sub(_path_sub, token)
    if "/" in token:
        token = _POSIX_PATH_RE.sub(_path_sub, token)
        token = _REL_PATH_RE.sub(_relative_path_sub, token)
    if "." in token:
        token = _DOTTED_RE.sub(_dotted_sub, token)
    if len(token) >= 20:
        token = _LONG_TOKEN_RE.sub(_long_token_sub, token)
    if len(token) >= 10 and _DIGITS_HINT_RE.search(token):
        token = _LONG_NUMBER_RE.sub(_SENTINEL[REDACTED], token)
    return token


def _names_a_secret(part: str) -> bool:
    """``--password``, ``aws_secret_access_key``, ``token:``: a word naming a credential."""
    name = part.lstrip("-").rstrip(":=")
    lowered = name.lower()
    if not name or not any(hint in lowered for hint in _SECRET_WORD_HINTS):
        return False
    return _CREDENTIAL_NAME_RE.fullmatch(name) is not None and _is_secret_name(name)


def _hide_secret_value(parts: list[str], index: int) -> None:
    """Hide the word after a credential's name; after a plain name, unless it is English.

    After a flag (``--password X``) the next word is its value. After a bare word
    ("the password is wrong") a short lowercase word is the sentence going on.
    """
    flag = parts[index].startswith("-") or parts[index].endswith((":", "="))
    following = _next_word(parts, index + 1)
    if following < len(parts) and parts[following] in (":", "="):
        flag = True
        following = _next_word(parts, following + 1)
    if following >= len(parts):
        return
    word = parts[following]
    if (
        "=" in word
        or word.lower() in ("bearer", "basic", "digest")
        or any(ch in _SENTINEL_CHARS for ch in word)
    ):
        return  # a key=value of its own, an auth scheme, or already hidden by a rule
    if flag or not _ENGLISH_WORD_RE.fullmatch(word):
        parts[following] = _SENTINEL[SECRET]


def _unwrap(match: re.Match[str]) -> str:
    return match.group(0).replace("\r", "").replace("\n", "")


def _xml_sub(match: re.Match[str]) -> str:
    if not _is_secret_name(match.group("tag")):
        return match.group(0)
    tag = match.group("tag")
    return f"<{tag}>{_SENTINEL[SECRET]}</{tag}>"


def _hide_context_value(parts: list[str], index: int) -> None:
    following = _next_word(parts, index + 1)
    if following < len(parts) and parts[following] in (":", "="):
        following = _next_word(parts, following + 1)
    if following < len(parts) and parts[following].lower() in ("named", "called"):
        following = _next_word(parts, following + 1)
    if following < len(parts):
        parts[following] = _context_value(parts[following])


def _next_word(parts: list[str], index: int) -> int:
    while index < len(parts) and not parts[index]:
        index += 1
    return index


def _run_passes(text: str) -> str:
    """Replace everything sensitive in ``text`` with sentinels.

    Rules that can span spaces (key=value secrets, quoted strings, "bucket NAME") run
    first over the whole text and classify what they find as a whole; the rest run
    token by token. Once replaced, text is a sentinel, which no later rule matches.
    """
    if "-----BEGIN" in text:
        text = _PEM_RE.sub(_SENTINEL[SECRET], text)
    lowered = text.lower()
    if ("=" in text or ":" in text) and any(hint in lowered for hint in _KV_KEY_HINTS):
        text = _KV_RE.sub(_kv_sub, text)
        lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        text = _BEARER_RE.sub(_bearer_sub, text)
    if "</" in text:
        text = _XML_ELEMENT_RE.sub(_xml_sub, text)
    if any(quote in text for quote in _QUOTE_CHARS):
        text = _QUOTED_RE.sub(_quoted_sub, text)
    parts = text.split(" ")
    for index, part in enumerate(parts):
        if part.isalpha() and len(part) < 20:
            # the common case, a plain word; it matters as a context or credential word
            if part in _CONTEXT_FORMS:
                _hide_context_value(parts, index)
            elif part.lower() in _SECRET_NAME_PARTS:
                _hide_secret_value(parts, index)
            continue
        if not part:
            continue
        if _names_a_secret(part):
            _hide_secret_value(parts, index)
        core = part.strip(_PLAIN_PUNCTUATION)
        if core.isalpha() and len(core) < 20 and part.count(":") < 2:
            # "::1" strips down to a plain-looking core, hence the colon count
            if core in _CONTEXT_FORMS and part[-1] in _CONTEXT_TRAILERS:
                _hide_context_value(parts, index)
            continue
        if core.isdigit() and len(core) < 5 and part.count(":") < 2:
            continue
        parts[index] = _scrub_token(part)
    return " ".join(parts)


def _truncate(text: str, max_length: int, force: bool) -> str:
    if not force and len(text) <= max_length:
        return text
    cut = text[: max_length - 1]
    opening = cut.rfind("<")
    if opening != -1 and ">" not in cut[opening:]:
        fragment = cut[opening:]
        if any(marker.startswith(fragment) for marker in MARKERS):
            cut = cut[:opening]
    return cut + "\u2026"


def _scrub_text(text: str, max_length: int) -> str:
    if max_length <= 0:
        return ""
    # Bound the work, then drop the last partial word: a secret cut in half can slip
    # past every pattern, and markers may shrink the text enough to bring it into view.
    limit = 4 * max_length + 256
    truncated = len(text) > limit
    if truncated:
        text = text[:limit]
        space = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t"))
        if space > 0:
            text = text[:space]
    if "\n" in text:
        # one token again, so the long-token rule takes the short last line with it
        text = _WRAPPED_BASE64_RE.sub(_unwrap, text)
    if not text.isprintable():
        # isprintable() is false for every character class removed here
        text = _CONTROL_AS_SPACE_RE.sub(" ", text)
        text = _STRIP_RE.sub("", text)
    text = _run_passes(text)
    for sentinel, marker in _EXPAND_PAIRS:
        if sentinel in text:
            text = text.replace(sentinel, marker)
    return _truncate(text, max_length, truncated)


def scrub_text(text: str, max_length: int = 512) -> str:
    """Replace URIs, names, paths, addresses and secrets in free text with markers.

    Ordinary words, numbers and punctuation are kept so the message still reads. The
    result is at most ``max_length`` characters, ending in an ellipsis when cut.
    """
    try:
        if not isinstance(text, str):
            text = str(text)
        return _scrub_text(text, max_length)
    except Exception:
        # fail closed: a bug here must not let the raw text through
        return REDACTED[: max(max_length, 0)]


def scrub_error(exc: BaseException) -> str:
    """``"TypeName: scrubbed message"`` for an exception; never raises."""
    try:
        name = type(exc).__qualname__
    except Exception:
        name = ""
    if not isinstance(name, str) or not _QUALNAME_RE.fullmatch(name):
        name = REDACTED
    try:
        message = str(exc)
    except Exception:
        return f"{name}: {REDACTED}"
    return f"{name}: {scrub_text(message)}"
