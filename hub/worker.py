"""`churnhub worker`: one of several processes sharing one PostgreSQL.

APScheduler decides *when* work is due, PostgreSQL decides *who* does it:

- every worker schedules every connector's sync (its `schedule:`) and an outbox job;
- a stream is synced only by the worker that claims its lease in `sync_state`
  (`store.claim_stream`: `FOR UPDATE SKIP LOCKED`, then a lease owner and expiry); the others
  skip it, and a stream another worker finished less than half a period ago is not synced again;
- outbox actions are claimed in batches (`outbox.claim`: `FOR UPDATE SKIP LOCKED` + lease), so
  each is executed by one worker; results are written only while the lease is still ours;
- a heartbeat thread renews this worker's leases every `lease / 3`. A worker killed mid-lease
  stops renewing: one lease later another worker claims the stream (resuming after the last
  committed page, the killed run marked failed) and `reap_expired` hands its actions on;
- the processing steps after a sync (`pipeline.process`) run on one worker at a time, under a
  PostgreSQL advisory lock that dies with the session of a killed worker.

Worker ids must be unique among live workers (default `hostname:pid`). A worker restarted with
the same `--id` takes its own stream leases back at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, func, select, text, update

from hub import outbox, pipeline, store
from hub.app import Hub
from hub.errors import ConfigError
from hub.models import SyncRun, utcnow
from hub.outbox.state import aware, renew_worker
from hub.scheduler import trigger_for
from hub.sync import SyncEngine, SyncRunSummary

log = logging.getLogger(__name__)
runs = SyncRun.__table__

ABANDONED = "interrupted: the worker running it stopped before finishing (its lease expired)"


class WorkerNeedsPostgresError(ConfigError):
    """Several workers coordinate through PostgreSQL row locks; SQLite cannot share that."""


def default_worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


def require_postgresql(hub: Hub) -> None:
    if hub.engine.dialect.name != "postgresql":
        raise WorkerNeedsPostgresError(
            f"`churnhub worker` needs PostgreSQL: workers claim streams and actions with row locks and "
            f"leases in one shared database, and this hub uses {hub.engine.dialect.name} "
            f"({hub.settings.path.name}: database). Point `database:` at PostgreSQL to run several "
            "workers, or run a single process with `churnhub run`.")


@dataclass(frozen=True)
class WorkerOptions:
    """How one worker behaves. `lease` is how long a killed worker's work waits for a successor."""

    worker_id: str = field(default_factory=default_worker_id)
    lease: timedelta = timedelta(seconds=60)
    outbox_every: timedelta = timedelta(seconds=10)
    outbox_batch: int = 100

    @property
    def heartbeat(self) -> float:
        return max(0.05, self.lease.total_seconds() / 3)


@dataclass
class RoundReport:
    """What one worker did in one round (for `--once` and logs)."""

    synced: list[SyncRunSummary] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)       # "connector.stream: why"
    actions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"synced": [run.as_dict() for run in self.synced], "skipped": self.skipped,
                "actions": self.actions}


def period_of(trigger: Any, now: datetime) -> timedelta:
    """The time between two runs of a schedule (a cron's next gap, measured from now)."""
    interval = getattr(trigger, "interval", None)
    if isinstance(interval, timedelta):
        return interval
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
    return (second - first) if first and second else timedelta(minutes=15)


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Yield True for the one worker holding the session advisory lock `name` (others: False)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        key = _lock_key(name)
        held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        connection.commit()
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()


