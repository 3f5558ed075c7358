"""The host-facing session: time a transfer, build its payload, spool it.

Standard library only, and nothing here may raise into the host: a full disk, a
hostile spool, a corrupt record or a broken policy is reported once on stderr
and swallowed. Only ``consent record`` (strict mode) turns bad input into errors.

The module is private (``_session``) so that the package attribute
``consent.session`` is always the context-manager function, never the submodule.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from consent._exceptions import ConsentError, InvalidValueError
from consent.decision import decide
from consent.profile import DEFAULT_PROFILE, AppProfile

if TYPE_CHECKING:
    from consent.notices import NoticeText
    from consent.policy import Policy

__all__ = ["RecordOutcome", "Session", "record_session", "record_strict", "session"]

# A host version is sent verbatim, so it must look like one: `consent record
# --host-version` is free text from another program.
_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}")

_reported: set[str] = set()


def _report_once(message: str, key: str | None = None) -> None:
    """Tell the user about a kind of telemetry problem once per process, never more.

    ``key`` names the kind; messages of one kind differ in details such as the
    session's directory, and a long-running host must not print a line per transfer.
    """
    kind = key or message
    if kind in _reported:
        return
    _reported.add(kind)
    try:
        sys.stderr.write(f"consent: {message} (the transfer itself is not affected)\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # stderr closed or replaced by None: there is nobody left to tell


@functools.cache
def _installed_version(package: str) -> str:
    """The installed version of ``package``, read from its ``.dist-info`` directory name.

    ``importlib.metadata`` would answer the same, but importing it (email, zipfile,
    csv, socket...) and scanning every distribution costs ~30 ms at the end of each
    host run; listing the ``sys.path`` directories costs well under one.
    """
    wanted = re.sub(r"[-_.]+", "_", package).lower()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            if not dot or suffix not in ("dist-info", "egg-info"):
                continue
            dist, _, found = stem.partition("-")
            if re.sub(r"[-_.]+", "_", dist).lower() == wanted:
                return found if _VERSION_RE.fullmatch(found) else "unknown"
    return "unknown"


def _host_version(explicit: str | None, profile: AppProfile, *, strict: bool) -> str:
    if explicit is not None:
        if _VERSION_RE.fullmatch(explicit):
            return explicit
        if strict:
            raise InvalidValueError(
                "--host-version must be a version such as 0.3.2: letters, digits, '.', '+', "
                "'!', '_' or '-', at most 64 characters."
            )
        return "unknown"
    # A host that is already imported knows its version, for free; the fallback
    # lists every sys.path directory.
    module = sys.modules.get(profile.host_package)
    found = getattr(module, "__version__", None)
    if isinstance(found, str) and _VERSION_RE.fullmatch(found):
        return found
    return _installed_version(profile.host_package)


_policy_cache: dict[str, tuple[tuple[int, int, int, int], Policy]] = {}


def _load_policy(profile: AppProfile, environ: Mapping[str, str] | None) -> Policy:
    """The policy in force, parsed once per file version.

    Parsing and validating the TOML is most of the cost of recording a session, and
    a long-lived host records many. The key is the file's identity and mtime, so an
    edited or replaced policy file is read again.
    """
    from consent.policy import load_policy

    path = profile.policy_path(environ)
    try:
        st = os.stat(path)
    except OSError:
        return load_policy(path, profile=profile, environ=environ)  # raises the clear error
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _policy_cache.get(str(path))
    if cached is not None and cached[0] == key:
        return cached[1]
    policy = load_policy(path, profile=profile, environ=environ)
    _policy_cache[str(path)] = (key, policy)
    return policy


def _non_negative(value: float | None) -> float | None:
    """``value`` if it is a finite number >= 0; ``None`` otherwise (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


@dataclass(frozen=True)
class RecordOutcome:
    """What recording one session did."""

    session_id: str | None
    state: Literal["pending", "held", "disabled"]
    withheld: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    """Problems that did not stop the recording: bad settings, a fallback spool, no flush."""


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
    from consent.scrub import normalize_region

    def region(tag: str) -> str:
        try:
            normalized: str = normalize_region(tag)
        except ConsentError:
            if strict:
                raise
            return "unknown"
        return normalized

    source_region = region(src)
    destinations = [region(tag) for tag in dst]
    runtime = _non_negative(runtime_s)
    throughput = _non_negative(throughput_gbps)
    if strict:
        # Bad input is an error even while collection is off: the caller's bug should
        # show up the same way whatever the user's setting.
        if not destinations:
            raise InvalidValueError("Give at least one --dst region tag.")
        if runtime is None:
            raise InvalidValueError("--runtime-s must be a finite number of seconds, zero or more.")
        if throughput_gbps is not None and throughput is None:
            raise InvalidValueError("--gbps must be a finite number, zero or more.")
    version = _host_version(host_version, profile, strict=strict)

    decision = decide(profile, environ)
    warnings = list(decision.warnings)
    if not decision.enabled:
        return RecordOutcome(None, "disabled", warnings=tuple(warnings))

    from consent.actions import announce
    from consent.notices import print_plain
    from consent.payload import build_payload, encode_payload, project
    from consent.record import utc_now
    from consent.scrub import scrub_arguments, scrub_text
    from consent.spool import Spool, State

    policy = _load_policy(profile, environ)
    told = announce(policy, include_first=True, profile=profile, environ=environ)
    if told.notice is not None:
        (show_notice or print_plain)(told.notice)
    if told.record is None:  # include_first always leaves a record; fail closed if not
        raise ConsentError("The consent record could not be created.")

    session_id = str(uuid.uuid4())
    client_id = told.record.client_id
    ack = told.record.acknowledgement
    payload = build_payload(
        policy=policy,
        client_id=client_id,
        session_id=session_id,
        host_version=version,
        source_region=source_region,
        destination_regions=destinations,
        arguments=scrub_arguments(argv, safe_values),
        runtime_s=runtime,
        throughput_gbps=throughput,
        error=None if error is None else scrub_text(error),
        collected_at=utc_now(),
    )
    projected, withheld = project(payload, policy, ack.schema if ack else {})
    # nothing leaves the machine on the run that first told the user
    held = told.first or decision.review_before_upload
    state = State.HELD if held else State.PENDING

    # Checked again just before writing: an opt-out while the notice was shown or the
    # payload built must still win, and the check costs tens of microseconds.
    if not decide(profile, environ).enabled:
        return RecordOutcome(None, "disabled", warnings=tuple(warnings))
    spool = Spool.open(profile, environ)
    warnings += spool.warnings
    spool.write(client_id, session_id, encode_payload(projected), state, withheld=withheld)
    if state is State.PENDING:
        # The payload is safe on disk now; failing to start the sender only delays it.
        try:
            from consent.upload import start_background_flush

            start_background_flush(spool, profile=profile, environ=environ)
        except Exception as exc:
            warnings.append(
                f"the background upload could not start ({type(exc).__name__}); the payload "
                f"stays pending for `{profile.cli_name} stats send`"
            )
    return RecordOutcome(
        session_id, "held" if held else "pending", tuple(withheld), tuple(warnings)
    )


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
    environ: Mapping[str, str] | None = None,
    show_notice: Callable[[NoticeText], None] | None = None,
) -> RecordOutcome:
    """Like :func:`record_session`, but bad input and failures raise :class:`ConsentError`.

    Problems that did not stop the recording come back in ``RecordOutcome.warnings``.
    """
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
        environ=environ,
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

    ``throughput_gbps`` is derived from ``nbytes`` when not given. ``error`` is an
    exception or its text; either is scrubbed. Returns the session id, or ``None``
    when nothing was recorded (collection off, or a problem reported on stderr).
    """
    try:
        if throughput_gbps is None and nbytes is not None:
            moved, seconds = _non_negative(nbytes), _non_negative(runtime_s)
            if moved is not None and seconds:
                throughput_gbps = moved * 8 / seconds / 1e9
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
        _report_once(f"usage statistics were not recorded: {exc}", key=type(exc).__name__)
        return None
    except Exception as exc:  # the host must never fail because of telemetry
        _report_once(
            f"usage statistics were not recorded ({type(exc).__name__}: {exc})",
            key=type(exc).__name__,
        )
        return None
    for warning in outcome.warnings:
        _report_once(warning)
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
        # Copied now: the host may reuse or mutate its lists while the transfer runs.
        self._argv = list(argv)
        self._src = src
        self._dst = list(dst)
        self._host_version = host_version
        self._safe_values = safe_values
        self._profile = profile
        self._environ = environ
        self._nbytes: float | None = None
        self._started = 0.0
        self._active = False
        self._warnings: tuple[str, ...] = ()
        self.session_id: str | None = None
        """The recorded session's id after the block, or ``None`` if nothing was recorded."""

    def transferred(self, nbytes: int) -> None:
        """Tell the session how many bytes moved in total, so throughput can be derived.

        A value that is not a count of bytes is ignored rather than raised on.
        """
        self._nbytes = _non_negative(nbytes)

    def __enter__(self) -> Session:
        try:
            decision = decide(self._profile, self._environ)
            self._active, self._warnings = decision.enabled, decision.warnings
        except Exception:  # decide() does not raise; this is the belt to its braces
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
            # A broken setting turned collection off: say so once, as the CLI would.
            for warning in self._warnings:
                _report_once(warning)
            return False
        runtime = time.monotonic() - self._started
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            exc = None  # sys.exit(0) inside the block is a successful run
        self.session_id = record_session(
            argv=self._argv,
            src=self._src,
            dst=self._dst,
            runtime_s=runtime,
            nbytes=None if self._nbytes is None else int(self._nbytes),
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

    Runtime is measured; call ``s.transferred(nbytes)`` inside the block to derive
    throughput. An exception inside the block is recorded (scrubbed) and re-raised
    unchanged. Collection is checked on entry and again on exit, so turning it off
    during a long transfer takes effect for that transfer.
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
