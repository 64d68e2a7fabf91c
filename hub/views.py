"""Customer views: the customer list and the 360° view of one customer. Read-only queries.

    customer_list(connection, band="red")          # [{id, name, domain, mrr, currency, links, health}, ...]
    customer_360(connection, find_customer(connection, "acme.com"))

Every view is a handful of set-based queries (never one per customer). Records hang off a customer
through its linked accounts: a ticket, subscription or invoice belongs to the customer whose
account has the record's `account_ref` in the same connector.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Select, and_, func, select
from sqlalchemy.sql import ColumnElement

from hub.domains import normalise_domain
from hub.errors import HubError
from hub.identity_store import REVENUE_STATUSES, UNLINKED
from hub.models import Customer, CustomerLink, HealthScore, SourceRecord

source = SourceRecord.__table__
customers = Customer.__table__
links = CustomerLink.__table__
health = HealthScore.__table__

OPEN_TICKET_STATUSES = ("new", "open", "pending", "hold")
RECENT_TICKETS = 10
RECENT_INVOICES = 10


class CustomerNotFound(HubError):
    """No customer (or more than one) answers to a reference."""


def latest_health() -> Any:
    """A subquery: each customer's most recent health score (the newest row wins a tie)."""
    ranked = select(
        health.c.customer_id, health.c.score, health.c.band, health.c.scored_at, health.c.model, health.c.factors,
        func.row_number().over(partition_by=health.c.customer_id,
                               order_by=(health.c.scored_at.desc(), health.c.id.desc())).label("position"),
    ).subquery()
    return select(ranked).where(ranked.c.position == 1).subquery()


def _health(row: Any, *, factors: bool = False) -> dict[str, Any] | None:
    if row.band is None and row.score is None:
        return None
    found = {"score": row.score, "band": row.band, "scored_at": row.scored_at}
    if factors:
        found.update(model=row.model, factors=row.factors)
    return found


def _links_by_customer(connection: Connection, customer_ids: Sequence[str] | None = None) -> dict[str, list[dict]]:
    query = select(links.c.customer_id, links.c.connector, links.c.kind, links.c.external_id, links.c.rule,
                   links.c.evidence).order_by(links.c.customer_id, links.c.connector, links.c.external_id)
    if customer_ids is not None:
        query = query.where(links.c.customer_id.in_(list(customer_ids)))
    grouped: dict[str, list[dict]] = {}
    for row in connection.execute(query):
        grouped.setdefault(row.customer_id, []).append({
            "connector": row.connector, "object": row.kind, "external_id": row.external_id,
            "rule": row.rule, "evidence": row.evidence})
    return grouped


def customer_list(connection: Connection, *, band: str | None = None,
                  include_unlinked: bool = False) -> list[dict[str, Any]]:
    """Every customer with links, MRR and latest health, biggest MRR first; `band` filters on health."""
    scores = latest_health()
    query = (select(customers, scores.c.score, scores.c.band, scores.c.scored_at)
             .outerjoin(scores, scores.c.customer_id == customers.c.id)
             .order_by(customers.c.mrr.desc(), customers.c.name, customers.c.id))
    if band is not None:
        query = query.where(func.lower(scores.c.band) == band.lower())
    if not include_unlinked:
        query = query.where((customers.c.status.is_(None)) | (customers.c.status != UNLINKED))
    rows = connection.execute(query).all()
    grouped = _links_by_customer(connection) if rows else {}
    return [{
        "id": row.id, "name": row.name, "domain": row.domain, "status": row.status,
        "mrr": row.mrr, "currency": row.currency, "churn_state": row.churn_state,
        "links": [{k: link[k] for k in ("connector", "object", "external_id")} for link in grouped.get(row.id, [])],
        "health": _health(row),
    } for row in rows]


def find_customer(connection: Connection, ref: str) -> str:
    """The customer id for `ref`: a customer id, `connector:external_id` or a bare id of a linked
    account, a domain (or an email address at it), or the id of any record hanging off a linked
    account (a ticket, invoice, subscription). Several matches are an error naming them."""
    ref = ref.strip()
    if connection.execute(select(customers.c.id).where(customers.c.id == ref)).first():
        return ref
    connector, sep, external_id = ref.partition(":")
    # "connector:id" first; then the whole text as a bare id (Zendesk NPS ids contain colons)
    pairs = [(links.c.connector == connector) & (links.c.external_id == external_id)] if sep else []
    for condition in [*pairs, links.c.external_id == ref]:
        rows = connection.execute(select(links.c.customer_id, links.c.connector, links.c.external_id)
                                  .where(condition).limit(20)).all()
        if rows:
            return _one(ref, [(row.customer_id, f"{row.connector}:{row.external_id}") for row in rows])
    domain = normalise_domain(ref)
    if domain:
        rows = connection.execute(select(customers.c.id, customers.c.name, customers.c.status)
                                  .where(customers.c.domain == domain)).all()
        current = [row for row in rows if row.status != UNLINKED] or rows
        if current:
            return _one(ref, [(row.id, f"{row.id} {row.name or ''}".strip()) for row in current])
    pairs = [(source.c.connector == connector) & (source.c.external_id == external_id)] if sep else []
    for condition in [*pairs, source.c.external_id == ref]:
        rows = connection.execute(
            select(links.c.customer_id, source.c.connector, source.c.kind, source.c.external_id)
            .join(links, and_(links.c.connector == source.c.connector, links.c.external_id == source.c.account_ref))
            .where(condition).limit(20)).all()
        if rows:
            return _one(ref, [(row.customer_id, f"{row.kind} {row.connector}:{row.external_id}") for row in rows])
    raise CustomerNotFound(f"no customer matches {ref!r} (give a customer id, a domain or connector:external_id)")


