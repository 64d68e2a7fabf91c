"""Writing synced pages: bulk upserts of source records and the stream state, in one transaction.

A page is written with a handful of set-based statements (never one ORM object per row):
one SELECT of the checksums already stored for the page's ids, one INSERT ... ON CONFLICT DO
UPDATE for what is new or changed, and the state upsert. Unchanged records are not written, so a
sync with no upstream change writes nothing. Deleted records are marked deleted, never removed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.models import SourceRecord, SyncState
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


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def checksum(fields: Mapping[str, Any], deleted: bool) -> str:
    return hashlib.blake2b(dumps(fields).encode() + (b"\x00D" if deleted else b""), digest_size=16).hexdigest()


TOMBSTONE = checksum({}, True)


def _insert(connection: Connection) -> Any:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"churnhub supports SQLite and PostgreSQL, not {dialect}")


def _account_ref(record: Record) -> str | None:
    value = record.fields.get("account_id")
    return str(value) if value is not None else None


def _latest_per_id(records: Iterable[Record]) -> dict[tuple[str, str], Record]:
    """The last record for each (kind, id) in page order: a page may repeat an object."""
    latest: dict[tuple[str, str], Record] = {}
    for record in records:
        latest[(record.kind, record.external_id)] = record
    return latest


def write_records(connection: Connection, connector: str, records: Sequence[Record], *,
                  now: datetime, seen_run_id: int | None = None) -> WriteCounts:
    """Upsert `records` of one connector; returns what changed. `seen_run_id` marks them seen by a full run."""
    counts = WriteCounts()
    by_kind: dict[str, list[Record]] = {}
    for (kind, _), record in _latest_per_id(records).items():
        by_kind.setdefault(kind, []).append(record)
    for kind, batch in by_kind.items():
        counts.add(_write_kind(connection, connector, kind, batch, now, seen_run_id))
    return counts


def _write_kind(connection: Connection, connector: str, kind: str, batch: list[Record],
                now: datetime, seen_run_id: int | None) -> WriteCounts:
    counts = WriteCounts()
    stored = dict(connection.execute(
        select(source.c.external_id, source.c.checksum).where(
            source.c.connector == connector, source.c.kind == kind,
            source.c.external_id.in_(bindparam("ids", expanding=True))),
        {"ids": [r.external_id for r in batch]},
    ).all())
    rows, tombstones, unchanged_ids = [], [], []
    for record in batch:
        digest = checksum(record.fields, record.deleted)
        previous = stored.get(record.external_id)
        if previous == digest:
            counts.unchanged += 1
            unchanged_ids.append(record.external_id)
            continue
        if record.deleted:
            counts.deleted += 1
        elif previous is None:
            counts.inserted += 1
        else:
            counts.updated += 1
        if record.deleted and not record.fields and previous is not None:
            tombstones.append(record.external_id)  # keep what we knew; only flag it deleted
            continue
        rows.append({
            "connector": connector, "kind": kind, "external_id": record.external_id,
            "account_ref": _account_ref(record), "data": dict(record.fields), "checksum": digest, "deleted": record.deleted,
            "source_updated_at": record.updated_at, "first_seen_at": now, "synced_at": now,
            "seen_run_id": seen_run_id,
        })
    if rows:
        insert = _insert(connection)(source)
        connection.execute(insert.on_conflict_do_update(
            index_elements=["connector", "kind", "external_id"],
            set_={name: insert.excluded[name] for name in
                  ("account_ref", "data", "checksum", "deleted", "source_updated_at", "synced_at", "seen_run_id")},
        ), rows)
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
