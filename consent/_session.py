"""The recording path: build one session's payload, scrub it, spool it.

Standard library only, and nothing here may raise into the host: a full disk, a
hostile spool, a corrupt record or a broken policy is reported once on stderr
and swallowed. Only ``consent record`` (strict mode) turns bad input into errors.

The host API (:func:`consent.session`, :func:`consent.record_session`) lives in
``consent/__init__.py`` and imports this module only once collection is on. Here,
in turn, a run imports only what building, scrubbing and writing one payload need
(docs/architecture.md §5, bench/cold.py):

- the acknowledged schema, the client id and the policy's fields come from a small
  cache beside the consent record, valid while the policy file and the record are
  the files it was made from (same inode, size, mtime and ctime). Only when it is
  stale, or a notice is due, are the TOML files parsed and the notices loaded;
- no ``dataclasses``, ``typing``, ``re``, ``json``, ``uuid``, ``datetime`` or
  ``pathlib``: the payload module writes JSON with the C encoder, ids come from
  ``os.urandom``, and the session is spooled by :mod:`consent._spoolwrite`.
"""

from __future__ import annotations

import os
import sys

from consent import Session, StatusText, _report_once, record_session, session
from consent._exceptions import ConsentError, InvalidValueError
from consent.decision import decide_in

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence
    from typing import Any, Literal

    from consent.decision import Decision
    from consent.notices import NoticeText
    from consent.policy import Policy
    from consent.profile import AppProfile, Scope

__all__ = [
    "RecordOutcome",
    "Session",
    "StatusText",
    "record_reported",
    "record_session",
    "record_strict",
    "session",
]

# A host version is sent verbatim, so it must look like one: `consent record
# --host-version` is free text from another program. (A character set, not a regex:
# `re` alone costs half the budget of a cold session.)
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_VERSION_CHARS = _ALNUM | frozenset(".+!_-")
_CACHE_NAME = "consent-cache.json"
_CACHE_FORMAT = 1


def _is_version(text: str) -> bool:
    return (
        0 < len(text) <= 64 and text[0] in _ALNUM and all(char in _VERSION_CHARS for char in text)
    )


def _dist_key(name: str) -> str:
    """A distribution name normalised as ``re.sub(r"[-_.]+", "_", name).lower()``."""
    out: list[str] = []
    for char in name.lower():
        if char in "-_.":
            if not out or out[-1] != "_":
                out.append("_")
        else:
            out.append(char)
    return "".join(out)


_versions: dict[str, str] = {}
_METADATA_SUFFIXES = (".dist-info", ".egg-info")
# the standard library's own directories (os.py lives in the first); none where os has
# no file (an embedded interpreter), and then every directory is listed
_STDLIB = os.path.dirname(getattr(os, "__file__", None) or "")
_STDLIB_DIRS = frozenset({_STDLIB, os.path.join(_STDLIB, "lib-dynload")} if _STDLIB else ())


def _installed_version(package: str) -> str:
    """The installed version of ``package``, read from its ``.dist-info`` directory name.

    ``importlib.metadata`` would answer the same, but importing it (email, zipfile,
    csv, socket...) and scanning every distribution costs ~30 ms at the end of each
    host run; listing the ``sys.path`` directories costs well under one.
    """
    if package in _versions:
        return _versions[package]
    wanted, found = _dist_key(package), "unknown"
    for entry in sys.path:
        if entry in _STDLIB_DIRS:
            continue  # hundreds of modules, and no distribution is installed there
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if not name.endswith(_METADATA_SUFFIXES):
                continue
            stem = name.rpartition(".")[0]
            dist, _, version = stem.partition("-")
            if _dist_key(dist) == wanted:
                found = version if _is_version(version) else "unknown"
                break
        else:
            continue
        break
    _versions[package] = found
    return found


def _host_version(explicit: str | None, profile: AppProfile, *, strict: bool) -> str:
    if explicit is None:
        explicit = profile.host_version  # what the host set on its profile, if anything
    if explicit is not None:
        if isinstance(explicit, str) and _is_version(explicit):
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
    if isinstance(found, str) and _is_version(found):
        return found
    return _installed_version(profile.host_package)


def _non_negative(value: object) -> float | None:
    """``value`` if it is a finite number >= 0; ``None`` otherwise (bools are not numbers)."""
    from consent.payload import is_finite  # loaded for the payload anyway

    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if is_finite(number) and number >= 0 else None


class RecordOutcome:
    """What recording one session did."""

    __slots__ = ("session_id", "state", "warnings", "withheld")

    def __init__(
        self,
        session_id: str | None,
        state: Literal["pending", "held", "disabled"],
        withheld: tuple[str, ...] = (),
        warnings: tuple[str, ...] = (),
    ) -> None:
        self.session_id = session_id
        self.state: Literal["pending", "held", "disabled"] = state
        self.withheld = withheld
        self.warnings = warnings
        """Problems that did not stop the recording: bad settings, a fallback spool, no flush."""

    def __repr__(self) -> str:
        return (
            f"RecordOutcome(session_id={self.session_id!r}, state={self.state!r}, "
            f"withheld={self.withheld!r}, warnings={self.warnings!r})"
        )


