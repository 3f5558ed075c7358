"""rich renderings of the library's data. Imported lazily, by the CLI only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from consent.notices import NoticeText
    from consent.policy import Policy, PolicyDiff
    from consent.status import Snapshot

__all__ = ["diff_table", "notice_panel", "policy_table", "status_panel"]

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


def policy_table(policy: Policy, *, only: set[str] | None = None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    table.add_column("Category", style="bold")
    table.add_column("Field", style="cyan", no_wrap=True)
    table.add_column("What and why")
    for category, specs in policy.by_category().items():
        shown = [spec for spec in specs if only is None or spec.name in only]
        for index, spec in enumerate(shown):
            table.add_row(category if index == 0 else "", spec.name, escape(spec.description))
    return table


def policy_panel(policy: Policy) -> Panel:
    header = Text.assemble(
        (f"{policy.name} usage-statistics policy, version {policy.version}", "bold"),
        f" (effective {policy.effective.isoformat()})\n",
        policy.summary,
        "\n",
    )
    footer = Text(
        f"\nSent to {policy.endpoint} ({policy.format})\nDetails: {policy.docs_url}"
        f"\nQuestions or deletion: {policy.contact}",
        style="dim",
    )
    return Panel(Group(header, policy_table(policy), footer), box=box.ROUNDED, expand=False)


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


_SOURCE_WORDS = {
    "env": "set by the environment variable",
    "do_not_track": "DO_NOT_TRACK is set",
    "config": "set in the config file",
    "legacy_config": "set in Skyplane 0.3's config file",
    "invalid_config": "the config file has a problem",
    "default": "the default",
}


def status_panel(snap: Snapshot, cli: str) -> Panel:
    decision = snap.decision
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row(
        "Usage statistics",
        f"{_yes_no(decision.enabled)} ({_SOURCE_WORDS.get(decision.source, decision.source)})",
    )
    grid.add_row("Review before upload", _yes_no(decision.review_before_upload))
    if snap.policy:
        ack = snap.record.acknowledgement if snap.record else None
        if snap.policy_status and snap.policy_status.up_to_date:
            state = "[green]acknowledged[/]"
        elif ack is None:
            state = "[yellow]not yet acknowledged[/]"
        else:
            state = f"[yellow]you acknowledged version {ack.version}[/]"
        grid.add_row("Policy", f"version {snap.policy.version}, {state}")
    grid.add_row("Client id", escape(snap.record.client_id) if snap.record else "[dim]none yet[/]")
    counts = ", ".join(f"{count} {state}" for state, count in snap.counts.items())
    grid.add_row("Payloads", counts)
    grid.add_row("Spool", escape(snap.spool_dir))
    grid.add_row("Endpoints", escape("\n".join(snap.endpoints)) or "[dim]none[/]")
    hints = Text(
        f"\n{cli} stats review   see every payload\n"
        f"{cli} config set usage_stats {'false' if decision.enabled else 'true'}   "
        f"turn it {'off' if decision.enabled else 'on'}",
        style="dim",
    )
    return Panel(Group(grid, hints), title="Usage statistics", title_align="left", expand=False)
