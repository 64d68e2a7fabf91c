"""Running inbound streams with checkpoints.

Pages are committed in batches of about two thousand records, each with the state of its last page in
the same transaction, so a crash or Ctrl-C at any moment loses nothing and repeats nothing: the
next run resumes after the last committed page. A stop request (SIGTERM) commits the pages read so
far and stops before the next page. Connectors run concurrently,
one thread each; the streams of one connector run one after another (they share its rate limit).
With `reader_processes`, the connectors are read in forked processes (`hub.readers`) that map
and prepare the records, and this process only writes them. What follows a stream's read (merging
a staged first load, marking what vanished, closing the run) is done by a `Finisher` thread, so the
connector's next stream reads meanwhile; `run` returns once every stream is finished.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from hub import readers, staging, store
from hub.connector import Connector
from hub.errors import ConnectorError, QuotaExhaustedError
from hub.models import SyncRun, utcnow
from hub.prepared import PreparedRecord, prepare
from hub.readers import PreparedPage, ReaderProcess
from hub.records import Page, Record

runs = SyncRun.__table__
log = logging.getLogger(__name__)


@dataclass
class SyncRunSummary:
    connector: str
    stream: str
    run_id: int
    full: bool
    status: str = "running"          # running | succeeded | failed | stopped
    pages: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    requests: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None

    @property
    def records(self) -> int:
        return self.inserted + self.updated + self.deleted + self.unchanged

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "records": self.records}


class SyncProgress(Protocol):
    def started(self, connector: str, stream: str) -> None: ...
    def page(self, summary: SyncRunSummary) -> None: ...
    def finished(self, summary: SyncRunSummary) -> None: ...


class NoProgress:
    def started(self, connector: str, stream: str) -> None: ...
    def page(self, summary: SyncRunSummary) -> None: ...
    def finished(self, summary: SyncRunSummary) -> None: ...


@dataclass
class StreamSelection:
    """Which streams of which connectors to run (None: all of them)."""

    connectors: Mapping[str, Connector]
    streams: Sequence[str] | None = None

    def streams_of(self, connector: Connector) -> list[str]:
        if self.streams is None:
            return list(connector.streams)
        return [s for s in self.streams if s in connector.streams]


COMMIT_RECORDS = 2000   # records per transaction: a commit costs ~10 ms, a page holds 100-1,000
COMMIT_SECONDS = 2.0    # ...or this long after the first uncommitted page, so slow streams commit too


@dataclass
class Batch:
    """Consecutive pages of one stream, committed in one transaction with the last page's state."""

    seen: bool                           # part of a full read: its records count as seen by the run
    started: float
    records: list[Record | PreparedRecord] = field(default_factory=list)
    state: Mapping[str, Any] | None = None
    pages: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, page: Page | PreparedPage) -> None:
        self.records.extend(page.records)
        self.state = page.state
        self.pages += 1
        self.notes.extend(page.notes)


class PageSource(Protocol):
    """What a stream is read from: a connector itself, or its source in a `ReaderProcess`."""

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page] | Iterator[PreparedPage]: ...

    @property
    def request_count(self) -> int: ...


def commit_batches(pages: Iterable[Page | PreparedPage], *, seen: bool, stop: threading.Event, records: int, seconds: float,
                   clock: Callable[[], float] = time.monotonic) -> Iterator[Batch]:
    """Group pages into commit batches of about `records` records (or `seconds` of reading).

    Resuming stays exact because a batch is committed with the state of its last page. A batch
    ends early when a stop is requested, and before a page that restarts the stream from scratch
    (pages read before the restart must not count as seen by the full read). When reading fails,
    the pages read before the failure are yielded first, then the error is raised: nothing read is lost.
    Closing the batches closes `pages` (a connector's generator releases its connections).
    """
    batch: Batch | None = None
    try:
        for page in pages:
            if page.full_refresh and not seen:
                if batch is not None:
                    yield batch
                    batch = None
                seen = True
            if batch is None:
                batch = Batch(seen=seen, started=clock())
            batch.add(page)
            if stop.is_set():
                yield batch
                batch = None
                return   # read nothing more
            if len(batch.records) >= records or clock() - batch.started >= seconds:
                yield batch
                batch = None
    except Exception:
        if batch is not None:
            yield batch
        raise
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()
    if batch is not None:
        yield batch


