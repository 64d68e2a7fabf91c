"""`churnhub metrics` (retention metrics per period) and `churnhub report` (the HTML report)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from hub import metrics as retention
from hub.commands.context import console, print_json, state
from hub.commands.health_cmd import churn_settings, health_settings, locate, parse_moment
from hub.errors import ConfigError
from hub.factsdb import load_facts
from hub.report import gather, render

PeriodName = Literal["week", "month", "quarter"]


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{suffix}"
    return f"{value:,}{suffix}"


def metrics(
    ctx: typer.Context,
    period: Annotated[PeriodName, typer.Option("--period", help="week, month or quarter.")] = "month",
    start: Annotated[str | None, typer.Option("--from", help="First period (2025-01-01 or 365d); default: 12 periods back.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End (exclusive; default now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Churn rate (by type), MRR churn, GRR, NRR, NPS, CLV, engagement, dunning recovery, cohorts.

    Definitions: docs/metrics.md. Example: churnhub metrics --period month --from 2025-01-01 --json
    """
    hub = state(ctx).hub()
    now = datetime.now(UTC)
    until = parse_moment(end, now=now) if end else now
    if start:
        since = parse_moment(start, now=now)
    elif period == "week":
        since = until - timedelta(weeks=12)
    else:
        since = retention.month_start(until, -11 if period == "month" else -33)
    if since >= until:
        raise ConfigError("--from must be before --to")
    rules = churn_settings(hub)
    with hub.engine.connect() as connection:
        table = load_facts(connection, now=now)
    result = retention.compute(table, rules, start=since, end=until, period=period, now=now)
    if as_json:
        print_json(result)
        return
    grid = Table()
    grid.add_column("period", no_wrap=True)
    for header in ("customers", "lost", "churn %", "vol/invol %", "MRR churn %", "GRR %", "NRR %", "NPS", "dunning %"):
        grid.add_column(header, justify="right")
    for row in result["periods"]:
        by_type = row["churn_rate_by_type"]
        grid.add_row(row["period"], _fmt(row["customers_start"]), _fmt(row["customers_lost"]), _fmt(row["churn_rate"]),
                     f"{_fmt(by_type['voluntary'])}/{_fmt(by_type['involuntary'])}", _fmt(row["mrr_churn_rate"]),
                     _fmt(row["grr"]), _fmt(row["nrr"]), _fmt(row["nps"]["score"]), _fmt(row["dunning"]["recovery_rate"]))
    console.print(grid)
    if len(result["currencies"]) > 1:
        console.print(f"[yellow]note:[/yellow] MRR mixes currencies ({', '.join(result['currencies'])}) without conversion")


def report(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the HTML file.")] = Path("report.html"),
    months: Annotated[int, typer.Option("--months", min=1, max=60, help="Months of history to chart.")] = 12,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary of what was written.")] = False,
) -> None:
    """Write one self-contained HTML report (opens offline): churn, health, NPS, cohorts, revenue at risk,
    dunning and playbook outcomes.

    Example: churnhub report --out report.html
    """
    hub = state(ctx).hub()
    data = gather(hub.engine, health_settings(hub), churn_settings(hub), hub.registry.health_factors,
                  months=months, locate=locate(hub))
    html = render(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    summary = {"out": str(out), "bytes": len(html.encode()), "customers": data.kpis["customers"],
               "at_risk": len(data.at_risk), "generated_at": data.generated_at}
    if as_json:
        print_json(summary)
    else:
        console.print(f"Wrote {out} ({summary['bytes'] / 1e6:.1f} MB): {data.kpis['customers']:,} live customers, "
                      f"{len(data.at_risk)} at risk. Open it in any browser; it works offline.")
