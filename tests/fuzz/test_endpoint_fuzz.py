"""Fuzz ``check_endpoint``: any string gives itself back or :class:`InsecureEndpointError`.

The check parses with ``urllib.parse``; httpx, which sends, has its own URL parser.
The classic hole is a parser differential: a URL one parser reads as loopback and
the other as a remote host (``http://127.0.0.1\\@evil.example/``). So for every
accepted URL the property asks what httpx would connect to: an accepted plain-http
URL must reach a loopback host *as httpx reads it*, an accepted URL carries no
credentials, and the scheme and host both parsers see agree.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from consent._exceptions import InsecureEndpointError
from consent._urls import check_endpoint, idna_host, is_loopback_host
from tests.fuzz._toml import FUZZ

_schemes = st.sampled_from(
    ["http", "https", "HTTP", "hTtPs", "ftp", "file", "ws", "", "http:", " http", "\x00http"]
)
_separators = st.sampled_from(["://", ":/", ":", ":///", ":\\\\", "://\\", ":/\\"])
_userinfo = st.sampled_from(
    ["", "user@", "user:pw@", ":pw@", ":@", "@", "a@b@", "127.0.0.1@", "%40@", "u%3Ap@"]
)
_hosts = st.sampled_from(
    [
        "localhost",
        "LOCALHOST",
        "127.0.0.1",
        "127.0.0.2",
        "127.1",
        "0x7f.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[0:0:0:0:0:0:0:1]",
        "[::1%25lo]",
        "::1",
        "a.localhost",
        "localhost.",
        "localhost.evil.example",
        "evil.example",
        "127.0.0.1.nip.io",
        "10.0.0.1",
        "0.0.0.0",
        "",
        "loc\talhost",
        "localhost\n",
        "local\u0068ost",
        "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",
        "127.0.0.1\u3002evil.example",
        "xn--localhost",
        "faß.example",
        "☃.example",
        "bücher.example",
        "\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34",  # LOCALHOST, full width
    ]
)
_ports = st.sampled_from(["", ":80", ":3100", ":0", ":65535", ":65536", ":-1", ":x", ":", ": 80"])
_tails = st.sampled_from(
    [
        "",
        "/",
        "/loki/api/v1/push",
        "\\@evil.example/",
        "#@evil.example",
        "?@evil.example",
        "\\\\evil.example",
        "/@evil.example",
        "%2f@evil.example",
        "@evil.example",
        " @evil.example",
        "\t@evil.example",
        ";@evil.example",
    ]
)
_urls = st.one_of(
    st.builds(
        lambda *parts: "".join(parts), _schemes, _separators, _userinfo, _hosts, _ports, _tails
    ),
    st.text(max_size=60),
    st.text(alphabet=st.sampled_from(list("htps:/\\@[]%.#?1270lcao \t")), max_size=40),
)


def _httpx_view(url: str) -> httpx.URL | None:
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        return None


@FUZZ
@given(url=_urls)
@example(url="http://127.0.0.1\\@evil.example/")
@example(url="http://evil.example#@127.0.0.1/")
@example(url="http://evil.example\\@localhost/")
@example(url="http://localhost:8080?@evil.example/")
@example(url="http://127.0.0.1:80\\@evil.example/")
@example(url="http://[::1%25lo]/")
@example(url="https://:@example.com/")
def test_accepted_endpoints_are_safe_as_httpx_reads_them(url: str) -> None:
    try:
        accepted = check_endpoint(url)
    except InsecureEndpointError as exc:
        message = str(exc)
        assert message.endswith(".")
        return
    assert accepted == url  # returned unchanged: what is checked is what is sent
    view = _httpx_view(url)
    # what we accept, httpx can send: a URL it then refuses would fail every send
    assert view is not None, url
    assert view.scheme in ("http", "https"), url
    assert view.host, url
    assert not view.userinfo.strip(b":"), url
    if view.scheme == "http":
        assert is_loopback_host(view.host), (url, view.host)
    from urllib.parse import urlsplit

    assert urlsplit(url).scheme.lower() == view.scheme
    host = urlsplit(url).hostname or ""
    assert (idna_host(host) or "") == view.raw_host.decode("ascii").strip("[]"), url


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "http://127.0.0.1:3100/loki/api/v1/push",
        "http://[::1]:8080/",
        "https://usage-stats.skyplane.org/loki/api/v1/push",
    ],
)
def test_ordinary_endpoints_are_accepted(url: str) -> None:
    assert check_endpoint(url) == url


@pytest.mark.parametrize(
    ("host", "sent_as"),
    [
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        # IDNA 2003 maps ß to "ss", another domain; httpx (IDNA 2008) keeps it
        ("faß.example", "xn--fa-hia.example"),
        ("例え.jp", "xn--r8jz45g.jp"),
    ],
)
def test_international_hosts_are_checked_as_httpx_encodes_them(host: str, sent_as: str) -> None:
    url = f"https://{host}/ingest"
    assert check_endpoint(url) == url
    assert idna_host(host) == sent_as
    assert httpx.URL(url).raw_host.decode() == sent_as


@pytest.mark.parametrize("host", ["☃.example", "ⅷ.example"])
def test_hosts_only_idna_2003_accepts_are_refused(host: str) -> None:
    # Python's "idna" codec (IDNA 2003) encodes these; httpx refuses them
    with pytest.raises(InsecureEndpointError, match="valid host"):
        check_endpoint(f"https://{host}/ingest")
    with pytest.raises(httpx.InvalidURL):
        httpx.URL(f"https://{host}/ingest")
