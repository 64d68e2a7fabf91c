"""`churnhub playbooks plan|run|stats`: dry run, run, and outcomes of the configured playbooks.

    churnhub playbooks plan --json          # who would enter which playbook, why, and every rendered action
    churnhub playbooks run                  # write entries and actions to the outbox once, execute them
    churnhub playbooks stats                # treated vs control: metric change and lift
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from hub.commands.context import console, print_json, state
from hub.errors import ConfigError
from hub.playbooks import plan_playbooks, playbook_stats_for, run_playbooks

app = typer.Typer(help="Plan, run and measure playbooks.", no_args_is_help=True)

NowOption = Annotated[str | None, typer.Option("--now", help="Evaluate as of this ISO-8601 time (default: now).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--now: expected an ISO-8601 time like 2026-03-02T09:00:00Z, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _summary_table(summary: dict[str, dict[str, int]], title: str) -> Table:
    table = Table(title=title)
    for column in ("playbook", "entrants", "control", "actions", "skipped", "held (cooldown/max/today)"):
        table.add_column(column)
    for name, row in summary.items():
        held = f"{row.get('held_cooldown', 0)}/{row.get('held_max_entries', 0)}/{row.get('held_occurrence', 0)}"
        table.add_row(name, str(row["entrants"]), str(row["control"]), str(row["actions"]),
                      str(row["skipped_actions"]), held)
    return table


@app.command("plan")
def plan(ctx: typer.Context, now: NowOption = None, as_json: JsonOption = False) -> None:
    """Dry run: entrants, the trigger values that let them in, and each action rendered. Nothing is executed.

    Example: churnhub playbooks plan --json | jq '.entries[] | {playbook, customer_id, trigger}'
    """
    result = plan_playbooks(state(ctx).hub(), now=_moment(now))
    if as_json:
        print_json(result.as_dict())
        return
    console.print(_summary_table(result.summary(), f"Playbooks as of {result.as_of:%Y-%m-%d %H:%M} (dry run)"))
    for entry in result.entries:
        why = ", ".join(f"{k}={v}" for k, v in entry.trigger.items())
        side = " [dim](control: no actions)[/dim]" if entry.control else ""
        console.print(f"[bold]{entry.playbook}[/bold] {entry.customer_name or entry.customer_id}: {why}{side}",
                      highlight=False)
        for intent in entry.actions:
            line = intent.summary or f"{intent.action_type}"
            if intent.status == "skipped":
                line = f"[yellow]skipped[/yellow] {intent.action_type}: {intent.error}"
            console.print(f"    - {line}", highlight=False)


@app.command("run")
def run(ctx: typer.Context, now: NowOption = None, as_json: JsonOption = False,
        execute: Annotated[bool, typer.Option("--execute/--no-execute",
                                              help="Execute the outbox afterwards (default) or leave it to workers.")] = True) -> None:
    """Evaluate, write entries and outbox actions (once: a second run is a no-op), then execute them."""
    report = run_playbooks(state(ctx).hub(), now=_moment(now), execute=execute)
    if as_json:
        print_json(report.as_dict())
        return
    console.print(_summary_table(report.plan.summary(), f"Playbooks run at {report.plan.as_of:%Y-%m-%d %H:%M}"))
    console.print(f"{report.entries_written} new entries, {report.actions_enqueued} new actions, "
                  f"{report.measured} outcomes measured; executed: "
                  f"{', '.join(f'{k} {v}' for k, v in sorted(report.executed.items())) or 'nothing'}")


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


@app.command("stats")
def stats(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Per playbook: entries, metric before/after for treated and control, and the lift."""
    rows = playbook_stats_for(state(ctx).hub())
    if as_json:
        print_json(rows)
        return
    table = Table(title="Playbook outcomes")
    for column in ("playbook", "metric", "treated", "control", "treated change", "control change", "lift", "actions"):
        table.add_column(column)
    for row in rows:
        treated, control = row["treated"], row["control"]
        table.add_row(row["playbook"], _fmt(row["metric"]), f"{treated['entries']} ({treated['measured']} measured)",
                      f"{control['entries']} ({control['measured']} measured)", _fmt(treated["mean_change"]),
                      _fmt(control["mean_change"]), _fmt(row["lift"]),
                      ", ".join(f"{k} {v}" for k, v in sorted(row["actions"].items())) or "-")
    console.print(table)
