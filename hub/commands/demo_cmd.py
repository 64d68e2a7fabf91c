"""`churnhub sandbox` (the demo world in local emulators) and `churnhub demo` (the whole main job on it)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hub.commands.context import console, err_console, print_json, state
from hub.commands.progress import LogProgress, RichProgress
from hub.demo.run import demo_now, run_demo
from hub.demo.sandboxes import start_sandboxes
from hub.demo.world import DEFAULT_CUSTOMERS, DEFAULT_SEED, generate_world

CustomersOption = Annotated[int, typer.Option("--customers", "-n", min=1, help="Customers in the world.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Same seed, same world.")]


def sandbox(
    ctx: typer.Context,
    customers: CustomersOption = DEFAULT_CUSTOMERS,
    seed: SeedOption = DEFAULT_SEED,
    write: Annotated[Path | None, typer.Option("--write", "-w", help="Also write the churnhub.yaml here.")] = None,
    mail_dir: Annotated[Path | None, typer.Option("--mail-dir", help="Keep captured emails as .eml files here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print URLs and config as JSON.")] = False,
    exit_after: Annotated[float | None, typer.Option("--exit-after", hidden=True,
                                                     help="Stop after this many seconds (tests).")] = None,
) -> None:
    """Start the Salesforce, Zendesk and Stripe emulators and an SMTP sink with the demo world; print
    their URLs and a ready churnhub.yaml; run until Ctrl-C.

    Example: churnhub sandbox --customers 2000 --write ./churnhub.yaml
    """
    world = generate_world(customers, seed, now=demo_now())
    with start_sandboxes(world, state(ctx).plugins().registry, mail_dir=mail_dir) as running:
        text = running.config_yaml("sqlite:///churnhub.db")
        if write is not None:
            write.parent.mkdir(parents=True, exist_ok=True)
            write.write_text(text, encoding="utf-8")
        if as_json:
            print_json({"customers": len(world), "seed": seed, "urls": running.urls(), "missing": running.missing,
                        "config": running.config("sqlite:///churnhub.db"),
                        "config_path": str(write) if write else None})
            sys.stdout.flush()
        else:
            for name, url in running.urls().items():
                console.print(f"[bold]{name}[/bold] {url}")
            for name, why in running.missing.items():
                console.print(f"[yellow]{name}[/yellow] not started: {why}")
            sys.stdout.write(text)   # as is: a wrapped line would break the YAML when copied
            sys.stdout.flush()
            if write is not None:
                console.print(f"Wrote {write}. Next: churnhub -c {write} sync")
            err_console.print("Sandboxes running; Ctrl-C stops them.")
        _wait(exit_after)


def _wait(seconds: float | None) -> None:
    try:
        threading.Event().wait(seconds)
    except KeyboardInterrupt:
        err_console.print("stopping the sandboxes")


def demo(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Where the config, database, report and mail go.")]
    = Path(".demo"),
    customers: CustomersOption = DEFAULT_CUSTOMERS,
    seed: SeedOption = DEFAULT_SEED,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """The main job end to end, no credentials: sandboxes with a realistic world, sync, identities, churn,
    health, playbooks and dunning, a backtest and report.html, then a summary.

    Example: churnhub demo --dir .demo --customers 500 && open .demo/report.html
    """
    interactive = sys.stderr.isatty() and not as_json
    say = (lambda text: err_console.print(f"[dim]{text}[/dim]")) if not as_json else (lambda _text: None)
    with (RichProgress(err_console) if interactive else LogProgress(every_pages=1_000_000)) as progress:
        result = run_demo(directory, customers=customers, seed=seed, progress=progress, say=say)
    if as_json:
        print_json({"ok": result.ok, **result.summary})
    else:
        show_summary(result.summary)
    if not result.ok:
        raise typer.Exit(1)


def _money(cents: int) -> str:
    return f"${cents / 100:,.0f}"


def show_summary(summary: dict[str, Any]) -> None:
    truth = summary["truth"]
    customers = summary["customers"]
    console.print(f"\n[bold]Customers[/bold] {customers['total']:,} unified "
                  f"(world: {truth['customers']:,} companies + {truth['unlinkable_payers']} paying privately, "
                  f"{customers['in_several_systems']:,} matched across systems)")
    bands = summary["health"]["bands"]
    console.print(f"[bold]Health[/bold] [green]{bands['green']:,} green[/green] · [yellow]{bands['yellow']:,} yellow"
                  f"[/yellow] · [red]{bands['red']:,} red[/red]   revenue at risk: {_money(summary['revenue_at_risk']['red'])}"
                  f" MRR red, {_money(summary['revenue_at_risk']['yellow'])} yellow "
                  f"(world: {truth['at_risk_now']:,} live customers show warning signs)")
    churn = Table("churn", "customers", "MRR lost", "reasons", title=None)
    for type_, entry in sorted(summary["churn"].items()):
        reasons = ", ".join(f"{reason} {count}" for reason, count in
                            sorted(entry["reasons"].items(), key=lambda item: -item[1]))
        churn.add_row(type_, f"{entry['customers']:,}", _money(entry["mrr_lost"]), reasons)
    console.print(churn)
    actions = summary["actions"]
    by_type = ", ".join(f"{name} {sum(statuses.values())}" for name, statuses in sorted(actions["by_type"].items()))
    console.print(f"[bold]Actions[/bold] {actions['succeeded']:,} executed of {actions['total']:,}"
                  + (f" ({by_type})" if by_type else ""))
    console.print(f"[bold]Emails[/bold] {summary['emails']['captured']:,} captured by the SMTP sink")
    recovery = summary["recovery"]
    console.print(f"[bold]Dunning[/bold] {recovery['cases']:,} cases, {recovery['recovered']:,} recovered "
                  f"({_money(recovery['recovered_amount'])}); failed invoices synced: "
                  f"{summary['sources']['failed_invoices']:,} (world: {truth['failed_invoices']:,})")
    backtest = summary.get("backtest")
    if backtest:
        auc = backtest.get("auc")
        console.print(f"[bold]Backtest[/bold] as of {backtest['as_of'][:10]}, {backtest['horizon_days']} days: "
                      f"ROC AUC {auc if auc is not None else '-'}, top-decile lift {backtest.get('top_decile_lift') or '-'}")
    for note in summary.get("notes", []):
        console.print(f"[yellow]note[/yellow] {note}")
    paths = summary["paths"]
    console.print(f"\nReport   {paths['report']}\nDatabase {paths['database']}\nConfig   {paths['config']}"
                  + (f"\nMail     {paths['mail']}" if paths.get("mail") else "")
                  + f"\nTook {summary['timings']['total']:.1f}s")
