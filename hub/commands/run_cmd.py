"""`churnhub run`: the long-running scheduler process."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from hub.commands.context import console, err_console, state
from hub.scheduler import HubScheduler


def run(ctx: typer.Context,
        once: Annotated[bool, typer.Option("--once", help="Run every job once, then exit.")] = False) -> None:
    """Sync each connector on its schedule (`schedule: {every: 15m}` or cron), until stopped.

    Example: churnhub run   # Ctrl-C or SIGTERM stops after the current page
    """
    hub = state(ctx).hub()
    stopped = threading.Event()
    scheduler = HubScheduler(hub)

    def request_stop(_signum: int, _frame: Any) -> None:
        err_console.print("shutting down after the current page…")
        stopped.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if once:
        for name, config in hub.settings.connectors.items():
            if config.enabled and not stopped.is_set():
                scheduler.sync_connector(name)
        return
    scheduler.add_jobs()
    scheduler.start()
    console.print(f"churnhub run: {len(scheduler.job_ids())} job(s) scheduled; Ctrl-C to stop")
    stopped.wait()
    scheduler.shutdown()
    console.print("stopped cleanly")