class Worker:
    """Schedules syncs and the outbox, and runs only what it claims."""

    def __init__(self, hub: Hub, options: WorkerOptions | None = None, *,
                 stop: threading.Event | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.hub = hub
        self.options = options or WorkerOptions()
        self.stop = stop or threading.Event()
        self.clock = clock
        self.scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
            "max_instances": 1, "coalesce": True, "misfire_grace_time": 300})
        self._held: set[tuple[str, str]] = set()
        self._held_lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None

    @property
    def id(self) -> str:
        return self.options.worker_id

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Schedule every enabled connector's sync and the outbox job; start the heartbeat."""
        require_postgresql(self.hub)
        self.hub.ensure_database()
        now = self.clock()
        for name, config in self.hub.settings.connectors.items():
            if not config.enabled:
                continue
            trigger = trigger_for(config.schedule)
            self.scheduler.add_job(self.sync_connector, trigger, args=[name, period_of(trigger, now) / 2],
                                   id=f"sync:{name}", name=f"sync {name}", next_run_time=now)
        every = max(1, int(self.options.outbox_every.total_seconds()))
        self.scheduler.add_job(self.run_outbox, IntervalTrigger(seconds=every), id="outbox", name="outbox",
                               next_run_time=now)
        self._start_heartbeat()
        self.scheduler.start()

    def run_once(self) -> RoundReport:
        """Claim and run whatever is due now (every stream not fresh, then the outbox), once."""
        require_postgresql(self.hub)
        self.hub.ensure_database()
        self._start_heartbeat()
        report = RoundReport()
        try:
            for name, config in self.hub.settings.connectors.items():
                if config.enabled and not self.stop.is_set():
                    fresh = period_of(trigger_for(config.schedule), self.clock()) / 2
                    self._sync_connector(name, fresh, report)
            if not self.stop.is_set():
                self._drain_outbox(report)
        finally:
            self.shutdown()
        return report

    def shutdown(self) -> None:
        """Running syncs stop after their page, the outbox after its batch; leases are released."""
        self.stop.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)

    def job_ids(self) -> list[str]:
        return [job.id for job in self.scheduler.get_jobs()]

    # -- syncs ---------------------------------------------------------------------------------

    def sync_connector(self, name: str, fresh_for: timedelta) -> RoundReport:
        """The scheduled job: sync the streams of `name` this worker can claim."""
        report = RoundReport()
        try:
            self._sync_connector(name, fresh_for, report)
        except Exception:  # keep the scheduler alive; the runs are recorded in sync_runs
            log.exception("worker %s: sync of %s failed", self.id, name)
        return report

    def _sync_connector(self, name: str, fresh_for: timedelta, report: RoundReport) -> None:
        connector = self.hub.connector(name)
        engine = SyncEngine(self.hub.engine, stop=self.stop, clock=self.clock, lease_owner=self.id,
                            lease_seconds=self.options.lease.total_seconds(),
                            on_finished=lambda run: self.hub.hook.sync_finished(run=run))
        try:
            for stream in connector.streams:
                if self.stop.is_set():
                    break
                why_not = self._claim(name, stream, fresh_for)
                if why_not:
                    report.skipped.append(f"{name}.{stream}: {why_not}")
                    continue
                try:
                    summary = engine.run_stream(name, connector, stream)
                finally:
                    self._release(name, stream)
                report.synced.append(summary)
                log.info("worker %s: %s.%s %s, %d records", self.id, name, stream, summary.status, summary.records)
        finally:
            connector.close()
        if report.synced and not self.stop.is_set():
            self._process()

    def _claim(self, name: str, stream: str, fresh_for: timedelta) -> str | None:
        """Take the stream's lease; None when it is ours to run, else why we skip it."""
        now = self.clock()
        with self.hub.engine.begin() as connection:
            if not store.claim_stream(connection, name, stream, self.id, now=now,
                                      lease_seconds=self.options.lease.total_seconds()):
                return "another worker holds its lease"
            # Decided under our lease: nobody else can start a run of it meanwhile.
            last = connection.execute(select(func.max(runs.c.started_at)).where(
                runs.c.connector == name, runs.c.stream == stream, runs.c.status == "succeeded")).scalar()
            if last is not None and aware(last) > now - fresh_for:
                store.release_stream(connection, name, stream, self.id)
                return "synced recently by a worker"
            connection.execute(update(runs).where(
                runs.c.connector == name, runs.c.stream == stream, runs.c.status == "running",
            ).values(status="failed", error=ABANDONED, finished_at=now))
        with self._held_lock:
            self._held.add((name, stream))
        return None

    def _release(self, name: str, stream: str) -> None:
        with self._held_lock:
            self._held.discard((name, stream))
        with self.hub.engine.begin() as connection:
            store.release_stream(connection, name, stream, self.id)

    def _process(self) -> None:
        with exclusive(self.hub.engine, "churnhub:process") as mine:
            if mine:
                pipeline.process(self.hub)

    # -- outbox --------------------------------------------------------------------------------

    def run_outbox(self) -> RoundReport:
        report = RoundReport()
        try:
            self._drain_outbox(report)
        except Exception:
            log.exception("worker %s: outbox run failed", self.id)
        return report

    def _drain_outbox(self, report: RoundReport) -> None:
        policy = outbox.OutboxPolicy(lease=self.options.lease)
        runner = outbox.runner_for(self.hub, worker=self.id, policy=policy, clock=self.clock)
        while not self.stop.is_set():
            batch = runner.execute_pending(limit=self.options.outbox_batch)
            for status, count in batch.counts().items():
                report.actions[status] = report.actions.get(status, 0) + count
            if batch.claimed == 0:
                break

    # -- heartbeat -----------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._beat, name=f"heartbeat:{self.id}", daemon=True)
            self._heartbeat.start()

    def _beat(self) -> None:
        while not self.stop.wait(self.options.heartbeat):
            try:
                self.renew_leases()
            except Exception:  # a database hiccup: the next beat tries again before the lease ends
                log.exception("worker %s: lease renewal failed", self.id)

    def renew_leases(self) -> None:
        """Extend the leases of the streams and actions this worker is running."""
        now = self.clock()
        lease = self.options.lease
        with self._held_lock:
            held = sorted(self._held)
        with self.hub.engine.begin() as connection:
            for name, stream in held:
                try:
                    store.renew_lease(connection, name, stream, self.id, now=now,
                                      lease_seconds=lease.total_seconds())
                except store.LeaseLost:  # the next page commit stops that run (fencing)
                    log.warning("worker %s lost the lease of %s.%s", self.id, name, stream)
            renew_worker(connection, self.id, now=now, policy=outbox.OutboxPolicy(lease=lease))