@dataclass
class StreamRun:
    """A stream run between its read and its finish (see `SyncEngine.finish_stream`)."""

    summary: SyncRunSummary
    kinds: Sequence[str]
    source: PageSource
    requests_before: int
    reconciling: bool            # a full read: what it did not see vanished upstream
    staged: bool = False         # a first load: its pages wait in staged_records for the merge


class Finisher:
    """Finishes stream runs on a thread of its own, in the order they are handed over.

    Merging a first load of a million records takes half a minute; done by the connector's own
    thread it would hold back the connector's next stream, which can read meanwhile.
    """

    def __init__(self, finish: Callable[[StreamRun], None]) -> None:
        self._finish = finish
        self._runs: queue.Queue[StreamRun | None] = queue.Queue()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="sync-finisher", daemon=True)
        self._thread.start()

    def submit(self, run: StreamRun) -> None:
        self._runs.put(run)

    def close(self) -> None:
        """Wait until every run handed over is finished; re-raise what finishing one raised."""
        self._runs.put(None)
        self._thread.join()
        if self._failure is not None:
            raise self._failure

    def _work(self) -> None:
        while (run := self._runs.get()) is not None:
            try:
                self._finish(run)
            except BaseException as exc:  # noqa: BLE001 - raised again by close(), in the caller's thread
                self._failure = self._failure or exc


