"""`churnhub run`: each connector syncs on its own schedule, followed by the processing steps.

APScheduler decides *when* work is due: one job per connector with an interval or cron trigger,
`max_instances=1` (a slow sync is never doubled), coalescing (missed runs collapse into one) and
jitter. Shutdown is graceful: a running sync finishes its current page and stops.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from hub import pipeline
from hub.app import Hub
from hub.sections.schedule import Schedule

log = logging.getLogger(__name__)
DEFAULT_EVERY = timedelta(minutes=15)


_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def crontab_weekdays(field: str) -> str:
    """Crontab counts weekdays from Sunday=0 (7 too); APScheduler 3 from Monday=0: use names."""
    return re.sub(r"(?<![/\d])([0-7])(?!\d)", lambda m: _WEEKDAY_NAMES[int(m.group(1))], field)


def trigger_for(schedule: Schedule | None) -> IntervalTrigger | CronTrigger:
    jitter = int(schedule.jitter.total_seconds()) if schedule and schedule.jitter else None
    if schedule and schedule.cron:
        minute, hour, day, month, weekday = schedule.cron.split()
        return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                           day_of_week=crontab_weekdays(weekday), timezone="UTC", jitter=jitter)
    every = schedule.every if schedule and schedule.every else DEFAULT_EVERY
    return IntervalTrigger(seconds=max(1, int(every.total_seconds())), jitter=jitter)


class HubScheduler:
    def __init__(self, hub: Hub, *, stop: threading.Event | None = None,
                 on_sync: Callable[[str, pipeline.SyncOutcome], None] | None = None) -> None:
        self.hub = hub
        self.stop = stop or threading.Event()
        self.on_sync = on_sync
        self.scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
            "max_instances": 1, "coalesce": True, "misfire_grace_time": 300})
        self._lock = threading.Lock()  # one writer at a time keeps SQLite happy and runs ordered

    def job_ids(self) -> list[str]:
        return [job.id for job in self.scheduler.get_jobs()]

    def add_jobs(self, *, run_now: bool = True) -> None:
        for name, config in self.hub.settings.connectors.items():
            if not config.enabled:
                continue
            self.scheduler.add_job(self.sync_connector, trigger_for(config.schedule), args=[name],
                                   id=f"sync:{name}", name=f"sync {name}", replace_existing=True,
                                   next_run_time=datetime.now(UTC) if run_now else None)

    def sync_connector(self, name: str) -> None:
        if self.stop.is_set():
            return
        with self._lock:
            try:
                outcome = pipeline.sync(self.hub, [name], stop=self.stop)
            except Exception:  # keep the scheduler alive; the run is recorded in sync_runs
                log.exception("scheduled sync of %s failed", name)
                return
        for run in outcome.runs:
            log.info("sync %s.%s %s: %d records", run.connector, run.stream, run.status, run.records)
        if self.on_sync:
            self.on_sync(name, outcome)

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        """Ask running syncs to stop after their page, then wait for them."""
        self.stop.set()
        self.scheduler.shutdown(wait=True)
