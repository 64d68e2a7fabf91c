"""`churnhub actions`: see the outbox, execute what is due, and replay failures.

    churnhub actions --status dead          # what gave up, with the provider's own error text
    churnhub actions retry 42               # back to pending with a fresh attempt budget
    churnhub actions run                    # execute due actions now (workers do this on schedule)
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from hub import outbox
from hub.commands.context import console, print_json, state
from hub.errors import HubError
from hub.models import utcnow

app = typer.Typer(help="See, run and replay outbox actions.", no_args_is_help=False)

STATUS_COLOURS = {"succeeded": "green", "failed": "yellow", "dead": "red", "skipped": "dim", "pending": "cyan",
                  "running": "blue", "sending": "blue"}


class ActionsError(HubError):
    """A request the outbox cannot honour (unknown id, wrong status, unknown status name)."""


def _when(row: dict[str, Any]) -> str:
    if row["status"] == "failed" and row.get("next_attempt_at"):
        return f"retry {row['next_attempt_at']:%Y-%m-%d %H:%M}"
    stamp = row.get("finished_at") or row.get("updated_at")
    return f"{stamp:%Y-%m-%d %H:%M}" if stamp else "-"


def _target(row: dict[str, Any]) -> str:
    if row.get("connector"):
        return f"{row['connector']}.{row['operation']}"
    return row.get("operation") or "-"


@app.callback(invoke_without_command=True)
def actions(ctx: typer.Context,
            status: Annotated[str | None, typer.Option("--status", "-s", help=f"One of: {', '.join(outbox.STATUSES)}.")] = None,
            customer: Annotated[str | None, typer.Option("--customer", help="Only this customer id.")] = None,
            limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Newest N actions.")] = 50,
            as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List outbox actions, newest first, with attempts and the provider's error text.

    Example: churnhub actions --status failed --json
    """
    if ctx.invoked_subcommand is not None:
        return
    if status is not None and status not in outbox.STATUSES:
        raise ActionsError(f"unknown status {status!r} (one of: {', '.join(outbox.STATUSES)})")
    hub = state(ctx).hub()
    with hub.engine.connect() as connection:
        rows = outbox.list_actions(connection, status=status, customer_id=customer, limit=limit)
        counts = outbox.count_by_status(connection)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "status", "action", "customer", "target", "tries", "when")
    for row in rows:
        colour = STATUS_COLOURS.get(row["status"], "white")
        table.add_row(str(row["id"]), f"[{colour}]{row['status']}[/{colour}]", row["action_type"],
                      row.get("customer_id") or "-", _target(row), str(row["attempts"]), _when(row))
    console.print(table)
    # Errors below the table, whole: the provider's own words are the point, not a truncated cell.
    for row in rows:
        if row.get("error") and row["status"] != "succeeded":
            code = f"[{row['error_code']}] " if row.get("error_code") else ""
            console.print(f"  {row['id']}: {code}{row['error']}", highlight=False, markup=False)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "the outbox is empty"
    console.print(f"{len(rows)} shown; all actions: {summary}")


@app.command()
def retry(ctx: typer.Context,
          action_id: Annotated[int, typer.Argument(help="The action's id (see `churnhub actions`).")],
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Move a failed or dead action back to pending; the next run executes it again.

    Example: churnhub actions retry 42
    """
    hub = state(ctx).hub()
    try:
        with hub.engine.begin() as connection:
            row = outbox.retry(connection, action_id, now=utcnow())
    except outbox.OutboxError as exc:
        raise ActionsError(str(exc)) from None
    if as_json:
        print_json(row)
    else:
        console.print(f"action {action_id} ({row['action_type']}) is pending again")


@app.command("run")
def run(ctx: typer.Context,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most N actions per batch.")] = 100,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Execute every due action now (claimed with a lease, so several workers can run this at once).

    Example: churnhub actions run --json
    """
    hub = state(ctx).hub()
    report = outbox.runner_for(hub).drain(batch=limit)
    counts = report.counts()
    if as_json:
        print_json({"claimed": report.claimed, "counts": counts,
                    "outcomes": [asdict(outcome) for outcome in report.outcomes]})
        return
    for outcome in report.outcomes:
        if outcome.status in ("failed", "dead"):
            console.print(f"[red]{outcome.status}[/red] action {outcome.id} {outcome.action_type}: {outcome.error}")
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing was due"
    console.print(f"{report.claimed} action(s) executed: {summary}")
