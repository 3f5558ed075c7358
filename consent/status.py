"""`stats status`: everything a user (or a check) needs to know, in one object."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from consent._exceptions import ConsentError
from consent.decision import Decision, decide_in
from consent.notices import PolicyStatus, endpoints_in_force, plural, policy_status
from consent.policy import Policy, load_policy
from consent.profile import Scope
from consent.record import ConsentRecord, read_record
from consent.spool import State

__all__ = ["STATES", "Snapshot", "snapshot", "status_json", "timeout_words"]

STATES = tuple(state.value for state in State)
# the sender's log counts what was pending at its run, in whichever words it uses
_STALE_COUNT = re.compile(r";?\s*\d[\d,]* payloads?(?:\(s\))? stays? pending")


@dataclass(frozen=True)
class Snapshot:
    """The state of things, read without writing anything."""

    decision: Decision
    policy: Policy | None
    record: ConsentRecord | None
    policy_status: PolicyStatus | None
    spool_dir: str
    counts: dict[str, int]
    endpoints: list[str]
    warnings: list[str]
    last_send_error: str | None


def snapshot(scope: Scope) -> Snapshot:
    profile = scope.profile
    decision = decide_in(scope)
    warnings = list(decision.warnings)

    policy: Policy | None = None
    try:
        policy = load_policy(scope.policy_path)
    except ConsentError as exc:
        warnings.append(str(exc))

    record, record_warning = read_record(scope.record_path)
    if record_warning:
        warnings.append(record_warning)
    status = policy_status(policy, record) if policy else None
    if status and status.kind == "unacknowledged" and decision.enabled:
        warnings.append(
            f"You have not yet been shown the usage-statistics notice; `{profile.cli_name} init` "
            "shows it and asks."
        )

    endpoints: list[str] = []
    if policy:
        endpoints, problem = endpoints_in_force(policy, scope)
        if problem:
            warnings.append(problem)

    counts = dict.fromkeys(STATES, 0)
    spool_dir = str(scope.spool_root)
    last_send_error: str | None = None
    try:
        from consent.spool import Spool

        spool = Spool.existing(scope=scope)
        if spool is None and (refusal := Spool.refusal(scope)):
            warnings.append(refusal)
        if spool is not None:
            spool_dir = str(spool.root)
            counts.update(spool.counts())
            warnings.extend(spool.warnings)
            last_send_error = spool.last_send_error()
    except ConsentError as exc:
        warnings.append(str(exc))
    if last_send_error:
        # the log line counts what was pending then; say what is pending now, or
        # nothing when everything was sent or dropped since
        last_send_error = timeout_words(_STALE_COUNT.sub("", last_send_error).strip("; ")) or None
        pending = counts.get("pending", 0)
        if pending and last_send_error:
            verb = "stays" if pending == 1 else "stay"
            warnings.append(
                f"The last upload failed ({last_send_error}); {plural(pending)} {verb} "
                f"pending. Retry now with `{profile.cli_name} stats send`."
            )
        elif not pending:
            last_send_error = None

    return Snapshot(
        decision, policy, record, status, spool_dir, counts, endpoints, warnings, last_send_error
    )


def timeout_words(text: str) -> str:
    """The sender writes "no answer in time"; a user wants to know how long that was."""
    from consent.upload import DEFAULT_LIMITS

    seconds = f"{DEFAULT_LIMITS.request_timeout_s:g}"
    return text.replace("no answer in time", f"no answer within {seconds} s")


def status_json(snap: Snapshot) -> dict[str, Any]:
    """The contract shape of ``stats status --json`` (docs/architecture.md §3.8)."""
    ack = snap.record.acknowledgement if snap.record else None
    policy = snap.policy
    return {
        "enabled": snap.decision.enabled,
        "source": snap.decision.source,
        "client_id": snap.record.client_id if snap.record else None,
        "review_before_upload": snap.decision.review_before_upload,
        "policy": {
            "version": policy.version if policy else None,
            "fingerprint": policy.fingerprint if policy else None,
            "acknowledged_version": ack.version if ack else None,
            "acknowledged_fingerprint": ack.fingerprint if ack else None,
            "up_to_date": bool(snap.policy_status and snap.policy_status.up_to_date),
        },
        "spool_dir": snap.spool_dir,
        "counts": snap.counts,
        "endpoints": snap.endpoints,
        "warnings": snap.warnings,
    }
