"""The host-facing session: time a transfer, build its payload, spool it.

Standard library only, and nothing here may raise into the host: a full disk, a
hostile spool, a corrupt record or a broken policy is reported once on stderr
and swallowed. Only ``consent record`` (strict mode) turns bad input into errors.
"""

from __future__ import annotations

import functools
import sys
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from consent._exceptions import ConsentError
from consent.decision import decide
from consent.profile import DEFAULT_PROFILE, AppProfile

if TYPE_CHECKING:
    from consent.notices import NoticeText

__all__ = ["RecordOutcome", "Session", "record_session", "record_strict", "session"]

_reported: set[str] = set()


def _report_once(message: str) -> None:
    """Tell the user about a telemetry problem once per process, never more."""
    if message in _reported:
        return
    _reported.add(message)
    try:
        sys.stderr.write(f"consent: {message} (the transfer itself is not affected)\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


@functools.cache
def _installed_version(package: str) -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - stdlib
        return "unknown"
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class RecordOutcome:
    """What recording one session did."""

    session_id: str | None
    state: Literal["pending", "held", "disabled"]
    withheld: tuple[str, ...] = ()


def _record(
    *,
    argv: Sequence[str],
    src: str,
    dst: Sequence[str],
    runtime_s: float,
    throughput_gbps: float | None,
    error: str | None,
    host_version: str | None,
    safe_values: Collection[str],
    strict: bool,
    profile: AppProfile,
    environ: Mapping[str, str] | None,
    show_notice: Callable[[NoticeText], None] | None = None,
) -> RecordOutcome:
    """Record one session. With ``strict`` bad input raises; otherwise it is recorded as unknown."""
    from consent.actions import announce
    from consent.notices import print_plain
    from consent.payload import build_payload, encode_payload, project
    from consent.policy import load_policy
    from consent.record import utc_now
    from consent.scrub import normalize_region, scrub_arguments, scrub_text
    from consent.spool import Spool, State

    def region(tag: str) -> str:
        try:
            normalized: str = normalize_region(tag)
            return normalized
        except ConsentError:
            if strict:
                raise
            return "unknown"

    source_region = region(src)
    destinations = [region(tag) for tag in dst]
    if strict and (runtime_s < 0 or runtime_s != runtime_s):
        from consent._exceptions import InvalidValueError

        raise InvalidValueError("--runtime-s must be a number of seconds, zero or more.")

    decision = decide(profile, environ)
    if not decision.enabled:
        return RecordOutcome(None, "disabled")
    policy = load_policy(profile=profile, environ=environ)
    told = announce(policy, include_first=True, profile=profile, environ=environ)
    if told.notice is not None:
        (show_notice or print_plain)(told.notice)

    session_id = str(uuid.uuid4())
    assert told.record is not None  # include_first always leaves a record
    client_id = told.record.client_id
    ack = told.record.acknowledgement
    payload = build_payload(
        policy=policy,
        client_id=client_id,
        session_id=session_id,
        host_version=host_version or _installed_version(profile.host_package),
        source_region=source_region,
        destination_regions=destinations,
        arguments=scrub_arguments(argv, safe_values),
        runtime_s=max(runtime_s, 0.0),
        throughput_gbps=throughput_gbps,
        error=None if error is None else scrub_text(error),
        collected_at=utc_now(),
    )
    projected, withheld = project(payload, policy, ack.schema if ack else {})
    # nothing leaves the machine on the run that first told the user
    held = told.first or decision.review_before_upload
    state = State.HELD if held else State.PENDING

    # collection may have been turned off while the transfer ran
    if not decide(profile, environ).enabled:
        return RecordOutcome(None, "disabled")
    spool = Spool.open(profile, environ)
    for warning in spool.warnings:
        _report_once(warning)
    spool.write(client_id, session_id, encode_payload(projected), state, withheld=withheld)
    if state is State.PENDING:
        from consent.upload import start_background_flush

        start_background_flush(spool, profile=profile, environ=environ)
    return RecordOutcome(session_id, "held" if held else "pending", tuple(withheld))


def record_strict(
    *,
    argv: Sequence[str],
    src: str,
    dst: Sequence[str],
    runtime_s: float,
    throughput_gbps: float | None,
    error: str | None,
    host_version: str | None = None,
    profile: AppProfile = DEFAULT_PROFILE,
    show_notice: Callable[[NoticeText], None] | None = None,
) -> RecordOutcome:
    """Like :func:`record_session`, but bad input and failures raise :class:`ConsentError`."""
    return _record(
        argv=argv,
        src=src,
        dst=dst,
        runtime_s=runtime_s,
        throughput_gbps=throughput_gbps,
        error=error,
        host_version=host_version,
        safe_values=(),
        strict=True,
        profile=profile,
        environ=None,
        show_notice=show_notice,
    )


def record_session(
    *,
    argv: Sequence[str] = (),
    src: str,
    dst: Sequence[str],
    runtime_s: float,
    throughput_gbps: float | None = None,
    nbytes: int | None = None,
    error: str | BaseException | None = None,
    host_version: str | None = None,
    safe_values: Collection[str] = (),
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Record a finished session for hosts that hold the numbers. Never raises.

    Returns the session id, or ``None`` when nothing was recorded.
    """
    try:
        if throughput_gbps is None and nbytes is not None and runtime_s > 0:
            throughput_gbps = nbytes * 8 / runtime_s / 1e9
        error_text: str | None
        if isinstance(error, BaseException):
            from consent.scrub import scrub_error

            error_text = scrub_error(error)
        else:
            error_text = error
        outcome = _record(
            argv=argv,
            src=src,
            dst=dst,
            runtime_s=runtime_s,
            throughput_gbps=throughput_gbps,
            error=error_text,
            host_version=host_version,
            safe_values=safe_values,
            strict=False,
            profile=profile,
            environ=environ,
        )
    except ConsentError as exc:
        _report_once(f"usage statistics were not recorded: {exc}")
        return None
    except Exception as exc:  # the host must never fail because of telemetry
        _report_once(f"usage statistics were not recorded ({type(exc).__name__}: {exc})")
        return None
    return outcome.session_id


class Session:
    """Times one transfer; see :func:`session`."""

    def __init__(
        self,
        *,
        argv: Sequence[str],
        src: str,
        dst: Sequence[str],
        host_version: str | None,
        safe_values: Collection[str],
        profile: AppProfile,
        environ: Mapping[str, str] | None,
    ) -> None:
        self._argv = list(argv)
        self._src = src
        self._dst = list(dst)
        self._host_version = host_version
        self._safe_values = safe_values
        self._profile = profile
        self._environ = environ
        self._nbytes: int | None = None
        self._started = 0.0
        self._active = False
        self.session_id: str | None = None

    def transferred(self, nbytes: int) -> None:
        """Tell the session how many bytes moved, so throughput can be derived."""
        self._nbytes = nbytes

    def __enter__(self) -> Session:
        try:
            self._active = decide(self._profile, self._environ).enabled
        except Exception:
            self._active = False
        self._started = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if not self._active:
            return False
        runtime = time.monotonic() - self._started
        self.session_id = record_session(
            argv=self._argv,
            src=self._src,
            dst=self._dst,
            runtime_s=runtime,
            nbytes=self._nbytes,
            error=exc,
            host_version=self._host_version,
            safe_values=self._safe_values,
            profile=self._profile,
            environ=self._environ,
        )
        return False  # never swallow the host's exception


def session(
    argv: Sequence[str] = (),
    src: str = "local",
    dst: Sequence[str] = ("local",),
    *,
    host_version: str | None = None,
    safe_values: Collection[str] = (),
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
) -> Session:
    """Context manager that records one transfer session (see DESIGN §3.9).

    An exception inside the block is recorded (scrubbed) and re-raised unchanged.
    """
    return Session(
        argv=argv,
        src=src,
        dst=dst,
        host_version=host_version,
        safe_values=safe_values,
        profile=profile,
        environ=environ,
    )
