"""`churnhub churn`: classify churn (idempotently) and list the events."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hub.churn import EVENT_TYPES
from hub.churnrun import list_events, run_churn
from hub.commands.context import console, print_json, state
from hub.commands.health_cmd import churn_settings, parse_moment
from hub.errors import ConfigError


def churn(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="Events on or after this date (2025-01-01) or this long ago (90d).")] = "30d",
    types: Annotated[list[str] | None, typer.Option("--type", "-t", help="Only this type (repeatable): "
                                                     + ", ".join(EVENT_TYPES) + ".")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many events (0: all).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Classify churn from the synced facts, then list churn events, newest first.

    Re-running writes nothing new; every customer's churn state is kept current.
    Example: churnhub churn --since 2025-01-01 --type involuntary --json
    """
    hub = state(ctx).hub()
    unknown = sorted(set(types or ()) - set(EVENT_TYPES))
    if unknown:
        raise ConfigError(f"unknown churn type(s) {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})")
    start = parse_moment(since)
    run = run_churn(hub.engine, churn_settings(hub))
    with hub.engine.connect() as connection:
        events = list_events(connection, since=start, types=types, limit=limit or None)
    if as_json:
        print_json({"run": run.as_dict(), "since": start, "events": events})
        return
    table = Table("when", "customer", "type", "reason", "MRR lost")
    for event in events:
        table.add_row(f"{event['occurred_at']:%Y-%m-%d}", escape(event["name"] or event["customer_id"]), event["type"],
                      escape(event["reason"] or "-"),
                      f"{event['mrr_lost'] / 100:,.2f} {(event['currency'] or '').upper()}".strip())
    console.print(table)
    states = ", ".join(f"{count:,} {state}" for state, count in sorted(run.states.items()))
    console.print(f"{len(events):,} event(s) since {start:%Y-%m-%d}; {run.inserted} new, {run.updated} updated; "
                  f"customers: {states}")
