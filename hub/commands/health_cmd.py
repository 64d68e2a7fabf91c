"""`churnhub score` and `churnhub health backtest`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from hub.app import Hub
from hub.backtest import backtest as run_backtest
from hub.commands.context import console, print_json, state
from hub.errors import ConfigError
from hub.health import Locate, plain_error
from hub.scoring import score_all
from hub.sections.churn import ChurnSettings
from hub.sections.common import parse_duration
from hub.sections.health import HealthSettings

app = typer.Typer(help="Health score tools: backtest the score against what happened.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def health_settings(hub: Hub) -> HealthSettings:
    return hub.section("health", HealthSettings)


def churn_settings(hub: Hub) -> ChurnSettings:
    return hub.section("churn", ChurnSettings)


def locate(hub: Hub) -> Locate:
    return hub.settings.source.error if hub.settings.source is not None else plain_error


def parse_moment(value: str, *, now: datetime | None = None) -> datetime:
    """`2025-03-01`, an ISO datetime, or a duration back from now (`90d`) -> aware UTC datetime."""
    now = now or datetime.now(UTC)
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"expected a date like 2025-03-01 or a duration like 90d, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def score(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Recompute every customer's health score and add it to the history.

    Example: churnhub score --json
    """
    hub = state(ctx).hub()
    run = score_all(hub.engine, health_settings(hub), hub.registry.health_factors, locate=locate(hub))
    if as_json:
        print_json(run.as_dict())
        return
    table = Table("band", "customers")
    for band, count in run.bands.items():
        table.add_row(f"[{band}]{band}[/{band}]", f"{count:,}")
    console.print(table)
    average = f"{run.average:.1f}" if run.average is not None else "-"
    console.print(f"{run.scored:,} scored (average {average}), {run.unscored:,} without a score "
                  f"(churned or no data) in {sum(run.timings.values()):.1f}s")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _row(name: str, metrics: dict[str, Any]) -> list[str]:
    return [name, "-" if metrics["auc"] is None else f"{metrics['auc']:.3f}",
            _pct(metrics["red"]["precision"]), _pct(metrics["red"]["recall"]),
            _pct(metrics["red_or_yellow"]["recall"]),
            "-" if metrics["top_decile_lift"] is None else f"{metrics['top_decile_lift']:.2f}x",
            _pct(metrics["revenue"]["captured_red"])]


@app.command()
def backtest(
    ctx: typer.Context,
    as_of: Annotated[str, typer.Option("--as-of", help="Score as of this date (2025-03-01) or this long ago (120d).")],
    horizon: Annotated[str, typer.Option("--horizon", help="Churn counted within this long after --as-of.")] = "90d",
    fit: Annotated[bool, typer.Option("--fit", help="Propose weights fitted by logistic regression.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Score everyone as of a past date and measure how well the score ranked who churned.

    Example: churnhub health backtest --as-of 2025-01-01 --horizon 90d --fit
    """
    hub = state(ctx).hub()
    try:
        window = parse_duration(horizon)
    except ValueError as exc:
        raise ConfigError(f"--horizon: {exc}") from None
    try:
        result = run_backtest(hub.engine, health_settings(hub), churn_settings(hub), hub.registry.health_factors,
                              as_of=parse_moment(as_of), horizon=window, fit=fit, locate=locate(hub))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if as_json:
        print_json(result.as_dict())
        return
    current = result.current.as_dict()
    console.print(f"as of {result.as_of:%Y-%m-%d}, horizon {result.horizon_days:.0f} days: "
                  f"{current['customers']:,} live customers, {current['churned']:,} churned "
                  f"(base rate {_pct(current['base_rate'])})")
    table = Table("config", "ROC AUC", "red precision", "red recall", "red+yellow recall", "top-decile lift",
                  "churned MRR caught (red)")
    table.add_row(*_row("current", current))
    if result.proposal:
        table.add_row(*_row("proposal", result.proposal["metrics"]))
    console.print(table)
    if result.proposal:
        trained = result.proposal["trained_on"]
        console.print(f"proposed weights (trained as of {trained['as_of']:%Y-%m-%d}"
                      f"{'' if trained['out_of_sample'] else ', in sample'}):")
        console.print("health:\n  factors:\n" + "".join(
            f"    {name}: {{weight: {weight}}}\n" for name, weight in result.proposal["weights"].items()), highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]note:[/yellow] {warning}")
