"""The unified data model as SQLAlchemy 2 typed tables.

Source records keep what each system said, keyed by (connector instance, kind, external id);
`customers` is the unified entity and `customer_links` maps every source record onto it.
Derived tables (health, churn, dunning) and operational ones (sync state and runs, the outbox)
live here too. Every change goes through an Alembic migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSON on SQLite, JSONB on PostgreSQL.
Json = JSON().with_variant(JSONB(), "postgresql")
UtcDateTime = DateTime(timezone=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: Json, datetime: UtcDateTime}


class SourceRecord(Base):
    """One object as a source system described it at the last sync."""

    __tablename__ = "source_records"
    __table_args__ = (
        UniqueConstraint("connector", "kind", "external_id"),
        Index("ix_source_records_kind_connector", "kind", "connector"),
        Index("ix_source_records_account", "connector", "account_ref"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connector: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(255))
    account_ref: Mapped[str | None] = mapped_column(String(255))  # fields["account_id"]: the parent account
    data: Mapped[dict[str, Any]]
    checksum: Mapped[str] = mapped_column(String(32))        # of `data` + `deleted`: skip no-op writes
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    source_updated_at: Mapped[datetime | None]
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_run_id: Mapped[int | None] = mapped_column(Integer)  # last full run that saw it (vanish detection)


class StagedRecord(Base):
    """A record of a stream's first load, waiting to be merged into `source_records` (hub.staging).

    Appending here is cheap whatever the ids look like; `source_records`' indexes are then
    filled in key order when the stream's run ends, not one random id at a time.
    """

    __tablename__ = "staged_records"
    __table_args__ = (Index("ix_staged_records_stream", "connector", "stream", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connector: Mapped[str] = mapped_column(String(100))
    stream: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(255))
    account_ref: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[str] = mapped_column(Text)                  # the canonical JSON text, as prepared
    checksum: Mapped[str] = mapped_column(String(32))
    deleted: Mapped[bool] = mapped_column(Boolean)
    source_updated_at: Mapped[datetime | None]
    synced_at: Mapped[datetime]
    seen_run_id: Mapped[int | None] = mapped_column(Integer)


class Customer(Base):
    """The unified customer: one company across every connected system."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    domain: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str | None] = mapped_column(String(60))
    mrr: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str | None] = mapped_column(String(3))
    churn_state: Mapped[str | None] = mapped_column(String(30))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CustomerLink(Base):
    """Which customer a source record belongs to, and by which rule."""

    __tablename__ = "customer_links"
    __table_args__ = (UniqueConstraint("connector", "kind", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    connector: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(255))
    rule: Mapped[str] = mapped_column(String(40))
    evidence: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncState(Base):
    """The opaque resume state of one stream, plus the lease of whoever is running it."""

    __tablename__ = "sync_state"

    connector: Mapped[str] = mapped_column(String(100), primary_key=True)
    stream: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]


