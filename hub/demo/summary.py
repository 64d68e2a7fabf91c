"""The demo's closing summary, read from the database and the SMTP sink (never from the world).

    summarise(engine, running_sandboxes, ground_truth(world), sync_outcome)
    # {"customers": {...}, "health": {"bands": {...}}, "churn": {...}, "revenue_at_risk": {...},
    #  "actions": {...}, "emails": {...}, "recovery": {...}, "sources": {...}, "truth": {...}}

Only `truth` comes from the world: the rest is what the hub concluded, so the two can be compared.
A processing step that has not run yet simply leaves its part empty.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, and_, func, select

from hub.demo.truth import GroundTruth
from hub.models import (
    Action,
    ChurnEvent,
    Customer,
    CustomerLink,
    DunningCase,
    HealthScore,
    SentMessage,
    SourceRecord,
)
from hub.pipeline import SyncOutcome

BANDS = ("green", "yellow", "red")


def summarise(engine: Engine, running: Any, truth: GroundTruth, outcome: SyncOutcome | None = None) -> dict[str, Any]:
    with engine.connect() as connection:
        latest = (select(HealthScore.customer_id, func.max(HealthScore.scored_at).label("at"))
                  .group_by(HealthScore.customer_id).subquery())
        current = (select(HealthScore.customer_id, HealthScore.band, HealthScore.score)
                   .join(latest, and_(HealthScore.customer_id == latest.c.customer_id,
                                      HealthScore.scored_at == latest.c.at)).subquery())
        customers = connection.execute(select(func.count()).select_from(Customer)).scalar_one()
        multi_system = connection.execute(
            select(func.count()).select_from(
                select(CustomerLink.customer_id).group_by(CustomerLink.customer_id)
                .having(func.count(func.distinct(CustomerLink.connector)) > 1).subquery())).scalar_one()
        bands = dict(connection.execute(select(current.c.band, func.count()).group_by(current.c.band)).all())
        at_risk = dict(connection.execute(
            select(current.c.band, func.coalesce(func.sum(Customer.mrr), 0))
            .join(Customer, Customer.id == current.c.customer_id).group_by(current.c.band)).all())
        churn_rows = connection.execute(
            select(ChurnEvent.type, ChurnEvent.reason, func.count(func.distinct(ChurnEvent.customer_id)),
                   func.coalesce(func.sum(ChurnEvent.mrr_lost), 0))
            .group_by(ChurnEvent.type, ChurnEvent.reason)).all()
        churned_customers = dict(connection.execute(
            select(ChurnEvent.type, func.count(func.distinct(ChurnEvent.customer_id))).group_by(ChurnEvent.type)).all())
        actions = connection.execute(
            select(Action.action_type, Action.status, func.count()).group_by(Action.action_type, Action.status)).all()
        sent = connection.execute(select(func.count()).select_from(SentMessage)).scalar_one()
        dunning = connection.execute(
            select(DunningCase.status, func.count(), func.coalesce(func.sum(DunningCase.amount_due), 0))
            .group_by(DunningCase.status)).all()
        recovered_by = dict(connection.execute(
            select(DunningCase.recovered_by, func.count()).where(DunningCase.recovered_by.is_not(None))
            .group_by(DunningCase.recovered_by)).all())
        sources = connection.execute(
            select(SourceRecord.connector, SourceRecord.kind, func.count())
            .where(SourceRecord.deleted.is_(False)).group_by(SourceRecord.connector, SourceRecord.kind)).all()
        invoices = connection.execute(
            select(func.count(), func.coalesce(func.sum(SourceRecord.data["amount_remaining"].as_integer()), 0))
            .where(SourceRecord.kind == "invoice", SourceRecord.data["status"].as_string() == "open",
                   SourceRecord.data["attempt_count"].as_integer() > 0)).one()
        canceled = dict(connection.execute(
            select(SourceRecord.data["cancellation_reason"].as_string(), func.count())
            .where(SourceRecord.kind == "subscription", SourceRecord.data["status"].as_string() == "canceled")
            .group_by(SourceRecord.data["cancellation_reason"].as_string())).all())
    mail = running.mail() if running is not None else None
    messages = mail.messages() if mail is not None else []
    by_type: dict[str, dict[str, Any]] = {}
    for type_, reason, count, mrr_lost in churn_rows:
        entry = by_type.setdefault(type_, {"customers": churned_customers.get(type_, 0), "mrr_lost": 0, "reasons": {}})
        entry["mrr_lost"] += int(mrr_lost)
        entry["reasons"][reason or "unknown"] = int(count)
    executed = {}
    for action_type, status, count in actions:
        executed.setdefault(action_type, {})[status] = int(count)
    cases = {status: {"cases": int(count), "amount": int(amount)} for status, count, amount in dunning}
    total_cases = sum(c["cases"] for c in cases.values())
    recovered = cases.get("recovered", {"cases": 0, "amount": 0})
    return {
        "customers": {"total": int(customers), "in_several_systems": int(multi_system)},
        "health": {"scored": int(sum(bands.values())), "bands": {b: int(bands.get(b, 0)) for b in BANDS}},
        "churn": by_type,
        "revenue_at_risk": {"red": int(at_risk.get("red", 0)), "yellow": int(at_risk.get("yellow", 0))},
        "actions": {"by_type": executed,
                    "succeeded": sum(s.get("succeeded", 0) for s in executed.values()),
                    "total": sum(sum(s.values()) for s in executed.values())},
        "emails": {"captured": len(messages), "recorded_sent": int(sent),
                   "subjects": sorted({m.subject for m in messages})[:10]},
        "recovery": {"cases": total_cases, "by_status": cases, "recovered": recovered["cases"],
                     "recovered_amount": recovered["amount"], "recovered_by": recovered_by,
                     "rate": round(recovered["cases"] / total_cases, 3) if total_cases else None},
        "sources": {"records": {f"{c}.{k}": int(n) for c, k, n in sources},
                    "failed_invoices": int(invoices[0]), "failed_invoice_amount": int(invoices[1]),
                    "canceled_subscriptions": {str(k): int(v) for k, v in canceled.items()}},
        "steps": _plain(outcome.steps) if outcome is not None else {},
        "truth": truth.as_dict(),
    }


def _plain(value: Any) -> Any:
    """What `process` reported, as JSON (objects it returned become their text)."""
    return json.loads(json.dumps(value, default=lambda obj: getattr(obj, "as_dict", lambda: str(obj))()))