# -- what the user acknowledged: the cache and the full path ------------------------------


class _Terms:
    """What one payload needs from the policy and the consent record."""

    __slots__ = ("acknowledged", "client_id", "fields", "first", "parsed", "version")

    def __init__(
        self,
        version: int,
        fields: list[tuple[str, str, str]],
        client_id: str,
        acknowledged: dict[str, tuple[str, str]],
        first: bool = False,
        parsed: Policy | None = None,
    ) -> None:
        self.version = version
        self.fields = fields
        """``(name, type, category)`` of every policy field, in policy order."""
        self.client_id = client_id
        self.acknowledged = acknowledged
        self.first = first
        """The first notice was shown on this run: its payload is held."""
        self.parsed = parsed
        """The policy, when these terms were read from the TOML files, not the cache."""


def _file_key(path: str) -> list[object] | None:
    """What identifies one version of a file: replaced or edited, some part changes."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return [path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _cached_terms(scope: Scope) -> _Terms | None:
    """The terms from the cache, or ``None`` when there is none or it is stale."""
    from consent.config import parse_json

    try:
        with open(os.path.join(scope.config_dir, _CACHE_NAME), "rb") as handle:
            doc = parse_json(handle.read())
    except (OSError, ValueError, RecursionError):
        return None
    try:
        if not isinstance(doc, dict) or doc.get("format") != _CACHE_FORMAT:
            return None
        if doc["policy"] != _file_key(scope.policy_file):
            return None
        if doc["record"] != _file_key(scope.record_file):
            return None
        version, client_id = doc["version"], doc["client_id"]
        fields = [(str(n), str(t), str(c)) for n, t, c in doc["fields"]]
        acknowledged = {str(n): (str(t), str(c)) for n, (t, c) in doc["acknowledged"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if type(version) is not int or not isinstance(client_id, str):
        return None
    return _Terms(version, fields, client_id, acknowledged)


def _save_terms(scope: Scope, policy: Policy) -> None:
    """Cache the terms once no notice is due, if the files on disk are those just read.

    Both files are identified before and after they are read: a change by another
    process in between leaves no cache, never a stale one.
    """
    from consent.notices import policy_status
    from consent.policy import load_policy
    from consent.record import load_record

    policy_path, record_path = scope.policy_file, scope.record_file
    policy_key, record_key = _file_key(policy_path), _file_key(record_path)
    if policy_key is None or record_key is None:
        return
    try:
        record = load_record(record_path)
        on_disk = load_policy(policy.path)
    except ConsentError:
        return
    if record is None or record.acknowledgement is None:
        return
    if _file_key(policy_path) != policy_key or _file_key(record_path) != record_key:
        return
    if on_disk.schema != policy.schema or on_disk.version != policy.version:
        return
    status = policy_status(on_disk, record)
    if not (status.kind == "up_to_date" or status.already_notified):
        return  # a notice is still due: the next run must see it
    from consent._spoolwrite import atomic_write
    from consent.payload import dumps_json

    doc = {
        "format": _CACHE_FORMAT,
        "policy": policy_key,
        "record": record_key,
        "version": on_disk.version,
        "fields": [[name, spec.type, spec.category] for name, spec in on_disk.fields.items()],
        "client_id": record.client_id,
        "acknowledged": {name: list(kind) for name, kind in record.acknowledgement.schema.items()},
    }
    path = os.path.join(scope.config_dir, _CACHE_NAME)
    try:  # noqa: SIM105 - contextlib is not loaded on this path
        atomic_write(path, (dumps_json(doc) + "\n").encode(), durable=False)
    except (OSError, ValueError):
        pass  # only a cache: the next run reads the TOML files again


_policy_cache: dict[str, tuple[list[object], Policy]] = {}


def _load_policy(scope: Scope) -> Policy:
    """The policy in force, parsed once per file version.

    Parsing and validating the TOML is most of the cost of recording a session, and
    a long-lived host records many. The key is the file's identity and mtime, so an
    edited or replaced policy file is read again.
    """
    from consent.policy import load_policy

    path = scope.policy_file
    key = _file_key(path)
    if key is None:
        return load_policy(scope.policy_path)  # raises the clear error
    cached = _policy_cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    policy = load_policy(scope.policy_path)
    _policy_cache[path] = (key, policy)
    return policy


def _announced_terms(scope: Scope, show_notice: Callable[[NoticeText], None] | None) -> _Terms:
    """The full path: parse the policy and the record, show a notice that is due."""
    from consent.actions import announce
    from consent.notices import print_plain

    policy = _load_policy(scope)
    told = announce(policy, include_first=True, scope=scope)
    if told.notice is not None:
        (show_notice or print_plain)(told.notice)
    if told.record is None:  # include_first always leaves a record; fail closed if not
        raise ConsentError("The consent record could not be created.")
    ack = told.record.acknowledgement
    return _Terms(
        policy.version,
        [(name, spec.type, spec.category) for name, spec in policy.fields.items()],
        told.record.client_id,
        dict(ack.schema) if ack else {},
        told.first,
        policy,
    )


def _terms(scope: Scope, show_notice: Callable[[NoticeText], None] | None) -> _Terms:
    return _cached_terms(scope) or _announced_terms(scope, show_notice)


# -- recording -----------------------------------------------------------------------------


def _scrubbed_error(error: object) -> str | None:
    """The error as it is recorded: scrubbed exactly once (docs/architecture.md §3.5)."""
    if error is None:
        return None
    if isinstance(error, StatusText):
        return str(error)  # written here, from an int: nothing in it to scrub
    from consent.scrub import scrub_error, scrub_text

    if isinstance(error, BaseException):
        return scrub_error(error)
    return scrub_text(error if isinstance(error, str) else str(error))


def _record(
    *,
    argv: Sequence[str],
    src: str,
    dst: Sequence[str],
    runtime_s: object,
    throughput_gbps: object,
    nbytes: object = None,
    error: BaseException | str | None,
    host_version: str | None,
    safe_values: Collection[str],
    known_flags: Collection[str] = (),
    strict: bool,
    scope: Scope,
    decision: Decision | None = None,
    session_id: str | None = None,
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
    if throughput_gbps is None and nbytes is not None:
        moved = _non_negative(nbytes)
        if moved is not None and runtime:
            throughput = moved * 8 / runtime / 1e9
    if strict:
        # Bad input is an error even while collection is off: the caller's bug should
        # show up the same way whatever the user's setting.
        if not destinations:
            raise InvalidValueError("Give at least one --dst region tag.")
        if runtime is None:
            raise InvalidValueError("--runtime-s must be a finite number of seconds, zero or more.")
        if throughput_gbps is not None and throughput is None:
            raise InvalidValueError("--gbps must be a finite number, zero or more.")
    profile = scope.profile
    version = _host_version(host_version, profile, strict=strict)

    if decision is None:
        decision = decide_in(scope)
    warnings = list(decision.warnings)
    if not decision.enabled:
        return RecordOutcome(None, "disabled", warnings=tuple(warnings))

    from consent._spoolwrite import open_root, retired_ids, write_new
    from consent._time import utc_stamp
    from consent.payload import _build, encode_payload, project_fields, random_uuid4
    from consent.scrub import scrub_arguments

    terms = _terms(scope, show_notice)
    root, root_warnings, durable = open_root(scope)
    warnings += root_warnings
    if terms.client_id in retired_ids(root):
        # A `stats forget` killed between retiring this id and replacing it in the
        # record: finish it, or every later session would be dropped under that id.
        from consent.forget import finish_stopped_forget

        finish_stopped_forget(root, scope)
        terms = _terms(scope, show_notice)
    session_id = session_id or random_uuid4()
    payload = _build(
        schema_version=terms.version,
        client_id=terms.client_id,
        session_id=session_id,
        host_version=version,
        source_region=source_region,
        destination_regions=destinations,
        arguments=scrub_arguments(argv, safe_values, known_flags=known_flags),
        runtime_s=runtime,
        throughput_gbps=throughput,
        error=_scrubbed_error(error),
        collected_at=utc_stamp(),
    )
    projected, withheld = project_fields(payload, terms.fields, terms.acknowledged)
    # nothing leaves the machine on the run that first told the user
    held = terms.first or decision.review_before_upload

    # Asked again under the spool's writer lock, just before writing: an opt-out while
    # the notice was shown or the payload built must still win, and an opt-out's drop
    # of unsent payloads holds that lock exclusively (docs/architecture.md §3.6).
    def still_enabled() -> bool:
        return decide_in(scope).enabled

    written = write_new(
        root,
        terms.client_id,
        session_id,
        encode_payload(projected),
        "held" if held else "pending",
        durable=durable,
        withheld=withheld,
        still_wanted=still_enabled,
    )
    if written is None:  # turned off meanwhile, or this id retired by a running forget
        return RecordOutcome(None, "disabled", warnings=tuple(warnings))
    if terms.parsed is not None:
        # Only once a session is on disk: a run that cannot record changes no file in
        # the home beyond what announcing the policy had to write.
        _save_terms(scope, terms.parsed)
    if not held:
        # The payload is safe on disk now; failing to start the sender only delays it.
        try:
            # the spawner, not the package: its lazy loader stays out of the host
            from consent.upload.spawn import start_background_flush

            start_background_flush(root, scope=scope)
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
    scope: Scope,
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
        scope=scope,
        show_notice=show_notice,
    )


def record_reported(**figures: Any) -> str | None:
    """Record one session for the host API; problems are reported once, never raised.

    ``figures`` are :func:`_record`'s keyword arguments but ``strict``.
    """
    try:
        outcome = _record(strict=False, **figures)
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
