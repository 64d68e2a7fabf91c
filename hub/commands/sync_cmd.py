"""`churnhub sync` and `churnhub status`."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import case, func, select

from hub import pipeline
from hub.commands.context import console, err_console, print_json, state
from hub.commands.progress import LogProgress, RichProgress
from hub.models import SourceRecord, SyncRun, SyncState


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM and the first Ctrl-C finish the current page and stop; a second Ctrl-C aborts."""
    def request_stop(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        err_console.print("stopping after the current page (Ctrl-C again to abort)")

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def sync(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Connector names (default: all enabled).")] = None,
    stream: Annotated[list[str] | None, typer.Option("--stream", "-s", help="Only this stream (repeatable).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-read everything and detect records gone upstream.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Sync inbound streams into the database; resumes where the last run stopped.

    Example: churnhub sync billing --stream invoices
    """
    hub = state(ctx).hub()
    stop = threading.Event()
    install_stop_handlers(stop)
    interactive = sys.stderr.isatty() and not as_json
    with (RichProgress(err_console) if interactive else LogProgress()) as progress:
        outcome = pipeline.sync(hub, names, streams=stream, full=full, progress=progress, stop=stop)
    if as_json:
        print_json({"ok": outcome.ok, "runs": [run.as_dict() for run in outcome.runs], "steps": outcome.steps})
    else:
        for run in outcome.runs:
            for note in run.notes:
                console.print(f"[yellow]note[/yellow] {run.connector}.{run.stream}: {note}")
            if run.error:
                console.print(f"[red]{run.connector}.{run.stream} {run.status}:[/red] {run.error}")
        total = sum(run.records for run in outcome.runs)
        console.print(f"{len(outcome.runs)} stream(s), {total:,} records read")
    if not outcome.ok:
        raise typer.Exit(1)


def status(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each stream's last run, lag since its last success, record counts and last error."""
    hub = state(ctx).hub()
    now = datetime.now(UTC)
    with hub.engine.connect() as connection:
        runs = connection.execute(select(SyncRun).order_by(SyncRun.id)).mappings().all()
        streams = connection.execute(select(SyncState.connector, SyncState.stream)).all()
        counts = connection.execute(
            select(SourceRecord.connector, SourceRecord.kind, func.count(),
                   func.sum(case((SourceRecord.deleted, 1), else_=0)))
            .group_by(SourceRecord.connector, SourceRecord.kind)).all()
    latest: dict[tuple[str, str], Any] = {}
    last_ok: dict[tuple[str, str], Any] = {}
    for run in runs:
        key = (run["connector"], run["stream"])
        latest[key] = run
        if run["status"] == "succeeded":
            last_ok[key] = run
    keys = sorted(set(latest) | {tuple(s) for s in streams})
    rows = []
    for key in keys:
        run, ok = latest.get(key), last_ok.get(key)
        finished = ok["finished_at"] if ok else None
        if finished is not None and finished.tzinfo is None:
            finished = finished.replace(tzinfo=UTC)
        rows.append({
            "connector": key[0], "stream": key[1],
            "last_status": run["status"] if run else None,
            "last_started_at": run["started_at"] if run else None,
            "last_success_at": finished,
            "lag_seconds": round((now - finished).total_seconds()) if finished else None,
            "last_error": run["error"] if run else None,
        })
    records = [{"connector": c, "kind": k, "records": n, "deleted": int(d or 0)} for c, k, n, d in counts]
    if as_json:
        print_json({"streams": rows, "records": records})
        return
    table = Table("stream", "last run", "lag", "error")
    for row in rows:
        lag = f"{row['lag_seconds']}s" if row["lag_seconds"] is not None else "never succeeded"
        table.add_row(f"{row['connector']}.{row['stream']}", row["last_status"] or "-", lag,
                      (row["last_error"] or "")[:80])
    console.print(table)
    counts_table = Table("connector", "kind", "records", "deleted")
    for item in records:
        counts_table.add_row(item["connector"], item["kind"], f"{item['records']:,}", f"{item['deleted']:,}")
    console.print(counts_table)