class TurnLock:
    """A lock granted in the order it was asked for (threading.Lock favours whoever releases it).

    The SQLite writer is shared by the connectors' batches and the finisher's merge chunks: a
    merge must not take turn after turn while a batch, and the reader behind it, waits.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._changed:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._changed.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._serving += 1
            self._changed.notify_all()


class SyncEngine:
    def __init__(self, engine: Engine, *, progress: SyncProgress | None = None,
                 stop: threading.Event | None = None,
                 on_finished: Callable[[SyncRunSummary], None] | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 lease_owner: str | None = None, lease_seconds: float = 300.0,
                 commit_records: int = COMMIT_RECORDS, commit_seconds: float = COMMIT_SECONDS,
                 reader_processes: int = 0) -> None:
        self.engine = engine
        # Threads (0) unless asked: what a connector learns while read in a forked child (its OAuth
        # token, its rate-limit budget) stays in the child, which the caller must be content with.
        self.reader_processes = reader_processes if readers.supported() else 0
        self.reader_peaks_mb: list[float] = []   # peak RSS of each reader process of the last run
        self.reader_cpu_seconds: list[float] = []   # and the CPU time each used
        # SQLite has one writer at a time, and a connection that finds the database locked polls
        # with sleeps of up to 100 ms: our own connector threads take turns on a lock instead.
        self._writing: AbstractContextManager[Any] = TurnLock() if engine.dialect.name == "sqlite" else nullcontext()
        # ...and during run() they share one connection: each SQLite connection grows its own page
        # cache (8 MB, hub.db), and only one of them can write at a time anyway
        self._writer: Connection | None = None
        self._running = False   # inside run(): an index a merge deferred (hub.staging) is built when it ends
        self.commit_records = commit_records
        self.commit_seconds = commit_seconds
        self.lease_owner = lease_owner     # set by workers sharing one PostgreSQL
        self.lease_seconds = lease_seconds
        self.progress = progress or NoProgress()
        self.stop = stop or threading.Event()
        self.on_finished = on_finished
        self.clock = clock

    def run(self, selection: StreamSelection, *, full: bool = False) -> list[SyncRunSummary]:
        """Sync every selected stream; connectors in parallel. Returns one summary per stream run."""
        items = [(name, c) for name, c in selection.connectors.items() if selection.streams_of(c)]
        reader_processes = self._start_readers(items, self.reader_processes, self._read_weights(selection, items)) \
            if self.reader_processes else []
        # connectors in no reader process are read in this process's threads (readers.place_connectors)
        reading = {name: process.source(name) for process in reader_processes for name in process.names}

        def run_connector(item: tuple[str, Connector]) -> list[SyncRunSummary]:
            name, connector = item
            results = []
            for stream in selection.streams_of(connector):
                if self.stop.is_set():
                    break
                results.append(self.run_stream(name, connector, stream, full=full, reader=reading.get(name),
                                               finisher=finisher))
            return results

        self.reader_peaks_mb, self.reader_cpu_seconds = [], []
        if self.engine.dialect.name == "sqlite":
            self._writer = self.engine.connect()
        finisher = Finisher(self.finish_stream)
        self._running = True
        try:
            try:
                with ThreadPoolExecutor(max_workers=max(1, len(items)), thread_name_prefix="sync") as pool:
                    summaries = [summary for batch in pool.map(run_connector, items) for summary in batch]
            finally:
                finisher.close()
                self._running = False
                self._build_account_index()   # also repairs a run that crashed between drop and build
            return summaries
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            for process in reader_processes:
                process.close()
                if process.peak_rss_mb is not None:
                    self.reader_peaks_mb.append(process.peak_rss_mb)
                if process.cpu_seconds is not None:
                    self.reader_cpu_seconds.append(process.cpu_seconds)

    def _read_weights(self, selection: StreamSelection, items: Sequence[tuple[str, Connector]]) -> dict[str, float]:
        """How much each connector is expected to read: per selected stream, the most requests a run of
        it ever made (at least one, so a connector never synced weighs its number of streams)."""
        names = [name for name, _ in items]
        with self.engine.connect() as connection:
            most = {(connector, stream): requests or 0 for connector, stream, requests in connection.execute(
                select(runs.c.connector, runs.c.stream, func.max(runs.c.requests))
                .where(runs.c.connector.in_(names)).group_by(runs.c.connector, runs.c.stream))}
        return {name: float(sum(max(1, most.get((name, stream), 0)) for stream in selection.streams_of(connector)))
                for name, connector in items}

    @staticmethod
    def _start_readers(items: Sequence[tuple[str, Connector]], most: int,
                       weights: Mapping[str, float]) -> list[ReaderProcess]:
        """Fork at most `most` reader processes for the connectors `readers.place_connectors` gives
        them (the others are read in this process's threads).

        Forked here, before any thread of this run exists (so no child inherits a lock some thread
        holds), with the heap frozen: the children's garbage collector then leaves the objects they
        inherit alone, and those pages stay shared instead of copied.
        """
        if not items:
            return []
        by_name = dict(items)
        groups = [{name: by_name[name] for name in names}
                  for names in readers.place_connectors(weights, max(1, min(len(items), most)))]
        started: list[ReaderProcess] = []
        gc.freeze()
        try:
            for group in groups:
                started.append(ReaderProcess(group, listen=False))
        except BaseException:
            for reader in started:
                reader.close()
            raise
        finally:
            gc.unfreeze()
        for reader in started:   # each listens on a thread of this process: only once all are forked
            reader.listen()
        return started

    def run_stream(self, name: str, connector: Connector, stream: str, *, full: bool = False,
                   reader: PageSource | None = None, finisher: Finisher | None = None) -> SyncRunSummary:
        """Run one stream of `connector`, read from `reader` if given (its source in a ReaderProcess).

        With a `finisher`, what follows the read (merging a first load, marking what vanished,
        closing the run) is handed to it, and the summary is final once the finisher is closed.
        """
        summary = self._open_run(name, stream, full)
        self.progress.started(name, stream)
        source: PageSource = reader if reader is not None else connector
        run = StreamRun(summary, connector.streams[stream].kinds, source, source.request_count, reconciling=full)
        try:
            try:
                with self._recording(summary):
                    self._read_stream(run)
            finally:   # counted now: the connector's next stream may be reading by the time this one finishes
                summary.requests = source.request_count - run.requests_before
        except BaseException:   # interrupted (Ctrl-C): what was committed is merged and the run closed, here
            self.finish_stream(run)
            raise
        if finisher is None:
            self.finish_stream(run)
        else:
            finisher.submit(run)
        return summary

    def _read_stream(self, run: StreamRun) -> None:
        """Commit the stream's pages batch by batch; sets the status the read ended with."""
        summary = run.summary
        with self.engine.connect() as connection:
            state = None if summary.full else store.load_state(connection, summary.connector, summary.stream)
            run.staged = staging.should_stage(connection, summary.connector, summary.stream, run.kinds,
                                              first_read=state is None and not summary.full)
        batches = commit_batches(run.source.read(summary.stream, state), seen=run.reconciling, stop=self.stop,
                                 records=self.commit_records, seconds=self.commit_seconds)
        with closing(batches):
            for batch in batches:
                run.reconciling = run.reconciling or batch.seen
                summary.notes.extend(batch.notes)
                self._commit_batch(summary, batch, requests=run.source.request_count - run.requests_before,
                                   staged=run.staged)
                self.progress.page(summary)
                if self.stop.is_set():
                    summary.status = "stopped"
                    summary.notes.append("stopped on request after a committed page")
                    return
        summary.status = "succeeded"

    def finish_stream(self, run: StreamRun) -> None:
        """After the read, however it ended: merge what was staged, reconcile a complete full read, close the run."""
        summary = run.summary
        try:
            with self._recording(summary):
                if run.staged:   # what was read becomes visible, even when the read failed
                    self._merge_staged(summary, run.kinds)
                if summary.status == "succeeded" and run.reconciling:
                    with self._writing, self._transaction() as connection:
                        vanished = store.mark_vanished(connection, summary.connector, run.kinds, summary.run_id,
                                                       self.clock())
                    summary.deleted += vanished
                    if vanished:
                        summary.notes.append(f"{vanished} record(s) vanished upstream and were marked deleted")
        finally:
            if summary.status == "running":
                summary.status = "failed"
                summary.error = summary.error or "interrupted"
            self._close_run(summary)
            self.progress.finished(summary)
            if self.on_finished:
                self.on_finished(summary)

    @contextmanager
    def _recording(self, summary: SyncRunSummary) -> Iterator[None]:
        """Turn what a step of the stream raised into its summary's status; the first error is the one kept."""
        try:
            yield
            return
        except store.LeaseLost as exc:
            status, error = "stopped", str(exc)
        except QuotaExhaustedError as exc:
            status, error = "stopped", str(exc)
        except ConnectorError as exc:
            status, error = "failed", str(exc)
        except Exception as exc:  # a bug in one connector must not stop the others; keep the trace
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("stream %s.%s failed", summary.connector, summary.stream)
        if summary.error is None:
            summary.status, summary.error = status, error
        else:
            summary.status = "failed" if "failed" in (status, summary.status) else summary.status
            summary.notes.append(f"then: {error}")

    def _open_run(self, name: str, stream: str, full: bool) -> SyncRunSummary:
        started = self.clock()
        with self.engine.begin() as connection:
            run_id = connection.execute(insert(runs).values(
                connector=name, stream=stream, started_at=started, status="running", full=full,
                pages=0, inserted=0, updated=0, deleted=0, requests=0,
            ).returning(runs.c.id)).scalar_one()
        return SyncRunSummary(name, stream, run_id, full, started_at=started)

    def _commit_batch(self, summary: SyncRunSummary, batch: Batch, *, requests: int, staged: bool) -> None:
        now = self.clock()
        seen_run_id = summary.run_id if batch.seen else None
        # Records are prepared before this stream takes its turn on the writer: on SQLite every
        # other stream's batches and merges wait while the turn is held.
        prepared = [prepare(record) if isinstance(record, Record) else record for record in batch.records]
        rows: list[staging.StagedRow] | None = None
        if staged:
            rows, counts = staging.staged_rows(self.engine.dialect, summary.connector, summary.stream, prepared,
                                               now=now, seen_run_id=seen_run_id)
        with self._writing, self._transaction() as connection:
            if rows is not None:
                staging.insert_staged(connection, rows)
            else:
                counts = store.write_records(connection, summary.connector, prepared, now=now,
                                             seen_run_id=seen_run_id)
            if self.lease_owner:  # fencing: a worker that lost its lease commits nothing
                store.renew_lease(connection, summary.connector, summary.stream, self.lease_owner,
                                  now=now, lease_seconds=self.lease_seconds)
            store.save_state(connection, summary.connector, summary.stream, batch.state, now)
            summary.pages += batch.pages
            summary.inserted += counts.inserted
            summary.updated += counts.updated
            summary.deleted += counts.deleted
            summary.unchanged += counts.unchanged
            summary.requests = requests
            connection.execute(update(runs).where(runs.c.id == summary.run_id).values(
                pages=summary.pages, inserted=summary.inserted, updated=summary.updated,
                deleted=summary.deleted, requests=requests))

    def _merge_staged(self, summary: SyncRunSummary, kinds: Sequence[str]) -> None:
        """Merge the stream's staged first load, a chunk per transaction (other streams write in between).

        Every staged record was counted as inserted (or deleted); the stored rows say how many were
        new, and the merge how many said what was stored already (a kind another stream stores too).
        """
        # Counted on the writer's connection: a count reads much of an index, and every pooled
        # SQLite connection that reads keeps a page cache of its own (8 MB) for the rest of the run.
        with self._writing, self._transaction() as connection:
            before = staging.stored_counts(connection, summary.connector, kinds)
            if summary.inserted + summary.deleted >= staging.DEFER_INDEX_ROWS:
                staging.defer_account_index(connection)
        stored_kinds = sorted(before)
        merged = unchanged = unchanged_deleted = 0
        try:
            while True:
                with self._writing, self._transaction() as connection:
                    chunk = staging.merge_chunk(connection, summary.connector, summary.stream,
                                                stored_kinds=stored_kinds)
                merged += chunk.rows
                unchanged += chunk.unchanged
                unchanged_deleted += chunk.unchanged_deleted
                if chunk.rows < staging.MERGE_CHUNK:
                    break
        finally:
            if not self._running:   # a stream run on its own: nothing else will build it
                self._build_account_index()
        with self._writing, self._transaction() as connection:
            new = sum(staging.stored_counts(connection, summary.connector, kinds).values()) - sum(before.values())
        unchanged_live = min(unchanged - unchanged_deleted, summary.inserted)
        unchanged_deleted = min(unchanged_deleted, summary.deleted)
        summary.inserted -= unchanged_live
        summary.deleted -= unchanged_deleted
        summary.unchanged += unchanged_live + unchanged_deleted
        repeated = min(max(0, merged - new - unchanged_live - unchanged_deleted), summary.inserted)
        if repeated:   # a key read twice, or one stored before that changed
            summary.inserted -= repeated
            summary.updated += repeated

    def _build_account_index(self) -> None:
        """Build the index merges deferred. A failure is logged, not raised: every record is stored,
        the index only speeds up reads by account, and the next run tries again."""
        if self.engine.dialect.name != "sqlite":
            return
        started = time.monotonic()
        try:
            with self._writing, self._transaction() as connection:
                built = staging.build_account_index(connection)
        except SQLAlchemyError:
            log.exception("could not build %s; the next sync tries again", staging.DEFERRED_INDEX)
            return
        if built:
            log.info("built %s in %.1f s", staging.DEFERRED_INDEX, time.monotonic() - started)

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction for a batch: on the run's SQLite writer connection if there is one."""
        if self._writer is None:
            with self.engine.begin() as connection:
                yield connection
        else:
            with self._writer.begin():
                yield self._writer

    def _close_run(self, summary: SyncRunSummary) -> None:
        summary.finished_at = self.clock()
        with self.engine.begin() as connection:
            connection.execute(update(runs).where(runs.c.id == summary.run_id).values(
                status=summary.status, finished_at=summary.finished_at, pages=summary.pages,
                inserted=summary.inserted, updated=summary.updated, deleted=summary.deleted,
                requests=summary.requests, error=summary.error,
                notes="\n".join(summary.notes) or None))
