"""`churnhub dunning`: open dunning cases with their next step; `churnhub dunning run`: one round."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from hub.commands.context import console, print_json, state
from hub.dunning import list_cases, run_dunning
from hub.errors import ConfigError

app = typer.Typer(help="Failed-payment recovery: cases, retries, emails, final actions.", no_args_is_help=False)


NowOption = Annotated[str | None, typer.Option("--now", help="Act as of this ISO-8601 time (default: now).")]


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--now: expected an ISO-8601 time like 2026-03-02T09:00:00Z, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _money(amount: Any, currency: Any) -> str:
    return f"{(amount or 0) / 100:,.2f} {(currency or '').upper()}".strip()


@app.callback(invoke_without_command=True)
def cases(
    ctx: typer.Context,
    all_cases: Annotated[bool, typer.Option("--all", help="Closed cases too.")] = False,
    now: NowOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Open cases: invoice, decline, attempts, steps taken and the next step.

    Example: churnhub dunning --json
    """
    if ctx.invoked_subcommand is not None:
        return
    found = list_cases(state(ctx).hub(), include_closed=all_cases, now=_moment(now))
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("No open dunning cases.")
        return
    grid = Table()
    for column in ("case", "invoice", "customer", "status", "amount", "decline", "attempts", "next step"):
        grid.add_column(column)
    for case in found:
        upcoming = case["next_step"]
        grid.add_row(str(case["id"]), case["invoice"], case["customer_id"] or "-", case["status"],
                     _money(case["amount_due"], case["currency"]), case["decline_code"] or "-", str(case["attempts"]),
                     f"{upcoming['step']} at {upcoming['due'][:16]}" if upcoming else (case["recovered_by"] or "-"))
    console.print(grid)


@app.command("run")
def run(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the steps that are due; change nothing.")] = False,
    no_execute: Annotated[bool, typer.Option("--no-execute", help="Enqueue only; leave execution to the outbox.")] = False,
    now: NowOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Reconcile cases with synced invoices, enqueue the due steps and execute them.

    Example: churnhub dunning run --json
    """
    report = run_dunning(state(ctx).hub(), execute=not no_execute, dry_run=dry_run, now=_moment(now))
    if as_json:
        print_json(report.as_json())
        return
    console.print(f"cases opened {report.opened}, closed {report.closed}; steps enqueued {report.enqueued}")
    for step in report.steps:
        note = f" ({step['error']})" if step["error"] else ""
        console.print(f"  {step['status']:<8} {step['key']}  {step['summary']}{note}")
    if report.executed:
        console.print("executed: " + ", ".join(f"{k} {v}" for k, v in sorted(report.executed.items())))
