"""`churnhub customers` and `churnhub customer REF`: the unified customers, one line each or 360°."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hub.churnrun import list_events
from hub.commands.context import console, print_json, state
from hub.outbox import list_actions
from hub.scoring import customer_health
from hub.sections.health import HealthSettings
from hub.views import customer_360, customer_list, find_customer

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
# ISO 4217 currencies without minor units: amounts are already whole.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())


RECENT = 10   # churn events and actions shown in the 360° view


def money(amount: int | None, currency: str | None) -> str:
    """Minor units -> "1,234.50 USD"."""
    if amount is None:
        return "-"
    code = (currency or "").upper()
    if currency and currency.lower() in ZERO_DECIMAL:
        return f"{amount:,} {code}".strip()
    return f"{amount / 100:,.2f} {code}".strip()


def customers(
    ctx: typer.Context,
    band: Annotated[str | None, typer.Option("--band", "-b", help="Only customers whose latest health band is B.")] = None,
    include_unlinked: Annotated[bool, typer.Option("--all", help="Include customers whose records are all gone.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List customers, biggest MRR first, with their systems and latest health.

    Example: churnhub customers --band red --json
    """
    hub = state(ctx).hub()
    with hub.engine.connect() as connection:
        rows = customer_list(connection, band=band, include_unlinked=include_unlinked)
    if as_json:
        print_json(rows)
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    for column in ("name", "domain", "MRR", "health", "systems"):
        table.add_column(column)
    for row in rows:
        health = row["health"]
        systems = sorted({link["connector"] for link in row["links"]})
        table.add_row(row["id"], escape(row["name"] or "-"), row["domain"] or "-", money(row["mrr"], row["currency"]),
                      escape(f"{health['band']} {health['score']:.0f}") if health else "-",
                      escape(", ".join(systems) or row["status"] or "-"))
    console.print(table)
    console.print(f"{len(rows):,} customer(s)")


def customer(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Customer id, domain, or a linked id (connector:external_id or bare).")],
    as_json: JsonOption = False,
) -> None:
    """The 360° view of one customer: linked records per system, MRR, plan, tickets, invoices, health.

    Example: churnhub customer acme.com
    """
    hub = state(ctx).hub()
    with hub.engine.connect() as connection:
        customer_id = find_customer(connection, ref)
        view = customer_360(connection, customer_id)
        view["churn_events"] = list_events(connection, customer_id=customer_id, limit=RECENT)
        view["actions"] = list_actions(connection, customer_id=customer_id, limit=RECENT)
    explained = customer_health(hub.engine, customer_id, hub.section("health", HealthSettings),
                                hub.registry.health_factors)
    if explained is not None:
        view["health"] = explained
    if as_json:
        print_json(view)
        return
    _print_view(view)


def _print_view(view: dict[str, Any]) -> None:
    status = f" [yellow]({view['status']})[/yellow]" if view["status"] else ""
    console.print(f"[bold]{escape(view['name'] or view['id'])}[/bold]  {view['id']}  {view['domain'] or ''}{status}")
    health = view["health"]
    console.print(f"MRR {money(view['mrr'], view['currency'])}   plan {view['plan'] or '-'}   "
                  f"payment {view['payment_state'] or '-'}   churn state {view['churn_state'] or '-'}",
                  markup=False, highlight=False)
    _print_health(health)
    links = Table("system", "object", "external id", "name", "matched by", title="linked records")
    names = {(a["connector"], a["external_id"]): a["name"]
             for system in view["systems"].values() for a in system["accounts"]}
    for link in view["links"]:
        links.add_row(escape(link["connector"]), link["object"], escape(link["external_id"]),
                      escape(names.get((link["connector"], link["external_id"])) or "-"), link["rule"])
    console.print(links)
    counts = [f"{connector}: " + ", ".join(f"{n} {kind}" for kind, n in sorted(system["records"].items()))
              for connector, system in view["systems"].items() if system["records"]]
    if counts:
        console.print("records  " + "; ".join(counts), markup=False, highlight=False)
    tickets = view["open_tickets"]
    console.print(f"open tickets: {tickets['count']}")
    for ticket in tickets["recent"]:
        console.print(f"  {ticket['connector']}:{ticket['external_id']}  {ticket['status']}  "
                      f"{ticket['priority'] or ''}  {ticket['subject'] or ''}", markup=False, highlight=False)
    if view["invoices"]:
        invoices = Table("invoice", "status", "due", "paid", "attempts", "created", title="last invoices")
        for invoice in view["invoices"]:
            invoices.add_row(escape(invoice["external_id"]), escape(invoice["status"] or "-"),
                             money(invoice["amount_due"], invoice["currency"]),
                             money(invoice["amount_paid"], invoice["currency"]),
                             str(invoice["attempt_count"] or 0), invoice["created_at"] or "-")
        console.print(invoices)
    _print_history(view)


def _trend(change: float | None, days: str) -> str:
    return f"{change:+.0f} vs {days} ago" if change is not None else f"no score {days} ago"


def _print_health(health: dict[str, Any] | None) -> None:
    if not health:
        console.print("health: not scored yet (churnhub score)")
        return
    trend = health.get("trend") or {}
    trends = ", ".join(_trend(change, days) for days, change in trend.items())
    console.print(f"[bold]health {health['score']:.0f}[/bold] [{health['band']}]{health['band']}[/{health['band']}]"
                  + (f"  ({escape(trends)})" if trends else ""), highlight=False)
    for line in health.get("lines", []):
        if not line.startswith(("+0 ", "-0 ")):
            console.print(f"  {escape(line)}", highlight=False)


def _print_history(view: dict[str, Any]) -> None:
    for event in view.get("churn_events", []):
        console.print(f"churn {event['occurred_at']:%Y-%m-%d} {event['type']}"
                      f" ({event['reason'] or 'no reason'}), {money(event['mrr_lost'], event['currency'])} MRR lost",
                      markup=False, highlight=False)
    actions = view.get("actions", [])
    if actions:
        table = Table("action", "from", "status", "operation", "attempts", "error", title="recent actions")
        for action in actions:
            table.add_row(escape(action["action_type"]), escape(action["source"]), action["status"],
                          escape(f"{action['connector'] or 'hub'}.{action['operation'] or '-'}"),
                          str(action["attempts"]), escape((action["error"] or "")[:60]))
        console.print(table)
