"""What the user must be told, and the words to tell it. Standard library only.

The text is built here once; the CLI renders it in a rich panel and the
session path (which must stay light) prints it as plain text.
"""

from __future__ import annotations

import sys
import textwrap
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


# The rich panel is 80 columns wide with a border and padding on each side; lines are
# wrapped here so the plain rendering and the panel break at the same, readable places.
_WIDTH = 76


def _wrap(text: str, indent: str = "") -> list[str]:
    # commands and URLs must stay whole, so long words are never split
    return textwrap.wrap(
        text,
        _WIDTH,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [""]


def first_notice(
    policy: Policy,
    profile: AppProfile = DEFAULT_PROFILE,
    *,
    held: bool = True,
    enabled: bool = True,
) -> NoticeText:
    """What is collected, how to see it, how to turn it off, where to read more.

    ``held``: this run's payload is kept back (the session path, the first time).
    ``enabled=False``: collection is off right now, so promise nothing about sending.
    """
    cli = profile.cli_name
    lines = [*_wrap(policy.summary), "", f"What is collected (policy version {policy.version}):"]
    for category, specs in policy.by_category().items():
        lines += _wrap(f"  {category}: " + ", ".join(spec.name for spec in specs), "    ")
    lines.append("")
    if not enabled:
        lines.append("Usage statistics are off at the moment, so nothing is sent.")
    elif held:
        lines += [
            "Nothing is sent from this run.",
            "Later runs send one payload at the end of each transfer.",
        ]
    else:
        lines.append("From now on, one payload is sent at the end of each transfer.")
    lines.append(f"See every payload:  {cli} stats review")
    if enabled:
        lines += [
            f"Turn this off:      {cli} config set usage_stats false",
            f"                    (or set {profile.enabled_env}=0)",
        ]
    lines.append(f"Read more: {policy.docs_url}")
    return NoticeText("first", f"{profile.display_name} anonymous usage statistics", tuple(lines))


def change_notice(
    policy: Policy, status: PolicyStatus, profile: AppProfile = DEFAULT_PROFILE
) -> NoticeText:
    cli = profile.cli_name
    if status.kind == "description_changed":
        return NoticeText(
            "description",
            f"Usage-statistics policy updated to version {policy.version}",
            ("Only descriptions were reworded; nothing new is collected.",),
        )
    diff = status.diff
    assert diff is not None
    lines: list[str] = []
    if diff.added:
        lines += _wrap("New, not sent until you accept: " + ", ".join(diff.added), "  ")
    if diff.changed:
        lines.append("Changed, not sent until you accept:")
        for name, (old_type, old_cat), (new_type, new_cat) in diff.changed:
            lines += _wrap(f"  {name}: was {old_type}/{old_cat}, now {new_type}/{new_cat}", "    ")
    if diff.removed:
        lines += _wrap("No longer collected: " + ", ".join(diff.removed), "  ")
    lines += [
        "Everything else is collected as before.",
        "",
        f"See the changes:  {cli} policy diff",
        f"Accept them:      {cli} policy accept",
        f"Turn this off:    {cli} config set usage_stats false",
    ]
    return NoticeText(
        "change", f"The usage-statistics policy changed (version {policy.version})", tuple(lines)
    )


def print_plain(notice: NoticeText, stream: TextIO | None = None) -> None:
    """A plain-text rendering for the light session path (no rich there)."""
    out = stream or sys.stderr
    if notice.kind == "description":
        # nothing new is collected, so one line is enough
        _write(out, f"{notice.title}. {' '.join(notice.lines)}\n")
        return
    widest = max((len(line) + 2 for line in notice.lines), default=0)
    rule = "-" * min(78, max(len(notice.title) + 4, widest))
    body = "\n".join(f"  {line}" if line else "" for line in notice.lines)
    _write(out, f"{rule}\n  {notice.title}\n{rule}\n{body}\n{rule}\n")


def _write(out: TextIO, text: str) -> None:
    try:
        out.write(text)
        out.flush()
    except (OSError, ValueError, AttributeError):
        pass  # a closed or missing stderr must not break the host
