"""Retention metrics per period, computed from the same facts and churn events as everything else.

Definitions (docs/metrics.md has the long form). For a period [start, end):

- customers at start: customers with a live subscription at `start`.
- customers lost: of those, the ones with a voluntary or involuntary churn event in the period.
- customer churn rate = lost / customers at start x 100, also per type.
- MRR at start: the sum of the live subscriptions' MRR at `start` (snapshots, see hub.facts).
- MRR churn = (MRR of churn events + MRR of contraction events) in the period, of customers live
  at start; MRR churn rate = MRR churn / MRR at start x 100.
- GRR (gross revenue retention) = (MRR at start - MRR churn) / MRR at start x 100.
- NRR (net revenue retention) = MRR at `end` of the customers live at start / MRR at start x 100
  (expansion and reactivation count; new customers do not).
- expansion MRR = NRR's MRR at end - (MRR at start - MRR churn).
- NPS = % promoters (9-10) - % detractors (0-6) among the NPS answers given in the period.
- ARPA = MRR at start / customers at start (per month); CLV = ARPA x months in the period x
  gross margin / customer churn rate (as a fraction); null when nobody churned.
- engagement frequency = active usage records (activity > 0) in the period per customer live at
  start that has usage data; null without usage data.
- dunning recovery rate = cases closed as recovered / cases closed (recovered or failed) in the
  period x 100; null when no case closed (never a division by zero).
- cohort retention: customers by the month their first subscription started; month k = share of
  the cohort live at the end of its k-th month (k = 0 is the start month).

Money is in minor units of the (single) reporting currency; a mixed-currency book is summed as
is and flagged in `currencies`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

from hub.churn import FULL_CHURN, ChurnEvent, classify_table
from hub.facts import DAY, FactTable, count_by, counted_subscriptions, customer_mrr_at, live_customers, min_by
from hub.sections.churn import ChurnSettings

Period = Literal["week", "month", "quarter"]
MONTHS_IN = {"week": 12 / 52, "month": 1.0, "quarter": 3.0}


def month_start(moment: datetime, months: int = 0) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def period_start(moment: datetime, period: Period) -> datetime:
    if period == "week":
        day = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        return day - timedelta(days=day.weekday())
    start = month_start(moment)
    if period == "quarter":
        start = month_start(start, -((start.month - 1) % 3))
    return start


def next_period(start: datetime, period: Period) -> datetime:
    if period == "week":
        return start + timedelta(days=7)
    return month_start(start, 3 if period == "quarter" else 1)


def periods(start: datetime, end: datetime, period: Period) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive periods covering [start, end)."""
    current = period_start(start, period)
    while current < end:
        following = next_period(current, period)
        yield current, following
        current = following


def label(start: datetime, period: Period) -> str:
    if period == "month":
        return f"{start:%Y-%m}"
    if period == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return f"{start:%Y-%m-%d}"


