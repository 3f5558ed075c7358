"""HTTP with retries: one POST bounded in wall time, retried with backoff and jitter.

5xx, 408, 425, 429 and network errors are retried with exponential backoff and
jitter, a few times per run, within a window; a ``Retry-After`` (seconds or an HTTP
date) replaces our own delay. Any other 4xx is the receiver's final word. httpx is
imported inside the functions that need it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_LIMITS", "Limits"]

_SNIPPET = 200
# Receivers answer these when they are busy or early, not when the payload is bad.
_RETRY_4XX = frozenset({408, 425, 429})
_MAX_RETRY_AFTER_S = 86400.0


@dataclass(frozen=True)
class Limits:
    """Timeouts, retries and batch sizes of one run; the defaults are the contract."""

    connect_timeout_s: float = 2.0
    request_timeout_s: float = 5.0
    attempts: int = 3
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 4.0
    retry_window_s: float = 10.0
    """A retry starts only if it can end (at its timeout) this soon after the first try."""
    max_body_bytes: int = 512 * 1024
    """Below nginx's default 1 MiB request cap, which often fronts Loki."""
    max_batch: int = 1000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class _Answer:
    status: int | None  # None: no HTTP answer (network error or timeout)
    detail: str
    retry_after: float | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500 or self.status in _RETRY_4XX

    @property
    def refused(self) -> bool:
        return self.status is not None and 400 <= self.status < 500 and not self.retryable


def _client(url: str, limits: Limits) -> httpx.Client:
    import httpx

    from consent import __version__
    from consent._urls import is_loopback_host

    host = httpx.URL(url).host
    return httpx.Client(
        timeout=httpx.Timeout(limits.request_timeout_s, connect=limits.connect_timeout_s),
        follow_redirects=False,  # a redirect could lead to plain http or elsewhere
        # proxies and CA settings from the environment matter to enterprises, never
        # to a receiver on this machine
        trust_env=not is_loopback_host(host),
        headers={"User-Agent": f"consent/{__version__}"},
    )


def _printable(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(cleaned.split())[:_SNIPPET]


def _retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date.

    A date in the past means "now" (0). A value we cannot read, or a wait of a day or
    more, is ignored: our own backoff applies instead.
    """
    if value is None:
        return None
    text = value.strip()
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _seconds_until(text, time.time() if now is None else now)
    return seconds if seconds is not None and 0 <= seconds < _MAX_RETRY_AFTER_S else None


def _seconds_until(http_date: str, now: float) -> float | None:
    """The wait until an HTTP date (RFC 9110 §5.6.7, all three forms), or None."""
    import email.utils

    try:
        moment = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        # asctime() form, or "-0000": HTTP dates are always in GMT (RFC 9110)
        import datetime as dt

        moment = moment.replace(tzinfo=dt.UTC)
    return max(0.0, moment.timestamp() - now)


def _post(
    client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], limits: Limits
) -> _Answer:
    """One POST, bounded in wall time.

    httpx's timeouts bound each read, not the whole answer: a server that sends its
    headers a byte at a time would keep a send alive for ever. So the request runs in
    a worker thread and is abandoned at the deadline; a timed-out endpoint is not
    used again in this run, and the daemon thread ends with the process.
    """
    import threading

    answers: list[_Answer] = []

    def post() -> None:
        try:
            answers.append(_post_now(client, url, body, headers, limits))
        except Exception as exc:  # reported as the endpoint's failure, never raised
            answers.append(_Answer(None, _network_detail(exc)))

    worker = threading.Thread(target=post, name="consent-post", daemon=True)
    worker.start()
    worker.join(limits.request_timeout_s + 1.0)
    return answers[0] if answers else _Answer(None, "no answer in time")


def _post_now(
    client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], limits: Limits
) -> _Answer:
    import httpx

    deadline = time.monotonic() + limits.request_timeout_s
    try:
        with client.stream("POST", url, content=body, headers=headers) as response:
            status = response.status_code
            # Read a 2xx body to the end so the connection can be kept alive, and only
            # the start of any other: it is shown to the user, never trusted.
            cap = 64 * 1024 if 200 <= status < 300 else 2 * _SNIPPET
            seen = b""
            # raw bytes: the body is never used, so never inflate a compressed one
            for chunk in response.iter_raw():
                seen += chunk
                if len(seen) >= cap or time.monotonic() > deadline:
                    break
            retry_after = _retry_after(response.headers.get("Retry-After"))
    except httpx.TimeoutException:
        return _Answer(None, "no answer in time")
    except httpx.HTTPError as exc:
        return _Answer(None, _network_detail(exc))
    except OSError as exc:
        return _Answer(None, exc.strerror or type(exc).__name__)
    if 300 <= status < 400:
        location = response.headers.get("Location", "elsewhere")
        return _Answer(status, f"HTTP {status}, a redirect to {_printable(location.encode())}")
    snippet = _printable(seen) if status >= 400 else ""
    return _Answer(status, f"HTTP {status}" + (f": {snippet}" if snippet else ""), retry_after)


def _network_detail(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return _printable(text.encode())


def _backoff_delay(attempt: int, limits: Limits, retry_after: float | None) -> float:
    import random

    if retry_after is not None:
        return retry_after
    ceiling = min(limits.backoff_cap_s, limits.backoff_base_s * 2.0**attempt)
    # "equal jitter": never less than half the ceiling, so retries stay spread out
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret


def _deliver(
    client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], limits: Limits
) -> _Answer:
    """POST with retries; the last answer, whose detail says how often it was tried."""
    first = time.monotonic()
    tries = 0
    while True:
        answer = _post(client, url, body, headers, limits)
        tries += 1
        if not answer.retryable or tries >= limits.attempts:
            break
        delay = _backoff_delay(tries - 1, limits, answer.retry_after)
        # Only a retry that can end inside the window starts: a black hole that eats
        # the whole timeout is tried once per run, a fast 5xx several times.
        if time.monotonic() + delay + limits.request_timeout_s - first > limits.retry_window_s:
            break
        time.sleep(delay)
    if answer.retryable and tries > 1:
        return _Answer(answer.status, f"{answer.detail} (tried {tries} times)", answer.retry_after)
    return answer
