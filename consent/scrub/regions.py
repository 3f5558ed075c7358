"""Region tags: ``provider:region`` checked against each provider's naming scheme.

A tag is kept only when its region could be a real one: each provider names its
regions from a small set of geographic words and directions, and a pattern built from
those words lets every real name through (the tests check Skyplane 0.3.2's lists and
botocore's endpoint data) while an arbitrary word, a bucket or a person's name fails.
A region that a provider opens after this list was written still passes when it keeps
the provider's scheme; one that does not becomes ``<region>``.
"""

from __future__ import annotations

from consent._exceptions import InvalidValueError
from consent.scrub._rules import REDACTED, _classify

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

__all__ = ["REGION_PROVIDERS", "is_region_tag", "normalize_region", "region_name_ok"]

REGION_PROVIDERS = frozenset({"aws", "gcp", "azure", "ibmcloud", "cloudflare"})
# Skyplane's own placeholder: the object store tells the region at run time
_INFER = "infer"

_DIRECTIONS = "north|south|east|west|central|northeast|northwest|southeast|southwest"
# AWS: partition area, direction, number, an optional zone letter; GovCloud and the
# isolated partitions too; a Local Zone adds its city (us-west-2-lax-1a)
_AWS_AREAS = "us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov|us-iso|us-isob|us-isof|eu-isoe"
_AWS = rf"(?:{_AWS_AREAS})-(?:{_DIRECTIONS})-[1-9][0-9]?[a-z]?(?:-[a-z]{{3}}-[1-9][a-z]?)?"
# GCP: continent, direction and number, optionally a zone letter
_GCP_AREAS = "us|europe|asia|australia|northamerica|southamerica|me|africa"
_GCP = rf"(?:{_GCP_AREAS})-(?:{_DIRECTIONS})[1-9][0-9]?(?:-[a-z])?"
# Azure: two to five geographic words and directions run together, at least one of
# them a place ("germanywestcentral", "eastus2euap"; not "west", not "europe")
_AZURE_DIRECTIONS = "east|west|north|south|central"
_AZURE_PLACES = (
    "us|usgov|usdod|asia|europe|australia|brazil|canada|france|germany|india|jioindia|"
    "japan|korea|norway|switzerland|uae|uk|southafrica|qatar|sweden|poland|italy|israel|"
    "spain|mexico|newzealand|taiwan|indonesia|malaysia|chile|austria|belgium|denmark|"
    "finland|greece|saudiarabia|singapore|china|arizona|texas|virginia|iowa"
)
_AZURE_WORD = f"(?:{_AZURE_DIRECTIONS}|{_AZURE_PLACES})"
_AZURE = (
    rf"(?=(?:{_AZURE_WORD}){{2}})(?:{_AZURE_DIRECTIONS})*(?:{_AZURE_PLACES})"
    rf"{_AZURE_WORD}{{0,3}}[1-9]?(?:euap|stage)?"
)
# IBM Cloud: area and city code
_IBM_NAMES = frozenset(
    [
        "us-south",
        "us-east",
        "eu-gb",
        "eu-de",
        "eu-es",
        "eu-fr2",
        "jp-tok",
        "jp-osa",
        "au-syd",
        "ca-tor",
        "ca-mon",
        "br-sao",
        "in-che",
        "kr-seo",
    ]
)
_IBM = (
    r"(?:us-(?:south|east)|eu-(?:gb|de|es|fr2)|jp-(?:tok|osa)|au-syd|ca-(?:tor|mon)"
    r"|br-sao|in-che|kr-seo)"
)
# Cloudflare R2: location hints, or the automatic placement
_CLOUDFLARE = r"wnam|enam|weur|eeur|apac|oc|auto"

# The patterns are the rule. They compile on first need only: the host's cold path
# (bench/cold.py) decides the usual names with the plain checks below, each of which
# accepts only names its pattern accepts, and asks the pattern about anything else.
_SOURCES = {
    "aws": _AWS,
    "gcp": _GCP,
    "azure": _AZURE,
    "ibmcloud": _IBM,
    "cloudflare": _CLOUDFLARE,
}


def _pattern(provider: str) -> re.Pattern[str]:
    from consent.scrub._cache import compile_pattern  # built once per process

    return compile_pattern(_SOURCES[provider])


_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")
_DIRECTION_SET = frozenset(_DIRECTIONS.split("|"))


def _number(text: str, *, letter: bool = False) -> bool:
    """``[1-9][0-9]?``, with ``letter`` an optional ``[a-z]`` after it."""
    if letter and text[-1:] in _LOWER:
        text = text[:-1]
    return 0 < len(text) <= 2 and text[0] in "123456789" and text[1:] in ("", *_DIGITS)


_AWS_AREA_PREFIXES = tuple(f"{area}-" for area in _AWS_AREAS.split("|"))
_GCP_AREA_SET = frozenset(_GCP_AREAS.split("|"))


