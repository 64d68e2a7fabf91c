"""First loads are staged and merged in key order (hub.staging), on SQLite and PostgreSQL.

The connector serves a fixed list of pages with the page number as its state, so a test can
repeat a record, send a tombstone after the record, or crash between pages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import Engine, func, inspect, select

from hub import CheckResult, Connector, Page, Record, Stream, staging, store
from hub.models import SourceRecord, StagedRecord
from hub.sync import StreamSelection, SyncEngine, SyncRunSummary, TurnLock

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


class PagedConnector(Connector):
    """Serves `pages` in order; state is the number of pages read. `fail_at` raises before that page."""

    streams = {"things": Stream("things", ("account",))}

    def __init__(self, pages: list[list[Record]]) -> None:
        self.pages = pages
        self.fail_at: int | None = None
        self.requests = 0

    @property
    def request_count(self) -> int:
        return self.requests

    def check(self) -> CheckResult:
        return CheckResult(True, "ok")

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        start = (state or {}).get("pages", 0)
        for number in range(start, len(self.pages)):
            if number == self.fail_at:
                raise RuntimeError("injected failure between pages")
            self.requests += 1
            yield Page(self.pages[number], {"pages": number + 1})

    def execute(self, operation: str, params: BaseModel, *, idempotency_key: str) -> Any:
        raise NotImplementedError


def account(external_id: str, deleted: bool = False, **fields: Any) -> Record:
    return Record("account", external_id, fields, deleted=deleted)


def sync(engine: Engine, connector: Connector, *, full: bool = False, commit_records: int = 1) -> SyncRunSummary:
    # one page per commit unless asked, so every page is a batch of its own
    [summary] = SyncEngine(engine, commit_records=commit_records).run(StreamSelection({"crm": connector}), full=full)
    return summary


def stored(engine: Engine) -> dict[str, tuple[dict[str, Any], bool]]:
    with engine.connect() as connection:
        rows = connection.execute(select(SourceRecord.external_id, SourceRecord.data, SourceRecord.deleted)).all()
    return {external_id: (data, deleted) for external_id, data, deleted in rows}


def stored_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(SourceRecord)).scalar_one()


def staged_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(StagedRecord)).scalar_one()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Merge three staged rows at a time, so a merge takes several transactions."""
    monkeypatch.setattr(staging, "MERGE_CHUNK", 3)


def test_a_first_load_is_staged_then_merged_and_a_second_sync_is_not(engine: Engine, small_chunks: None) -> None:
    ids = ["in_Zq", "in_a1", "in_M0", "in_b7", "in_00", "in_zz", "in_Kk"]   # in no useful order, like Stripe's
    connector = PagedConnector([[account(i, name=i.upper())] for i in ids])
    first = sync(engine, connector)
    assert (first.status, first.inserted, first.updated) == ("succeeded", 7, 0)
    assert stored(engine) == {i: ({"name": i.upper()}, False) for i in ids}
    assert staged_rows(engine) == 0
    with engine.connect() as connection:
        assert not staging.should_stage(connection, "crm", "things", ["account"])
    connector.pages.append([account("in_new", name="NEW"), account("in_a1", name="RENAMED")])
    second = sync(engine, connector)
    assert (second.inserted, second.updated) == (1, 1)
    assert staged_rows(engine) == 0
    assert stored(engine)["in_a1"] == ({"name": "RENAMED"}, False)


def test_a_record_read_twice_keeps_the_later_version_and_counts_once(engine: Engine, small_chunks: None) -> None:
    connector = PagedConnector([
        [account("a", name="first"), account("b", name="B")],
        [account("c", name="C"), account("a", name="second")],
        [account("d", name="D"), account("a", name="third")],
    ])
    summary = sync(engine, connector)
    assert (summary.inserted, summary.updated) == (4, 2)
    assert stored(engine)["a"] == ({"name": "third"}, False)
    with engine.connect() as connection:
        digest = connection.execute(select(SourceRecord.checksum).where(SourceRecord.external_id == "a")).scalar_one()
    assert digest == store.checksum({"name": "third"}, False)


