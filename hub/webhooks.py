"""Webhook deliveries: stored durably before they are acknowledged, processed afterwards.

`receive` verifies a delivery through its connector and inserts it into `webhook_events`
(a replayed event id is recognised and not stored twice). `process_pending` turns stored events
into source-record upserts, one event per transaction; on PostgreSQL several processes share the
work with `FOR UPDATE SKIP LOCKED`. A crash between receiving and processing loses nothing:
the event waits as `pending`. Out-of-order and duplicate deliveries are harmless because the
connector maps each event to the object *as it is now* (see `Connector.webhook_records`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from hub import store
from hub.connector import Connector, WebhookEvent
from hub.errors import ConnectorError
from hub.models import WebhookEvent as WebhookRow
from hub.models import utcnow
from hub.records import Record

log = logging.getLogger(__name__)
events = WebhookRow.__table__
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Received:
    event_id: str
    type: str
    duplicate: bool


def receive(engine: Engine, connector_name: str, connector: Connector, headers: dict[str, str],
            body: bytes) -> Received:
    """Verify and store one delivery. Raises AuthError/PermanentError for forged or bad input."""
    event = connector.verify_webhook(headers, body)
    try:
        with engine.begin() as connection:
            connection.execute(events.insert().values(
                connector=connector_name, event_id=event.id, type=event.type, payload=dict(event.payload),
                received_at=utcnow(), status="pending"))
    except IntegrityError:
        return Received(event.id, event.type, duplicate=True)
    return Received(event.id, event.type, duplicate=False)


@dataclass
class ProcessedEvent:
    connector: str
    event: WebhookEvent
    records: Sequence[Record]


def process_pending(engine: Engine, connector_for: Callable[[str], Connector], *, limit: int = 100,
                    after: Callable[[ProcessedEvent], None] | None = None,
                    now: Callable[[], datetime] = utcnow) -> int:
    """Process up to `limit` pending events, oldest first; returns how many were processed."""
    done = 0
    for _ in range(limit):
        with engine.begin() as connection:
            query = select(events).where(events.c.status == "pending").order_by(events.c.id).limit(1)
            if connection.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row = connection.execute(query).mappings().first()
            if row is None:
                break
            event = WebhookEvent(row["event_id"], row["type"], row["payload"])
            try:
                records = connector_for(row["connector"]).webhook_records(event)
            except ConnectorError as exc:  # the API could not be asked now: try again later
                attempts = (row["error"] or "").count("\n") + 1
                status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
                connection.execute(update(events).where(events.c.id == row["id"]).values(
                    status=status, error=((row["error"] + "\n") if row["error"] else "") + str(exc)))
                log.warning("webhook %s %s: %s", row["connector"], row["event_id"], exc)
                if status == "pending":
                    break  # leave it for the next round instead of spinning on it
                continue
            store.write_records(connection, row["connector"], records, now=now())
            connection.execute(update(events).where(events.c.id == row["id"]).values(
                status="processed", processed_at=now()))
        done += 1
        if after is not None:
            after(ProcessedEvent(row["connector"], event, records))
    return done