@dataclass
class EventArrays:
    customer: np.ndarray
    time: np.ndarray
    type: np.ndarray
    mrr_lost: np.ndarray
    reason: np.ndarray

    @classmethod
    def of(cls, table: FactTable, events: list[ChurnEvent]) -> EventArrays:
        return cls(np.array([table.index_of(e.customer_id) for e in events], dtype=np.int64),
                   np.array([e.occurred_at.timestamp() for e in events], dtype=float),
                   np.array([e.type for e in events], dtype=object),
                   np.array([e.mrr_lost for e in events], dtype=float),
                   np.array([e.reason or "" for e in events], dtype=object))


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def period_metrics(table: FactTable, events: EventArrays, rules: ChurnSettings, start: datetime, end: datetime,
                   period: Period) -> dict[str, Any]:
    p0, p1 = start.timestamp(), end.timestamp()
    n = table.n
    live0 = live_customers(table, p0)
    mrr0_all = customer_mrr_at(table, p0)
    mrr1_all = customer_mrr_at(table, p1)
    customers_start, mrr_start = int(live0.sum()), float(mrr0_all[live0].sum())
    in_period = (events.time >= p0) & (events.time < p1) & live0[events.customer] if len(events.time) else np.zeros(0, bool)
    full = in_period & np.isin(events.type, FULL_CHURN)
    lost_by_type = {kind: int(len(np.unique(events.customer[full & (events.type == kind)]))) for kind in FULL_CHURN}
    lost = int(len(np.unique(events.customer[full])))
    reasons: dict[str, int] = {}
    for reason, kind in zip(events.reason[full], events.type[full], strict=True):
        key = f"{kind}:{reason or 'unknown'}"
        reasons[key] = reasons.get(key, 0) + 1
    churned_mrr = float(events.mrr_lost[full].sum())
    contraction = float(events.mrr_lost[in_period & (events.type == "contraction")].sum())
    mrr_end_cohort = float(mrr1_all[live0].sum())
    subs = table.frame("subscription")
    counted = counted_subscriptions(table, rules.count_trials)
    first_start = min_by(subs, subs["start"], counted, n)
    new_customers = int(((first_start >= p0) & (first_start < p1)).sum())
    churn_rate = _pct(lost, customers_start)
    arpa = mrr_start / customers_start if customers_start else None
    clv = None
    if arpa is not None and lost:
        clv = round(arpa * MONTHS_IN[period] * rules.gross_margin / (lost / customers_start))
    return {
        "period": label(start, period), "start": start, "end": end,
        "customers_start": customers_start, "new_customers": new_customers,
        "customers_end": int(live_customers(table, p1).sum()),
        "customers_lost": lost, "lost_by_type": lost_by_type,
        "churn_rate": churn_rate,
        "churn_rate_by_type": {kind: _pct(count, customers_start) for kind, count in lost_by_type.items()},
        "reasons": reasons,
        "mrr_start": int(mrr_start), "mrr_churned": int(churned_mrr), "mrr_contraction": int(contraction),
        "mrr_expansion": int(mrr_end_cohort - (mrr_start - churned_mrr - contraction)),
        "mrr_churn_rate": _pct(churned_mrr + contraction, mrr_start),
        "grr": _pct(max(mrr_start - churned_mrr - contraction, 0.0), mrr_start),
        "nrr": _pct(mrr_end_cohort, mrr_start),
        "nps": nps(table, p0, p1),
        "arpa": round(arpa) if arpa is not None else None,
        "clv": clv,
        "engagement_frequency": engagement_frequency(table, live0, p0, p1),
        "dunning": dunning(table, rules, p0, p1, involuntary=lost_by_type.get("involuntary"), mrr=mrr1_all),
    }


def nps(table: FactTable, p0: float, p1: float) -> dict[str, Any]:
    answers = table.frame("satisfaction")
    given = (answers["type"] == "nps") & (answers["created"] >= p0) & (answers["created"] < p1) & ~np.isnan(answers["score"])
    scores = answers["score"][given]
    promoters, detractors = int((scores >= 9).sum()), int((scores <= 6).sum())
    total = len(scores)
    return {"responses": total, "promoters": promoters, "passives": total - promoters - detractors,
            "detractors": detractors, "score": round(100.0 * (promoters - detractors) / total, 1) if total else None}


def engagement_frequency(table: FactTable, live0: np.ndarray, p0: float, p1: float) -> float | None:
    usage = table.frame("usage")
    activity = np.fmax(np.nan_to_num(usage["active_users"]), np.fmax(np.nan_to_num(usage["logins"]),
                                                                      np.nan_to_num(usage["events"])))
    in_period = (usage["day"] >= p0) & (usage["day"] < p1)
    with_usage = live0 & (table.columns["has_usage"] | (count_by(usage, np.ones(len(usage), bool), table.n) > 0))
    if not with_usage.any() or not len(usage):
        return None
    active = count_by(usage, in_period & (activity > 0), table.n)
    return round(float(active[with_usage].mean()), 2)


