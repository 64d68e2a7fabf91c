"""`churnhub worker`: one of several processes sharing one PostgreSQL (see hub/worker.py)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated, Any

import typer

from hub.commands.context import console, err_console, print_json, state
from hub.sections.common import parse_duration
from hub.worker import Worker, WorkerOptions, default_worker_id


def _duration(value: str) -> Any:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def worker(ctx: typer.Context,
           worker_id: Annotated[str | None, typer.Option(
               "--id", envvar="CHURNHUB_WORKER_ID",
               help="This worker's name, unique among live workers (default hostname:pid).")] = None,
           lease: Annotated[str, typer.Option(
               "--lease", envvar="CHURNHUB_WORKER_LEASE",
               help="Lease on a stream or action; a killed worker's work moves on after this (30s, 2m).")] = "60s",
           outbox_every: Annotated[str, typer.Option(
               "--outbox-every", envvar="CHURNHUB_WORKER_OUTBOX_EVERY",
               help="How often due outbox actions are claimed and executed.")] = "10s",
           batch: Annotated[int, typer.Option("--batch", min=1, help="Outbox actions claimed at a time.")] = 100,
           once: Annotated[bool, typer.Option("--once", help="Claim and run what is due once, then exit.")] = False,
           as_json: Annotated[bool, typer.Option("--json", help="With --once: print what ran as JSON.")] = False,
           ) -> None:
    """Sync streams and execute outbox actions, sharing the work with the other workers on PostgreSQL.

    Each stream is synced by one worker at a time and each action executed once: start as many as you like.

    Example: churnhub worker --id worker-1   # SIGTERM or Ctrl-C stops after the current page
    """
    hub = state(ctx).hub(database=False)
    options = WorkerOptions(worker_id=worker_id or default_worker_id(), lease=_duration(lease),
                            outbox_every=_duration(outbox_every), outbox_batch=batch)
    stopped = threading.Event()
    runner = Worker(hub, options, stop=stopped)

    def request_stop(_signum: int, _frame: Any) -> None:
        err_console.print(f"worker {options.worker_id}: stopping after the current page…")
        stopped.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    worker_log = logging.getLogger("hub.worker")   # one line per stream run, on stderr
    worker_log.setLevel(min(worker_log.getEffectiveLevel(), logging.INFO))
    if once:
        report = runner.run_once()
        if as_json:
            print_json({"worker": options.worker_id, **report.as_dict()})
        else:
            console.print(f"worker {options.worker_id}: {len(report.synced)} stream run(s), "
                          f"{len(report.skipped)} skipped, actions {report.actions or 'none due'}")
        return
    runner.start()
    console.print(f"worker {options.worker_id}: {len(runner.job_ids())} job(s) scheduled, "
                  f"lease {options.lease.total_seconds():g}s; Ctrl-C to stop")
    stopped.wait()
    runner.shutdown()
    console.print(f"worker {options.worker_id}: stopped cleanly")
