"""Running churn classification over the database: `churnhub churn` and the pipeline step.

1. Record MRR snapshots: every live subscription whose MRR, seats or plan differ from its newest
   snapshot gets a new `mrr_snapshots` row (the history contraction is computed from).
2. Load every customer's facts and classify them (`hub.churn.classify_table`).
3. Persist: new events are inserted, events whose facts changed are updated, the rest are left
   alone; `customers.churn_state`, `mrr` and `currency` are written only where they changed.
   Re-running with no new facts therefore writes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, and_, bindparam, func, insert, select, update

from hub.churn import ChurnEvent, Classification, classify_table
from hub.facts import ENDED_STATUSES, FactTable, live_subscriptions
from hub.factsdb import FIELD_KEYS, load_facts
from hub.models import ChurnEvent as ChurnEventRow
from hub.models import Customer, MrrSnapshot, SourceRecord
from hub.sections.churn import ChurnSettings

events_table = ChurnEventRow.__table__
snapshots = MrrSnapshot.__table__
customers = Customer.__table__
source = SourceRecord.__table__
BATCH = 10_000


@dataclass
class ChurnRun:
    as_of: datetime
    snapshots: int = 0
    events: int = 0
    inserted: int = 0
    updated: int = 0
    states_changed: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of, "snapshots": self.snapshots, "events": self.events,
                "inserted": self.inserted, "updated": self.updated, "states_changed": self.states_changed,
                "by_type": self.by_type, "states": self.states}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def record_mrr_snapshots(connection: Connection, now: datetime) -> int:
    """Snapshot every live subscription whose MRR, quantity or plan changed since its last snapshot."""
    data = source.c.data
    plan_keys = FIELD_KEYS["subscription"]["plan"]
    current = connection.execute(
        select(source.c.connector, source.c.external_id, data["mrr"].as_float(), data["quantity"].as_float(),
               func.coalesce(*[data[k].as_string() for k in plan_keys]), data["currency"].as_string())
        .where(source.c.kind == "subscription", source.c.deleted.is_(False),
               data["status"].as_string().not_in(ENDED_STATUSES), data["ended_at"].as_string().is_(None))).all()
    newest = (select(snapshots.c.connector, snapshots.c.subscription_id, func.max(snapshots.c.observed_at).label("at"))
              .group_by(snapshots.c.connector, snapshots.c.subscription_id).subquery())
    latest = {(c, s): (m, q, p) for c, s, m, q, p in connection.execute(
        select(snapshots.c.connector, snapshots.c.subscription_id, snapshots.c.mrr, snapshots.c.quantity,
               snapshots.c.plan)
        .join(newest, and_(newest.c.connector == snapshots.c.connector,
                           newest.c.subscription_id == snapshots.c.subscription_id,
                           newest.c.at == snapshots.c.observed_at)))}
    rows = []
    for connector, external_id, mrr, quantity, plan, currency in current:
        values = (int(mrr or 0), int(quantity or 0), plan)
        if latest.get((connector, external_id)) != values:
            rows.append({"connector": connector, "subscription_id": external_id, "observed_at": now,
                         "mrr": values[0], "quantity": values[1], "plan": plan, "currency": currency})
    for start in range(0, len(rows), BATCH):
        connection.execute(insert(snapshots), rows[start:start + BATCH])
    return len(rows)


def _event_key(customer_id: str, type_: str, occurred_at: datetime) -> tuple[str, str, float]:
    return customer_id, type_, round(_aware(occurred_at).timestamp(), 3)


def _fingerprint(reason: str | None, mrr_lost: int, currency: str | None, evidence: Any) -> str:
    return json.dumps([reason, int(mrr_lost), currency, evidence], sort_keys=True, default=str)


def write_events(connection: Connection, events: list[ChurnEvent]) -> tuple[int, int]:
    """Insert new events, update changed ones; returns (inserted, updated)."""
    stored = {_event_key(c, t, o): (i, _fingerprint(r, m, cur, e)) for i, c, t, o, r, m, cur, e in connection.execute(
        select(events_table.c.id, events_table.c.customer_id, events_table.c.type, events_table.c.occurred_at,
               events_table.c.reason, events_table.c.mrr_lost, events_table.c.currency, events_table.c.evidence))}
    new, changed = [], []
    for event in events:
        key = _event_key(event.customer_id, event.type, event.occurred_at)
        row = event.as_dict()
        previous = stored.get(key)
        if previous is None:
            new.append(row)
            stored[key] = (None, "")
        elif previous[0] is not None and previous[1] != _fingerprint(event.reason, event.mrr_lost, event.currency,
                                                                     json.loads(json.dumps(event.evidence, default=str))):
            changed.append({"row_id": previous[0], "reason": event.reason, "mrr_lost": event.mrr_lost,
                            "currency": event.currency, "evidence": event.evidence})
    for start in range(0, len(new), BATCH):
        connection.execute(insert(events_table), new[start:start + BATCH])
    if changed:
        connection.execute(update(events_table).where(events_table.c.id == bindparam("row_id"))
                           .values(reason=bindparam("reason"), mrr_lost=bindparam("mrr_lost"),
                                   currency=bindparam("currency"), evidence=bindparam("evidence")), changed)
    return len(new), len(changed)


def _currencies(table: FactTable, as_of: float) -> np.ndarray:
    subs = table.frame("subscription")
    out = np.full(table.n, None, dtype=object)
    live = np.nonzero(live_subscriptions(table, as_of) & (subs["currency"] != ""))[0]
    out[subs.customer[live]] = subs["currency"][live]
    return out


def write_states(connection: Connection, table: FactTable, result: Classification, as_of: float) -> int:
    """`customers.churn_state`, `mrr` and `currency`, where they changed."""
    index = {c: i for i, c in enumerate(table.ids)}
    currencies = _currencies(table, as_of)
    changed = []
    for customer_id, state, mrr, currency in connection.execute(
            select(customers.c.id, customers.c.churn_state, customers.c.mrr, customers.c.currency)):
        i = index.get(customer_id)
        if i is None:
            continue
        new = (result.states[i], int(result.mrr[i]), currencies[i] or currency)
        if new != (state, mrr, currency):
            changed.append({"key": customer_id, "churn_state": new[0], "mrr": new[1], "currency": new[2]})
    if changed:
        connection.execute(update(customers).where(customers.c.id == bindparam("key"))
                           .values(churn_state=bindparam("churn_state"), mrr=bindparam("mrr"),
                                   currency=bindparam("currency")), changed)
    return len(changed)


def run_churn(engine: Engine, rules: ChurnSettings, *, now: datetime | None = None) -> ChurnRun:
    """Snapshot MRR, classify every customer as of `now`, persist events and states."""
    now = now or datetime.now(UTC)
    run = ChurnRun(now)
    with engine.begin() as connection:
        run.snapshots = record_mrr_snapshots(connection, now)
    with engine.begin() as connection:
        table = load_facts(connection, now=now)
    result = classify_table(table, rules, now)
    with engine.begin() as connection:
        run.inserted, run.updated = write_events(connection, result.events)
        run.states_changed = write_states(connection, table, result, now.timestamp())
    run.events = len(result.events)
    for event in result.events:
        run.by_type[event.type] = run.by_type.get(event.type, 0) + 1
    for state in result.states:
        key = state or "unknown"
        run.states[key] = run.states.get(key, 0) + 1
    return run


def list_events(connection: Connection, *, since: datetime | None = None, types: list[str] | None = None,
                limit: int | None = None, customer_id: str | None = None) -> list[dict[str, Any]]:
    """Stored churn events, newest first, with the customer's name (of everyone or one customer)."""
    stmt = (select(events_table.c.customer_id, customers.c.name, events_table.c.occurred_at, events_table.c.type,
                   events_table.c.reason, events_table.c.mrr_lost, events_table.c.currency, events_table.c.evidence)
            .join(customers, customers.c.id == events_table.c.customer_id)
            .order_by(events_table.c.occurred_at.desc(), events_table.c.customer_id))
    if since is not None:
        stmt = stmt.where(events_table.c.occurred_at >= since)
    if types:
        stmt = stmt.where(events_table.c.type.in_(types))
    if customer_id is not None:
        stmt = stmt.where(events_table.c.customer_id == customer_id)
    if limit:
        stmt = stmt.limit(limit)
    return [{**row, "occurred_at": _aware(row["occurred_at"])} for row in connection.execute(stmt).mappings()]
