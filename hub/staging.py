"""First loads: appended to `staged_records` as read, merged into `source_records` in key order.

The first read of a stream (no record of its kinds stored yet, or none of its own) is most of a first sync, and its
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
from typing import Any

from sqlalchemy import Connection, Dialect, Index, delete, func, select, text

from hub.models import SourceRecord, StagedRecord, SyncRun
from hub.prepared import PreparedRecord, prepare
from hub.records import Record
from hub.store import TOMBSTONE, UPSERTED, Statements, WriteCounts

staged = StagedRecord.__table__
source = SourceRecord.__table__
runs = SyncRun.__table__

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


def should_stage(connection: Connection, connector: str, stream: str, kinds: Sequence[str], *,
                 first_read: bool = False) -> bool:
    """Whether this run of the stream stages: rows of an earlier run wait, none of its kinds is stored,
    or it is the stream's `first_read` (no state, no full refresh) and no run of it ever committed a page.

    The last case matters when streams share a kind (Zendesk's organizations, users and tickets all
    carry satisfaction records): the first stream's load would otherwise send every later stream's
    first load down the page-by-page upserts that staging exists to avoid. The merge compares such
    rows with what is stored, so the run still counts them new, changed or unchanged (`merge_chunk`).
    """
    waiting = connection.execute(select(staged.c.id).where(
        staged.c.connector == connector, staged.c.stream == stream).limit(1)).first()
    if waiting is not None:
        return True
    stored = connection.execute(select(source.c.id).where(
        source.c.connector == connector, source.c.kind.in_(list(kinds))).limit(1)).first()
    if stored is None:
        return True
    if not first_read:
        return False
    committed = connection.execute(select(runs.c.id).where(
        runs.c.connector == connector, runs.c.stream == stream, runs.c.pages > 0).limit(1)).first()
    return committed is None


# A staged row: the columns of STAGED_COLUMNS, in the driver's own types
StagedRow = tuple[Any, ...]


def stage_records(connection: Connection, connector: str, stream: str, records: Sequence[Record | PreparedRecord],
                  *, now: datetime, seen_run_id: int | None) -> WriteCounts:
    """Append a batch of a first load; counts every record as inserted (or deleted) until the merge says otherwise."""
    prepared = [prepare(record) if isinstance(record, Record) else record for record in records]
    rows, counts = staged_rows(connection.dialect, connector, stream, prepared, now=now, seen_run_id=seen_run_id)
    insert_staged(connection, rows)
    return counts


def staged_rows(dialect: Dialect, connector: str, stream: str, prepared: Sequence[PreparedRecord], *,
                now: datetime, seen_run_id: int | None) -> tuple[list[StagedRow], WriteCounts]:
    """The rows `insert_staged` appends for a batch, and what they count as: pure CPU, so the engine
    makes them before it takes its turn on the SQLite writer, not while other streams wait for it."""
    sql = Statements.for_dialect(dialect)
    moment, stamp, flag = sql.stamp(now), sql.stamp, sql.flag
    rows = [(connector, stream, kind, external_id, account_ref, data, digest, flag(deleted),
             stamp(updated_at) if updated_at is not None else None, moment, seen_run_id)
            for kind, external_id, account_ref, data, digest, deleted, _, updated_at in prepared]
    deleted = sum(1 for row in prepared if row[5])
    return rows, WriteCounts(inserted=len(prepared) - deleted, deleted=deleted)


def insert_staged(connection: Connection, rows: Sequence[StagedRow]) -> None:
    if not rows:
        return
    sql = Statements.of(connection)
    raw = connection.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.executemany(f"INSERT INTO staged_records ({', '.join(STAGED_COLUMNS)}) "
                           f"VALUES ({', '.join([sql.mark] * len(STAGED_COLUMNS))})", rows)
    finally:
        cursor.close()


@dataclass
class MergedChunk:
    rows: int                # staged rows merged (0: nothing was left)
    last_id: int
    unchanged: int = 0       # of them, rows that said what was stored already (same checksum)...
    unchanged_deleted: int = 0   # ...and were tombstones


def merge_chunk(connection: Connection, connector: str, stream: str, *, chunk: int = MERGE_CHUNK,
                stored_kinds: Sequence[str] = ()) -> MergedChunk:
    """Merge the oldest `chunk` staged rows of the stream into `source_records` and delete them.

    Run one call per transaction until it merges nothing. Within the chunk, rows go in key order,
    and among rows of one key in the order they were read. Rows of `stored_kinds` (kinds that had
    stored rows when the merge began) are first compared with what is stored, so the run can count
    them unchanged; a kind nobody stored before cannot meet itself there.
    """
    key = (staged.c.connector == connector) & (staged.c.stream == stream)
    last_id = _chunk_end(connection, connector, stream, chunk)
    if last_id is None:
        return MergedChunk(0, 0)
    rows = connection.execute(select(func.count()).select_from(staged).where(key, staged.c.id <= last_id)).scalar_one()
    params = {"connector": connector, "stream": stream, "last_id": last_id, "tombstone": TOMBSTONE}
    merged = MergedChunk(rows, last_id)
    if stored_kinds:
        kinds = {f"kind{n}": kind for n, kind in enumerate(stored_kinds)}
        for deleted, count in connection.execute(text(
                _UNCHANGED.format(kinds=", ".join(f":{name}" for name in kinds))), {**params, **kinds}):
            merged.unchanged += count
            if deleted:
                merged.unchanged_deleted += count
    if connection.dialect.name == "postgresql":
        # One statement may not upsert a key twice, so a key staged n times takes n rounds.
        done, occurrence = 0, 1
        while done < rows:
            done += connection.execute(text(_MERGE_ROUND), {**params, "occurrence": occurrence}).rowcount
            occurrence += 1
    else:
        connection.execute(text(_MERGE_SQLITE), params)   # SQLite applies the rows one by one, in order
    connection.execute(delete(staged).where(key, staged.c.id <= last_id))
    return merged


def _chunk_end(connection: Connection, connector: str, stream: str, chunk: int) -> int | None:
    """The id of the last row of the stream's next chunk of at most `chunk` staged rows (None: none left)."""
    key = (staged.c.connector == connector) & (staged.c.stream == stream)
    last_id = connection.execute(select(staged.c.id).where(key).order_by(staged.c.id)
                                 .offset(chunk - 1).limit(1)).scalar_one_or_none()
    if last_id is None:
        last_id = connection.execute(select(func.max(staged.c.id)).where(key)).scalar_one_or_none()
    return last_id


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


def stored_counts(connection: Connection, connector: str, kinds: Sequence[str]) -> dict[str, int]:
    """Stored rows of each of these kinds that has any."""
    counted = connection.execute(select(source.c.kind, func.count()).where(
        source.c.connector == connector, source.c.kind.in_(list(kinds))).group_by(source.c.kind))
    return {kind: count for kind, count in counted}


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
_UNCHANGED = ("SELECT s.deleted, count(*) FROM staged_records s JOIN source_records r "
              "ON r.connector = s.connector AND r.kind = s.kind AND r.external_id = s.external_id "
              "AND r.checksum = s.checksum "
              "WHERE s.connector = :connector AND s.stream = :stream AND s.id <= :last_id AND s.kind IN ({kinds}) "
              "GROUP BY s.deleted")