def test_a_bare_tombstone_after_the_record_keeps_what_was_known(engine: Engine, small_chunks: None) -> None:
    connector = PagedConnector([
        [account("a", name="Acme", account_id="parent-1"), account("b", name="B")],
        [account("a", deleted=True)],                       # deleted, with no fields
        [account("b", deleted=True, name="B at deletion")],  # deleted, with what it said last
        [account("c", deleted=True)],                       # never seen with fields
    ])
    sync(engine, connector)
    rows = stored(engine)
    assert rows["a"] == ({"name": "Acme", "account_id": "parent-1"}, True)
    assert rows["b"] == ({"name": "B at deletion"}, True)
    assert rows["c"] == ({}, True)
    with engine.connect() as connection:
        [parent] = connection.execute(select(SourceRecord.account_ref).where(SourceRecord.external_id == "a")).one()
    assert parent == "parent-1"


def test_a_failed_first_load_makes_what_it_read_visible_and_resumes_after_it(engine: Engine) -> None:
    connector = PagedConnector([[account(f"a{p}{n}", n=n) for n in range(2)] for p in range(5)])
    connector.fail_at = 3
    failed = sync(engine, connector)
    assert failed.status == "failed"
    assert len(stored(engine)) == 6 and staged_rows(engine) == 0
    connector.fail_at = None
    resumed = sync(engine, connector)
    assert (resumed.status, resumed.inserted, resumed.updated, resumed.requests) == ("succeeded", 4, 0, 2)
    assert len(stored(engine)) == 10


def test_rows_staged_before_a_crash_are_merged_by_the_next_run(engine: Engine, small_chunks: None) -> None:
    """A crash between a committed batch and the merge: the rows and the state are committed, nothing merged."""
    connector = PagedConnector([[account(f"a{p}{n}", n=n) for n in range(2)] for p in range(4)])
    with engine.begin() as connection:
        staging.stage_records(connection, "crm", "things", connector.pages[0] + connector.pages[1], now=NOW,
                              seen_run_id=None)
        store.save_state(connection, "crm", "things", {"pages": 2}, NOW)
    assert stored(engine) == {} and staged_rows(engine) == 4
    summary = sync(engine, connector)
    assert (summary.status, summary.requests) == ("succeeded", 2)   # only the pages after the crash
    assert sorted(stored(engine)) == sorted(r.external_id for page in connector.pages for r in page)
    assert staged_rows(engine) == 0


def test_a_full_read_over_rows_left_staged_marks_the_unseen_ones_vanished(engine: Engine) -> None:
    """Staged rows of a crashed run are merged before the full read's reconciliation, not after it."""
    with engine.begin() as connection:
        staging.stage_records(connection, "crm", "things", [account("a", name="A"), account("b", name="B")],
                              now=NOW, seen_run_id=None)
    connector = PagedConnector([[account("a", name="A2")]])
    summary = sync(engine, connector, full=True)
    assert summary.status == "succeeded" and summary.deleted == 1
    assert stored(engine) == {"a": ({"name": "A2"}, False), "b": ({"name": "B"}, True)}


class TwoStreams(PagedConnector):
    """`things` (accounts) and `others` (contacts): the same pages, of their own kinds."""

    streams = {"things": Stream("things", ("account",)), "others": Stream("others", ("contact",))}

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        for page in super().read(stream, state):
            kind = self.streams[stream].kinds[0]
            yield Page([Record(kind, r.external_id, r.fields) for r in page.records], page.state)


class SharedKind(PagedConnector):
    """Like Zendesk's: `orgs` carries accounts and satisfaction records, `tickets` tickets and satisfaction records."""

    streams = {"orgs": Stream("orgs", ("account", "satisfaction")),
               "tickets": Stream("tickets", ("ticket", "satisfaction"))}

    def __init__(self, pages: dict[str, list[list[Record]]]) -> None:
        super().__init__([])
        self.pages_of = pages

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        self.pages = self.pages_of[stream]
        return super().read(stream, state)


