"""`churnhub identity report|resolve`: how records became customers, and what could not be decided."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hub.commands.context import console, print_json, state
from hub.identity import Resolution
from hub.identity_store import IdentityReport, connector_types_of, plan, resolve_identities, summarise

app = typer.Typer(help="Identity resolution: one customer per company across every system.",
                  no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _unmatched(resolution: Resolution) -> list[dict[str, Any]]:
    return [{"customer_id": c.id, "name": c.name, "domain": c.domain, "connector": c.connectors[0],
             "records": [{"connector": m.key.connector, "external_id": m.key.external_id, "rule": m.rule}
                         for m in c.members]}
            for c in resolution.single_system()]


@app.command()
def report(ctx: typer.Context, as_json: JsonOption = False,
           limit: Annotated[int, typer.Option("--limit", help="Rows shown per section (text output).")] = 50,
           ) -> None:
    """Records only one system knows (unmatched) and conflicts with their evidence. Changes nothing.

    Example: churnhub identity report --json | jq '.conflicts[].message'
    """
    hub = state(ctx).hub()
    with hub.engine.connect() as connection:
        resolution, _existing, changes = plan(connection, hub.settings.file.identity,
                                              connector_types_of(hub.settings))
    pending = summarise(resolution, changes)
    data = {"summary": pending.as_dict() | {"up_to_date": not pending.changed},
            "unmatched": _unmatched(resolution), "conflicts": resolution.conflict_dicts(),
            "problems": resolution.problems}
    if as_json:
        print_json(data)
        return
    _print_summary(pending, pending_only=True)
    _print_conflicts(data["conflicts"], limit)
    _print_unmatched(data["unmatched"], limit)
    for problem in resolution.problems[:limit]:
        console.print(f"[yellow]problem[/yellow] {escape(problem)}", highlight=False)
    _more(len(resolution.problems), limit, "problems")


@app.command("resolve")
def resolve_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Match every account record into customers now and store the result (a sync does this too)."""
    hub = state(ctx).hub()
    result = resolve_identities(hub.engine, hub.settings.file.identity, connector_types_of(hub.settings))
    if as_json:
        print_json(result.as_dict())
    else:
        _print_summary(result, pending_only=False)


def _print_summary(report: IdentityReport, *, pending_only: bool) -> None:
    console.print(f"{report.customers:,} customers, {report.single_system:,} known to one system only, "
                  f"{report.conflicts:,} conflict(s), {report.problems:,} problem(s)")
    changed = (f"customers +{report.created} ~{report.updated} unlinked {report.unlinked}; "
               f"links +{report.links_added} ~{report.links_changed} -{report.links_removed}")
    if pending_only:
        console.print("stored resolution is up to date" if not report.changed
                      else f"not yet stored ({changed}): run `churnhub identity resolve`")
    else:
        console.print(f"written: {changed}" if report.changed else "nothing changed")


def _print_conflicts(conflicts: list[dict[str, Any]], limit: int) -> None:
    for conflict in conflicts[:limit]:
        console.print(f"[red]conflict[/red] ({conflict['rule']}) {escape(conflict['message'])}", highlight=False)
        for label, sides in (("candidate", conflict["candidates"]), ("left apart", conflict["unmatched"])):
            for side in sides:
                console.print(f"    {label}: {side['customer_id']}  {', '.join(side['records'])}",
                              markup=False, highlight=False)
    _more(len(conflicts), limit, "conflicts")


def _print_unmatched(unmatched: list[dict[str, Any]], limit: int) -> None:
    if not unmatched:
        return
    table = Table(title="known to one system only")
    table.add_column("customer", no_wrap=True)
    for column in ("name", "domain", "records"):
        table.add_column(column)
    for item in unmatched[:limit]:
        records = ", ".join(f"{r['connector']}:{r['external_id']}" for r in item["records"])
        table.add_row(item["customer_id"], escape(item["name"] or "-"), item["domain"] or "-", escape(records))
    console.print(table)
    _more(len(unmatched), limit, "unmatched customers")


def _more(total: int, limit: int, what: str) -> None:
    if total > limit:
        console.print(f"... and {total - limit:,} more {what} (--limit, or --json for all)")
