"""First loads: appended to `staged_records` as read, merged into `source_records` in key order.

The first read of a stream (no record of its kinds stored yet) is most of a first sync, and its
ids arrive in no useful order: Stripe's are random. Upserted one page at a time, every record
then lands on an index page of its own, and at four million records each commit rewrote
thousands of pages (a 2.4M-record Stripe load: 217 s). So a first load appends its pages to
`staged_records` instead — same batches, each committed with its stream state, so a crash still
loses nothing — and when the stream's run ends (succeeded, stopped or failed) its staged rows are
merged into `source_records` in chunks sorted by (kind, external id), which fills the unique
index in order (the same load: about half the time). A crash before the merge leaves the rows
staged; the stream's next run goes on staging after the last committed page and merges them all.

A record staged twice (a page repeated, an object updated during the read) is merged in the
order it was read: the later one wins, and a bare tombstone keeps what the earlier one said,
as `hub.store.write_records` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Index, delete, func, select, text

from hub.models import SourceRecord, StagedRecord
from hub.prepared import PreparedRecord, prepare
from hub.records import Record
from hub.store import TOMBSTONE, UPSERTED, Statements, WriteCounts

staged = StagedRecord.__table__
source = SourceRecord.__table__

MERGE_CHUNK = 100_000   # staged rows per merge transaction: a few seconds, a bounded sort

# SQLite: the merge goes in key order (kind, external id), which leaves `source_records`' account
# index (connector, account_ref) to be filled in random order. Merging a million records into a table of 2.65 million took
# 24 s with that index, and 12 s without it plus 5 s to build it over the 3.65 million rows
# (`python -m benchmarks.merge`). So a run whose merge is this large drops the index, and builds
# it once, when its last merge is done.
DEFERRED_INDEX = "ix_source_records_account"
DEFER_INDEX_ROWS = 50_000

STAGED_COLUMNS = ("connector", "stream", "kind", "external_id", "account_ref", "data", "checksum", "deleted",
                  "source_updated_at", "synced_at", "seen_run_id")
MERGED_COLUMNS = ("connector", "kind", "external_id", "account_ref", "data", "checksum", "deleted",
                  "source_updated_at", "first_seen_at", "synced_at", "seen_run_id")
# What a bare tombstone (no fields, only "deleted") leaves as it was
KEPT_BY_TOMBSTONE = ("account_ref", "data", "source_updated_at")


def should_stage(connection: Connection, connector: str, stream: str, kinds: Sequence[str]) -> bool:
    """Whether this run of the stream stages: rows of an earlier run wait, or none of its kinds is stored."""
    waiting = connection.execute(select(staged.c.id).where(
        staged.c.connector == connector, staged.c.stream == stream).limit(1)).first()
    if waiting is not None:
        return True
    stored = connection.execute(select(source.c.id).where(
        source.c.connector == connector, source.c.kind.in_(list(kinds))).limit(1)).first()
    return stored is None


def stage_records(connection: Connection, connector: str, stream: str, records: Sequence[Record | PreparedRecord],
                  *, now: datetime, seen_run_id: int | None) -> WriteCounts:
    """Append a batch of a first load; counts every record as inserted (or deleted) until the merge says otherwise."""
    sql = Statements.of(connection)
    moment = sql.stamp(now)
    counts = WriteCounts()
    rows = []
    for record in records:
        kind, external_id, account_ref, data, digest, deleted, _, updated_at = (
            prepare(record) if isinstance(record, Record) else record)
        if deleted:
            counts.deleted += 1
        else:
            counts.inserted += 1
        rows.append((connector, stream, kind, external_id, account_ref, data, digest, sql.flag(deleted),
                     sql.stamp(updated_at) if updated_at is not None else None, moment, seen_run_id))
    if rows:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            cursor.executemany(f"INSERT INTO staged_records ({', '.join(STAGED_COLUMNS)}) "
                               f"VALUES ({', '.join([sql.mark] * len(STAGED_COLUMNS))})", rows)
        finally:
            cursor.close()
    return counts


@dataclass
class MergedChunk:
    rows: int      # staged rows merged (0: nothing was left)
    last_id: int


def merge_chunk(connection: Connection, connector: str, stream: str, *, chunk: int = MERGE_CHUNK) -> MergedChunk:
    """Merge the oldest `chunk` staged rows of the stream into `source_records` and delete them.

    Run one call per transaction until it merges nothing. Within the chunk, rows go in key order,
    and among rows of one key in the order they were read.
    """
    key = (staged.c.connector == connector) & (staged.c.stream == stream)
    last_id = connection.execute(select(staged.c.id).where(key).order_by(staged.c.id)
                                 .offset(chunk - 1).limit(1)).scalar_one_or_none()
    if last_id is None:
        last_id = connection.execute(select(func.max(staged.c.id)).where(key)).scalar_one_or_none()
        if last_id is None:
            return MergedChunk(0, 0)
    rows = connection.execute(select(func.count()).select_from(staged).where(key, staged.c.id <= last_id)).scalar_one()
    params = {"connector": connector, "stream": stream, "last_id": last_id, "tombstone": TOMBSTONE}
    if connection.dialect.name == "postgresql":
        # One statement may not upsert a key twice, so a key staged n times takes n rounds.
        merged, occurrence = 0, 1
        while merged < rows:
            merged += connection.execute(text(_MERGE_ROUND), {**params, "occurrence": occurrence}).rowcount
            occurrence += 1
    else:
        connection.execute(text(_MERGE_SQLITE), params)   # SQLite applies the rows one by one, in order
    connection.execute(delete(staged).where(key, staged.c.id <= last_id))
    return MergedChunk(rows, last_id)


def defer_account_index(connection: Connection) -> bool:
    """Drop the account index before a large merge (SQLite only); True if this call dropped it."""
    if connection.dialect.name != "sqlite" or not _has_index(connection, DEFERRED_INDEX):
        return False
    _index(DEFERRED_INDEX).drop(connection)
    return True


def build_account_index(connection: Connection) -> bool:
    """Create the account index if it is missing (merges deferred it, or a crash came between); True if built."""
    if _has_index(connection, DEFERRED_INDEX):
        return False
    _index(DEFERRED_INDEX).create(connection)
    return True


def _index(name: str) -> Index:
    return next(index for index in source.indexes if index.name == name)


def _has_index(connection: Connection, name: str) -> bool:
    if connection.dialect.name != "sqlite":
        return True   # never deferred there
    return connection.execute(text("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :name"),
                              {"name": name}).first() is not None


def stored_count(connection: Connection, connector: str, kinds: Sequence[str]) -> int:
    return connection.execute(select(func.count()).select_from(source).where(
        source.c.connector == connector, source.c.kind.in_(list(kinds)))).scalar_one()


def _merge_statement(selected: str, where: str, order: str) -> str:
    kept = set(KEPT_BY_TOMBSTONE)
    updates = ", ".join(
        f"{name} = CASE WHEN excluded.checksum = :tombstone THEN source_records.{name} ELSE excluded.{name} END"
        if name in kept else f"{name} = excluded.{name}" for name in UPSERTED)
    return (f"INSERT INTO source_records ({', '.join(MERGED_COLUMNS)}) SELECT {selected} {where} ORDER BY {order} "
            f"ON CONFLICT (connector, kind, external_id) DO UPDATE SET {updates}")


_CHUNK_ROWS = "staged_records WHERE connector = :connector AND stream = :stream AND id <= :last_id"
_SELECTED = ("connector, kind, external_id, account_ref, {data}, checksum, deleted, source_updated_at, "
             "synced_at, synced_at, seen_run_id")
_MERGE_SQLITE = _merge_statement(_SELECTED.format(data="data"), f"FROM {_CHUNK_ROWS}", "kind, external_id, id")
_MERGE_ROUND = _merge_statement(
    _SELECTED.format(data="CAST(data AS JSONB)"),
    f"FROM (SELECT *, row_number() OVER (PARTITION BY kind, external_id ORDER BY id) AS occurrence "
    f"FROM {_CHUNK_ROWS}) AS chunk WHERE occurrence = :occurrence", "kind, external_id")