def _one(ref: str, matches: Sequence[tuple[str, str]]) -> str:
    """The one customer among `matches` (customer id, what matched); an error naming them if several."""
    ids = sorted({customer_id for customer_id, _ in matches})
    if len(ids) > 1:
        described = ", ".join(sorted({f"{what} -> {customer_id}" for customer_id, what in matches}))
        raise CustomerNotFound(f"{ref!r} matches {len(ids)} customers ({described}): "
                               "give connector:external_id or a customer id")
    return ids[0]


def _children(customer_id: str, kind: str, *conditions: ColumnElement[bool]) -> Select[Any]:
    """Live records of `kind` whose account_ref is one of the customer's linked accounts."""
    return (select(source.c.connector, source.c.external_id, source.c.data)
            .join(links, and_(links.c.connector == source.c.connector, links.c.external_id == source.c.account_ref))
            .where(links.c.customer_id == customer_id, source.c.kind == kind, source.c.deleted.is_(False),
                   *conditions))


def _pick(connector: str, external_id: str, data: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {"connector": connector, "external_id": external_id, **{name: data.get(name) for name in names}}


def customer_360(connection: Connection, customer_id: str) -> dict[str, Any]:
    """Everything known about one customer: linked records per system, MRR and plan, open tickets,
    last invoices and payment state, latest health."""
    scores = latest_health()
    row = connection.execute(
        select(customers, scores.c.score, scores.c.band, scores.c.scored_at, scores.c.model, scores.c.factors)
        .outerjoin(scores, scores.c.customer_id == customers.c.id).where(customers.c.id == customer_id)).first()
    if row is None:
        raise CustomerNotFound(f"no customer {customer_id!r}")
    linked = _links_by_customer(connection, [customer_id]).get(customer_id, [])
    accounts = connection.execute(
        select(source.c.connector, source.c.external_id, source.c.data, source.c.deleted)
        .join(links, and_(links.c.connector == source.c.connector, links.c.kind == source.c.kind,
                          links.c.external_id == source.c.external_id))
        .where(links.c.customer_id == customer_id).order_by(source.c.connector, source.c.external_id)).all()
    systems: dict[str, dict[str, Any]] = {}
    for account in accounts:
        entry = systems.setdefault(account.connector, {"accounts": [], "records": {}})
        entry["accounts"].append(_pick(account.connector, account.external_id, account.data,
                                       ("name", "domains", "website", "email")))
    counted = connection.execute(
        select(source.c.connector, source.c.kind, func.count())
        .join(links, and_(links.c.connector == source.c.connector, links.c.external_id == source.c.account_ref))
        .where(links.c.customer_id == customer_id, source.c.deleted.is_(False))
        .group_by(source.c.connector, source.c.kind)).all()
    for connector, kind, count in counted:
        systems.setdefault(connector, {"accounts": [], "records": {}})["records"][kind] = count
    subscriptions = [
        _pick(c, e, d, ("status", "plan", "mrr", "currency", "interval", "quantity", "cancel_at_period_end"))
        for c, e, d in connection.execute(_children(customer_id, "subscription"))]
    subscriptions.sort(key=lambda s: (s["status"] not in REVENUE_STATUSES, -(s["mrr"] or 0), s["external_id"]))
    ticket_status = source.c.data["status"].as_string()
    open_count = connection.execute(
        select(func.count()).select_from(_children(customer_id, "ticket", ticket_status.in_(OPEN_TICKET_STATUSES))
                                         .subquery())).scalar_one()
    tickets = [_pick(c, e, d, ("subject", "status", "priority", "created_at", "updated_at"))
               for c, e, d in connection.execute(
                   _children(customer_id, "ticket", ticket_status.in_(OPEN_TICKET_STATUSES))
                   .order_by(source.c.data["created_at"].as_string().desc()).limit(RECENT_TICKETS))]
    invoices = [_pick(c, e, d, ("status", "amount_due", "amount_paid", "currency", "attempt_count",
                                "next_payment_attempt", "created_at", "subscription_id"))
                for c, e, d in connection.execute(
                    _children(customer_id, "invoice")
                    .order_by(source.c.data["created_at"].as_string().desc()).limit(RECENT_INVOICES))]
    live = [s for s in subscriptions if s["status"] in REVENUE_STATUSES]
    return {
        "id": row.id, "name": row.name, "domain": row.domain, "status": row.status,
        "mrr": row.mrr, "currency": row.currency, "churn_state": row.churn_state,
        "plan": live[0]["plan"] if live else None,
        "links": linked,
        "systems": systems,
        "subscriptions": subscriptions,
        "open_tickets": {"count": open_count, "recent": tickets},
        "invoices": invoices,
        "payment_state": payment_state(subscriptions, invoices),
        "health": _health(row, factors=True),
    }


def payment_state(subscriptions: Sequence[dict[str, Any]], invoices: Sequence[dict[str, Any]]) -> str | None:
    """`past_due` (a subscription is), `failing` (an open invoice had a failed attempt), else the newest
    invoice's status (`paid`, `open`, `uncollectible`, ...), or None without invoices."""
    if any(s["status"] == "past_due" for s in subscriptions):
        return "past_due"
    if any(i["status"] == "open" and (i["attempt_count"] or 0) > 0 for i in invoices):
        return "failing"
    return invoices[0]["status"] if invoices else None
