"""Webhook deliveries: stored durably before they are acknowledged, processed afterwards.

`receive` verifies a delivery through its connector and inserts it into `webhook_events`
(a replayed event id is recognised and not stored twice). `process_pending` turns stored events
into source-record upserts, one event per transaction; on PostgreSQL several processes share the
work with `FOR UPDATE SKIP LOCKED`. A crash between receiving and processing loses nothing:
the event waits as `pending`. Out-of-order and duplicate deliveries are harmless because the
connector maps each event to the object *as it is now* (see `Connector.webhook_records`).

Each processed event also updates dunning cases in the same transaction (`hub.dunning.apply_event`),
so a case opens on `invoice.payment_failed` and closes on `invoice.paid` in real time.

Verification is the connector's (`Connector.verify_webhook`): the core knows no provider's
signature scheme or secrets; it stores what the connector accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from hub import dunning, store
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


def receive(engine: Engine, connector_name: str, connector: Connector, headers: Mapping[str, str],
            body: bytes) -> Received:
    """Verify (through the connector) and store one delivery.

    Raises AuthError (forged, unsigned, no secret configured) or PermanentError (stale, malformed),
    and NotImplementedError when the connector does not receive webhooks; nothing is stored then.
    """
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
            _update_dunning(connection, row, records, now())
            connection.execute(update(events).where(events.c.id == row["id"]).values(
                status="processed", processed_at=now()))
        done += 1
        if after is not None:
            after(ProcessedEvent(row["connector"], event, records))
    return done


def _update_dunning(connection: Any, row: Mapping[str, Any], records: Sequence[Record], now: datetime) -> None:
    """Dunning cases follow the event; a bug there must not block the other events (savepoint)."""
    try:
        with connection.begin_nested():
            dunning.apply_event(connection, row["connector"], row["payload"], records, now=now)
    except Exception as exc:  # recorded on the event; the next dunning run reconciles from sync
        log.exception("dunning could not process webhook %s %s", row["connector"], row["event_id"])
        connection.execute(update(events).where(events.c.id == row["id"]).values(error=f"dunning: {exc}"[:2000]))