def dunning(table: FactTable, rules: ChurnSettings, p0: float, p1: float, *, involuntary: int | None = None,
            mrr: np.ndarray | None = None) -> dict[str, Any]:
    """Dunning in [p0, p1): cases opened; closed recovered / failed and the recovery rate; the
    invoice amounts recovered and the MRR of the customers recovered (`mrr`: each customer's MRR
    at p1); days from the first failure to payment (median, mean); what recovered each case
    (`recovered_by`: retry | email | csm, when the facts carry it); involuntary churn (customers
    lost to a failed payment, from the churn events) and the cases that ended lost."""
    cases = table.frame("dunning")
    opened = int(((cases["opened"] >= p0) & (cases["opened"] < p1)).sum())
    closed = (cases["closed"] >= p0) & (cases["closed"] < p1)
    won = closed & np.isin(cases["status"], rules.dunning_recovered_statuses)
    lost = closed & np.isin(cases["status"], rules.dunning_failed_statuses)
    recovered, failed = int(won.sum()), int(lost.sum())
    days = (cases["closed"][won] - cases["opened"][won]) / DAY
    attribution = None
    if "recovered_by" in cases.columns:
        labels = [str(v) if v else "unknown" for v in cases["recovered_by"][won].tolist()]
        attribution = {label: labels.count(label) for label in sorted(set(labels))}
    recovered_customers = np.unique(cases.customer[won])
    return {"opened": opened, "recovered": recovered, "failed": failed,
            "recovery_rate": _pct(recovered, recovered + failed),
            "recovered_amount": int(np.nan_to_num(cases["amount_due"][won]).sum()),
            "recovered_mrr": int(np.nan_to_num(mrr[recovered_customers]).sum()) if mrr is not None else None,
            "lost_amount": int(np.nan_to_num(cases["amount_due"][lost]).sum()),
            "days_to_recovery": {"median": round(float(np.median(days)), 1) if recovered else None,
                                 "mean": round(float(days.mean()), 1) if recovered else None},
            "recovered_by": attribution,
            "involuntary_churn": involuntary}


def cohorts(table: FactTable, rules: ChurnSettings, start: datetime, end: datetime, now: float) -> list[dict[str, Any]]:
    """Retention by start month: for each cohort, % live at the end of month 0, 1, 2, ... (until now)."""
    subs = table.frame("subscription")
    counted = counted_subscriptions(table, rules.count_trials)
    first_start = min_by(subs, subs["start"], counted, table.n)
    out = []
    live_at: dict[datetime, np.ndarray] = {}
    for cohort_start, cohort_end in periods(start, end, "month"):
        members = (first_start >= cohort_start.timestamp()) & (first_start < cohort_end.timestamp())
        size = int(members.sum())
        if not size:
            continue
        retention = []
        boundary = cohort_end
        while boundary.timestamp() <= now + DAY:
            moment = min(boundary.timestamp(), now)
            if boundary not in live_at:
                live_at[boundary] = live_customers(table, moment)
            retention.append(_pct(int((live_at[boundary] & members).sum()), size))
            boundary = month_start(boundary, 1)
        out.append({"cohort": f"{cohort_start:%Y-%m}", "customers": size, "retention": retention})
    return out


def compute(table: FactTable, rules: ChurnSettings, *, start: datetime, end: datetime, period: Period = "month",
            now: datetime | None = None, events: list[ChurnEvent] | None = None) -> dict[str, Any]:
    """Every metric for each period in [start, end), plus cohort retention."""
    now = now or datetime.now(UTC)
    end = min(end, now)
    if events is None:
        events = classify_table(table, rules, now).events
    arrays = EventArrays.of(table, events)
    subs = table.frame("subscription")
    currencies = sorted({c for c in subs["currency"].tolist() if c})
    return {"period": period, "from": start, "to": end, "currencies": currencies,
            "gross_margin": rules.gross_margin,
            "periods": [period_metrics(table, arrays, rules, p0, min(p1, end), period)
                        for p0, p1 in periods(start, end, period)],
            "cohorts": cohorts(table, rules, start, end, now.timestamp())}
