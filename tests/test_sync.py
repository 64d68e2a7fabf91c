"""The sync engine on SQLite and PostgreSQL, with a scripted in-process connector.

The connector here is a plain list of records served in pages with an offset-and-version state,
so each test can inject exactly the failure it is about. The built-in connectors are exercised
against their sandboxes in tests/test_sync_sandboxes.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import Engine, func, select

from hub import CheckResult, Connector, Page, Record, Stream
from hub.models import SourceRecord, SyncRun, SyncState
from hub.sync import NoProgress, StreamSelection, SyncEngine, SyncRunSummary, commit_batches


class ScriptedConnector(Connector):
    """Serves `rows` (id -> (version, fields)) ordered by version, `page_size` at a time.

    State is the highest version committed; `fail_after_pages` raises after that many pages.
    """

    streams = {"things": Stream("things", ("account",))}

    def __init__(self, page_size: int = 3) -> None:
        self.rows: dict[str, tuple[int, dict[str, Any], bool]] = {}
        self.version = 0
        self.page_size = page_size
        self.fail_after_pages: int | None = None
        self.requests = 0

    def put(self, external_id: str, deleted: bool = False, **fields: Any) -> None:
        self.version += 1
        self.rows[external_id] = (self.version, fields, deleted)

    def purge(self, external_id: str) -> None:
        del self.rows[external_id]

    @property
    def request_count(self) -> int:
        return self.requests

    def check(self) -> CheckResult:
        return CheckResult(True, "ok")

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        since = (state or {}).get("version", 0)
        pending = sorted((v, i, f, d) for i, (v, f, d) in self.rows.items() if v > since)
        pages = 0
        for start in range(0, max(len(pending), 1), self.page_size):
            if self.fail_after_pages is not None and pages == self.fail_after_pages:
                raise RuntimeError("injected failure between pages")
            self.requests += 1
            chunk = pending[start:start + self.page_size]
            records = [Record("account", i, f, deleted=d) for _, i, f, d in chunk]
            pages += 1
            yield Page(records, {"version": chunk[-1][0] if chunk else since})

    def execute(self, operation: str, params: BaseModel, *, idempotency_key: str) -> Any:
        raise NotImplementedError


def stored(engine: Engine) -> dict[str, tuple[dict[str, Any], bool]]:
    with engine.connect() as connection:
        rows = connection.execute(select(SourceRecord.external_id, SourceRecord.data, SourceRecord.deleted)).all()
    return {external_id: (data, deleted) for external_id, data, deleted in rows}


def sync(engine: Engine, connector: Connector, *, full: bool = False) -> SyncRunSummary:
    [summary] = SyncEngine(engine).run(StreamSelection({"crm": connector}), full=full)
    return summary


def test_full_then_no_change_writes_nothing(engine: Engine) -> None:
    connector = ScriptedConnector()
    for n in range(7):
        connector.put(f"a{n}", name=f"Account {n}")
    first = sync(engine, connector)
    assert (first.status, first.pages, first.inserted) == ("succeeded", 3, 7)
    second = sync(engine, connector)
    assert (second.inserted, second.updated, second.deleted, second.requests) == (0, 0, 0, 1)
    assert len(stored(engine)) == 7


def test_updates_and_deletes_are_applied_and_deleted_rows_kept(engine: Engine) -> None:
    connector = ScriptedConnector()
    for n in range(4):
        connector.put(f"a{n}", name=f"Account {n}")
    sync(engine, connector)
    connector.put("a1", name="Renamed")
    connector.put("a2", deleted=True)
    summary = sync(engine, connector)
    assert (summary.updated, summary.deleted) == (1, 1)
    rows = stored(engine)
    assert rows["a1"] == ({"name": "Renamed"}, False)
    assert rows["a2"] == ({"name": "Account 2"}, True)  # what we knew is kept, flagged deleted


def test_exception_between_pages_resumes_without_loss_or_duplicates(engine: Engine) -> None:
    connector = ScriptedConnector(page_size=2)
    for n in range(9):
        connector.put(f"a{n}", name=f"Account {n}")
    connector.fail_after_pages = 2
    failed = sync(engine, connector)
    assert failed.status == "failed" and "injected failure" in (failed.error or "")
    assert len(stored(engine)) == 4  # two committed pages, nothing of the third
    connector.fail_after_pages = None
    resumed = sync(engine, connector)
    assert (resumed.status, resumed.inserted, resumed.updated) == ("succeeded", 5, 0)
    assert sorted(stored(engine)) == sorted(connector.rows)
    with engine.connect() as connection:
        statuses = connection.execute(select(SyncRun.status).order_by(SyncRun.id)).scalars().all()
    assert statuses == ["failed", "succeeded"]


def test_stop_request_commits_what_was_read_and_keeps_state(engine: Engine) -> None:
    connector = ScriptedConnector(page_size=2)
    for n in range(6):
        connector.put(f"a{n}")
    stop = threading.Event()
    read = connector.read

    def stopped_during_first_page(stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        for page in read(stream, state):
            stop.set()  # as the SIGTERM handler does, while the first page is on its way
            yield page

    connector.read = stopped_during_first_page  # type: ignore[method-assign]
    [stopped] = SyncEngine(engine, stop=stop).run(StreamSelection({"crm": connector}))
    assert (stopped.status, stopped.pages, len(stored(engine)), connector.requests) == ("stopped", 1, 2, 1)
    connector.read = read  # type: ignore[method-assign]
    resumed = sync(engine, connector)
    assert resumed.inserted == 4 and len(stored(engine)) == 6


class CountCommits(NoProgress):
    def __init__(self) -> None:
        self.commits: list[tuple[int, int]] = []

    def page(self, summary: SyncRunSummary) -> None:
        self.commits.append((summary.pages, summary.inserted))


def test_pages_are_committed_in_batches_with_the_last_pages_state(engine: Engine) -> None:
    connector = ScriptedConnector(page_size=2)
    for n in range(9):
        connector.put(f"a{n}")
    progress = CountCommits()
    [summary] = SyncEngine(engine, progress=progress, commit_records=4).run(StreamSelection({"crm": connector}))
    assert progress.commits == [(2, 4), (4, 8), (5, 9)]
    assert (summary.pages, summary.inserted) == (5, 9)
    with engine.connect() as connection:
        assert connection.execute(select(SyncState.state)).scalar_one() == {"version": 9}


def page(n: int, *, full_refresh: bool = False) -> Page:
    return Page([Record("account", f"a{n}", {})], {"after": n}, full_refresh=full_refresh)


def test_a_read_error_yields_the_pages_read_before_it_then_raises() -> None:
    def pages() -> Iterator[Page]:
        yield page(1)
        yield page(2)
        raise RuntimeError("connection reset")

    batches = commit_batches(pages(), seen=False, stop=threading.Event(), records=1000, seconds=60)
    first = next(batches)
    assert (first.pages, first.state) == (2, {"after": 2})
    with pytest.raises(RuntimeError, match="connection reset"):
        next(batches)


def test_a_restart_from_scratch_starts_a_batch_that_counts_as_seen() -> None:
    pages = [page(1), page(2), page(1, full_refresh=True), page(2)]
    batches = list(commit_batches(iter(pages), seen=False, stop=threading.Event(), records=1000, seconds=60))
    assert [(b.pages, b.seen) for b in batches] == [(2, False), (2, True)]


def test_slow_streams_commit_after_the_time_limit() -> None:
    ticks = iter(range(100))
    batches = list(commit_batches(iter([page(n) for n in range(4)]), seen=False, stop=threading.Event(),
                                  records=1000, seconds=2, clock=lambda: float(next(ticks))))
    assert [b.pages for b in batches] == [2, 2]


def test_closing_the_batches_closes_the_connectors_reader() -> None:
    closed = []

    def pages() -> Iterator[Page]:
        try:
            yield page(1)
            yield page(2)
        finally:
            closed.append(True)

    batches = commit_batches(pages(), seen=False, stop=threading.Event(), records=1, seconds=60)
    next(batches)
    batches.close()
    assert closed == [True]


def test_full_reconciliation_detects_vanished_records(engine: Engine) -> None:
    connector = ScriptedConnector()
    for n in range(5):
        connector.put(f"a{n}", name=str(n))
    sync(engine, connector)
    connector.purge("a3")  # gone upstream without a tombstone
    incremental = sync(engine, connector)
    assert incremental.deleted == 0
    full = sync(engine, connector, full=True)
    assert full.status == "succeeded" and full.deleted == 1 and full.inserted == 0
    assert stored(engine)["a3"][1] is True
    assert not any(deleted for key, (_, deleted) in stored(engine).items() if key != "a3")
    again = sync(engine, connector, full=True)
    assert again.deleted == 0


def test_state_and_rows_share_one_transaction(engine: Engine) -> None:
    connector = ScriptedConnector(page_size=2)
    for n in range(4):
        connector.put(f"a{n}")
    connector.fail_after_pages = 1
    sync(engine, connector)
    with engine.connect() as connection:
        state = connection.execute(select(SyncState.state)).scalar_one()
        count = connection.execute(select(func.count()).select_from(SourceRecord)).scalar_one()
    assert state == {"version": 2} and count == 2


def test_stream_leases_exclude_other_workers_until_expiry(engine: Engine) -> None:
    from datetime import timedelta

    from hub import store
    from hub.models import utcnow

    now = utcnow()
    with engine.begin() as connection:
        assert store.claim_stream(connection, "crm", "things", "worker-a", now=now, lease_seconds=60)
    with engine.begin() as connection:
        assert not store.claim_stream(connection, "crm", "things", "worker-b", now=now, lease_seconds=60)
        assert store.claim_stream(connection, "crm", "things", "worker-a", now=now, lease_seconds=60)
    later = now + timedelta(seconds=61)  # worker-a died: its lease expires
    with engine.begin() as connection:
        assert store.claim_stream(connection, "crm", "things", "worker-b", now=later, lease_seconds=60)


def test_a_worker_that_lost_its_lease_commits_no_page(engine: Engine) -> None:
    from datetime import timedelta

    from hub import store
    from hub.models import utcnow

    connector = ScriptedConnector(page_size=2)
    for n in range(4):
        connector.put(f"a{n}")
    with engine.begin() as connection:
        store.claim_stream(connection, "crm", "things", "worker-b", now=utcnow() + timedelta(hours=1),
                           lease_seconds=60)
    [summary] = SyncEngine(engine, lease_owner="worker-a").run(StreamSelection({"crm": connector}))
    assert summary.status == "stopped" and "taken over" in (summary.error or "")
    assert stored(engine) == {}