class SyncRun(Base):
    """One run of one stream: when, how it ended, and what it changed."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_connector_stream", "connector", "stream", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector: Mapped[str] = mapped_column(String(100))
    stream: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20), default="running")
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)


class Action(Base):
    """The outbox: one intended action, executed exactly once through a connector."""

    __tablename__ = "actions"
    __table_args__ = (Index("ix_actions_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    source: Mapped[str] = mapped_column(String(100))          # "playbook:<name>" or "dunning"
    customer_id: Mapped[str | None] = mapped_column(String(40), index=True)
    action_type: Mapped[str] = mapped_column(String(100))
    connector: Mapped[str | None] = mapped_column(String(100))
    operation: Mapped[str | None] = mapped_column(String(100))
    params: Mapped[dict[str, Any]]
    # pending | running | sending | succeeded | failed (retried at next_attempt_at) | dead | skipped
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(100))      # the provider's code, e.g. a decline code
    recipient: Mapped[str | None] = mapped_column(String(320))       # email actions: checked against suppressions
    transactional: Mapped[bool] = mapped_column(Boolean, default=False)  # never suppressed
    at_most_once: Mapped[bool] = mapped_column(Boolean, default=False)   # no provider idempotency (SMTP)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class HealthScore(Base):
    """A customer's health score at a time, with each factor's contribution."""

    __tablename__ = "health_scores"
    __table_args__ = (Index("ix_health_scores_customer_time", "customer_id", "scored_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    scored_at: Mapped[datetime]
    score: Mapped[float] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(10))
    model: Mapped[str] = mapped_column(String(60), default="default")
    factors: Mapped[dict[str, Any]]


class ChurnEvent(Base):
    """A churn (or reactivation) with its type, reason, MRR lost and the evidence for it."""

    __tablename__ = "churn_events"
    __table_args__ = (UniqueConstraint("customer_id", "type", "occurred_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    occurred_at: Mapped[datetime]
    type: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(60))
    mrr_lost: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str | None] = mapped_column(String(3))
    evidence: Mapped[dict[str, Any]]


class DunningCase(Base):
    """Recovery of one failed invoice, from the first failure until paid or given up."""

    __tablename__ = "dunning_cases"
    __table_args__ = (UniqueConstraint("connector", "invoice_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector: Mapped[str] = mapped_column(String(100))
    invoice_id: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[str | None] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(20), default="open")
    decline_code: Mapped[str | None] = mapped_column(String(60))
    amount_due: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str | None] = mapped_column(String(3))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    step: Mapped[int] = mapped_column(Integer, default=0)
    recovered_by: Mapped[str | None] = mapped_column(String(30))
    details: Mapped[dict[str, Any]]


class SentMessage(Base):
    """Every email handed to an SMTP server, by Message-ID (so a retry never sends twice)."""

    __tablename__ = "sent_messages"

    message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    action_id: Mapped[int | None] = mapped_column(Integer, index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(100))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suppression(Base):
    """Addresses never to email again from non-transactional playbooks."""

    __tablename__ = "suppressions"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(30))   # unsubscribed | hard_bounce | manual
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlaybookEntry(Base):
    """A customer entering a playbook for one trigger occurrence (or held out as control)."""

    __tablename__ = "playbook_entries"
    __table_args__ = (UniqueConstraint("playbook", "customer_id", "occurrence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    playbook: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    occurrence: Mapped[str] = mapped_column(String(100))
    entered_at: Mapped[datetime]
    control: Mapped[bool] = mapped_column(Boolean, default=False)
    metric: Mapped[str | None] = mapped_column(String(60))
    metric_at_entry: Mapped[float | None] = mapped_column(Float)
    metric_after: Mapped[float | None] = mapped_column(Float)
    measured_at: Mapped[datetime | None]
    details: Mapped[dict[str, Any]]


class WebhookEvent(Base):
    """A webhook delivery, stored before it is acknowledged and processed afterwards."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("connector", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="pending")   # pending | processed | failed
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class MrrSnapshot(Base):
    """A subscription's MRR, seats and plan each time a churn run saw them change.

    Source systems only say what a subscription costs now; this change log is the history that
    contraction (a downgrade, fewer seats) and revenue retention are computed from.
    """

    __tablename__ = "mrr_snapshots"
    __table_args__ = (UniqueConstraint("connector", "subscription_id", "observed_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connector: Mapped[str] = mapped_column(String(100))
    subscription_id: Mapped[str] = mapped_column(String(255))
    observed_at: Mapped[datetime]
    mrr: Mapped[int] = mapped_column(BigInteger, default=0)
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    plan: Mapped[str | None] = mapped_column(String(255))
    currency: Mapped[str | None] = mapped_column(String(3))


class TicketSignal(Base):
    """Signals read from one version of a ticket's text: sentiment and a topic key for repeats.

    Computed once per ticket version (`checksum` of the source record), so scoring never
    re-reads ticket text it has already analysed.
    """

    __tablename__ = "ticket_signals"

    record_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("source_records.id", ondelete="CASCADE"), primary_key=True)
    checksum: Mapped[str] = mapped_column(String(32))
    sentiment: Mapped[float | None] = mapped_column(Float)
    topic: Mapped[int] = mapped_column(BigInteger, default=0)