def _aws_name(region: str) -> bool:
    if "-" not in region:
        return False  # the common case, a word: every name is an area, a dash and more
    for prefix in _AWS_AREA_PREFIXES:
        if not region.startswith(prefix):
            continue
        direction, dash, tail = region[len(prefix) :].partition("-")
        if not dash or direction not in _DIRECTION_SET:
            continue
        parts = tail.split("-")
        if len(parts) == 1 and _number(parts[0], letter=True):
            return True
        if (
            len(parts) == 3
            and _number(parts[0], letter=True)
            and len(parts[1]) == 3
            and all(c in _LOWER for c in parts[1])
            and 0 < len(parts[2]) <= 2
            and parts[2][0] in "123456789"
            and parts[2][1:] in ("", *_LOWER)
        ):
            return True
    return False


def _gcp_name(region: str) -> bool:
    area, dash, rest = region.partition("-")
    if not dash or area not in _GCP_AREA_SET:
        return False
    body, dash, zone = rest.partition("-")
    if dash and not (len(zone) == 1 and zone in _LOWER):
        return False
    return any(
        body.startswith(direction) and _number(body[len(direction) :])
        for direction in _DIRECTION_SET
    )


_AZURE_DIRECTION_SET = frozenset(_AZURE_DIRECTIONS.split("|"))
_AZURE_PLACE_SET = frozenset(_AZURE_PLACES.split("|"))


def _by_first_letter(words: frozenset[str]) -> dict[str, tuple[str, ...]]:
    grouped: dict[str, tuple[str, ...]] = {}
    for word in sorted(words):
        grouped[word[0]] = (*grouped.get(word[0], ()), word)
    return grouped


# each word under its first letter: a text is tried only against the words that can
# start it, not all sixty of them, for every token of an error text
_AZURE_WORDS = _by_first_letter(_AZURE_DIRECTION_SET | _AZURE_PLACE_SET)


def _azure_words(text: str, placed: bool, after: int, words: int) -> bool:
    """Directions, a place, then at most three more words: two words at least.

    Two words are what the pattern's look-ahead asks; a name this check refuses
    still goes to the pattern.
    """
    if not text:
        return placed and words >= 2
    for word in _AZURE_WORDS.get(text[0], ()):
        if not text.startswith(word):
            continue
        rest = text[len(word) :]
        if not placed:
            if _azure_words(rest, word in _AZURE_PLACE_SET, 0, words + 1):
                return True
        elif after < 3 and _azure_words(rest, True, after + 1, words + 1):
            return True
    return False


def _azure_name(region: str) -> bool:
    for suffix in ("euap", "stage", ""):
        if not region.endswith(suffix):
            continue
        body = region[: len(region) - len(suffix)]
        bodies = [body]
        if body[-1:] and body[-1] in "123456789":
            bodies.append(body[:-1])
        if any(_azure_words(b, False, 0, 0) for b in bodies):
            return True
    return False


_NAMES = {
    "aws": _aws_name,
    "gcp": _gcp_name,
    "azure": _azure_name,
    "ibmcloud": _IBM_NAMES.__contains__,
    "cloudflare": frozenset(_CLOUDFLARE.split("|")).__contains__,
}


def _follows(provider: str, region: str) -> bool:
    """``_pattern(provider).fullmatch(region)``, the plain check first."""
    return _NAMES[provider](region) or _pattern(provider).fullmatch(region) is not None


def region_name_ok(provider: str, region: str) -> bool:
    """Whether ``region`` (lowercase) follows ``provider``'s naming scheme."""
    if region == _INFER and provider in _SOURCES:
        return True
    return provider in _SOURCES and len(region) <= 48 and _follows(provider, region)


_bare: dict[str, bool] = {}  # functools.lru_cache, without importing functools


def bare_region(region: str) -> bool:
    """Whether a region name without its provider is a real one for some provider."""
    known = _bare.get(region)
    if known is None:
        lowered = region.lower()
        known = lowered != _INFER and any(
            _follows(name, lowered) for name in _SOURCES if name != "cloudflare"
        )
        if len(_bare) >= 256:
            _bare.clear()
        _bare[region] = known
    return known


def strict_region(value: str) -> str | None:
    """``provider:region`` in lowercase when the tag is a valid region tag, else None."""
    provider, sep, region = value.strip().lower().partition(":")
    if sep and region_name_ok(provider, region):
        return f"{provider}:{region}"
    return None


def _looks_local(tag: str) -> bool:
    if tag in (".", "..") or tag.startswith(("/", "~", "./", "../", ".\\", "..\\", "\\\\")):
        return True
    if len(tag) >= 3 and tag[0].isascii() and tag[0].isalpha() and tag[1:2] == ":":
        return tag[2] in "/\\"
    return ":" not in tag and ("/" in tag or "\\" in tag)


def _region_error(tag: str) -> str:
    import re

    quotable = (
        re.fullmatch(r"[A-Za-z0-9_.:-]{1,32}", tag) is not None and _classify(tag) == REDACTED
    )
    shown = f"'{tag}'" if quotable else "The value given"
    if not tag:
        shown = "An empty value"
    provider, sep, _ = tag.lower().partition(":")
    example = "for example aws:us-east-1, gcp:us-central1, azure:eastus, or local."
    if not sep:
        return f"{shown} is not a region tag: use provider:region, {example}"
    if provider not in REGION_PROVIDERS:
        names = "aws, gcp, azure, ibmcloud or cloudflare"
        return f"{shown} has an unknown provider: use provider:region with {names}, {example}"
    return f"{shown} names no region {provider} has: use provider:region, {example}"


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
    normalized = strict_region(lowered)
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
