"""`consent policy`: what is collected, what changed, and accepting a change."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from consent.cli._context import current_scope
from consent.cli._terminal import (
    display_info,
    print_json,
    print_long,
    print_out,
    reports_errors,
)

policy_app = typer.Typer(
    name="policy",
    help="Show the usage-statistics policy, what changed, and accept a change.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


@policy_app.command("show")
@reports_errors
def show(
    json_: JsonOption = False,
    no_pager: Annotated[
        bool, typer.Option("--no-pager", help="Print straight to the terminal, without a pager.")
    ] = False,
) -> None:
    """Show every field that may be collected, grouped by category, why, and where it goes."""
    from consent.notices import endpoints_in_force
    from consent.policy import load_policy

    scope = current_scope()
    policy = load_policy(scope.policy_path)
    endpoints, problem = endpoints_in_force(policy, scope)
    if json_:
        print_json(
            {
                "name": policy.name,
                "version": policy.version,
                "effective": policy.effective.isoformat(),
                "fingerprint": policy.fingerprint,
                "summary": policy.summary,
                "docs_url": policy.docs_url,
                "contact": policy.contact,
                "endpoint": policy.endpoint,
                "endpoints_in_force": endpoints,
                "format": policy.format,
                "path": str(policy.path),
                "fields": {
                    name: {"type": f.type, "category": f.category, "description": f.description}
                    for name, f in policy.fields.items()
                },
            }
        )
        return
    from consent.render import policy_panel

    title = f"{policy.name} usage-statistics policy, version {policy.version}"
    closing = f"Effective {policy.effective.isoformat()}. Policy file: {policy.path}"
    panel = policy_panel(
        policy, title=title, closing=closing, endpoints=endpoints, endpoint_problem=problem
    )
    print_long(panel, pager=not no_pager)


@policy_app.command("diff")
@reports_errors
def diff(json_: JsonOption = False) -> None:
    """Show what changed between the policy you acknowledged and the one in force."""
    from consent.notices import policy_status
    from consent.policy import diff_schemas, load_policy
    from consent.record import load_record

    scope = current_scope()
    cli = scope.profile.cli_name
    policy = load_policy(scope.policy_path)
    record = load_record(scope.record_path)
    status = policy_status(policy, record)
    ack = record.acknowledgement if record else None
    changes = diff_schemas(ack.schema if ack else {}, policy.schema)
    if json_:
        result: dict[str, Any] = {
            "acknowledged_version": ack.version if ack else None,
            "version": policy.version,
            "up_to_date": status.up_to_date,
            "added": list(changes.added),
            "removed": list(changes.removed),
            "changed": [
                {
                    "field": name,
                    "from": {"type": o[0], "category": o[1]},
                    "to": {"type": n[0], "category": n[1]},
                }
                for name, o, n in changes.changed
            ],
        }
        print_json(result)
        return
    if ack is None:
        print_out(f"You have not acknowledged any policy yet; version {policy.version} collects:")
    elif changes.empty:
        if status.up_to_date:
            print_out(
                f"You acknowledged version {policy.version}, the policy in force. Nothing changed."
            )
        else:
            print_out(
                f"You acknowledged version {ack.version}; version {policy.version} changes only "
                "descriptions. Nothing new is collected."
            )
        return
    else:
        print_out(f"Changes from version {ack.version} (acknowledged) to version {policy.version}:")
    from consent.render import diff_table

    print_out(diff_table(changes, policy))
    display_info(
        f"Accept with `{cli} policy accept`, or turn collection off with `{cli} stats off`."
    )


@policy_app.command("accept")
@reports_errors
def accept(json_: JsonOption = False) -> None:
    """Acknowledge the policy in force, so its new fields may be collected.

    It does not choose whether to share: on a fresh setup the default stays in
    force until you answer `init`.
    """
    from consent.actions import accept_policy
    from consent.config import load_config
    from consent.record import read_record

    scope = current_scope()
    cli = scope.profile.cli_name
    before, _ = read_record(scope.record_path)
    first = before is None or before.acknowledgement is None
    record, changed = accept_policy(scope=scope)
    ack = record.acknowledgement
    assert ack is not None
    # on a fresh setup the record notes the default in force; no answer was given
    chosen = "usage_stats" in load_config(scope.config_path)
    if json_:
        print_json(
            {
                "accepted_version": ack.version,
                "fingerprint": ack.fingerprint,
                "changed": changed,
                "chosen": chosen,
            }
        )
        return
    if not changed:
        print_out(f"Policy version {ack.version} was already accepted; nothing changed.")
        return
    if first:
        print_out(
            f"Acknowledged policy version {ack.version}: you have seen what is collected. "
            "This does not answer whether to share."
        )
    else:
        print_out(
            f"Accepted policy version {ack.version}: its new fields may be collected from now on."
        )
    if not chosen:
        from consent.decision import decide_in
        from consent.notices import mode_sentence

        in_force = mode_sentence(decide_in(scope), scope)
        print_out(f"You have not chosen yet, so the default is in force. {in_force}")
        print_out(f"Choose: `{cli} stats on`, `{cli} stats off`, or `{cli} init` on a terminal.")