def test_a_first_read_is_staged_even_when_another_stream_stored_its_kinds_and_counts_stay_exact(
        engine: Engine, small_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    staged_streams: list[str] = []
    rows_of = staging.staged_rows

    def recording(dialect: Any, connector: str, stream: str, *args: Any,
                  **kwargs: Any) -> tuple[list[staging.StagedRow], store.WriteCounts]:
        staged_streams.append(stream)
        return rows_of(dialect, connector, stream, *args, **kwargs)

    monkeypatch.setattr(staging, "staged_rows", recording)
    rating = lambda i, score: Record("satisfaction", i, {"score": score})  # noqa: E731
    connector = SharedKind({
        "orgs": [[account("o1", name="O1"), rating("s1", 9), rating("s2", 7), rating("s9", 1)]],
        "tickets": [[Record("ticket", "t1", {"subject": "hi"}), rating("s1", 9)],     # s1 as stored
                    [rating("s2", 3), Record("ticket", "t2", {"subject": "yo"})],     # s2 changed
                    [rating("s3", 10), rating("s9", 1)]],                              # s3 new, s9 as stored
    })
    orgs, tickets = SyncEngine(engine, commit_records=1).run(StreamSelection({"crm": connector}))
    assert staged_streams.count("orgs") == 1 and staged_streams.count("tickets") == 3
    assert (orgs.inserted, orgs.updated, orgs.unchanged) == (4, 0, 0)
    assert (tickets.status, tickets.inserted, tickets.updated, tickets.unchanged) == ("succeeded", 3, 1, 2)
    rows = stored(engine)
    assert rows["s2"] == ({"score": 3}, False) and rows["s3"] == ({"score": 10}, False) and len(rows) == 7
    assert staged_rows(engine) == 0

    # the next run of the stream is not its first read: page by page, as for any incremental read
    connector.pages_of["tickets"].append([rating("s3", 8), Record("ticket", "t3", {"subject": "new"})])
    staged_streams.clear()
    second = SyncEngine(engine).run(StreamSelection({"crm": connector}, ["tickets"]))
    assert staged_streams == [] and [(s.inserted, s.updated) for s in second] == [(1, 1)]


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def started(self, connector: str, stream: str) -> None:
        self.seen.append(("started", stream))

    def page(self, summary: SyncRunSummary) -> None: ...

    def finished(self, summary: SyncRunSummary) -> None:
        self.seen.append(("finished", summary.stream))


def test_the_next_stream_reads_while_the_last_first_load_is_merged(engine: Engine,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    merge = staging.merge_chunk

    def slow_merge(*args: Any, **kwargs: Any) -> staging.MergedChunk:
        time.sleep(0.3)
        return merge(*args, **kwargs)

    monkeypatch.setattr(staging, "merge_chunk", slow_merge)
    events = Events()
    connector = TwoStreams([[account("a1"), account("a2")], [account("a3")]])
    summaries = SyncEngine(engine, progress=events).run(StreamSelection({"crm": connector}))
    assert events.seen == [("started", "things"), ("started", "others"), ("finished", "things"),
                           ("finished", "others")]
    # final when run() returns: merged, counted, closed
    assert [(s.stream, s.status, s.inserted, s.requests, s.finished_at is not None) for s in summaries] == \
        [("things", "succeeded", 3, 2, True), ("others", "succeeded", 3, 2, True)]
    assert stored_rows(engine) == 6 and staged_rows(engine) == 0


def test_a_merge_that_fails_fails_its_stream_only_and_keeps_the_rows_staged(engine: Engine,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    merge = staging.merge_chunk

    def failing_merge(connection: Any, connector: str, stream: str, **kwargs: Any) -> staging.MergedChunk:
        if stream == "things":
            raise RuntimeError("disk full")
        return merge(connection, connector, stream, **kwargs)

    monkeypatch.setattr(staging, "merge_chunk", failing_merge)
    connector = TwoStreams([[account("a1"), account("a2")]])
    things, others = SyncEngine(engine).run(StreamSelection({"crm": connector}))
    assert (things.status, things.error) == ("failed", "RuntimeError: disk full")
    assert others.status == "succeeded"
    assert staged_rows(engine) == 2   # still staged: the next run merges them
    monkeypatch.setattr(staging, "merge_chunk", merge)
    [again] = SyncEngine(engine).run(StreamSelection({"crm": connector}, ["things"]))
    assert again.status == "succeeded" and staged_rows(engine) == 0 and stored_rows(engine) == 4


def test_the_sqlite_writer_is_granted_in_the_order_it_was_asked_for() -> None:
    lock, order = TurnLock(), []

    def take(number: int) -> None:
        with lock:
            order.append(number)

    threads = []
    with lock:
        for number in range(5):
            thread = threading.Thread(target=take, args=(number,))
            thread.start()
            threads.append(thread)
            while lock._next_ticket < number + 2:   # this one is waiting before the next asks
                time.sleep(0.001)
    for thread in threads:
        thread.join()
    assert order == [0, 1, 2, 3, 4]


def account_index_exists(engine: Engine) -> bool:
    return any(index["name"] == staging.DEFERRED_INDEX for index in inspect(engine).get_indexes("source_records"))


@pytest.fixture
def small_deferral(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first load of three records counts as large."""
    monkeypatch.setattr(staging, "DEFER_INDEX_ROWS", 3)


def test_a_large_first_load_on_sqlite_is_merged_without_the_account_index_which_the_run_builds_at_its_end(
        engine: Engine, small_deferral: None) -> None:
    during: list[bool] = []   # whether the index existed as each stream finished (after its merge)
    connector = TwoStreams([[account("a1", account_id="c1"), account("a2", account_id="c2")], [account("a3")]])
    summaries = SyncEngine(engine, on_finished=lambda _: during.append(account_index_exists(engine))).run(
        StreamSelection({"crm": connector}))
    assert [s.status for s in summaries] == ["succeeded", "succeeded"]
    assert during == ([False, False] if engine.dialect.name == "sqlite" else [True, True])
    assert account_index_exists(engine)   # built once, when the run ended
    assert stored_rows(engine) == 6 and staged_rows(engine) == 0
    with engine.connect() as connection:
        by_account = connection.execute(select(SourceRecord.kind, SourceRecord.external_id).where(
            SourceRecord.connector == "crm", SourceRecord.account_ref == "c1").order_by(SourceRecord.kind)).all()
    assert by_account == [("account", "a1"), ("contact", "a1")]


def test_a_small_first_load_keeps_the_account_index(engine: Engine) -> None:
    during: list[bool] = []
    SyncEngine(engine, on_finished=lambda _: during.append(account_index_exists(engine))).run(
        StreamSelection({"crm": PagedConnector([[account("a1")], [account("a2")]])}))
    assert during == [True]


def test_a_stream_run_on_its_own_builds_the_index_its_merge_deferred(engine: Engine, small_deferral: None) -> None:
    connector = PagedConnector([[account(f"a{i}")] for i in range(4)])
    summary = SyncEngine(engine).run_stream("crm", connector, "things")
    assert summary.status == "succeeded" and summary.inserted == 4
    assert account_index_exists(engine)


def test_an_account_index_missing_after_a_crash_is_built_by_the_next_run(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the index is only ever deferred on SQLite")
    connector = PagedConnector([[account("a1")]])
    sync(engine, connector)
    with engine.begin() as connection:   # what a crash between the drop and the build leaves
        assert staging.defer_account_index(connection)
    assert not account_index_exists(engine)
    again = sync(engine, connector)
    assert again.status == "succeeded" and account_index_exists(engine)


def test_an_account_index_that_cannot_be_built_is_logged_and_the_run_keeps_its_results(
        engine: Engine, small_deferral: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the index is only ever deferred on SQLite")
    from sqlalchemy.exc import OperationalError

    def full_disk(connection: Any) -> bool:
        raise OperationalError("CREATE INDEX", {}, Exception("database or disk is full"))

    monkeypatch.setattr(staging, "build_account_index", full_disk)
    summary = sync(engine, PagedConnector([[account(f"a{i}")] for i in range(4)]))
    assert (summary.status, summary.inserted) == ("succeeded", 4) and stored_rows(engine) == 4
    assert "could not build ix_source_records_account; the next sync tries again" in caplog.text
    assert not account_index_exists(engine)
    monkeypatch.undo()
    sync(engine, PagedConnector([[account("a0")]]))
    assert account_index_exists(engine)
