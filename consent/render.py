"""rich renderings of the library's data. Imported lazily, by the CLI only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich import box
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from consent.notices import plural

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from rich.console import RenderableType

    from consent.decision import Decision
    from consent.forget import ForgetPlan, ForgetResult
    from consent.notices import NoticeText
    from consent.policy import Policy, PolicyDiff
    from consent.profile import Scope
    from consent.review import FieldView, ReviewItem, ReviewListing
    from consent.status import Snapshot

__all__ = [
    "Situation",
    "diff_table",
    "forget_plan_view",
    "forget_result_view",
    "next_steps",
    "notice_panel",
    "path_text",
    "review_choice_title",
    "review_detail",
    "review_summary",
    "review_table",
    "status_panel",
]

_PANEL_WIDTH = 80


def notice_panel(notice: NoticeText) -> Panel:
    body = Text("\n".join(notice.lines))
    style = "yellow" if notice.kind == "change" else "cyan"
    return Panel(
        body,
        title=escape(notice.title),
        title_align="left",
        border_style=style,
        width=_PANEL_WIDTH,
        box=box.ROUNDED,
    )


def policy_panel(
    policy: Policy,
    *,
    title: str,
    closing: str | None = None,
    endpoints: Sequence[str] = (),
    endpoint_problem: str | None = None,
) -> Panel:
    """The policy as a user should see it: why, what, and where it goes.

    Each category is a heading rather than a column, which leaves the descriptions
    room to wrap less, so the panel stays readable in an 80-column terminal.
    ``endpoints`` are the ones in force (``notices.endpoints_in_force``), which may
    differ from the policy's own.
    """
    fields = Table.grid(padding=(0, 2))
    fields.add_column(no_wrap=True)
    fields.add_column()
    for category, specs in policy.by_category().items():
        heading = "IDs" if category == "ids" else category.capitalize()
        fields.add_row(Text(heading, style="bold"), "")
        for spec in specs:
            fields.add_row(Text(f"  {spec.name}", style="cyan"), escape(spec.description))
    parts: list[RenderableType] = [
        Text(policy.summary),
        Text(f"\nWhat is collected (policy version {policy.version}), and why:\n"),
        fields,
        Text(
            f"\n{_sent_to(policy, endpoints, endpoint_problem)}\n"
            f"Read more: {policy.docs_url}\n"
            f"Questions or deletion: {policy.contact}",
            style="dim",
        ),
    ]
    if closing:
        parts.append(Text(f"\n{closing}"))
    return Panel(
        Group(*parts), title=escape(title), title_align="left", box=box.ROUNDED, width=_PANEL_WIDTH
    )


def _sent_to(policy: Policy, endpoints: Sequence[str], problem: str | None) -> str:
    if problem:
        return f"Sent to: nowhere for now: {problem}"
    urls = list(endpoints) or [policy.endpoint]
    lines = [f"Sent to {urls[0]}", *(f"        {url}" for url in urls[1:])]
    if urls[0] != policy.endpoint:
        lines += ["        instead of the policy's own endpoint,", f"        {policy.endpoint}"]
    return "\n".join(lines)


def path_text(path: str, width: int) -> Text:
    """A file path broken only after a ``/``, so no terminal splits an id in two."""
    first, *rest = path.split("/")
    lines: list[str] = []
    line = first
    for piece in ("/" + part for part in rest):
        if line and len(line) + len(piece) > width:
            lines.append(line)
            line = piece
        else:
            line += piece
    lines.append(line)
    return Text("\n".join(lines))


def diff_table(diff: PolicyDiff, new: Policy) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Change", style="bold")
    table.add_column("Field", style="cyan", no_wrap=True)
    table.add_column("Details")
    for name in diff.added:
        spec = new.fields[name]
        table.add_row(
            "[green]added[/]", name, escape(f"{spec.type}/{spec.category}: {spec.description}")
        )
    for name in diff.removed:
        table.add_row("[red]removed[/]", name, "no longer collected")
    for name, (old_type, old_cat), (new_type, new_cat) in diff.changed:
        table.add_row("[yellow]changed[/]", name, f"{old_type}/{old_cat} -> {new_type}/{new_cat}")
    return table


def _yes_no(flag: bool) -> str:
    return "[green]on[/]" if flag else "[red]off[/]"


def _source_words(decision: Decision, scope: Scope) -> str:
    """Which rule decided, naming the variable or file, so the user knows what to change."""
    from consent.notices import override_words

    source = decision.source
    override = override_words(decision, scope)
    if override:
        return override
    if source == "config":
        return f"set in {scope.config_file}"
    if source == "legacy_config":
        return f"set in {scope.legacy_ini_file} (Skyplane 0.3)"
    if source == "invalid_config":
        return f"{scope.config_file} has a problem, see below"
    return "the default: you have not chosen yet"


def status_panel(snap: Snapshot, scope: Scope) -> Panel:
    """``stats status``: the state, why, and the commands that work in this state."""
    from consent.notices import REVIEW_MODE, turn_off_hint, turn_on_hint

    cli = scope.profile.cli_name
    decision = snap.decision
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row(
        "Usage statistics",
        f"{_yes_no(decision.enabled)} ({escape(_source_words(decision, scope))})",
    )
    review = _yes_no(decision.review_before_upload)
    if decision.review_before_upload:
        review += ": each payload is held until you approve it"
    grid.add_row(REVIEW_MODE.capitalize(), review)
    if snap.policy:
        ack = snap.record.acknowledgement if snap.record else None
        if snap.policy_status and snap.policy_status.up_to_date:
            state = "[green]acknowledged[/]"
        elif ack is None:
            state = "[yellow]not yet acknowledged[/]"
        else:
            state = (
                f"[yellow]you acknowledged version {ack.version}; new fields are withheld[/] "
                f"({cli} policy diff)"
            )
        grid.add_row("Policy", f"version {snap.policy.version}, {state}")
    grid.add_row("Client id", escape(snap.record.client_id) if snap.record else "[dim]none yet[/]")
    counts = ", ".join(f"{count:,} {state}" for state, count in snap.counts.items())
    grid.add_row("Payloads", counts)
    grid.add_row("Spool", path_text(snap.spool_dir, 60))
    grid.add_row("Endpoints", escape("\n".join(snap.endpoints)) or "[dim]none[/]")
    hints = Table.grid(padding=(0, 2))
    hints.add_column(no_wrap=True)
    hints.add_column(overflow="fold")  # a command cut short by an ellipsis would not work
    hints.add_row("See every payload", f"{cli} stats review")
    if decision.enabled:
        hints.add_row("Turn them off", escape(turn_off_hint(decision, scope)))
    else:
        hints.add_row("Turn them on", escape(turn_on_hint(decision, scope)))
    hints.add_row("Every field, and why", f"{cli} policy show")
    return Panel(
        Group(grid, Text(""), hints),
        title="Usage statistics",
        title_align="left",
        expand=False,
    )


# -- stats review ------------------------------------------------------------------------

_STATE_STYLES = {
    "pending": "cyan",
    "held": "yellow",
    "sent": "green",
    "failed": "red",
    "legacy": "dim",
}
_MARKER_STYLE = "bold magenta"


def _when(stamp: str | None) -> str:
    """``2026-11-28T10:12:01Z`` as ``2026-11-28 10:12``: minutes are enough to tell runs apart."""
    if not stamp:
        return "-"
    return stamp.replace("T", " ").removesuffix("Z")[:16]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _gbps(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _route(item: ReviewItem) -> str:
    destinations = ", ".join(item.destinations) or "?"
    return f"{item.source or '?'} → {destinations}"


def _state_text(state: str) -> Text:
    return Text(state, style=_STATE_STYLES.get(state, ""))


def review_choice_title(item: ReviewItem, short_id: str, width: int = 76) -> str:
    """One line per held payload in the approval checkbox, cut to ``width`` characters.

    A wrapped choice would break the checkbox's layout, so the route gives way first.
    """
    head = f"{short_id}  {_when(item.collected_at)}  "
    tail = f"  {_duration(item.runtime_s)}"
    room = max(width - len(head) - len(tail), 12)
    route = _route(item)
    if len(route) > room:
        route = route[: room - 1] + "…"
    return head + route + tail


def review_table(
    items: Sequence[ReviewItem], short_ids: Mapping[str, str], width: int = 80
) -> Table:
    """The summary table; ``short_ids`` as ``ReviewListing.short_ids``; ``width`` the terminal's.

    When some route would not fit on one line, every route goes on two ("src" over
    "→ dst"), so rows keep one shape instead of breaking region tags apart.
    """
    headers = ("State", "Collected (UTC)", "From → to", "Runtime", "Gbps", "Error", "Session")
    rows = [
        (
            _state_text(item.state.value),
            _when(item.collected_at),
            _route(item) if item.payload is not None else None,
            _duration(item.runtime_s),
            _gbps(item.throughput_gbps),
            Text("yes", style="red") if item.has_error else Text("no"),
            short_ids.get(item.session_id, item.session_id),
            item,
        )
        for item in items
    ]
    fixed = sum(
        max([len(headers[i]), *(len(str(row[i])) for row in rows)]) for i in (0, 1, 3, 4, 5, 6)
    )
    room = width - fixed - 2 * (len(headers) - 1)
    split = any(route is not None and len(route) > room for _, _, route, *_ in rows)

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    table.add_column(headers[0], no_wrap=True)
    table.add_column(headers[1], no_wrap=True)
    table.add_column(headers[2], overflow="fold", ratio=1)
    table.add_column(headers[3], justify="right", no_wrap=True)
    table.add_column(headers[4], justify="right", no_wrap=True)
    table.add_column(headers[5], no_wrap=True)
    table.add_column(headers[6], style="cyan", no_wrap=True)
    for state, when, route, runtime, gbps, error, short, item in rows:
        if route is None:
            cell = Text(f"the file {item.problem}", style="red")
        elif split:
            cell = Text(route.replace(" → ", "\n→ ", 1))
        else:
            cell = Text(route)
        table.add_row(state, when, cell, runtime, gbps, error, short)
    return table


def review_summary(
    listing: ReviewListing,
    shown: Sequence[ReviewItem],
    cli: str,
    *,
    width: int = 80,
    turn_on: str | None = None,
) -> Group:
    """The table of ``shown`` (the newest rows), then counts, mode, what to do, and files.

    Commands sit alone in a column of their own, so no terminal width splits one.
    """
    parts: list[RenderableType] = []
    total = len(listing.items)
    if total:
        parts.append(review_table(shown, listing.short_ids, width))
        hidden = total - len(shown)
        if hidden:
            parts.append(
                Text(
                    f"{plural(hidden, 'older payload')} not shown (newest {len(shown):,} of "
                    f"{total:,}). Narrow with --state, open one with `{cli} stats review ID`, "
                    "show every row with --limit 0, or get all of them with --json.",
                    style="dim",
                )
            )
    elif any(listing.counts.values()):
        parts.append(Text("No payload in this state.", style="dim"))
    elif listing.enabled:
        parts.append(Text("Nothing collected yet: a payload appears here after each transfer."))
    else:
        parts.append(Text("Nothing is stored."))

    from consent.notices import REVIEW_MODE

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    counts = Text()
    for index, (state, count) in enumerate(listing.counts.items()):
        counts.append(" · " if index else "")
        counts.append(f"{count:,} {state}", style=_STATE_STYLES[state] if count else "")
    grid.add_row("Payloads", counts)
    if not listing.enabled:
        grid.add_row("Collection", "off: nothing is collected or sent")
        if turn_on:
            grid.add_row("Turn it on", escape(turn_on))
    elif listing.review_mode:
        grid.add_row("Review mode", "[yellow]on[/]: each payload is held until you approve it")
    else:
        grid.add_row("Review mode", "off: payloads are sent after each transfer")
        grid.add_row("Hold them", f"{cli} config set usage_stats_review true")
    held = listing.counts.get("held", 0)
    if held and not listing.review_mode:
        verb = "was" if held == 1 else "were"
        grid.add_row(
            "Held",
            f"{plural(held)} {verb} recorded on the run that showed the first notice, or "
            f"while {REVIEW_MODE} was on: nothing held is sent until you approve it",
        )
    if held:
        grid.add_row("Approve", f"{cli} stats review --approve ID   (or --approve-all)")
        grid.add_row("Discard", f"{cli} stats review --discard ID   (or --discard-all)")
    if total:
        grid.add_row("Details", f"{cli} stats review ID   (a unique prefix is enough)")
    files = Text(f"{listing.spool_dir}/<client id>/<session id>/usage_stats.json\n")
    files.append("the exact bytes sent; state.json beside each says where it stands", "dim")
    if not listing.spool_exists:
        files.append(" (not created yet)", style="dim")
    grid.add_row("Files", files)
    parts += [Text(""), grid]
    return Group(*parts)


def _field_value(view: FieldView) -> Text:
    import json

    if view.status == "withheld":
        return Text("withheld", style="yellow")
    if view.status == "absent":
        return Text("not in this payload", style="dim")
    value = view.value
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = Text(shown)
    text.highlight_words(view.markers, style=_MARKER_STYLE)
    return text


def _field_reason(view: FieldView) -> Text:
    text = Text(view.description or "")
    if view.status == "withheld":
        text = Text.assemble(
            ("Withheld: not acknowledged by you yet, so it was left out. ", "yellow"), text
        )
    elif view.status == "undeclared":
        text = Text("Not declared by the policy in force.", style="red")
    elif view.status == "legacy" and not view.description:
        text = Text("A Skyplane 0.3 field.")
    if view.markers:
        text.append("\nRedacted here: ", style=_MARKER_STYLE)
        text.append(", ".join(view.markers), style=_MARKER_STYLE)
    return text


# Below this width the reason goes under each value: three columns would fold ids.
_WIDE_DETAIL = 120


def _fields_table(fields: Sequence[FieldView], width: int) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Field", style="cyan", no_wrap=True)
    if width >= _WIDE_DETAIL:
        # values are short but for a few; the reasons are the prose worth the width
        table.add_column("Value", overflow="fold", max_width=64)
        table.add_column("Why it is collected")
        for view in fields:
            table.add_row(view.name, _field_value(view), _field_reason(view))
        return table
    table.add_column("Value, and why it is collected", overflow="fold")
    for index, view in enumerate(fields):
        reason = _field_reason(view)
        reason.stylize("dim")
        cell = Text.assemble(_field_value(view), "\n", reason)
        table.add_row(view.name, cell, end_section=index < len(fields) - 1)
    return table


def _receipt_grid(item: ReviewItem) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for index, receipt in enumerate(item.entry.receipts):
        if index:
            grid.add_row("", "")
        status = Text(str(receipt.status), style="green" if receipt.ok else "red")
        status.append(" (accepted)" if receipt.ok else " (refused)", style="")
        same = receipt.sha256 == item.sha256
        digest = Text(receipt.sha256)
        digest.append(
            "\nthe same as the file's" if same else "\nDIFFERENT from the file's",
            style="dim" if same else "bold red",
        )
        grid.add_row("Sent to", receipt.endpoint)
        grid.add_row("At", f"{_when(receipt.at)} UTC")
        grid.add_row("Status", status)
        grid.add_row("sha256", digest)
    return grid


@dataclass(frozen=True)
class Situation:
    """What the detail view needs to say why a payload is where it is, and what next."""

    enabled: bool = True
    review_mode: bool = False
    first_notice_run: bool = False
    """Recorded on the run that showed the first notice (held for that reason)."""
    last_send_error: str | None = None
    why_off: str = ""


def next_steps(item: ReviewItem, short: str, cli: str, situation: Situation) -> tuple[str, str]:
    """Why a payload is in its state, and what to type next, in words."""
    from consent.notices import REVIEW_MODE

    state = item.state.value
    if state == "held":
        if situation.first_notice_run and not situation.review_mode:
            why = "held because this is the run that showed the first notice"
        elif situation.review_mode:
            why = f"held because {REVIEW_MODE} is on: nothing is sent without your approval"
        else:
            why = (
                f"held because {REVIEW_MODE} was on when it was recorded, or it was "
                "recorded on the run that showed the first notice"
            )
        todo = f"{cli} stats review --approve {short}   (or --discard {short})"
        if not situation.enabled:
            todo += f"; it is sent only once usage statistics are on ({situation.why_off})"
        return why, todo
    if state == "pending":
        if not situation.enabled:
            return (
                f"waiting, but usage statistics are off ({situation.why_off})",
                f"{cli} stats review --discard {short}   (deletes it)",
            )
        if situation.last_send_error:
            return (
                f"waiting: the last upload failed ({situation.last_send_error})",
                f"{cli} stats send   (retries now; the next transfer also retries)",
            )
        return (
            "waiting for the next send, which starts after the next transfer",
            f"{cli} stats send   (sends it now)",
        )
    if state == "failed":
        reason = item.entry.reason or "the receiver refused it"
        return (
            f"failed: {reason}; a failed payload is not retried",
            f"{cli} stats review --discard {short}   (deletes it)",
        )
    if state == "legacy":
        return ("left by Skyplane 0.3; it is never sent", f"{cli} stats review --discard {short}")
    return ("sent; the receipts below say where and when", f"{cli} stats forget   (deletes all)")


def review_detail(
    item: ReviewItem,
    fields: Sequence[FieldView],
    cli: str,
    *,
    width: int = 80,
    situation: Situation | None = None,
    short: str | None = None,
) -> Group:
    """Every field with its value and why it is collected, then the receipts.

    ``width`` is the terminal's: narrow ones get the reason under each value. The
    head says why the payload is in its state and what to type next.
    """
    from consent.review import LEGACY_NOTE

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column(overflow="fold")
    state = _state_text(item.state.value)
    if item.entry.updated_at:
        state.append(f" since {_when(item.entry.updated_at)} UTC", style="")
    head.add_row("Session", item.session_id)
    head.add_row("State", state)
    why, todo = next_steps(item, short or item.session_id, cli, situation or Situation())
    head.add_row("Why", why)
    head.add_row("Next", Text(todo, style="bold"))
    head.add_row("Client id", item.client_id)
    head.add_row("Collected", f"{_when(item.collected_at)} UTC")
    head.add_row("File", path_text(item.path, max(width - 14, 40)))
    if item.problem:
        head.add_row("Problem", Text(f"the file {item.problem}", style="red"))
    else:
        head.add_row("Size", f"{len(item.raw):,} bytes")
        head.add_row("sha256", item.sha256)
    parts: list[RenderableType] = [head, Text("")]
    if item.state.value == "legacy":
        parts += [Text(LEGACY_NOTE), Text("")]
    parts.append(_fields_table(fields, width))

    if any(view.markers for view in fields):
        parts.append(
            Text(
                "\nValues such as <path> or <uri:s3> are redaction markers: the original text "
                "was replaced on this machine before the payload was saved, and never leaves it.",
                style="dim",
            )
        )
    if any(view.status == "withheld" for view in fields):
        parts.append(
            Text(
                f"\nWithheld fields are not in the payload. `{cli} policy show` describes them; "
                f"`{cli} policy accept` lets future payloads include them.",
                style="dim",
            )
        )
    if item.entry.receipts:
        parts += [Text("\nReceipts", style="bold"), _receipt_grid(item)]
    elif item.state.value in ("pending", "held"):
        parts.append(Text("\nNot sent yet. The Next row above says what to type.", style="dim"))
    return Group(*parts)


# -- stats forget ------------------------------------------------------------------------


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def forget_plan_view(plan: ForgetPlan) -> Group:
    """What `stats forget` is about to do, for the confirmation question."""
    grid = _grid()
    where = ", ".join(plan.spool_dirs) or "nothing is spooled"
    grid.add_row("Payloads", f"{plan.payloads:,}, in every state, are deleted from {where}")
    if plan.current_client_id:
        grid.add_row("Client id", f"{plan.current_client_id} is replaced by a new random id")
    if plan.client_ids:
        grid.add_row(
            "Server", "is asked to delete what it holds for\n" + "\n".join(plan.client_ids)
        )
    return Group(Text("This deletes your usage statistics:", style="bold"), grid)


def forget_result_view(result: ForgetResult) -> Group:
    """What `stats forget` did; the e-mail, if any, is printed apart so it copies cleanly."""
    grid = _grid()
    where = ", ".join(result.spool_dirs)
    grid.add_row("Deleted", plural(result.removed) + (f" from {where}" if where else ""))
    if result.new_client_id:
        grid.add_row("Client id", f"{result.new_client_id} (new)")
    if not result.old_client_ids:
        grid.add_row("Server", "nothing to ask for: no client id was ever used here")
    elif result.accepted_by:
        grid.add_row(
            "Server",
            Text.assemble(
                ("deletion request sent", "green"),
                " to " + ", ".join(result.accepted_by),
                "\nfor " + ", ".join(result.old_client_ids),
            ),
        )
    elif result.email is None:
        grid.add_row("Server", "deletion request not sent; nothing was ever sent under these ids")
    else:
        grid.add_row(
            "Server", Text("deletion request not sent: please send the e-mail below", "yellow")
        )
    return Group(grid)
