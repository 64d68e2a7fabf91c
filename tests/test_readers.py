"""Reader processes: a connector read in a forked child gives the writer what a thread would.

The connector here serves numbered records in pages and can be told to fail, to fail with an
exception that cannot be pickled, or to kill its process, at a given page. Everything it is told
is set before the fork, so the child sees it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from hub import CheckResult, Connector, Page, Record, Stream
from hub.errors import ConnectorError, TransientError
from hub.models import SourceRecord, SyncState
from hub.prepared import prepare
from hub.readers import PreparedPage, ReaderProcess, place_connectors, supported
from hub.sync import NoProgress, StreamSelection, SyncEngine, SyncRunSummary

pytestmark = pytest.mark.skipif(not supported(), reason="reader processes are forked: Linux only")


class Unpicklable(Exception):
    def __init__(self, message: str, handle: Any) -> None:
        super().__init__(message)
        self.handle = handle

    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle this")


class NumberedConnector(Connector):
    """Stream `things`: records t0..t{count-1}, `page_size` a page; state is the next offset."""

    streams = {"things": Stream("things", ("account",)), "others": Stream("others", ("contact",))}

    def __init__(self, count: int = 10, page_size: int = 3) -> None:
        self.count = count
        self.page_size = page_size
        self.requests = 0
        self.fail_at_page: int | None = None
        self.failure: BaseException | None = None
        self.die_at_page: int | None = None

    @property
    def request_count(self) -> int:
        return self.requests

    def check(self) -> CheckResult:
        return CheckResult(True, "ok")

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        kind = self.streams[stream].kinds[0]
        offset = (state or {}).get("offset", 0)
        page = 0
        while offset < self.count:
            if page == self.die_at_page:
                os._exit(3)
            if page == self.fail_at_page and self.failure is not None:
                raise self.failure
            self.requests += 1
            ids = range(offset, min(offset + self.page_size, self.count))
            offset += len(ids)
            page += 1
            yield Page([Record(kind, f"t{i}", {"n": i, "account_id": "acme"}) for i in ids], {"offset": offset},
                       notes=(f"page {page}",))


def read_all(reader: ReaderProcess, stream: str = "things", state: Mapping[str, Any] | None = None,
             name: str = "crm") -> list[PreparedPage]:
    return list(reader.source(name).read(stream, state))


def test_pages_come_prepared_with_state_notes_and_request_count() -> None:
    connector = NumberedConnector(count=7, page_size=3)
    expected = list(connector.read("things", None))
    reader = ReaderProcess({"crm": NumberedConnector(count=7, page_size=3)})
    try:
        pages = read_all(reader)
        assert [p.state for p in pages] == [p.state for p in expected]
        assert [list(p.records) for p in pages] == [[prepare(r) for r in p.records] for p in expected]
        assert [tuple(p.notes) for p in pages] == [("page 1",), ("page 2",), ("page 3",)]
        assert reader.source("crm").request_count == 3
        # the same child reads the next stream; its counter keeps counting
        assert sum(len(p.records) for p in read_all(reader, "others", {"offset": 5})) == 2
        assert reader.source("crm").request_count == 4
    finally:
        reader.close()
    assert reader.peak_rss_mb is not None and reader.peak_rss_mb > 0
    assert reader.cpu_seconds is not None and reader.cpu_seconds > 0


def test_a_connector_error_is_raised_in_the_parent_with_its_type_and_the_childs_trace() -> None:
    connector = NumberedConnector(count=10, page_size=2)
    connector.fail_at_page, connector.failure = 2, TransientError("upstream 503", status=503)
    reader = ReaderProcess({"crm": connector})
    try:
        pages: list[PreparedPage] = []
        with pytest.raises(TransientError) as raised:
            for page in reader.source("crm").read("things", None):
                pages.append(page)
        assert len(pages) == 2 and raised.value.status == 503
        assert any("raised in the reader process" in note for note in raised.value.__notes__)
        assert len(read_all(reader, "others", {"offset": 8})) == 1   # the child is still there for the next read
    finally:
        reader.close()


def test_an_exception_that_cannot_be_pickled_arrives_described() -> None:
    connector = NumberedConnector(count=4, page_size=2)
    connector.fail_at_page, connector.failure = 0, Unpicklable("socket broke", threading.Lock())
    reader = ReaderProcess({"crm": connector})
    try:
        with pytest.raises(ConnectorError, match="Unpicklable: socket broke"):
            read_all(reader)
    finally:
        reader.close()


def test_a_reader_that_dies_is_a_connector_error_naming_it() -> None:
    connector = NumberedConnector(count=10, page_size=2)
    connector.die_at_page = 1
    reader = ReaderProcess({"billing": connector})
    try:
        with pytest.raises(ConnectorError, match="billing: its reader process exited unexpectedly .exit code 3"):
            read_all(reader, name="billing")
        with pytest.raises(ConnectorError, match="billing: its reader process exited"):
            read_all(reader, name="billing")   # and so does every later read
    finally:
        reader.close()


def test_a_cancelled_read_leaves_nothing_behind_for_the_next_one() -> None:
    reader = ReaderProcess({"crm": NumberedConnector(count=300, page_size=1)})
    try:
        pages = reader.source("crm").read("things", None)
        assert next(pages).state == {"offset": 1}
        pages.close()   # the child is reading ahead: what it sends after this is discarded
        following = read_all(reader, "others", {"offset": 298})
        assert [p.state for p in following] == [{"offset": 299}, {"offset": 300}]
        assert {r[0] for p in following for r in p.records} == {"contact"}
    finally:
        reader.close()


def test_a_cancel_that_arrives_after_its_read_ended_does_not_touch_the_next_read() -> None:
    reader = ReaderProcess({"crm": NumberedConnector(count=6, page_size=3)})
    try:
        pages = reader.source("crm").read("things", None)
        assert [next(pages).state, next(pages).state] == [{"offset": 3}, {"offset": 6}]
        time.sleep(0.2)   # the child has sent the read's end by now; the parent has not taken it
        pages.close()
        following = read_all(reader, "others", None)
        assert [p.state for p in following] == [{"offset": 3}, {"offset": 6}]
    finally:
        reader.close()


class StampedConnector(NumberedConnector):
    """Each record says when the child read it (CLOCK_MONOTONIC is the same clock in both processes)."""

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        for page in super().read(stream, state):
            now = time.monotonic()
            yield Page([Record(r.kind, r.external_id, {**r.fields, "read_at": now}) for r in page.records], page.state)


@pytest.mark.parametrize("spool_records", [250_000, 1_000])
def test_a_reader_reads_on_into_its_spool_while_the_writer_is_busy(monkeypatch: pytest.MonkeyPatch,
                                                                   spool_records: int) -> None:
    monkeypatch.setattr("hub.readers.SPOOL_RECORDS", spool_records)   # before the fork: the child has it
    reader = ReaderProcess({"crm": StampedConnector(count=10_000, page_size=100)})
    try:
        pages = reader.source("crm").read("things", None)
        first = next(pages)
        time.sleep(1.0)   # the writer merging: it takes no page for a while
        woke = time.monotonic()
        rest = list(pages)
    finally:
        reader.close()
    states = [page.state for page in [first, *rest]]
    assert states == [{"offset": n} for n in range(100, 10_001, 100)]   # every page, in order, once
    last_read = orjson.loads(rest[-1].records[-1][3])["read_at"]
    if spool_records > 10_000:
        assert last_read < woke   # read to the end beyond the credit (3,000 records) while nothing was taken
    else:
        assert last_read > woke   # credit and spool full: the reader waited for the writer


def test_close_in_the_middle_of_a_read_returns_promptly() -> None:
    reader = ReaderProcess({"crm": NumberedConnector(count=100_000, page_size=1)})
    pages = reader.source("crm").read("things", None)
    next(pages)
    reader.close()   # the read was neither finished nor closed
    assert reader.peak_rss_mb is not None


def test_connectors_sharing_a_process_are_read_at_the_same_time() -> None:
    reader = ReaderProcess({"crm": NumberedConnector(500, 7), "billing": NumberedConnector(300, 5)})
    results: dict[str, list[PreparedPage]] = {}
    try:
        threads = [threading.Thread(target=lambda n=name: results.__setitem__(n, read_all(reader, name=n)))
                   for name in ("crm", "billing")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sum(len(p.records) for p in results["crm"]) == 500
        assert sum(len(p.records) for p in results["billing"]) == 300
        assert (reader.source("crm").request_count, reader.source("billing").request_count) == (72, 60)
    finally:
        reader.close()


def stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        rows = connection.execute(select(SourceRecord.kind, SourceRecord.external_id, SourceRecord.data,
                                         SourceRecord.checksum, SourceRecord.account_ref)).all()
    return {f"{kind}/{external_id}": (data, digest, account) for kind, external_id, data, digest, account in rows}


def states(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(connection.execute(select(SyncState.stream, SyncState.state)).all())


def test_a_sync_through_reader_processes_stores_what_a_threaded_sync_stores(engine: Engine) -> None:
    threaded = SyncEngine(engine, commit_records=4).run(StreamSelection({"crm": NumberedConnector(11, 3)}))
    rows, state = stored(engine), states(engine)
    with engine.begin() as connection:
        connection.execute(SourceRecord.__table__.delete())
        connection.execute(SyncState.__table__.delete())
    forked = SyncEngine(engine, commit_records=4, reader_processes=1).run(
        StreamSelection({"crm": NumberedConnector(11, 3)}))
    assert stored(engine) == rows and states(engine) == state
    assert [(s.status, s.inserted, s.pages, s.requests, s.notes) for s in forked] == \
        [(s.status, s.inserted, s.pages, s.requests, s.notes) for s in threaded]
    assert [s.requests for s in forked] == [4, 4]


class StopAfterFirstCommit(NoProgress):
    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def page(self, summary: SyncRunSummary) -> None:
        self.stop.set()


def test_a_stop_commits_what_was_read_and_the_next_run_resumes_exactly(engine: Engine) -> None:
    stop = threading.Event()
    [stopped] = SyncEngine(engine, stop=stop, progress=StopAfterFirstCommit(stop), commit_records=4,
                           reader_processes=1).run(StreamSelection({"crm": NumberedConnector(200, 2)}, ["things"]))
    assert stopped.status == "stopped" and stopped.inserted == 4
    assert states(engine) == {"things": {"offset": 4}}
    [resumed] = SyncEngine(engine, reader_processes=1).run(
        StreamSelection({"crm": NumberedConnector(200, 2)}, ["things"]))
    assert (resumed.status, resumed.inserted, resumed.unchanged) == ("succeeded", 196, 0)
    assert len(stored(engine)) == 200


def test_a_failing_read_keeps_the_pages_before_it(engine: Engine) -> None:
    connector = NumberedConnector(count=20, page_size=2)
    connector.fail_at_page, connector.failure = 3, RuntimeError("bug in the mapping")
    [failed, others] = SyncEngine(engine, reader_processes=1).run(StreamSelection({"crm": connector}))
    assert (failed.status, failed.inserted) == ("failed", 6)
    assert failed.error == "RuntimeError: bug in the mapping"
    assert states(engine)["things"] == {"offset": 6}
    assert others.status == "failed"   # the same connector fails the same way on its next stream


def test_churnhub_sync_forks_a_reader_per_connector_up_to_the_cpus_but_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.errors import ConfigError
    from hub.pipeline import reader_processes

    monkeypatch.delenv("CHURNHUB_READER_PROCESSES", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert reader_processes(3) == 1       # the writer takes one of the two CPUs
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert reader_processes(3) == 3
    monkeypatch.setenv("CHURNHUB_READER_PROCESSES", "1")
    assert reader_processes(3) == 1
    monkeypatch.setenv("CHURNHUB_READER_PROCESSES", "0")
    assert reader_processes(3) == 0
    monkeypatch.setenv("CHURNHUB_READER_PROCESSES", "many")
    with pytest.raises(ConfigError, match="CHURNHUB_READER_PROCESSES: expected a whole number.*'many'"):
        reader_processes(3)


def test_several_reader_processes_sync_several_connectors(engine: Engine) -> None:
    connectors = {"crm": NumberedConnector(40, 3), "billing": NumberedConnector(25, 4), "helpdesk": NumberedConnector(9, 2)}
    engine_ = SyncEngine(engine, reader_processes=2)
    summaries = engine_.run(StreamSelection(connectors, ["things"]))
    assert sorted((s.connector, s.status, s.inserted) for s in summaries) == [
        ("billing", "succeeded", 25), ("crm", "succeeded", 40), ("helpdesk", "succeeded", 9)]
    assert len(engine_.reader_peaks_mb) == 2


def test_the_heaviest_connectors_get_the_reader_processes_and_the_writer_reads_the_rest() -> None:
    # a first sync: each connector weighs its number of streams
    assert place_connectors({"crm": 4, "billing": 5, "helpdesk": 4}, 1) == [["billing"]]
    # from history (requests): the two light ones together still weigh less than the heavy one
    assert place_connectors({"crm": 330, "billing": 24_000, "helpdesk": 4_300}, 1) == [["billing"]]
    # each onto the least loaded side, the writer's process included
    assert place_connectors({"crm": 9_000, "billing": 10_000, "helpdesk": 4_000, "ops": 2_000}, 1) == \
        [["billing", "ops"]]
    # enough processes: one each, none left for the writer; ties keep the configured order
    assert place_connectors({"crm": 2, "billing": 2, "helpdesk": 2}, 3) == [["crm"], ["billing"], ["helpdesk"]]
    assert place_connectors({"crm": 2, "billing": 2, "helpdesk": 2}, 2) == [["crm"], ["billing"]]
    assert place_connectors({"crm": 1}, 1) == [["crm"]]


class WhoReads(NumberedConnector):
    """Each record says which process read it."""

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        for page in super().read(stream, state):
            yield Page([Record(r.kind, r.external_id, {"pid": os.getpid()}) for r in page.records], page.state)


def readers_of(engine: Engine) -> dict[str, set[int]]:
    with engine.connect() as connection:
        rows = connection.execute(select(SourceRecord.connector, SourceRecord.data)).all()
    found: dict[str, set[int]] = {}
    for connector, data in rows:
        found.setdefault(connector, set()).add(data["pid"])
    return found


def test_a_connector_beyond_the_reader_processes_is_read_in_the_writers_process(engine: Engine) -> None:
    # billing made the most requests last time: it gets the one reader process
    SyncEngine(engine).run(StreamSelection({"billing": WhoReads(30, 1), "crm": WhoReads(4, 2)}))
    with engine.begin() as connection:
        connection.execute(SourceRecord.__table__.delete())
        connection.execute(SyncState.__table__.delete())
    sync = SyncEngine(engine, reader_processes=1)
    weights = sync._read_weights(StreamSelection({"billing": WhoReads(), "crm": WhoReads()}),
                                 [("billing", WhoReads()), ("crm", WhoReads())])
    assert weights == {"billing": 60.0, "crm": 4.0}   # per stream, the most requests any run made
    summaries = sync.run(StreamSelection({"crm": WhoReads(4, 2), "billing": WhoReads(30, 1)}))
    assert sorted((s.connector, s.stream, s.status, s.inserted) for s in summaries) == [
        ("billing", "others", "succeeded", 30), ("billing", "things", "succeeded", 30),
        ("crm", "others", "succeeded", 4), ("crm", "things", "succeeded", 4)]
    read_by = readers_of(engine)
    assert read_by["crm"] == {os.getpid()}
    assert len(read_by["billing"]) == 1 and read_by["billing"] != {os.getpid()}
    assert len(sync.reader_peaks_mb) == 1
