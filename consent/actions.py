"""The operations behind the CLI commands: each decides, writes, and reports.

The CLI only parses arguments and renders what these return, so a host that
mounts the Typer sub-apps, or calls these directly, gets the same behaviour.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any

from consent._exceptions import ConsentError
from consent.config import CONFIG_KEYS, config_key, load_config, update_config, update_ini_flag
from consent.decision import Decision, decide_in
from consent.notices import NoticeText, change_notice, first_notice, policy_status
from consent.policy import Policy, load_policy
from consent.profile import Scope
from consent.record import (
    Acknowledgement,
    Choice,
    ConsentRecord,
    Notice,
    Via,
    read_record,
    update_record,
    utc_now,
)

__all__ = [
    "Announcement",
    "ChoiceResult",
    "ConfigChange",
    "accept_policy",
    "announce",
    "apply_choice",
    "choice_of",
    "config_get",
    "config_list",
    "config_set",
    "config_unset",
    "drop_unsent",
]


def choice_of(decision: Decision) -> Choice:
    if not decision.enabled:
        return "dont-share"
    return "review" if decision.review_before_upload else "share"


def _acknowledgement(policy: Policy, choice: Choice, via: Via) -> Acknowledgement:
    return Acknowledgement(
        version=policy.version,
        fingerprint=policy.fingerprint,
        decision=choice,
        at=utc_now(),
        via=via,
        schema=policy.schema,
    )


def drop_unsent(scope: Scope) -> int:
    """Delete every pending and held payload (opting out); returns how many."""
    from consent.spool import Spool

    spool = Spool.existing(scope=scope)
    if spool is None:
        return 0
    # exclusive against writers: one that decided "on" before the opt-out finishes
    # first and is dropped here; one after it asks the decision again under the lock
    with spool.forgetting():
        return spool.delete_unsent()


@dataclass(frozen=True)
class ChoiceResult:
    choice: Choice
    decision: Decision
    dropped: int
    record: ConsentRecord


def apply_choice(
    choice: Choice,
    via: Via,
    *,
    scope: Scope,
    policy: Policy | None = None,
) -> ChoiceResult:
    """Record a share / review / don't-share answer: config, acknowledgement, opt-out.

    The answer goes to every store the host keeps it in (``config.json``, and the
    host's INI file when it exists), so they agree afterwards. The INI file is
    written first: a damaged one stops an opt-in before anything changed, and never
    stops an opt-out.
    """
    policy = policy or load_policy(scope.policy_path)
    share = choice != "dont-share"

    def write_config(config: dict[str, Any]) -> None:
        config["usage_stats"] = share
        if share:
            # opting out keeps the review preference for when the user opts back in
            config["usage_stats_review"] = choice == "review"

    ini = scope.legacy_ini_file
    if share:
        update_ini_flag(ini, True)  # a damaged INI file refuses, before anything changed
    else:
        # a damaged or unwritable INI file already reads as "off"; config.json below
        # still records the opt-out, so it holds once the file is fixed
        with contextlib.suppress(ConsentError):
            update_ini_flag(ini, False)
    update_config(scope.config_path, write_config)
    record = update_record(
        scope.record_path,
        lambda current: current.acknowledge(_acknowledgement(policy, choice, via)),
    )
    dropped = drop_unsent(scope) if choice == "dont-share" else 0
    return ChoiceResult(choice, decide_in(scope), dropped, record)


@dataclass(frozen=True)
class Announcement:
    """The record after a notice step, the notice to show (if any), and whether it was the first."""

    record: ConsentRecord | None
    """``None`` only when nothing was ever recorded and the first notice was not due."""
    notice: NoticeText | None
    first: bool


def announce(
    policy: Policy,
    *,
    include_first: bool,
    scope: Scope,
) -> Announcement:
    """Decide what the user must be told about ``policy`` now, and remember it was told.

    - Never acknowledged (only with ``include_first``): the first notice. Collection
      is on by default and this notice is what makes that fair, so the policy is
      acknowledged with ``via = "notice"``; the caller holds that run's payload.
    - Schema changed: a change notice, once per change. It is only marked as shown:
      new fields stay withheld until ``policy accept``.
    - Descriptions changed: a one-line notice, and the version is acknowledged,
      because nothing new is collected.
    """
    path = scope.record_path
    existing, _ = read_record(path)
    status = policy_status(policy, existing)
    quiet = status.kind == "up_to_date" or status.already_notified
    if (existing is not None and quiet) or (status.kind == "unacknowledged" and not include_first):
        return Announcement(existing, None, False)  # the common case: no lock, no write
    choice = choice_of(decide_in(scope))
    told: list[tuple[NoticeText | None, bool]] = []

    def change(current: ConsentRecord) -> ConsentRecord | None:
        status = policy_status(policy, current)
        ack = current.acknowledgement
        if status.kind == "unacknowledged" and include_first:
            told.append((first_notice(policy, scope), True))
            return current.acknowledge(_acknowledgement(policy, choice, "notice"))
        if status.kind == "description_changed" and ack is not None:
            told.append((change_notice(policy, status, scope), False))
            new = replace(_acknowledgement(policy, ack.decision, "notice"), schema=ack.schema)
            return current.acknowledge(new)
        if status.kind == "schema_changed" and not status.already_notified:
            told.append((change_notice(policy, status, scope), False))
            return replace(current, notice=Notice(policy.version, policy.fingerprint, utc_now()))
        told.append((None, False))
        return None

    record = update_record(path, change)
    notice, first = told[-1]
    return Announcement(record, notice, first)


def accept_policy(*, scope: Scope) -> tuple[ConsentRecord, bool]:
    """Acknowledge the policy in force (``via = "policy-accept"``); ``(record, changed)``."""
    policy = load_policy(scope.policy_path)
    decision = decide_in(scope)
    changed: list[bool] = []

    def change(current: ConsentRecord) -> ConsentRecord | None:
        if policy_status(policy, current).up_to_date:
            changed.append(False)
            return None
        changed.append(True)
        ack = current.acknowledgement
        choice = ack.decision if ack else choice_of(decision)
        return current.acknowledge(_acknowledgement(policy, choice, "policy-accept"))

    record = update_record(scope.record_path, change)
    return record, changed[-1]


# -- config --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigChange:
    key: str
    before: object
    after: object
    dropped: int = 0
    decision: Decision | None = None


def config_get(key: str, *, scope: Scope) -> object:
    config_key(key)
    return load_config(scope.config_path).get(key)


def config_list(*, scope: Scope) -> dict[str, object]:
    """Every setting this tool owns, ``None`` where unset. Foreign keys are not shown."""
    config = load_config(scope.config_path)
    return {name: config.get(name) for name in CONFIG_KEYS}


def config_set(key: str, raw: str, *, scope: Scope) -> ConfigChange:
    """Validate and store one setting; turning collection off drops unsent payloads."""
    value = config_key(key).parse(key, raw)
    if key == "usage_stats":
        before = load_config(scope.config_path).get(key)
        review = decide_in(scope).review_before_upload
        choice: Choice = "dont-share" if not value else ("review" if review else "share")
        result = apply_choice(choice, "config-set", scope=scope)
        return ConfigChange(key, before, value, result.dropped, result.decision)
    previous, _ = update_config(scope.config_path, lambda c: c.__setitem__(key, value))
    return ConfigChange(key, previous.get(key), value, decision=decide_in(scope))


def config_unset(key: str, *, scope: Scope) -> ConfigChange:
    config_key(key)
    before, _ = update_config(scope.config_path, lambda c: c.pop(key, None))
    if key == "usage_stats":
        # the default applies only once no store holds the setting
        update_ini_flag(scope.legacy_ini_file, None)
    return ConfigChange(key, before.get(key, None), None, decision=decide_in(scope))
