"""A synthetic customer history where churners show warning signs first (backtests, benchmarks, tests).

    world = generate(400, now=datetime(2025, 6, 1, tzinfo=UTC), seed=7)
    with engine.begin() as connection:
        write(connection, world)

Three connectors' worth of source records: `billing` (accounts, subscriptions, invoices, failed
charges), `helpdesk` (organizations, tickets, NPS answers) and `product` (weekly usage), plus
the unified customers and their links. About `churn_share` of customers churn before `now`;
in the `warning_days` before the end, `signal` of them show signs (usage falling, angry and
repeated tickets, a detractor NPS answer, failed payments for involuntary churn), and a few
healthy customers show false alarms, so a good score ranks churners well but not perfectly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, insert

from hub.models import Customer, CustomerLink
from hub.records import Record
from hub.store import write_records

PLANS = (("starter", 2900, 1), ("pro", 9900, 3), ("business", 29900, 10), ("enterprise", 99900, 40))
FEEDBACK = ("too_expensive", "missing_features", "switched_service", "unused", "customer_service",
            "too_complex", "low_quality", "other")
DECLINES = ("insufficient_funds", "expired_card", "do_not_honor", "generic_decline")
ANGRY = ("This is unacceptable, the export is broken again and nobody answers.",
         "Terrible experience. We are very frustrated and considering other tools.",
         "Still failing. This is the third time, we are disappointed and angry.",
         "Your product keeps crashing and support is useless. Cancel our plan?")
CALM = ("Thanks for the quick help, everything works great now.",
        "Could you explain how to add a new user? Thanks!",
        "Great feature, we love the new dashboard. Small question about exports.",
        "Hello, how do I change the invoice address? Thank you.")
ANGRY_SUBJECTS = ("Export broken", "Data sync failing", "App crashes on login")
CALM_SUBJECTS = ("How to add users", "Invoice address", "Feature question", "Dashboard settings",
                 "API token", "SSO setup")


@dataclass
class World:
    now: datetime
    customers: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, list[Record]] = field(default_factory=dict)
    churned: dict[str, tuple[datetime, str]] = field(default_factory=dict)   # customer -> (when, type)

    def add(self, connector: str, record: Record) -> None:
        self.records.setdefault(connector, []).append(record)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(customers: int, *, now: datetime, seed: int = 0, history_days: int = 540, churn_share: float = 0.35,
             signal: float = 0.85, false_alarms: float = 0.08, warning_days: int = 60) -> World:
    """A world of `customers` customers whose history ends at `now`."""
    rng = np.random.default_rng(seed)
    world = World(now)
    for i in range(customers):
        start = now - timedelta(days=float(rng.uniform(45, history_days)))
        lifetime_end = None
        kind = None
        if rng.random() < churn_share:
            earliest = start + timedelta(days=40)
            if earliest < now - timedelta(days=1):
                lifetime_end = earliest + (now - earliest) * float(rng.random())
                kind = "involuntary" if rng.random() < 0.3 else "voluntary"
        warned = (lifetime_end is not None and rng.random() < signal) or (lifetime_end is None and rng.random() < false_alarms)
        _customer(world, rng, i, start, lifetime_end, kind, warned, warning_days)
    return world


def _customer(world: World, rng: np.random.Generator, i: int, start: datetime, end: datetime | None,
              kind: str | None, warned: bool, warning_days: int) -> None:
    now = world.now
    cid, name = f"c{i:06d}", f"Company {i}"
    plan, price, seats = PLANS[int(rng.choice(len(PLANS), p=(0.45, 0.3, 0.18, 0.07)))]
    world.customers.append({"id": cid, "name": name, "created_at": start})
    for connector, external in (("billing", f"cus_{i}"), ("helpdesk", f"org_{i}"), ("product", f"acct_{i}")):
        world.links.append({"customer_id": cid, "connector": connector, "kind": "account", "external_id": external,
                            "rule": "synthetic"})
    world.add("billing", Record("account", f"cus_{i}", {"name": name, "created_at": _iso(start)}))
    world.add("helpdesk", Record("account", f"org_{i}", {"name": name, "created_at": _iso(start)}))
    world.add("product", Record("account", f"acct_{i}", {"name": name}))
    last = end or now
    trouble_from = last - timedelta(days=warning_days) if warned else None
    sub: dict[str, Any] = {"account_id": f"cus_{i}", "status": "active", "plan": plan, "quantity": seats,
                           "mrr": price * seats // max(seats // 3, 1), "currency": "usd",
                           "start_date": _iso(start), "created_at": _iso(start), "cancel_at_period_end": False}
    if end is not None:
        world.churned[cid] = (end, kind or "voluntary")
        sub.update(status="canceled", ended_at=_iso(end), canceled_at=_iso(end - timedelta(days=float(rng.uniform(0, 20)))))
        if kind == "involuntary":
            sub.update(cancellation_reason="payment_failed")
        else:
            sub.update(cancellation_reason="cancellation_requested",
                       cancellation_feedback=str(rng.choice(FEEDBACK)) if rng.random() < 0.8 else None)
    world.add("billing", Record("subscription", f"sub_{i}", sub))
    _invoices(world, rng, i, start, last, kind if warned else None, trouble_from)
    _usage(world, rng, i, start, last, seats, trouble_from)
    _tickets(world, rng, i, start, last, trouble_from)


def _weeks(start: datetime, last: datetime) -> Iterator[datetime]:
    day = start
    while day <= last:
        yield day
        day += timedelta(days=7)


def _invoices(world: World, rng: np.random.Generator, i: int, start: datetime, last: datetime, kind: str | None,
              trouble_from: datetime | None) -> None:
    month = max(start, last - timedelta(days=150))
    n = 0
    while month <= last:
        failing = trouble_from is not None and month >= trouble_from and (kind == "involuntary" or rng.random() < 0.2)
        fields = {"account_id": f"cus_{i}", "subscription_id": f"sub_{i}", "created_at": _iso(month),
                  "amount_due": 9900, "currency": "usd"}
        if failing:
            fields.update(status="open", amount_paid=0, attempt_count=int(rng.integers(2, 4)))
            for attempt in range(int(rng.integers(1, 3))):
                world.add("billing", Record("charge", f"ch_{i}_{n}_{attempt}", {
                    "account_id": f"cus_{i}", "status": "failed", "amount": 9900,
                    "decline_code": str(rng.choice(DECLINES)),
                    "created_at": _iso(month + timedelta(days=attempt * 3))}))
        else:
            fields.update(status="paid", amount_paid=9900, attempt_count=1, paid_at=_iso(month + timedelta(hours=1)))
        world.add("billing", Record("invoice", f"in_{i}_{n}", fields))
        month += timedelta(days=30)
        n += 1


def _usage(world: World, rng: np.random.Generator, i: int, start: datetime, last: datetime, seats: int,
           trouble_from: datetime | None) -> None:
    base = max(seats * float(rng.uniform(0.5, 1.0)), 1.0)
    for k, week in enumerate(_weeks(max(start, last - timedelta(days=200)), last)):
        level = base * float(rng.uniform(0.85, 1.15))
        if trouble_from is not None and week >= trouble_from:
            level *= max(0.05, 1 - (week - trouble_from).days / 70)
        users = round(level, 1)
        world.add("product", Record("usage", f"u_{i}_{k}", {
            "account_id": f"acct_{i}", "date": week.strftime("%Y-%m-%d"), "active_users": users,
            "logins": round(users * 5), "events": round(users * 40)}))


def _tickets(world: World, rng: np.random.Generator, i: int, start: datetime, last: datetime,
             trouble_from: datetime | None) -> None:
    n = 0
    span = (last - start).days
    for _ in range(int(rng.poisson(span / 120))):
        created = start + timedelta(days=float(rng.uniform(0, span)))
        _ticket(world, rng, i, n, created, str(rng.choice(CALM_SUBJECTS)), str(rng.choice(CALM)), solved=True)
        n += 1
    if rng.random() < 0.3:
        _nps(world, i, 0, start + timedelta(days=float(rng.uniform(0, span))), int(rng.integers(7, 11)))
    if trouble_from is None:
        return
    subject = str(rng.choice(ANGRY_SUBJECTS))
    for k in range(int(rng.integers(2, 5))):
        created = trouble_from + timedelta(days=float(rng.uniform(0, (last - trouble_from).days)))
        _ticket(world, rng, i, n, created, subject if k else subject + " (urgent)", str(rng.choice(ANGRY)),
                solved=k % 2 == 0)
        n += 1
    if rng.random() < 0.6:
        _nps(world, i, 1, trouble_from + timedelta(days=5), int(rng.integers(0, 7)))


def _ticket(world: World, rng: np.random.Generator, i: int, n: int, created: datetime, subject: str,
            description: str, *, solved: bool) -> None:
    if created > world.now:
        return
    solved_at = created + timedelta(days=float(rng.uniform(0.1, 4)))
    done = solved and solved_at <= world.now
    world.add("helpdesk", Record("ticket", f"t_{i}_{n}", {
        "account_id": f"org_{i}", "status": "solved" if done else "open", "priority": "normal",
        "subject": subject, "description": description, "created_at": _iso(created),
        "updated_at": _iso(solved_at if done else created), "solved_at": _iso(solved_at) if done else None}))


def _nps(world: World, i: int, n: int, created: datetime, score: int) -> None:
    if created <= world.now:
        world.add("helpdesk", Record("satisfaction", f"nps_{i}_{n}", {
            "account_id": f"org_{i}", "type": "nps", "score": score, "created_at": _iso(created)}))


def write(connection: Connection, world: World, *, batch: int = 5000) -> None:
    """Store the world: customers, links and every connector's source records."""
    for start in range(0, len(world.customers), batch):
        connection.execute(insert(Customer.__table__), world.customers[start:start + batch])
    for start in range(0, len(world.links), batch):
        connection.execute(insert(CustomerLink.__table__), world.links[start:start + batch])
    for connector, records in world.records.items():
        for start in range(0, len(records), batch):
            write_records(connection, connector, records[start:start + batch], now=world.now)
