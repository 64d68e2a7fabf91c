"""Everything the report shows, gathered into plain dicts and lists (no HTML here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select

from hub import metrics
from hub.churn import FULL_CHURN, classify_table
from hub.extensions import HealthFactor
from hub.facts import customer_mrr_at, live_customers
from hub.factsdb import load_facts, refresh_ticket_signals
from hub.health import Locate, build_scorecard, explanation_lines, plain_error, score_table
from hub.models import ChurnEvent, DunningCase, PlaybookEntry
from hub.scoring import eligible_customers
from hub.sections.churn import ChurnSettings
from hub.sections.health import HealthSettings

MOVEMENT_DAYS = 30
PLAYBOOK_CHURN_DAYS = 90


@dataclass
class ReportData:
    generated_at: datetime
    start: datetime
    end: datetime
    period: str
    currency: str | None
    kpis: dict[str, Any]
    metrics: dict[str, Any]
    churn_by_reason: dict[str, dict[str, int]]
    health_scores: list[float]
    health_bands: dict[str, int]
    movement: dict[str, dict[str, int]]
    nps_histogram: list[int]
    at_risk: list[dict[str, Any]]
    revenue_at_risk: dict[str, int]
    dunning: dict[str, Any]
    playbooks: list[dict[str, Any]] = field(default_factory=list)


def gather(engine: Engine, health: HealthSettings, churn: ChurnSettings, factors: Mapping[str, HealthFactor], *,
           now: datetime | None = None, months: int = 12, period: metrics.Period = "month",
           locate: Locate = plain_error) -> ReportData:
    now = now or datetime.now(UTC)
    start = metrics.month_start(now, -(months - 1))
    with engine.begin() as connection:
        refresh_ticket_signals(connection)
    with engine.connect() as connection:
        table = load_facts(connection, now=now)
        dunning_rows = connection.execute(select(DunningCase.__table__)).mappings().all()
        playbook_rows = connection.execute(select(PlaybookEntry.__table__)).mappings().all()
        churn_times = {(c, t): o for c, t, o in connection.execute(
            select(ChurnEvent.customer_id, ChurnEvent.type, func.min(ChurnEvent.occurred_at))
            .where(ChurnEvent.type.in_(FULL_CHURN)).group_by(ChurnEvent.customer_id, ChurnEvent.type))}
    events = classify_table(table, churn, now).events
    computed = metrics.compute(table, churn, start=start, end=now, period=period, now=now, events=events)
    by_reason: dict[str, dict[str, int]] = {kind: {} for kind in (*FULL_CHURN, "contraction")}
    for event in events:
        if event.type in by_reason and event.occurred_at >= start:
            by_reason[event.type][event.reason or "unknown"] = by_reason[event.type].get(event.reason or "unknown", 0) + 1
    scorecard = build_scorecard(health, factors, locate)
    t_now, t_before = now.timestamp(), (now - timedelta(days=MOVEMENT_DAYS)).timestamp()
    current = score_table(scorecard, table, t_now, eligible_customers(table, t_now))
    before = score_table(scorecard, table, t_before, eligible_customers(table, t_before))
    movement: dict[str, dict[str, int]] = {}
    for was, is_ in zip(before.band[current.scored].tolist(), current.band[current.scored].tolist(), strict=True):
        row = movement.setdefault(was or "new", {})
        row[is_] = row.get(is_, 0) + 1
    mrr = customer_mrr_at(table, t_now)
    live = live_customers(table, t_now)
    at_risk, revenue = _at_risk(table, current, mrr, live, health.at_risk_limit)
    answers = table.frame("satisfaction")
    given = (answers["type"] == "nps") & (answers["created"] >= start.timestamp()) & ~np.isnan(answers["score"])
    histogram = np.bincount(np.clip(answers["score"][given].astype(int), 0, 10), minlength=11).tolist()
    last = computed["periods"][-1] if computed["periods"] else {}
    subs = table.frame("subscription")
    currencies = sorted({c for c in subs["currency"].tolist() if c})
    kpis = {"customers": int(live.sum()), "mrr": int(mrr[live].sum()), "churn_rate": last.get("churn_rate"),
            "nrr": last.get("nrr"), "grr": last.get("grr"), "nps": (last.get("nps") or {}).get("score"),
            "at_risk_mrr": revenue["red"], "period": last.get("period")}
    return ReportData(now, start, now, period, currencies[0] if len(currencies) == 1 else None, kpis, computed,
                      by_reason, current.score[current.scored].round(1).tolist(),
                      {b: int((current.band == b).sum()) for b in ("green", "yellow", "red")}, movement, histogram,
                      at_risk, revenue, _dunning_funnel(dunning_rows, churn),
                      _playbooks(playbook_rows, churn_times))


def _at_risk(table: Any, scores: Any, mrr: np.ndarray, live: np.ndarray, limit: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    flagged = np.nonzero(live & np.isin(scores.band, ("red", "yellow")))[0]
    order = sorted(flagged.tolist(), key=lambda i: (scores.band[i] != "red", -mrr[i], scores.score[i]))
    rows = []
    for i in order[:limit]:
        lines = [line for line in explanation_lines(scores.breakdown(i)) if line.startswith("-") and not line.startswith("-0")]
        rows.append({"customer_id": str(table.ids[i]), "name": str(table.columns["name"][i]) or str(table.ids[i]),
                     "score": float(scores.score[i]), "band": scores.band[i], "mrr": int(mrr[i]),
                     "reasons": lines[:3]})
    revenue = {band: int(mrr[live & (scores.band == band)].sum()) for band in ("red", "yellow", "green")}
    return rows, revenue


def _dunning_funnel(rows: list[Mapping[str, Any]], churn: ChurnSettings) -> dict[str, Any]:
    recovered = [r for r in rows if r["status"] in churn.dunning_recovered_statuses]
    failed = [r for r in rows if r["status"] in churn.dunning_failed_statuses]
    closed = len(recovered) + len(failed)
    by_method: dict[str, int] = {}
    for row in recovered:
        key = row["recovered_by"] or "unknown"
        by_method[key] = by_method.get(key, 0) + 1
    return {"opened": len(rows), "retried": sum(1 for r in rows if (r["step"] or 0) >= 1),
            "recovered": len(recovered), "failed": len(failed), "open": len(rows) - closed,
            "recovery_rate": round(100 * len(recovered) / closed, 1) if closed else None,
            "recovered_amount": int(sum(r["amount_due"] or 0 for r in recovered)), "recovered_by": by_method}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _playbooks(rows: list[Mapping[str, Any]], churn_times: Mapping[tuple[str, str], datetime]) -> list[dict[str, Any]]:
    """Per playbook: treated vs control, metric change and churn within 90 days of entering."""
    first_churn: dict[str, datetime] = {}
    for (customer, _), moment in churn_times.items():
        moment = _aware(moment)
        first_churn[customer] = min(moment, first_churn.get(customer, moment))
    grouped: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for row in rows:
        grouped.setdefault(row["playbook"], {"treated": [], "control": []})["control" if row["control"] else "treated"].append(row)
    out = []
    for name, groups in sorted(grouped.items()):
        summary: dict[str, Any] = {"playbook": name}
        for group, entries in groups.items():
            measured = [e for e in entries if e["metric_after"] is not None and e["metric_at_entry"] is not None]
            churned = sum(1 for e in entries if e["customer_id"] in first_churn
                          and _aware(e["entered_at"]) <= first_churn[e["customer_id"]]
                          <= _aware(e["entered_at"]) + timedelta(days=PLAYBOOK_CHURN_DAYS))
            summary[group] = {
                "entries": len(entries), "measured": len(measured),
                "metric_change": round(float(np.mean([e["metric_after"] - e["metric_at_entry"] for e in measured])), 2)
                if measured else None,
                "churn_rate": round(100 * churned / len(entries), 1) if entries else None}
        treated, control = summary["treated"], summary["control"]
        summary["metric"] = next((e["metric"] for e in groups["treated"] + groups["control"] if e["metric"]), None)
        summary["uplift"] = (round(treated["metric_change"] - control["metric_change"], 2)
                             if treated["metric_change"] is not None and control["metric_change"] is not None else None)
        out.append(summary)
    return out
