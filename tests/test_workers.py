"""Three `churnhub worker` processes on one real PostgreSQL (skipped without CHURNHUB_TEST_POSTGRES_URL).

The workers sync a Stripe sandbox (every second, with some latency so runs overlap in time) and
execute webhook actions delivered to a receiver in this process. Proven here:

- each stream is synced by one worker at a time: no two runs of a stream overlap;
- each action is executed once: the receiver saw every idempotency key exactly once;
- a worker SIGKILLed while it holds a stream's lease is replaced when the lease expires: another
  worker resumes the stream (the dead run is marked failed) no earlier than the expiry, and
  actions enqueued afterwards are executed once by the survivors.

In process, with a clock we move: two workers started at once run each stream and action once;
a dead worker's stream lease holds while its heartbeat runs and moves on one lease after it
stops; the heartbeat renews exactly its own outbox leases (SQLite and PostgreSQL); and on SQLite
`churnhub worker` refuses with a message that says why.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from sqlalchemy import Engine, insert, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from connectors.stripe.sandbox import start_sandbox as start_stripe
from hub import FaultProfile, cli, db, serve_in_thread
from hub.app import Hub
from hub.commands import worker_cmd
from hub.models import SyncRun, SyncState, utcnow
from hub.outbox import SUCCEEDED, Intent, OutboxPolicy, claim, enqueue, list_actions, reap_expired
from hub.outbox.state import renew_worker
from hub.worker import ABANDONED, Worker, WorkerNeedsPostgresError, WorkerOptions

HELPER = Path(__file__).with_name("hub_process.py")
LEASE_SECONDS = 2.0


class Receiver:
    """A webhook endpoint that remembers every delivery's Idempotency-Key."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.lock = threading.Lock()
        self.server = serve_in_thread(Starlette(routes=[Route("/hook", self.hook, methods=["POST"])]),
                                      name="receiver")

    async def hook(self, request: Request) -> JSONResponse:
        with self.lock:
            self.keys.append(request.headers["idempotency-key"])
        return JSONResponse({"ok": True})

    def count(self) -> int:
        """Distinct keys delivered (a receiver deduplicates on Idempotency-Key)."""
        with self.lock:
            return len(set(self.keys))


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def enqueue_webhooks(engine: Engine, url: str, prefix: str, count: int) -> list[str]:
    keys = [f"{prefix}|{n}" for n in range(count)]
    with engine.begin() as connection:
        enqueue(connection, [Intent(key, "test", "webhook", operation="post_webhook",
                                    params={"url": url, "body": {"n": key}}) for key in keys], now=utcnow())
    return keys


def aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def runs_of(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(select(SyncRun).order_by(SyncRun.started_at)).all()


def test_a_worker_on_sqlite_says_it_needs_postgresql(tmp_path: Path) -> None:
    app = typer.Typer()
    app.callback()(cli.root)
    app.command("worker")(worker_cmd.worker)
    config = tmp_path / "churnhub.yaml"
    config.write_text("database: sqlite:///hub.db\nconnectors: {}\n")
    result = CliRunner().invoke(app, ["--config", str(config), "worker", "--once"])
    assert isinstance(result.exception, WorkerNeedsPostgresError)
    message = str(result.exception)
    assert "needs PostgreSQL" in message and "churnhub run" in message and "sqlite" in message


@pytest.mark.postgres
def test_three_workers_share_streams_and_actions_and_survive_a_kill(
        database_url: str, tmp_path: Path) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("workers coordinate through PostgreSQL (SQLite: see the test above)")
    stripe = start_stripe(None, rate_limit=None, serve=False)         # the demo account
    stripe.server = serve_in_thread(stripe.api.app(), name="stripe", faults=FaultProfile(latency=0.04))
    stripe.url = stripe.server.url
    receiver = Receiver()
    engine = db.make_engine(database_url)
    config = tmp_path / "churnhub.yaml"
    config.write_text(yaml.safe_dump({"database": database_url, "connectors": {
        "billing": {"type": "stripe", **stripe.settings(), "page_size": 3, "schedule": {"every": "1s"}}}}))
    hook = f"{receiver.server.url}/hook"
    first = enqueue_webhooks(engine, hook, "before", 40)
    workers: dict[str, subprocess.Popen[str]] = {}
    logs: dict[str, Path] = {}
    try:
        for name in ("w1", "w2", "w3"):
            logs[name] = tmp_path / f"{name}.log"
            workers[name] = subprocess.Popen(
                [sys.executable, "-P", str(HELPER), "cli", "--config", str(config), "worker", "--id", name,
                 "--lease", f"{LEASE_SECONDS:g}s", "--outbox-every", "1s", "--batch", "5"],
                stdout=subprocess.DEVNULL, stderr=logs[name].open("w"), text=True)

        # Every action once, whichever worker claimed it.
        wait_for(lambda: receiver.count() >= len(first), 90, "the first webhooks")

        # Kill whichever worker is in the middle of a stream, holding its lease.
        def busy() -> tuple[str, str, datetime] | None:
            with engine.connect() as connection:
                rows = connection.execute(select(SyncState.stream, SyncState.lease_owner,
                                                 SyncState.lease_expires_at)
                                          .where(SyncState.lease_owner.is_not(None))).all()
                running = set(connection.execute(select(SyncRun.stream).where(SyncRun.status == "running")).scalars())
            now = datetime.now(UTC)
            live = [(s, o, aware(e)) for s, o, e in rows if aware(e) > now and s in running]
            return live[0] if live else None

        stream, victim, _ = wait_for(busy, 30, "a worker holding a stream lease")
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(timeout=10)
        killed_at = datetime.now(UTC)
        with engine.connect() as connection:
            expires = aware(connection.execute(select(SyncState.lease_expires_at).where(
                SyncState.connector == "billing", SyncState.stream == stream)).scalar())

        def taken_over() -> Any:
            later = [r for r in runs_of(engine) if r.stream == stream and aware(r.started_at) > killed_at
                     and r.status == "succeeded"]
            return later[0] if later else None

        successor = wait_for(taken_over, 30, f"another worker to take {stream} over")
        second = enqueue_webhooks(engine, hook, "after", 20)
        wait_for(lambda: receiver.count() >= len(first) + len(second), 60, "the webhooks after the kill")
        time.sleep(1.5)   # a few more rounds: nothing may be delivered twice, no run may overlap
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        receiver.server.stop()
        stripe.stop()

    # The lease was honoured: nobody resumed the stream before the dead worker's lease ran out.
    if expires is not None and expires > killed_at:
        assert aware(successor.started_at) >= expires
    runs = runs_of(engine)
    abandoned = [r for r in runs if r.stream == stream and r.error == ABANDONED]
    assert len(abandoned) == 1 and abandoned[0].status == "failed"

    # One worker at a time per stream: consecutive runs of a stream never overlap.
    streams = {r.stream for r in runs}
    assert len(streams) == 5 and len(runs) >= 10
    for name in streams:
        mine = [r for r in runs if r.stream == name]
        for before, after in zip(mine, mine[1:], strict=False):
            assert aware(before.finished_at) <= aware(after.started_at), (name, before, after)

    # Each action succeeded once. A webhook has no provider idempotency: the only repeats allowed
    # are deliveries the killed worker made but could not record, redone (same key) by the worker
    # that took its lease over, which a receiver deduplicates on the Idempotency-Key.
    with engine.connect() as connection:
        rows = list_actions(connection, limit=1000)
    ours = [r for r in rows if r["source"] == "test"]      # (dunning may add its own for the demo account)
    assert len(ours) == 60 and {r["status"] for r in ours} == {SUCCEEDED}, [
        (r["source"], r["action_type"], r["status"]) for r in rows if r not in ours]
    delivered = Counter(receiver.keys)
    assert set(delivered) == set(first + second)
    repeated = {key for key, count in delivered.items() if count > 1}
    retried = {r["key"] for r in ours if r["attempts"] > 1}
    assert len(repeated) <= 5 and all(delivered[key] == 2 for key in repeated), delivered  # one batch at most
    assert repeated <= retried, (repeated, retried)

    # The work really was shared, and the survivors said who took the stream over.
    log_text = {name: path.read_text() for name, path in logs.items()}
    syncing = [name for name, text in log_text.items() if "billing." in text]
    assert len(syncing) >= 2, log_text
    survivors = [name for name in workers if name != victim]
    assert any(f"billing.{stream}" in log_text[name] for name in survivors)
    assert all(workers[name].returncode == 0 for name in survivors), {n: log_text[n][-2000:] for n in survivors}
    assert workers[victim].returncode == -signal.SIGKILL
    engine.dispose()


# -- in process: the same rules, with a clock we move ----------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def pg_hub(database_url: str, tmp_path: Path) -> Iterator[tuple[Hub, Any, Receiver]]:
    if not database_url.startswith("postgresql"):
        pytest.skip("workers coordinate through PostgreSQL")
    stripe = start_stripe(None, rate_limit=None)
    receiver = Receiver()
    config = tmp_path / "churnhub.yaml"
    config.write_text(yaml.safe_dump({"database": database_url, "connectors": {
        "billing": {"type": "stripe", **stripe.settings(), "page_size": 5, "schedule": {"every": "15m"}}}}))
    hub = Hub.from_config(config)
    yield hub, stripe, receiver
    hub.close()
    receiver.server.stop()
    stripe.stop()


@pytest.mark.postgres
def test_two_workers_at_once_run_each_stream_and_action_once(pg_hub: Any) -> None:
    hub, _, receiver = pg_hub
    keys = enqueue_webhooks(hub.engine, f"{receiver.server.url}/hook", "once", 30)
    reports: dict[str, Any] = {}
    start = threading.Barrier(2)

    def work(name: str) -> None:
        start.wait()
        reports[name] = Worker(hub, WorkerOptions(worker_id=name, lease=timedelta(seconds=30),
                                                  outbox_batch=4)).run_once()

    threads = [threading.Thread(target=work, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    synced = Counter(run.stream for report in reports.values() for run in report.synced)
    assert synced == Counter(dict.fromkeys(("customers", "subscriptions", "invoices", "charges",
                                            "payment_methods"), 1))
    skipped = [line for report in reports.values() for line in report.skipped]
    assert len(skipped) == 5 and all("lease" in s or "recently" in s for s in skipped)
    assert Counter(receiver.keys) == Counter(keys)
    with hub.engine.connect() as connection:      # (processing may add and drain its own actions too)
        assert {r["status"] for r in list_actions(connection) if r["source"] == "test"} == {SUCCEEDED}
    with hub.engine.connect() as connection:
        assert connection.execute(select(SyncState.lease_owner).where(
            SyncState.lease_owner.is_not(None))).all() == []      # released


@pytest.mark.postgres
def test_a_dead_workers_stream_waits_for_its_lease_then_moves_on(pg_hub: Any) -> None:
    hub, _, _ = pg_hub
    clock = Clock()
    options = WorkerOptions(worker_id="dead", lease=timedelta(seconds=60))
    dead = Worker(hub, options, clock=clock)
    fresh = timedelta(minutes=7)
    assert dead._claim("billing", "customers", fresh) is None       # claimed, then the process dies
    with hub.engine.begin() as connection:                           # ...in the middle of a run
        connection.execute(insert(SyncRun.__table__).values(connector="billing", stream="customers",
                                                            started_at=clock.now, status="running"))
    heir = Worker(hub, WorkerOptions(worker_id="heir", lease=timedelta(seconds=60)), clock=clock)
    clock.now += timedelta(seconds=59)
    assert heir._claim("billing", "customers", fresh) == "another worker holds its lease"
    dead.renew_leases()                       # a live worker's heartbeat keeps the lease
    clock.now += timedelta(seconds=59)
    assert heir._claim("billing", "customers", fresh) == "another worker holds its lease"
    clock.now += timedelta(seconds=61)        # no heartbeat since: the lease has run out
    assert heir._claim("billing", "customers", fresh) is None
    with hub.engine.connect() as connection:
        [run] = connection.execute(select(SyncRun.status, SyncRun.error)).all()
        owner = connection.execute(select(SyncState.lease_owner).where(SyncState.stream == "customers")).scalar()
    assert run == ("failed", ABANDONED) and owner == "heir"


def test_a_heartbeat_keeps_a_live_workers_actions_and_a_dead_workers_are_reaped(engine: Engine) -> None:
    policy = OutboxPolicy(lease=timedelta(seconds=60))
    t0 = utcnow()
    with engine.begin() as connection:
        enqueue(connection, [Intent(f"k{n}", "test", "webhook", operation="post_webhook",
                                    params={"url": "http://127.0.0.1:9/"}) for n in range(3)], now=t0)
        [alive] = claim(connection, owner="w1:aaaa", now=t0, policy=policy, limit=1)
        [dead] = claim(connection, owner="w2:bbbb", now=t0, policy=policy, limit=1)
        [other] = claim(connection, owner="w10:cccc", now=t0, policy=policy, limit=1)
    with engine.begin() as connection:
        assert renew_worker(connection, "w1", now=t0 + timedelta(seconds=50), policy=policy) == 1
        assert renew_worker(connection, "w_", now=t0 + timedelta(seconds=50), policy=policy) == 0  # no LIKE games
        reaped = reap_expired(connection, now=t0 + timedelta(seconds=70), policy=policy)
    assert sorted(outcome.id for outcome in reaped) == sorted([dead.id, other.id])
    with engine.connect() as connection:
        status = {row["id"]: (row["status"], row["lease_owner"]) for row in list_actions(connection)}
    assert status[alive.id] == ("running", "w1:aaaa")
    assert status[dead.id][0] == status[other.id][0] == "failed"
