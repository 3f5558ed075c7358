"""What the user must be told, and the words to tell it. Standard library only.

The text is built here once; the CLI renders it in a rich panel and the
session path (which must stay light) prints it as plain text.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal, TextIO

from consent.policy import Policy, PolicyDiff, diff_schemas
from consent.profile import DEFAULT_PROFILE, AppProfile
from consent.record import ConsentRecord

__all__ = [
    "NoticeText",
    "PolicyStatus",
    "change_notice",
    "first_notice",
    "policy_status",
    "print_plain",
]

Kind = Literal["first", "change", "description"]


@dataclass(frozen=True)
class PolicyStatus:
    """How the policy in force relates to what the user acknowledged."""

    kind: Literal["unacknowledged", "up_to_date", "schema_changed", "description_changed"]
    diff: PolicyDiff | None
    already_notified: bool

    @property
    def up_to_date(self) -> bool:
        return self.kind == "up_to_date"


def policy_status(policy: Policy, record: ConsentRecord | None) -> PolicyStatus:
    ack = record.acknowledgement if record else None
    if ack is None:
        return PolicyStatus("unacknowledged", None, False)
    if ack.fingerprint != policy.fingerprint:
        notice = record.notice if record else None
        notified = notice is not None and (notice.version, notice.fingerprint) == (
            policy.version,
            policy.fingerprint,
        )
        return PolicyStatus("schema_changed", diff_schemas(ack.schema, policy.schema), notified)
    if ack.version != policy.version:
        return PolicyStatus("description_changed", None, False)
    return PolicyStatus("up_to_date", None, True)


@dataclass(frozen=True)
class NoticeText:
    kind: Kind
    title: str
    lines: tuple[str, ...]


def first_notice(
    policy: Policy, profile: AppProfile = DEFAULT_PROFILE, *, held: bool = True
) -> NoticeText:
    cli = profile.cli_name
    lines = [
        policy.summary,
        "",
        f"Collected (policy version {policy.version}): "
        + ", ".join(
            f"{category} ({', '.join(spec.name for spec in specs)})"
            for category, specs in policy.by_category().items()
        )
        + ".",
        "",
        (
            "Nothing is sent from this run. Later runs send a payload at the end of each transfer."
            if held
            else "From now on, a payload is sent at the end of each transfer."
        ),
        f"See every payload:  {cli} stats review",
        f"Turn it off:        {cli} config set usage_stats false",
        f"                    (or set {profile.enabled_env}=0)",
        f"Policy: {policy.docs_url}",
    ]
    return NoticeText(
        "first", f"{profile.display_name} collects anonymous usage statistics", tuple(lines)
    )


def change_notice(
    policy: Policy, status: PolicyStatus, profile: AppProfile = DEFAULT_PROFILE
) -> NoticeText:
    cli = profile.cli_name
    if status.kind == "description_changed":
        return NoticeText(
            "description",
            "Usage-statistics policy updated",
            (
                f"The usage-statistics policy is now version {policy.version}: only the "
                f"descriptions changed, nothing new is collected ({cli} policy show).",
            ),
        )
    diff = status.diff
    assert diff is not None
    lines: list[str] = []
    if diff.added:
        lines.append("New fields, withheld until you accept: " + ", ".join(diff.added))
    if diff.removed:
        lines.append("No longer collected: " + ", ".join(diff.removed))
    for name, (old_type, old_cat), (new_type, new_cat) in diff.changed:
        lines.append(f"Changed: {name} ({old_type}/{old_cat} -> {new_type}/{new_cat})")
    lines += [
        "",
        f"See the changes:  {cli} policy diff",
        f"Accept them:      {cli} policy accept",
        f"Turn it off:      {cli} config set usage_stats false",
    ]
    return NoticeText(
        "change", f"The usage-statistics policy changed (version {policy.version})", tuple(lines)
    )


def print_plain(notice: NoticeText, stream: TextIO | None = None) -> None:
    """A plain-text rendering for the light session path (no rich there)."""
    out = stream or sys.stderr
    rule = "-" * min(78, max(len(notice.title) + 4, 40))
    body = "\n".join(f"  {line}" if line else "" for line in notice.lines)
    try:
        out.write(f"{rule}\n  {notice.title}\n{rule}\n{body}\n{rule}\n")
        out.flush()
    except (OSError, ValueError):
        pass  # a closed stderr must not break the host
