"""What the user must be told, and the words to tell it. Standard library only.

The text is built here once; the CLI renders it in a rich panel and the
session path (which must stay light) prints it as plain text. Every sentence
depends on the mode in force (share, review, off), so it stays true for it, and
every hint is a command that works in the state it is given for
(docs/architecture.md §3.8).
"""

from __future__ import annotations

import shlex
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TextIO

from consent.policy import Policy, PolicyDiff, diff_schemas
from consent.profile import DEFAULT_PROFILE, AppProfile, Scope
from consent.record import ConsentRecord

if TYPE_CHECKING:
    from consent.decision import Decision

__all__ = [
    "Mode",
    "NoticeText",
    "PolicyStatus",
    "change_notice",
    "choice_notice",
    "endpoints_in_force",
    "file_free_opt_outs",
    "first_notice",
    "mode_of",
    "mode_sentence",
    "override_words",
    "plural",
    "policy_status",
    "print_plain",
    "turn_off_hint",
    "turn_off_steps",
    "turn_on_hint",
    "turn_on_steps",
    "why_off",
]

Kind = Literal["first", "change", "description"]
Mode = Literal["share", "review", "off"]
REVIEW_MODE = "review mode"
"""The one name of the setting ``usage_stats_review``, everywhere the user reads it."""


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


