"""Writing synced pages: bulk upserts of source records and the stream state, in one transaction.

A page is written with a handful of set-based statements (never one ORM object per row):
one SELECT of the checksums already stored for the page's ids, one INSERT ... ON CONFLICT DO
UPDATE for what is new or changed, and the state upsert. Unchanged records are not written, so a
sync with no upstream change writes nothing. Deleted records are marked deleted, never removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.models import SourceRecord, SyncState
from hub.prepared import PreparedRecord, checksum, prepare
from hub.records import Record

source = SourceRecord.__table__
sync_state = SyncState.__table__


# Checksums of rows flagged deleted without new data: a repeated tombstone is then a no-op,
# and a record that comes back (any real checksum) is written again.
VANISHED = "vanished"


@dataclass
class WriteCounts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0

    def add(self, other: WriteCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.deleted += other.deleted
        self.unchanged += other.unchanged


TOMBSTONE = checksum({}, True)


def _insert(connection: Connection) -> Any:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"churnhub supports SQLite and PostgreSQL, not {dialect}")


def write_records(connection: Connection, connector: str, records: Sequence[Record | PreparedRecord], *,
                  now: datetime, seen_run_id: int | None = None) -> WriteCounts:
    """Upsert `records` of one connector; returns what changed. `seen_run_id` marks them seen by a full run.

    Records may come prepared (`hub.prepared`, done by a reader process) or as they were read.
    """
    # The last record for each (kind, id) in page order: a page may repeat an object.
    latest: dict[tuple[str, str], PreparedRecord] = {}
    for record in records:
        row = prepare(record) if isinstance(record, Record) else record
        latest[(row[0], row[1])] = row
    by_kind: dict[str, list[PreparedRecord]] = {}
    for (kind, _), row in latest.items():
        by_kind.setdefault(kind, []).append(row)
    counts = WriteCounts()
    sql = Statements.of(connection)
    for kind, batch in by_kind.items():
        counts.add(_write_kind(connection, sql, connector, kind, batch, now, seen_run_id))
    return counts


SELECT_CHUNK = 500   # ids per checksum lookup: well inside every SQLite's bound-parameter limit
UPSERTED = ("account_ref", "data", "checksum", "deleted", "source_updated_at", "synced_at", "seen_run_id")
COLUMNS = ("connector", "kind", "external_id", "account_ref", "data", "checksum", "deleted",
           "source_updated_at", "first_seen_at", "synced_at", "seen_run_id")


@dataclass(frozen=True)
class Statements:
    """The page-write statements in the driver's own dialect, built once per dialect.

    Pages are written through the DBAPI cursor (`executemany`), not SQLAlchemy's compiled
    statements: per-row bind processing and statement set-up were a third of a sync's time, and
    each record's JSON text is already made for its checksum, so it is stored as is.
    """

    dialect: str
    mark: str       # the driver's parameter marker
    upsert: str
    stamp: Any      # datetime -> what the driver stores (SQLite: SQLAlchemy's text form)
    flag: Any       # bool -> what the driver stores

    @staticmethod
    def of(connection: Connection) -> Statements:
        return Statements.for_dialect(connection.dialect)

    @staticmethod
    def for_dialect(dialect: Any) -> Statements:
        cached = STATEMENTS_BY_DIALECT.get(dialect.name)
        if cached is not None:
            return cached
        if dialect.name == "postgresql":
            mark, data_mark = "%s", "%s::jsonb"
        elif dialect.name == "sqlite":
            mark, data_mark = "?", "?"
        else:
            raise NotImplementedError(f"churnhub supports SQLite and PostgreSQL, not {dialect.name}")
        values = ", ".join(data_mark if name == "data" else mark for name in COLUMNS)
        updates = ", ".join(f"{name} = excluded.{name}" for name in UPSERTED)
        upsert = (f"INSERT INTO source_records ({', '.join(COLUMNS)}) VALUES ({values}) "
                  f"ON CONFLICT (connector, kind, external_id) DO UPDATE SET {updates}")
        stamp = source.c.synced_at.type.dialect_impl(dialect).bind_processor(dialect) or _same
        if dialect.name == "sqlite":
            stamp = _sqlite_stamp(stamp)
        flag = source.c.deleted.type.dialect_impl(dialect).bind_processor(dialect) or _same
        statements = Statements(dialect.name, mark, upsert, stamp, flag)
        STATEMENTS_BY_DIALECT[dialect.name] = statements
        return statements


STATEMENTS_BY_DIALECT: dict[str, Statements] = {}


def _same(value: Any) -> Any:
    return value


def _sqlite_stamp(slow: Any) -> Any:
    """SQLAlchemy's text for a datetime in SQLite ('2026-12-08 01:00:00.000000', any offset dropped), made by
    `isoformat` in C: a record's timestamp is stamped on the writer's thread, 1.8 -> 0.3 µs."""

    def stamp(value: Any) -> Any:
        if type(value) is datetime:
            return value.isoformat(" ", "microseconds")[:26]
        return slow(value)

    return stamp


def _stored_checksums(cursor: Any, sql: Statements, connector: str, kind: str, ids: list[str]) -> dict[str, str]:
    mark = sql.mark
    cursor.execute(f"SELECT 1 FROM source_records WHERE connector = {mark} AND kind = {mark} LIMIT 1", (connector, kind))
    if cursor.fetchone() is None:   # a first sync of this kind: one probe instead of a lookup per id
        return {}
    if sql.dialect == "postgresql":
        # One array parameter, planned on every call: psycopg prepares a statement after a few
        # runs, and a generic plan made while the table was still empty would keep scanning it.
        cursor.execute("SELECT external_id, checksum FROM source_records WHERE connector = %s AND kind = %s "
                       "AND external_id = ANY(%s)", (connector, kind, ids), prepare=False)
        return dict(cursor.fetchall())
    stored: dict[str, str] = {}
    for start in range(0, len(ids), SELECT_CHUNK):
        chunk = ids[start:start + SELECT_CHUNK]
        marks = ", ".join("?" * len(chunk))
        cursor.execute(f"SELECT external_id, checksum FROM source_records WHERE connector = ? AND kind = ? "
                       f"AND external_id IN ({marks})", (connector, kind, *chunk))
        stored.update(cursor.fetchall())
    return stored


def _write_kind(connection: Connection, sql: Statements, connector: str, kind: str,
                batch: list[PreparedRecord], now: datetime, seen_run_id: int | None) -> WriteCounts:
    counts = WriteCounts()
    raw = connection.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        stored = _stored_checksums(cursor, sql, connector, kind, [row[1] for row in batch])
        moment = sql.stamp(now)
        rows, tombstones, unchanged_ids = [], [], []
        for _, external_id, account_ref, text, digest, deleted, bare, updated_at in batch:
            previous = stored.get(external_id)
            if previous == digest:
                counts.unchanged += 1
                unchanged_ids.append(external_id)
                continue
            if deleted:
                counts.deleted += 1
            elif previous is None:
                counts.inserted += 1
            else:
                counts.updated += 1
            if deleted and bare and previous is not None:
                tombstones.append(external_id)  # keep what we knew; only flag it deleted
                continue
            rows.append((connector, kind, external_id, account_ref, text, digest, sql.flag(deleted),
                         sql.stamp(updated_at) if updated_at is not None else None, moment, moment, seen_run_id))
        if rows:
            cursor.executemany(sql.upsert, rows)
    finally:
        cursor.close()
    if tombstones:
        connection.execute(
            update(source).where(source.c.connector == connector, source.c.kind == kind,
                                 source.c.external_id.in_(bindparam("ids", expanding=True)))
            .values(deleted=True, synced_at=now, seen_run_id=seen_run_id, checksum=TOMBSTONE),
            {"ids": tombstones})
    if seen_run_id is not None and unchanged_ids:
        connection.execute(
            update(source).where(source.c.connector == connector, source.c.kind == kind,
                                 source.c.external_id.in_(bindparam("ids", expanding=True)))
            .values(seen_run_id=seen_run_id), {"ids": unchanged_ids})
    return counts


def mark_vanished(connection: Connection, connector: str, kinds: Sequence[str], run_id: int,
                  now: datetime) -> int:
    """After a complete full read: records of these kinds the run did not see are gone upstream."""
    result = connection.execute(
        update(source).where(
            source.c.connector == connector, source.c.kind.in_(list(kinds)), source.c.deleted.is_(False),
            (source.c.seen_run_id.is_(None)) | (source.c.seen_run_id != run_id),
        ).values(deleted=True, synced_at=now, checksum=VANISHED))
    return result.rowcount or 0


def load_state(connection: Connection, connector: str, stream: str) -> dict[str, Any] | None:
    return connection.execute(
        select(sync_state.c.state).where(sync_state.c.connector == connector, sync_state.c.stream == stream)
    ).scalar_one_or_none()


def save_state(connection: Connection, connector: str, stream: str, state: Mapping[str, Any] | None,
               now: datetime) -> None:
    insert = _insert(connection)(sync_state).values(
        connector=connector, stream=stream, state=dict(state) if state is not None else None, updated_at=now)
    connection.execute(insert.on_conflict_do_update(
        index_elements=["connector", "stream"],
        set_={"state": insert.excluded.state, "updated_at": insert.excluded.updated_at}))


def clear_state(connection: Connection, connector: str, stream: str) -> None:
    connection.execute(sync_state.delete().where(and_(sync_state.c.connector == connector,
                                                      sync_state.c.stream == stream)))


class LeaseLost(Exception):
    """Another worker holds this stream now: the page must not be committed."""


def claim_stream(connection: Connection, connector: str, stream: str, owner: str, *,
                 now: datetime, lease_seconds: float) -> bool:
    """Take the stream's lease if it is free, expired or already ours. Atomic on both databases:
    PostgreSQL locks the row with `FOR UPDATE SKIP LOCKED` (a contended row is simply skipped);
    SQLite serialises writers, and the conditional UPDATE decides."""
    insert = _insert(connection)(sync_state).values(connector=connector, stream=stream, state=None, updated_at=now)
    connection.execute(insert.on_conflict_do_nothing(index_elements=["connector", "stream"]))
    key = and_(sync_state.c.connector == connector, sync_state.c.stream == stream)
    free = (sync_state.c.lease_owner.is_(None)) | (sync_state.c.lease_expires_at < now) | \
        (sync_state.c.lease_owner == owner)
    if connection.dialect.name == "postgresql":
        locked = connection.execute(select(sync_state.c.stream).where(key, free)
                                    .with_for_update(skip_locked=True)).first()
        if locked is None:
            return False
    result = connection.execute(update(sync_state).where(key, free).values(
        lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds)))
    return result.rowcount == 1


def renew_lease(connection: Connection, connector: str, stream: str, owner: str, *,
                now: datetime, lease_seconds: float) -> None:
    """Extend our lease; raises LeaseLost if it expired and someone else took the stream."""
    result = connection.execute(update(sync_state).where(
        sync_state.c.connector == connector, sync_state.c.stream == stream, sync_state.c.lease_owner == owner,
    ).values(lease_expires_at=now + timedelta(seconds=lease_seconds)))
    if result.rowcount != 1:
        raise LeaseLost(f"{connector}.{stream}: the lease of {owner} was taken over")


def release_stream(connection: Connection, connector: str, stream: str, owner: str) -> None:
    connection.execute(update(sync_state).where(
        sync_state.c.connector == connector, sync_state.c.stream == stream, sync_state.c.lease_owner == owner,
    ).values(lease_owner=None, lease_expires_at=None))
