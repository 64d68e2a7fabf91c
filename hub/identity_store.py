"""Identity resolution against the database: read account records, write `customers` and `customer_links`.

    report = resolve_identities(hub.engine, hub.settings.file.identity, connector_types_of(hub.settings))

One transaction: read every non-deleted account record and the links as they are, resolve
(`hub.identity.resolve`, pure), then write only the differences with set-based statements. A second
run with nothing changed writes nothing. Customers also get their MRR and currency rolled up from
the subscriptions of their linked accounts (joined through `source_records.account_ref`). A customer
whose records are all gone keeps its row with `status = "unlinked"` and MRR 0: ids are never reused
for something else and history (health, churn) still points somewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, text, update

from hub.config import Settings
from hub.identity import ACCOUNT, Account, RecordKey, Resolution, resolve
from hub.models import Customer, CustomerLink, SourceRecord
from hub.sections.identity import IdentitySettings

source = SourceRecord.__table__
customers = Customer.__table__
links = CustomerLink.__table__

UNLINKED = "unlinked"
# Subscriptions that bring in money now (canceled, incomplete_expired, ended, unpaid, paused do not).
REVENUE_STATUSES = ("active", "trialing", "past_due")
_LOCK_ID = 0x636875726E  # pg_advisory_xact_lock key: one identity resolution at a time


@dataclass
class IdentityReport:
    """What a resolution found and what it changed."""

    customers: int = 0
    single_system: int = 0
    conflicts: int = 0
    problems: int = 0
    created: int = 0
    updated: int = 0
    unlinked: int = 0
    links_added: int = 0
    links_changed: int = 0
    links_removed: int = 0

    @property
    def changed(self) -> bool:
        return any((self.created, self.updated, self.unlinked, self.links_added, self.links_changed,
                    self.links_removed))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Existing:
    """The stored side: links of account records and every customer row."""

    links: dict[RecordKey, tuple[int, str, str, str | None]]    # -> (link id, customer id, rule, evidence)
    customers: dict[str, dict[str, Any]]                          # id -> name, domain, status, mrr, currency
    created: dict[str, datetime]

    @property
    def customer_of(self) -> dict[tuple[str, str], str]:
        return {key: link[1] for key, link in self.links.items()}


@dataclass
class Changes:
    new_customers: list[dict[str, Any]] = field(default_factory=list)
    changed_customers: list[dict[str, Any]] = field(default_factory=list)
    unlinked_customers: list[dict[str, Any]] = field(default_factory=list)
    new_links: list[dict[str, Any]] = field(default_factory=list)
    changed_links: list[dict[str, Any]] = field(default_factory=list)
    removed_links: list[int] = field(default_factory=list)

    def count_into(self, report: IdentityReport) -> IdentityReport:
        report.created, report.updated = len(self.new_customers), len(self.changed_customers)
        report.unlinked, report.links_added = len(self.unlinked_customers), len(self.new_links)
        report.links_changed, report.links_removed = len(self.changed_links), len(self.removed_links)
        return report


def connector_types_of(settings: Settings) -> dict[str, list[str]]:
    """Connector type -> the configured instance names of that type (disabled ones included)."""
    types: dict[str, list[str]] = {}
    for name, config in sorted(settings.connectors.items()):
        types.setdefault(config.type, []).append(name)
    return types


MATCHED_FIELDS = ("name", "domains", "website", "email", "links")


def load_accounts(connection: Connection) -> list[Account]:
    """Every non-deleted account record, keeping only the fields matching reads."""
    rows = connection.execute(select(source.c.connector, source.c.external_id, source.c.data)
                              .where(source.c.kind == ACCOUNT, source.c.deleted.is_(False)))
    # one JSON column per row is cheaper to fetch than five JSON paths on both databases
    return [Account(connector, external_id, {name: (data or {}).get(name) for name in MATCHED_FIELDS})
            for connector, external_id, data in rows]


def load_existing(connection: Connection) -> Existing:
    stored_links = {
        RecordKey(row.connector, row.external_id): (row.id, row.customer_id, row.rule, row.evidence)
        for row in connection.execute(
            select(links.c.id, links.c.customer_id, links.c.connector, links.c.external_id, links.c.rule,
                   links.c.evidence).where(links.c.kind == ACCOUNT))
    }
    stored_customers = {}
    created = {}
    for row in connection.execute(select(customers.c.id, customers.c.name, customers.c.domain, customers.c.status,
                                         customers.c.mrr, customers.c.currency, customers.c.created_at)):
        stored_customers[row.id] = {"name": row.name, "domain": row.domain, "status": row.status,
                                    "mrr": row.mrr, "currency": row.currency}
        created[row.id] = row.created_at
    return Existing(stored_links, stored_customers, created)


def revenue(connection: Connection, resolution: Resolution) -> dict[str, tuple[int, str | None]]:
    """Customer id -> (MRR in minor units, currency) from the live subscriptions of its accounts.

    A customer billed in several currencies gets the currency with the most MRR (amounts in
    different currencies are never added up).
    """
    mrr = source.c.data["mrr"].as_float()   # minor units; a float from a plugin must not break the cast
    currency = source.c.data["currency"].as_string()
    rows = connection.execute(
        select(source.c.connector, source.c.account_ref, currency.label("currency"), func.sum(mrr).label("mrr"))
        .where(source.c.kind == "subscription", source.c.deleted.is_(False), source.c.account_ref.is_not(None),
               source.c.data["status"].as_string().in_(REVENUE_STATUSES))
        .group_by(source.c.connector, source.c.account_ref, currency))
    totals: dict[str, dict[str | None, int]] = {}
    for row in rows:
        customer_id = resolution.customer_of.get(RecordKey(row.connector, row.account_ref))
        if customer_id is not None:
            by_currency = totals.setdefault(customer_id, {})
            by_currency[row.currency] = by_currency.get(row.currency, 0) + round(row.mrr or 0)
    return {customer_id: max(((amount, code) for code, amount in by_currency.items()),
                             key=lambda pair: (pair[0], pair[1] or ""))
            for customer_id, by_currency in totals.items()}


def plan_changes(resolution: Resolution, existing: Existing,
                 money: Mapping[str, tuple[int, str | None]]) -> Changes:
    """The writes that bring the database to `resolution` (nothing when it already is)."""
    changes = Changes()
    for customer in resolution.customers:
        stored = existing.customers.get(customer.id)
        mrr, currency = money.get(customer.id, (0, None))
        if currency is None and stored is not None:
            currency = stored["currency"]  # revenue stopped: keep the last known currency
        wanted = {"name": customer.name, "domain": customer.domain, "status": None, "mrr": mrr, "currency": currency}
        if stored is None:
            changes.new_customers.append({"id": customer.id, **wanted})
        elif stored != wanted:
            changes.changed_customers.append({"b_id": customer.id, **_prefixed(wanted)})
        for member in customer.members:
            link = existing.links.get(member.key)
            if link is None:
                changes.new_links.append({"customer_id": customer.id, "connector": member.key.connector,
                                          "kind": ACCOUNT, "external_id": member.key.external_id,
                                          "rule": member.rule, "evidence": member.evidence})
            elif link[1:] != (customer.id, member.rule, member.evidence):
                changes.changed_links.append({"b_id": link[0], **_prefixed({
                    "customer_id": customer.id, "rule": member.rule, "evidence": member.evidence})})
    changes.removed_links = sorted(link[0] for key, link in existing.links.items()
                                   if key not in resolution.customer_of)
    resolved = {customer.id for customer in resolution.customers}
    for customer_id, stored in sorted(existing.customers.items()):
        if customer_id not in resolved and (stored["status"] != UNLINKED or stored["mrr"] != 0):
            changes.unlinked_customers.append({"b_id": customer_id, **_prefixed({"status": UNLINKED, "mrr": 0})})
    return changes


def _prefixed(values: Mapping[str, Any]) -> dict[str, Any]:
    """Bind names for executemany updates (SQLAlchemy reserves the bare column names)."""
    return {"v_" + name: value for name, value in values.items()}


def write_changes(connection: Connection, changes: Changes, now: datetime) -> None:
    """Set-based writes, in an order the foreign keys accept."""
    if changes.new_customers:
        connection.execute(customers.insert(), [{**row, "created_at": now, "updated_at": now}
                                                for row in changes.new_customers])
    for rows, columns in ((changes.changed_customers, ("name", "domain", "status", "mrr", "currency")),
                          (changes.unlinked_customers, ("status", "mrr"))):
        if rows:
            connection.execute(
                update(customers).where(customers.c.id == bindparam("b_id"))
                .values({**{name: bindparam("v_" + name) for name in columns}, "updated_at": now}), rows)
    if changes.removed_links:
        connection.execute(links.delete().where(links.c.id.in_(bindparam("ids", expanding=True))),
                           {"ids": changes.removed_links})
    if changes.changed_links:
        connection.execute(
            update(links).where(links.c.id == bindparam("b_id"))
            .values(customer_id=bindparam("v_customer_id"), rule=bindparam("v_rule"), evidence=bindparam("v_evidence")),
            changes.changed_links)
    if changes.new_links:
        connection.execute(links.insert(), [{**row, "created_at": now} for row in changes.new_links])


def lock_for_resolution(connection: Connection) -> None:
    """Serialise resolutions (two workers, or a sync finishing while a report runs)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_ID})
    else:  # SQLite: a write statement takes the database's write lock before anything is read
        connection.execute(update(customers).where(customers.c.id.is_(None)).values(id=customers.c.id))