def _wrap(text: str, indent: str = "", width: int = _WIDTH) -> list[str]:
    # commands and URLs must stay whole, so long words are never split
    return textwrap.wrap(
        text,
        width,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [""]


def plural(count: int, word: str = "payload") -> str:
    """``1 payload``, ``1,500 payloads``: one number format everywhere."""
    return f"{count:,} {word}" + ("" if count == 1 else "s")


# -- the state in force ---------------------------------------------------------------------


def mode_of(decision: Decision) -> Mode:
    if not decision.enabled:
        return "off"
    return "review" if decision.review_before_upload else "share"


def endpoints_in_force(policy: Policy, scope: Scope) -> tuple[list[str], str | None]:
    """Every endpoint a send would use now, and the problem if there is one.

    The same resolution as the sender (``consent._urls.resolve_endpoints``): the
    environment override, then ``usage_stats_endpoint``, then the policy's, plus
    ``usage_stats_extra_endpoints``.
    """
    from consent._exceptions import ConsentError
    from consent._urls import resolve_endpoints
    from consent.config import load_config

    try:
        config = load_config(scope.config_file)
    except ConsentError:
        config = {}  # the decision already reports a damaged config file
    try:
        return resolve_endpoints(policy.endpoint, config, scope), None
    except ConsentError as exc:
        return [], str(exc)


def _deciding_env_name(decision: Decision, scope: Scope) -> str | None:
    """The environment variable that decides instead of the files, if one does."""
    sources = {"env": scope.profile.enabled_env, "do_not_track": "DO_NOT_TRACK"}
    return sources.get(decision.source)


def _override_env(decision: Decision, scope: Scope) -> str | None:
    """``NAME=value`` of the environment variable that decides, if one does."""
    name = _deciding_env_name(decision, scope)
    if name is None:
        return None
    value = scope.environ.get(name, "")
    # a value is echoed only when it is a plain switch: anything else may be long or odd
    return f"{name}={value}" if value.lower() in _SWITCH_WORDS else name


_SWITCH_WORDS = frozenset({"0", "1", "true", "false", "yes", "no", "on", "off"})


def override_words(decision: Decision, scope: Scope) -> str | None:
    """``DO_NOT_TRACK=1 is set``: the variable that decides instead of the files, if one does."""
    override = _override_env(decision, scope)
    return None if override is None else f"{override} is set"


def why_off(decision: Decision, scope: Scope) -> str:
    """Why collection is off, naming the variable or file that decides."""
    override = _override_env(decision, scope)
    if override:
        return f"{override} is set"
    if decision.source == "invalid_config":
        return f"{scope.config_file} has a problem"
    if decision.source == "legacy_config":
        return f"{scope.legacy_ini_file} says so"
    return f"usage_stats is false in {scope.config_file}"


def mode_sentence(decision: Decision, scope: Scope) -> str:
    """What happens to a transfer's payload in the mode in force, in one sentence."""
    cli = scope.profile.cli_name
    mode = mode_of(decision)
    if mode == "off":
        return (
            f"Usage statistics are off ({why_off(decision, scope)}): "
            "nothing is collected, and nothing is sent."
        )
    if mode == "review":
        return (
            f"{REVIEW_MODE.capitalize()} is on: each payload is held on this machine until you "
            f"approve it with `{cli} stats review`; nothing is sent before."
        )
    return "Each transfer sends one payload when it ends."


def turn_off_steps(decision: Decision, scope: Scope) -> list[str]:
    """Shell commands, in order, that turn collection off in this state (it is on)."""
    from consent.decision import decide_in

    profile = scope.profile
    if decision.source == "env":
        # the variable wins over any file: only changing it changes anything
        rest = scope.without(profile.enabled_env)
        after = decide_in(rest)
        steps = [f"unset {profile.enabled_env}"]
        return steps + (turn_off_steps(after, rest) if after.enabled else [])
    return [f"{profile.cli_name} stats off"]


def turn_on_steps(decision: Decision, scope: Scope) -> list[str]:
    """Shell commands, in order, that turn collection on in this state (it is off)."""
    from consent.decision import decide_in

    name = _deciding_env_name(decision, scope)
    if name is not None:
        rest = scope.without(name)
        after = decide_in(rest)
        return [f"unset {name}"] + ([] if after.enabled else turn_on_steps(after, rest))
    steps: list[str] = []
    if decision.source == "invalid_config":
        path = scope.config_file
        if _config_is_damaged(path):
            steps.append(f"mv {shlex.quote(path)} {shlex.quote(path + '.broken')}")
    return [*steps, f"{scope.profile.cli_name} stats on"]


def _steps(steps: list[str]) -> str:
    return ", then ".join(steps)


def turn_off_hint(decision: Decision, scope: Scope) -> str:
    """How to turn collection off in this state, in words (collection is on)."""
    steps = turn_off_steps(decision, scope)
    if decision.source == "env":
        return _steps(steps)
    return f"{_steps(steps)}   (or set DO_NOT_TRACK=1)"


def turn_on_hint(decision: Decision, scope: Scope) -> str:
    """How to turn collection on in this state, in words (collection is off)."""
    return _steps(turn_on_steps(decision, scope))


def file_free_opt_outs(profile: AppProfile = DEFAULT_PROFILE) -> str:
    """For when nothing can be written: the opt-outs that need no file, which still work."""
    return (
        f"To opt out without writing a file, set DO_NOT_TRACK=1 or {profile.enabled_env}=0 "
        "in your shell's profile; both work at once."
    )


def _config_is_damaged(path: str) -> bool:
    from consent._exceptions import ConsentError
    from consent.config import load_config

    try:
        load_config(path)
    except ConsentError:
        return True
    return False


# -- the notices ----------------------------------------------------------------------------


def _categories(policy: Policy) -> str:
    names = ["IDs" if c == "ids" else c for c in policy.by_category()]
    return ", ".join(names)


def _where(endpoints: list[str], problem: str | None) -> list[str]:
    if problem:
        return _wrap(f"Sent to:   nowhere for now: {problem}", "           ")
    lines = [f"Sent to:   {endpoints[0]}"]
    lines += [f"           {url}" for url in endpoints[1:]]
    return lines


def first_notice(
    policy: Policy,
    scope: Scope,
    *,
    held: bool = True,
    decision: Decision | None = None,
) -> NoticeText:
    """What is collected, where it goes, what happens now, and how to change it.

    ``held``: this run's payload is kept back (the session path, the first time).
    Short enough (about 14 lines) that it and the answer to a question fit on an
    80x24 terminal with the summary still in view.
    """
    from consent.decision import decide_in

    decision = decision or decide_in(scope)
    cli = scope.profile.cli_name
    lines = [*_what_and_where(policy, scope), ""]
    mode = mode_of(decision)
    if mode == "share" and held:
        lines += _wrap(
            "Nothing is sent from this run. Its payload is held because this run showed "
            f"this notice (`{cli} stats review` lists it). After this, each transfer sends "
            "one payload when it ends."
        )
    else:
        lines += _wrap(mode_sentence(decision, scope))
    if mode == "off":
        lines += _wrap(f"Turn them on: {turn_on_hint(decision, scope)}", "  ")
    else:
        lines += _wrap(f"Turn this off: {turn_off_hint(decision, scope)}", "  ")
    lines += [f"Choose share, review or don't share:  {cli} init", f"Read more: {policy.docs_url}"]
    return NoticeText("first", _title(policy, scope.profile), tuple(lines))


def _title(policy: Policy, profile: AppProfile) -> str:
    return f"{profile.display_name} anonymous usage statistics (policy version {policy.version})"


def _what_and_where(policy: Policy, scope: Scope) -> list[str]:
    """The summary, the categories, every endpoint in force, and where every field is listed."""
    endpoints, problem = endpoints_in_force(policy, scope)
    lines = [*_wrap(policy.summary), ""]
    lines += _wrap(f"Collected: {_categories(policy)}", "           ")
    lines += _where(endpoints, problem)
    lines.append(f"Every field, and why:  {scope.profile.cli_name} policy show")
    return lines


def choice_notice(policy: Policy, scope: Scope, *, decision: Decision | None = None) -> NoticeText:
    """The screen above the init question: what, where, and what each answer means.

    With the question below it, it fits on an 80x24 terminal.
    """
    from consent.decision import decide_in

    decision = decision or decide_in(scope)
    cli = scope.profile.cli_name
    lines = [*_what_and_where(policy, scope), ""]
    lines += [
        "Yes:     each transfer sends one payload when it ends.",
        f"Review:  each payload is held until you approve it ({cli} stats review).",
        "No:      nothing is collected or sent; unsent payloads are deleted.",
    ]
    override = _override_env(decision, scope)
    if override:
        state = "on" if decision.enabled else "off"
        name = override.split("=", 1)[0]
        lines += _wrap(
            f"{override} is set, so usage statistics stay {state} whatever you answer, "
            f"until you unset {name}."
        )
    lines.append(f"You can change your answer any time with `{cli} init`.")
    return NoticeText("first", _title(policy, scope.profile), tuple(lines))


def change_notice(
    policy: Policy,
    status: PolicyStatus,
    scope: Scope,
    *,
    decision: Decision | None = None,
) -> NoticeText:
    from consent.decision import decide_in

    cli = scope.profile.cli_name
    if status.kind == "description_changed":
        return NoticeText(
            "description",
            f"Usage-statistics policy updated to version {policy.version}",
            ("Only descriptions were reworded; nothing new is collected.",),
        )
    decision = decision or decide_in(scope)
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
    lines.append("Everything else is collected as before.")
    endpoints, problem = endpoints_in_force(policy, scope)
    lines += _where(endpoints, problem)
    lines += ["", *_wrap(mode_sentence(decision, scope))]
    lines += [
        f"See the changes:  {cli} policy diff",
        f"Accept them:      {cli} policy accept",
    ]
    if decision.enabled:
        lines += _wrap(f"Turn this off:    {turn_off_hint(decision, scope)}", "    ")
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
