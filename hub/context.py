"""Customer contexts: what an action needs to know about a customer, loaded for many at once.

One dictionary per customer, plain JSON (it is rendered into templates and may be stored with an
email action):

    {"customer": {"id", "name", "domain", "status", "mrr", "currency", "churn_state"},
     "accounts": {"crm": {"id": "001A", "connector_type": "salesforce", **fields}, ...},
     "primary_contact": {"name", "email", "connector", "id"} | None,
     "owner": {"name", "email", "connector", "id"} | None,      # the account owner (CRM first)
     "billing_email": "ap@acme.example" | None,                 # the billing system's email
     "subscriptions": [{"connector", "id", "status", "plan", "mrr", "currency", ...}, ...]}

`accounts` holds the first live account record of each connector linked to the customer, so
`accounts.crm.id` is the Salesforce Account id and `accounts.helpdesk.id` the Zendesk
organization id. Contacts and subscriptions are the linked accounts' children (`account_ref`).

Everything comes from four set-based queries per chunk of customers (customers, linked records,
children, owners), never one query per customer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, select

from hub.models import Customer, CustomerLink, SourceRecord

customers_table = Customer.__table__
links = CustomerLink.__table__
records = SourceRecord.__table__

CHUNK = 500
# Who is the better source of people: the CRM, then the helpdesk, then billing, then anything else.
PEOPLE_PREFERENCE = ("salesforce", "zendesk", "stripe")
BILLING_PREFERENCE = ("stripe",)


def _rank(connector_type: str | None, preference: Sequence[str]) -> int:
    return preference.index(connector_type) if connector_type in preference else len(preference)


def _chunks(values: Sequence[str], size: int = CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def person(data: Mapping[str, Any], connector: str, external_id: str) -> dict[str, Any]:
    name = data.get("name") or " ".join(p for p in (data.get("first_name"), data.get("last_name")) if p) or None
    return {"name": name, "email": data.get("email"), "connector": connector, "id": external_id}


def _customer_row(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "domain": row.domain, "status": row.status, "mrr": row.mrr,
            "currency": row.currency, "churn_state": row.churn_state}


def load_contexts(connection: Connection, customer_ids: Iterable[str],
                  connector_types: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Contexts for `customer_ids` (unknown ids are left out). `connector_types`: instance -> type."""
    ids = sorted(set(customer_ids))
    contexts: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        contexts.update(_load_chunk(connection, chunk, connector_types))
    return contexts


def _load_chunk(connection: Connection, ids: Sequence[str],
                connector_types: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    contexts = {row.id: {"customer": _customer_row(row), "accounts": {}, "primary_contact": None,
                         "owner": None, "billing_email": None, "subscriptions": []}
                for row in connection.execute(select(customers_table).where(customers_table.c.id.in_(ids)))}
    if not contexts:
        return {}
    linked = connection.execute(
        select(links.c.customer_id, records.c.connector, records.c.kind, records.c.external_id, records.c.data)
        .join(records, and_(records.c.connector == links.c.connector, records.c.kind == links.c.kind,
                            records.c.external_id == links.c.external_id))
        .where(links.c.customer_id.in_(ids), records.c.deleted.is_(False))
        .order_by(links.c.customer_id, records.c.connector, records.c.external_id)).all()
    children = connection.execute(
        select(links.c.customer_id, records.c.connector, records.c.kind, records.c.external_id, records.c.data)
        .join(records, and_(records.c.connector == links.c.connector, records.c.account_ref == links.c.external_id))
        .where(links.c.customer_id.in_(ids), links.c.kind == "account",
               records.c.kind.in_(("contact", "subscription")), records.c.deleted.is_(False))
        .order_by(links.c.customer_id, records.c.connector, records.c.external_id)).all()
    accounts = records.alias("account")
    users = records.alias("owner")
    owners = connection.execute(
        select(links.c.customer_id, users.c.connector, users.c.external_id, users.c.data)
        .join(accounts, and_(accounts.c.connector == links.c.connector, accounts.c.kind == "account",
                             accounts.c.external_id == links.c.external_id))
        .join(users, and_(users.c.connector == accounts.c.connector, users.c.kind == "user",
                          users.c.external_id == accounts.c.data["owner_id"].as_string()))
        .where(links.c.customer_id.in_(ids), links.c.kind == "account", accounts.c.deleted.is_(False))
        .order_by(links.c.customer_id, users.c.connector, users.c.external_id)).all()

    contacts: dict[str, dict[tuple[str, str], Any]] = {}
    for customer_id, connector, kind, external_id, data in [*linked, *children]:
        context = contexts[customer_id]
        data = data or {}
        if kind == "account":
            context["accounts"].setdefault(connector, {
                **data, "id": external_id, "connector_type": connector_types.get(connector)})
        elif kind == "contact":
            contacts.setdefault(customer_id, {})[(connector, external_id)] = data
        elif kind == "subscription":
            context["subscriptions"].append({**data, "connector": connector, "id": external_id})
    for customer_id, found in contacts.items():
        contexts[customer_id]["primary_contact"] = choose_primary_contact(found, connector_types)
    for context in contexts.values():
        context["billing_email"] = choose_billing_email(context["accounts"])
        context["subscriptions"].sort(key=lambda s: (-(s.get("mrr") or 0), s["connector"], s["id"]))
    chosen_owner: dict[str, int] = {}
    for customer_id, connector, external_id, data in owners:
        rank = _rank(connector_types.get(connector), PEOPLE_PREFERENCE)
        if customer_id not in chosen_owner or rank < chosen_owner[customer_id]:
            chosen_owner[customer_id] = rank
            contexts[customer_id]["owner"] = person(data or {}, connector, external_id)
    return contexts


def choose_primary_contact(contacts: Mapping[tuple[str, str], Mapping[str, Any]],
                           connector_types: Mapping[str, str]) -> dict[str, Any] | None:
    """The contact marked primary, else the CRM's earliest contact with an email (deterministic)."""
    def order(item: tuple[tuple[str, str], Mapping[str, Any]]) -> tuple[Any, ...]:
        (connector, external_id), data = item
        marked = bool(data.get("primary") or data.get("is_primary"))
        return (not marked, _rank(connector_types.get(connector), PEOPLE_PREFERENCE),
                str(data.get("created_at") or "~"), connector, external_id)

    with_email = [item for item in contacts.items() if item[1].get("email")]
    if not with_email:
        return None
    (connector, external_id), data = min(with_email, key=order)
    return person(data, connector, external_id)


def choose_billing_email(accounts: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The billing system's customer email, else any linked account's email."""
    candidates = sorted((_rank(a.get("connector_type"), BILLING_PREFERENCE), name, a["email"])
                        for name, a in accounts.items() if a.get("email"))
    return candidates[0][2] if candidates else None
