"""Endpoint validation: https everywhere, plain http only to this machine."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from consent._exceptions import InsecureEndpointError

if TYPE_CHECKING:
    from consent.profile import Scope

__all__ = ["check_endpoint", "idna_host", "is_loopback_host", "resolve_endpoints"]


def is_loopback_host(host: str) -> bool:
    # not "*.localhost": some resolvers ask DNS for those, which an attacker may answer
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str, *, source: str = "endpoint") -> str:
    """Return ``url`` when it is safe to send to, else raise :class:`InsecureEndpointError`.

    Messages show the URL without any user:password part, since they reach the
    terminal and the sender's log.
    """
    shown = _shown(url)
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InsecureEndpointError(f"{source}: {shown!r} contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise InsecureEndpointError(f"{source}: {shown!r} is not a valid URL.") from None
    if parts.username or parts.password:
        raise InsecureEndpointError(f"{source}: put no credentials in the endpoint URL.")
    if parts.scheme not in {"https", "http"} or not host:
        raise InsecureEndpointError(
            f"{source}: {shown!r} is not an http(s) URL; use https://host/path."
        )
    if not _valid_host(host):
        raise InsecureEndpointError(f"{source}: {shown!r} does not name a valid host.")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise InsecureEndpointError(
            f"{source}: refusing plain http to {host}; usage data is only sent over https "
            "(plain http is allowed to loopback only)."
        )
    return url


def _shown(url: str) -> str:
    """``url`` fit to print: no userinfo, no control characters, not too long."""
    without_userinfo = re.sub(r"//[^/?#]*@", "//", url)
    printable = "".join(ch if ch.isprintable() else "?" for ch in without_userinfo)
    return printable if len(printable) <= 100 else printable[:97] + "..."


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _valid_host(host: str) -> bool:
    """An IP address, or a DNS name whose IDNA form has only letters, digits and hyphens."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    ascii_host = idna_host(host)
    if ascii_host is None:
        return False
    labels = ascii_host.removesuffix(".").split(".")
    return len(ascii_host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def idna_host(host: str) -> str | None:
    """The ASCII form httpx sends for ``host``, or ``None`` when httpx would refuse it.

    httpx encodes a non-ASCII host with the ``idna`` package (IDNA 2008, lowercased
    first, no UTS 46 mapping), not Python's ``idna`` codec (IDNA 2003): the two
    disagree, e.g. on ``faß.de`` (2003 maps it to ``fass.de``, another domain) and
    ``☃.net`` (2003 accepts it, 2008 refuses it). The package is imported only for
    such a host: it ships with httpx, and ASCII hosts, the usual case, need none.
    """
    lowered = host.lower()
    if lowered.isascii():
        return lowered
    import idna

    try:
        return idna.encode(lowered).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None


def resolve_endpoints(
    policy_endpoint: str, config: Mapping[str, Any], scope: Scope, override: str | None = None
) -> list[str]:
    """The primary endpoint then the extras, each checked, without duplicates.

    The primary is the first of: ``override`` (``--endpoint``), the environment
    variable, the config key ``usage_stats_endpoint``, the policy's endpoint.
    """
    if override:
        primary, source = override, "--endpoint"
    elif scope.endpoint_override:
        primary, source = scope.endpoint_override, scope.profile.endpoint_env
    elif isinstance(config.get("usage_stats_endpoint"), str):
        primary, source = config["usage_stats_endpoint"], "usage_stats_endpoint"
    else:
        primary, source = policy_endpoint, "the policy's endpoint"
    urls = [check_endpoint(primary, source=source)]
    extras = config.get("usage_stats_extra_endpoints") or []
    if not isinstance(extras, list):
        raise InsecureEndpointError("usage_stats_extra_endpoints must be a list of URLs.")
    for extra in extras:
        url = check_endpoint(str(extra), source="usage_stats_extra_endpoints")
        if url not in urls:
            urls.append(url)
    return urls