def plan(connection: Connection, identity: IdentitySettings,
         connector_types: Mapping[str, Sequence[str]]) -> tuple[Resolution, Existing, Changes]:
    """Resolve from the database without writing: the resolution and the writes it would need."""
    existing = load_existing(connection)
    resolution = resolve(load_accounts(connection), existing.customer_of, identity, connector_types,
                         customer_created=existing.created)
    return resolution, existing, plan_changes(resolution, existing, revenue(connection, resolution))


def summarise(resolution: Resolution, changes: Changes) -> IdentityReport:
    report = IdentityReport(customers=len(resolution.customers), single_system=len(resolution.single_system()),
                            conflicts=len(resolution.conflicts), problems=len(resolution.problems))
    return changes.count_into(report)


def apply_resolution(connection: Connection, resolution: Resolution, *, now: datetime | None = None) -> IdentityReport:
    """Write `resolution` (customers, links, MRR roll-up): only what differs from the database."""
    existing = load_existing(connection)
    changes = plan_changes(resolution, existing, revenue(connection, resolution))
    write_changes(connection, changes, now or datetime.now(UTC))
    return summarise(resolution, changes)


def resolve_identities(engine: Engine, identity: IdentitySettings, connector_types: Mapping[str, Sequence[str]],
                       *, now: datetime | None = None) -> IdentityReport:
    """Resolve every account record into customers and store the result, in one transaction."""
    with engine.begin() as connection:
        lock_for_resolution(connection)
        resolution, _existing, changes = plan(connection, identity, connector_types)
        write_changes(connection, changes, now or datetime.now(UTC))
    return summarise(resolution, changes)
