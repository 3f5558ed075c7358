"""consent: ask-first, show-everything anonymous usage statistics for CLI tools.

The decision path (``import consent; consent.is_enabled()``) and the session path
import only the standard library; the CLI lives in ``consent.cli``.

The host API lives here, in the module every host has already imported, because a
host that records one transfer per process pays for every module it loads
(bench/cold.py): :func:`session` and :func:`record_session` decide first, and
import the recording path (:mod:`consent._session`) only when collection is on. A
disabled session loads nothing beyond the decision path.
"""

from __future__ import annotations

import _thread  # loaded at interpreter start-up, unlike threading
import time

from consent._exceptions import ConsentError
from consent.decision import Decision, decide_in
from consent.profile import DEFAULT_PROFILE, AppProfile, Scope

TYPE_CHECKING = False  # importing typing for this would cost the decision path ~10 ms
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from types import TracebackType
    from typing import Literal

__all__ = [
    "ConsentError",
    "Decision",
    "Session",
    "__version__",
    "decide",
    "is_enabled",
    "record_session",
    "session",
]

__version__ = "0.1.0"

_lock = _thread.allocate_lock()
_reported: set[str] = set()
# Transfers named by a host's ``key``: open sessions take the figures of a
# record_session() made for the same key; finished ones answer repeats with their id.
_open: dict[str, Session] = {}
_done: dict[str, str] = {}
_DONE_KEPT = 1024  # a long-lived host must not grow this without bound


def decide(
    profile: AppProfile = DEFAULT_PROFILE, environ: Mapping[str, str] | None = None
) -> Decision:
    """Whether usage statistics are collected, which rule decided, and what looked wrong.

    Never raises: bad input fails closed, with a warning that says how to fix it.
    ``environ`` replaces ``os.environ`` for every rule and path.
    """
    return decide_in(Scope(profile, environ))


def is_enabled(
    profile: AppProfile = DEFAULT_PROFILE, environ: Mapping[str, str] | None = None
) -> bool:
    """Fast check for hosts: ``True`` only when collection is on. Never raises."""
    try:
        return decide_in(Scope(profile, environ)).enabled
    except Exception:  # the host must never fail because of telemetry
        return False


