"""Region tags: ``provider:region`` checked against each provider's naming scheme.

A tag is kept only when its region could be a real one: each provider names its
regions from a small set of geographic words and directions, and a pattern built from
those words lets every real name through (the tests check Skyplane 0.3.2's lists and
botocore's endpoint data) while an arbitrary word, a bucket or a person's name fails.
A region that a provider opens after this list was written still passes when it keeps
the provider's scheme; one that does not becomes ``<region>``.
"""

from __future__ import annotations

import functools
import re

from consent._exceptions import InvalidValueError
from consent.scrub._rules import REDACTED, _classify

__all__ = ["REGION_PROVIDERS", "is_region_tag", "normalize_region", "region_name_ok"]

REGION_PROVIDERS = frozenset({"aws", "gcp", "azure", "ibmcloud", "cloudflare"})
# Skyplane's own placeholder: the object store tells the region at run time
_INFER = "infer"

_DIRECTIONS = "north|south|east|west|central|northeast|northwest|southeast|southwest"
# AWS: partition area, direction, number, an optional zone letter; GovCloud and the
# isolated partitions too; a Local Zone adds its city (us-west-2-lax-1a)
_AWS_RE = re.compile(
    rf"(?:us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov|us-iso|us-isob|us-isof|eu-isoe)"
    rf"-(?:{_DIRECTIONS})-[1-9][0-9]?[a-z]?(?:-[a-z]{{3}}-[1-9][a-z]?)?"
)
# GCP: continent, direction and number, optionally a zone letter
_GCP_RE = re.compile(
    rf"(?:us|europe|asia|australia|northamerica|southamerica|me|africa)"
    rf"-(?:{_DIRECTIONS})[1-9][0-9]?(?:-[a-z])?"
)
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
_AZURE_RE = re.compile(
    rf"(?=(?:{_AZURE_WORD}){{2}})(?:{_AZURE_DIRECTIONS})*(?:{_AZURE_PLACES})"
    rf"{_AZURE_WORD}{{0,3}}[1-9]?(?:euap|stage)?"
)
# IBM Cloud: area and city code
_IBM_RE = re.compile(
    r"(?:us-(?:south|east)|eu-(?:gb|de|es|fr2)|jp-(?:tok|osa)|au-syd|ca-(?:tor|mon)"
    r"|br-sao|in-che|kr-seo)"
)
# Cloudflare R2: location hints, or the automatic placement
_CLOUDFLARE_RE = re.compile(r"wnam|enam|weur|eeur|apac|oc|auto")

_PATTERNS: dict[str, re.Pattern[str]] = {
    "aws": _AWS_RE,
    "gcp": _GCP_RE,
    "azure": _AZURE_RE,
    "ibmcloud": _IBM_RE,
    "cloudflare": _CLOUDFLARE_RE,
}


def region_name_ok(provider: str, region: str) -> bool:
    """Whether ``region`` (lowercase) follows ``provider``'s naming scheme."""
    if region == _INFER and provider in _PATTERNS:
        return True
    pattern = _PATTERNS.get(provider)
    return pattern is not None and len(region) <= 48 and pattern.fullmatch(region) is not None


@functools.lru_cache(maxsize=256)
def bare_region(region: str) -> bool:
    """Whether a region name without its provider is a real one for some provider."""
    lowered = region.lower()
    return lowered != _INFER and any(
        pattern.fullmatch(lowered) for name, pattern in _PATTERNS.items() if name != "cloudflare"
    )


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


_QUOTABLE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,32}")


def _region_error(tag: str) -> str:
    quotable = _QUOTABLE_RE.fullmatch(tag) is not None and _classify(tag) == REDACTED
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