def _report_once(message: str, key: str | None = None) -> None:
    """Tell the user about a kind of telemetry problem once per process, never more.

    ``key`` names the kind; messages of one kind differ in details such as the
    session's directory, and a long-running host must not print a line per transfer.
    """
    kind = key or message
    with _lock:
        if kind in _reported:
            return
        _reported.add(kind)
    try:
        import sys

        sys.stderr.write(f"consent: {message} (the transfer itself is not affected)\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # stderr closed or replaced by None: there is nobody left to tell


class StatusText(str):
    """An error text the library writes itself (``exit status 3``): nothing to scrub."""

    __slots__ = ()


def _destinations(dst: str | Sequence[str] | None) -> list[str] | None:
    # a plain string is one destination, not one per character
    if dst is None:
        return None
    return [dst] if isinstance(dst, str) else list(dst)


def _claim(key: str, session_id: str) -> None:
    """Remember that ``key``'s payload is (being) written as ``session_id``. Holds ``_lock``."""
    _done[key] = session_id
    while len(_done) > _DONE_KEPT:
        del _done[next(iter(_done))]


def _unclaim(key: str, session_id: str) -> None:
    with _lock:
        if _done.get(key) == session_id:
            del _done[key]


class Session:
    """Times one transfer; see :func:`session`. Thread-safe."""

    __slots__ = (
        "_active",
        "_argv",
        "_dst",
        "_environ",
        "_error",
        "_host_version",
        "_id",
        "_into",
        "_key",
        "_known_flags",
        "_nbytes",
        "_profile",
        "_runtime",
        "_safe_values",
        "_scope",
        "_src",
        "_started",
        "_throughput",
        "_warnings",
        "session_id",
    )

    def __init__(
        self,
        *,
        argv: Sequence[str],
        src: str,
        dst: str | Sequence[str],
        host_version: str | None,
        safe_values: Collection[str],
        known_flags: Collection[str],
        key: str | None,
        profile: AppProfile,
        environ: Mapping[str, str] | None,
    ) -> None:
        # Copied now: the host may reuse or mutate its lists while the transfer runs.
        self._argv = list(argv)
        self._src = src
        self._dst = _destinations(dst) or []
        self._host_version = host_version
        self._safe_values = list(safe_values)
        self._known_flags = list(known_flags)
        self._key = key
        self._profile = profile
        self._environ = environ
        self._scope: Scope | None = None  # built on entry, inside the never-raise guard
        self._nbytes: object = None
        self._runtime: float | None = None
        self._throughput: float | None = None
        self._error: BaseException | str | None = None
        self._id: str | None = None
        self._into: Session | None = None
        self._started = 0.0
        self._active = False
        self._warnings: tuple[str, ...] = ()
        self.session_id: str | None = None
        """The recorded session's id after the block, or ``None`` if nothing was recorded."""

    # -- what the host tells the session inside the block -------------------------------
    def route(self, src: str | None = None, dst: str | Sequence[str] | None = None) -> None:
        """Set or correct the region tags once the host knows them; ``None`` keeps one.

        A plain string ``dst`` is one destination.
        """
        destinations = _destinations(dst)
        with _lock:
            if src is not None:
                self._src = src
            if destinations is not None:
                self._dst = destinations

    def transferred(self, nbytes: int) -> None:
        """Tell the session how many bytes moved in total, so throughput can be derived.

        A value that is not a count of bytes is ignored rather than raised on.
        """
        self._nbytes = nbytes

    def failed(self, error: BaseException | str) -> None:
        """Mark the transfer failed without raising; ``error`` is recorded scrubbed.

        For a host that reports failures by return code or catches its own errors.
        """
        with _lock:
            self._error = error

    def outcome(self, returncode: int) -> None:
        """Mark the transfer's result by exit status: 0 is a success.

        A non-zero status is recorded as the error ``exit status N``, unless
        :meth:`failed` already gave the error.
        """
        with _lock:
            if isinstance(returncode, int) and returncode != 0:
                if self._error is None or isinstance(self._error, StatusText):
                    self._error = StatusText(f"exit status {int(returncode)}")
            elif isinstance(self._error, StatusText):
                self._error = None  # a later zero corrects an earlier status

    def _merge(
        self,
        *,
        argv: Sequence[str],
        src: str | None,
        dst: str | Sequence[str] | None,
        runtime_s: float | None,
        throughput_gbps: float | None,
        nbytes: object,
        error: BaseException | str | None,
        host_version: str | None,
        safe_values: Collection[str],
        known_flags: Collection[str],
    ) -> str:
        """Take another record of the same transfer into this open session. Holds ``_lock``.

        Its figures win over the block's own measurements: the host that measured the
        transfer (a tracker) knows them better than the wrapper around it.
        """
        target = self._into or self
        if src is not None:
            target._src = src
        destinations = _destinations(dst)
        if destinations is not None:
            target._dst = destinations
        if runtime_s is not None:
            target._runtime = runtime_s
        if throughput_gbps is not None:
            target._throughput = throughput_gbps
        if nbytes is not None:
            target._nbytes = nbytes
        if error is not None:
            target._error = error
        if argv and not target._argv:
            target._argv = list(argv)
        if host_version is not None and target._host_version is None:
            target._host_version = host_version
        target._safe_values += list(safe_values)
        target._known_flags += list(known_flags)
        if target._id is None:
            from consent.payload import random_uuid4

            target._id = random_uuid4()
        return target._id

    # -- the block -------------------------------------------------------------------------
    def __enter__(self) -> Session:
        try:
            self._scope = Scope(self._profile, self._environ)
            decision = decide_in(self._scope)
            self._active, self._warnings = decision.enabled, decision.warnings
        except Exception:  # decide() does not raise; this is the belt to its braces
            self._active = False
        if self._active and self._key is not None:
            with _lock:
                done = _done.get(self._key)
                outer = _open.get(self._key)
                if done is not None:
                    # this transfer is recorded already: a repeat records nothing more
                    self._active = False
                    self.session_id = done
                elif outer is not None:
                    self._into = outer  # the same transfer, wrapped twice
                else:
                    _open[self._key] = self
        self._started = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            exc = None  # sys.exit(0) inside the block is a successful run
        if not self._active:
            # A broken setting turned collection off: say so once, as the CLI would.
            for warning in self._warnings:
                _report_once(warning)
            return False
        runtime = time.monotonic() - self._started
        with _lock:
            if exc is not None:
                self._error = exc  # what ended the block is what failed it
            if self._into is not None:
                # An inner wrapper's regions count only where it knew more than the
                # defaults; the outer session measures the runtime.
                self.session_id = self._merge(
                    argv=self._argv,
                    src=None if self._src == "local" else self._src,
                    dst=None if self._dst == ["local"] else self._dst,
                    runtime_s=None,
                    throughput_gbps=self._throughput,
                    nbytes=self._nbytes,
                    error=self._error,
                    host_version=self._host_version,
                    safe_values=self._safe_values,
                    known_flags=self._known_flags,
                )
                return False
            if self._key is not None:
                _open.pop(self._key, None)
                if self._id is None:
                    from consent.payload import random_uuid4

                    self._id = random_uuid4()
                _claim(self._key, self._id)
            figures = {
                "argv": self._argv,
                "src": self._src,
                "dst": self._dst,
                "runtime_s": runtime if self._runtime is None else self._runtime,
                "throughput_gbps": self._throughput,
                "nbytes": self._nbytes,
                "error": self._error,
                "host_version": self._host_version,
                "safe_values": self._safe_values,
                "known_flags": self._known_flags,
            }
        self.session_id = _record(
            **figures,
            session_id=self._id,
            scope=self._scope,
        )
        if self._key is not None and self._id is not None and self.session_id is None:
            _unclaim(self._key, self._id)
        return False  # never swallow the host's exception


def session(
    argv: Sequence[str] = (),
    src: str = "local",
    dst: str | Sequence[str] = ("local",),
    *,
    host_version: str | None = None,
    safe_values: Collection[str] = (),
    known_flags: Collection[str] = (),
    key: str | None = None,
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
) -> Session:
    """Context manager that records one transfer session (docs/architecture.md §3.9).

    Runtime is measured. Inside the block: ``s.route(src, dst)`` sets the regions once
    known, ``s.transferred(nbytes)`` derives throughput, ``s.failed(error)`` or
    ``s.outcome(returncode)`` marks a failure without raising. An exception inside
    the block is recorded (scrubbed) and re-raised unchanged. Collection is checked on
    entry and again on exit, so turning it off during a long transfer takes effect
    for that transfer. ``key`` names the transfer: a :func:`record_session` with the
    same key, from any thread, merges into this session instead of writing its own.
    """
    return Session(
        argv=argv,
        src=src,
        dst=dst,
        host_version=host_version,
        safe_values=safe_values,
        known_flags=known_flags,
        key=key,
        profile=profile,
        environ=environ,
    )


def record_session(
    *,
    argv: Sequence[str] = (),
    src: str,
    dst: str | Sequence[str],
    runtime_s: float,
    throughput_gbps: float | None = None,
    nbytes: int | None = None,
    error: str | BaseException | None = None,
    host_version: str | None = None,
    safe_values: Collection[str] = (),
    known_flags: Collection[str] = (),
    key: str | None = None,
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Record a finished session for hosts that hold the numbers. Never raises; thread-safe.

    ``throughput_gbps`` is derived from ``nbytes`` when not given. ``error`` is an
    exception or its text; either is scrubbed, once. A plain string ``dst`` is one
    destination. With ``key``, a session open under the same key takes these figures
    instead, and a repeat of a key already recorded is ignored; both return that
    session's id. Returns the session id, or ``None`` when nothing was recorded
    (collection off, or a problem reported on stderr).
    """
    try:
        claimed: str | None = None
        figures = {
            "argv": argv,
            "src": src,
            "dst": dst,
            "runtime_s": runtime_s,
            "throughput_gbps": throughput_gbps,
            "nbytes": nbytes,
            "error": error,
            "host_version": host_version,
            "safe_values": safe_values,
            "known_flags": known_flags,
        }
        if key is not None:
            with _lock:
                done = _done.get(key)
                if done is not None:
                    return done
                open_session = _open.get(key)
                if open_session is not None:
                    return open_session._merge(**figures)  # type: ignore[arg-type]
        scope = Scope(profile, environ)
        decision = decide_in(scope)
        if not decision.enabled:
            for warning in decision.warnings:
                _report_once(warning)
            return None
        if key is not None:
            from consent.payload import random_uuid4

            with _lock:
                done = _done.get(key)
                if done is not None:
                    return done
                claimed = random_uuid4()
                _claim(key, claimed)
        figures["dst"] = _destinations(dst) or []
        recorded = _record(
            **figures,
            session_id=claimed,
            scope=scope,
            decision=decision,
        )
        if key is not None and claimed is not None and recorded is None:
            _unclaim(key, claimed)
        return recorded
    except Exception as exc:  # the host must never fail because of telemetry
        _report_once(
            f"usage statistics were not recorded ({type(exc).__name__})", key=type(exc).__name__
        )
        return None


def _record(**figures: object) -> str | None:
    """Record one session through the recording path; reports problems, never raises."""
    try:
        error = figures.get("error")
        # an exit status is recorded as it is: only an exception or a text is scrubbed
        _load_recording_path(scrubs_text=error is not None and not isinstance(error, StatusText))
        from consent import _session

        return _session.record_reported(**figures)
    except Exception as exc:  # the host must never fail because of telemetry
        _report_once(
            f"usage statistics were not recorded ({type(exc).__name__})", key=type(exc).__name__
        )
        return None


_RECORDING_PATH = (
    "consent._session",
    "consent._spoolwrite",
    "consent._time",
    "consent.payload",
    "consent.scrub",
)
_loading = _thread.allocate_lock()


def _load_recording_path(*, scrubs_text: bool) -> None:
    """Import what recording needs, the first time, with the cyclic collector paused.

    The first recording in a process imports the recording path (and, for an error,
    the text scrubber): a few thousand objects that live as long as the process. A
    collection every 700 of them while they are made would only walk them again, and
    each one brings closer the host's next collection of its older objects; paused,
    the host's next collection takes them in one pass (docs/architecture.md §5).

    Only imports run paused: no I/O, no wait on a lock of the spool, no host code, a
    millisecond or two, once per process. One recording at a time pauses it, and the
    collector is resumed only if it was on.
    """
    import sys

    wanted = _RECORDING_PATH + (("consent.scrub.text",) if scrubs_text else ())
    if all(name in sys.modules for name in wanted):
        return  # a later recording: nothing to import, nothing to pause
    import gc

    with _loading:
        collecting = gc.isenabled()
        try:
            gc.disable()
            for name in wanted:
                __import__(name)
        finally:
            if collecting:
                gc.enable()
