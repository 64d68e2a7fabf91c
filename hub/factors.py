"""The built-in health factors, each a value in [0, 100] per customer as of a time, with its reason.

Every factor is written once, over a whole `FactTable` (numpy, no per-customer loop), and its
per-customer `compute` runs that same code on a one-customer table, so an explanation can never
disagree with the bulk score. Thresholds and curves are options (`health.factors.<name>.<key>`);
a curve is a list of `[x, value]` points joined by straight lines and flat beyond its ends.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hub.extensions import FactorColumn, HealthFactor
from hub.facts import (
    DAY,
    CustomerFacts,
    FactTable,
    count_by,
    curve,
    customer_start,
    last_by,
    live_subscriptions,
    max_by,
    snapshot_usable,
    sum_by,
    to_epoch,
)


def _check_curve(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    xs = [p[0] for p in points]
    if len(points) < 2 or xs != sorted(xs):
        raise ValueError("a curve needs at least two [x, value] points with increasing x")
    if any(not 0 <= p[1] <= 100 for p in points):
        raise ValueError("curve values must be between 0 and 100")
    return points


Curve = Annotated[list[tuple[float, float]], AfterValidator(_check_curve)]


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def lookback_days(self) -> float:
        """How far back this factor reads facts (the loader may skip older rows)."""
        return 0.0


def _days(seconds: np.ndarray) -> np.ndarray:
    return seconds / DAY


# ---- product usage: recency and trend -----------------------------------------------------------

class UsageOptions(Options):
    metric: str = Field(default="active_users", description="active_users | logins | events")
    recent_days: int = Field(default=30, ge=1, description="trend: this many days vs the same before")
    recency_curve: Curve = [(0, 100), (3, 95), (14, 70), (30, 30), (60, 0)]
    trend_curve: Curve = [(-0.5, 0), (-0.2, 50), (0, 90), (0.1, 100)]
    trend_share: float = Field(default=0.5, ge=0, le=1, description="share of the trend in the value")
    # Without daily usage rows, a CRM snapshot's last login is "yesterday" for nearly every account with
    # a few seats (someone always logs in), so recency alone rates a fading account as healthy. The
    # snapshot's active users over the licensed seats (live subscription quantity) shows the fade: the
    # value is then the lower of recency and utilisation (one login a day on 40 seats is not healthy).
    # Mean daily active users over all days (weekends too) of a third or more of the seats is normal
    # adoption; under a tenth is an account that has mostly stopped using the product.
    utilisation_curve: Curve = [(0, 0), (0.1, 15), (0.2, 45), (0.3, 75), (0.4, 95), (0.5, 100)]
    snapshot_days: float = Field(default=2, ge=0, description="CRM last_login counts within N days of the sync")

    def lookback_days(self) -> float:
        return max(2 * self.recent_days, self.recency_curve[-1][0])


def _activity(table: FactTable, metric: str) -> np.ndarray:
    usage = table.frame("usage")
    activity = usage[metric].copy() if metric in usage.columns else np.full(len(usage), np.nan)
    for fallback in ("active_users", "logins", "events"):
        activity = np.where(np.isnan(activity), usage[fallback], activity)
    return activity


def usage_many(table: FactTable, as_of: float, options: UsageOptions) -> FactorColumn:
    n, t, usage = table.n, as_of, table.frame("usage")
    activity = _activity(table, options.metric)
    day = usage["day"]
    upto = day <= t
    # linked to a usage source but no activity on record (in the window read): as inactive as it gets
    has_rows = table.columns["has_usage"] | (count_by(usage, upto, n) > 0)
    last_active = max_by(usage, day, upto & (activity > 0), n)
    days = np.where(has_rows, np.where(np.isnan(last_active), 1e6, _days(t - last_active)), np.nan)
    last_login = table.columns["last_login"]
    from_crm = np.isnan(last_active) & snapshot_usable(table, t, options.snapshot_days) & (last_login <= t)
    days = np.where(from_crm, _days(t - last_login), days)
    window = options.recent_days * DAY
    recent = sum_by(usage, activity, upto & (day > t - window), n)
    before = (day <= t - window) & (day > t - 2 * window)
    prior = sum_by(usage, activity, before, n)
    change = np.where(prior > 0, recent / np.where(prior > 0, prior, 1) - 1, np.nan)
    seats = sum_by(table.frame("subscription"), table.frame("subscription")["quantity"],
                   live_subscriptions(table, t), n)
    crm_users = table.columns["active_users"]
    utilisation = np.where(~has_rows & snapshot_usable(table, t, options.snapshot_days) & (seats > 0)
                           & ~np.isnan(crm_users), crm_users / np.maximum(seats, 1), np.nan)
    recency, trend = curve(days, options.recency_curve), curve(change, options.trend_curve)
    share = options.trend_share
    values = np.where(np.isnan(trend), recency, recency * (1 - share) + trend * share)
    values = np.fmin(values, curve(utilisation, options.utilisation_curve))   # NaN utilisation: unchanged
    def why(i: int) -> str:
        d, c = float(days[i]), float(change[i])
        if d != d:
            return ""
        if d >= 1e6:
            text = f"no product activity in {options.recency_curve[-1][0]:.0f}+ days"
        elif from_crm[i]:
            text = f"last login {d:.0f} days ago (CRM)"
        else:
            text = "active today" if d < 1 else f"last active {d:.0f} days ago"
        if c == c:
            text += f", activity {c:+.0%} vs previous {options.recent_days} days"
        elif utilisation[i] == utilisation[i]:
            text += f", {crm_users[i]:.1f} of {seats[i]:.0f} seats active (CRM)"
        return text

    return FactorColumn(values, why)


# ---- support load -------------------------------------------------------------------------------

class SupportOptions(Options):
    window_days: int = Field(default=30, ge=1, description="tickets opened in the last N days")
    stale_days: int = Field(default=7, ge=1, description="a ticket open longer than N days is stale")
    count_curve: Curve = [(0, 100), (1, 90), (2, 75), (3, 60), (5, 30), (8, 0)]
    stale_penalty: float = Field(default=15, ge=0, description="points off per stale open ticket")
    repeat_penalty: float = Field(default=10, ge=0, description="points off per repeated ticket (same topic)")

    def lookback_days(self) -> float:
        return self.window_days


def _repeats(table: FactTable, mask: np.ndarray) -> np.ndarray:
    """Per customer, tickets in `mask` beyond the first on the same topic."""
    tickets = table.frame("ticket")
    rows = np.nonzero(mask & (tickets["topic"] != 0))[0]
    out = np.zeros(table.n)
    if len(rows):
        customers, topics = tickets.customer[rows], tickets["topic"][rows]
        order = np.lexsort((topics, customers))
        customers, topics = customers[order], topics[order]
        again = (customers[1:] == customers[:-1]) & (topics[1:] == topics[:-1])
        np.add.at(out, customers[1:][again], 1)
    return out


def support_many(table: FactTable, as_of: float, options: SupportOptions) -> FactorColumn:
    n, t, tickets = table.n, as_of, table.frame("ticket")
    created, solved = tickets["created"], tickets["solved"]
    exists = created <= t
    recent_mask = exists & (created > t - options.window_days * DAY)
    recent = count_by(tickets, recent_mask, n)
    closed_now = (tickets["status"] == "solved") | (tickets["status"] == "closed")
    open_at = exists & ((solved > t) | (np.isnan(solved) & ~closed_now))
    stale = count_by(tickets, open_at & (created <= t - options.stale_days * DAY), n)
    repeated = _repeats(table, recent_mask)
    has_data = table.columns["has_helpdesk"] | (count_by(tickets, exists, n) > 0)
    values = np.clip(curve(recent, options.count_curve) - stale * options.stale_penalty
                     - repeated * options.repeat_penalty, 0, 100)
    values = np.where(has_data, values, np.nan)
    def why(i: int) -> str:
        r, s, p = recent[i], stale[i], repeated[i]
        text = f"{r:.0f} ticket{'s' if r != 1 else ''} in {options.window_days} days"
        if s:
            text += f", {s:.0f} open > {options.stale_days} days"
        if p:
            text += f", {p:.0f} repeated"
        return text

    return FactorColumn(values, why)


# ---- satisfaction: CSAT and NPS -----------------------------------------------------------------

class SatisfactionOptions(Options):
    window_days: int = Field(default=180, ge=1, description="CSAT ratings of the last N days")
    nps_curve: Curve = [(0, 0), (6, 35), (7, 65), (8, 75), (9, 95), (10, 100)]
    csat_share: float = Field(default=0.5, ge=0, le=1, description="share of CSAT when both are known")
    snapshot_days: float = Field(default=2, ge=0, description="a CRM NPS field counts within N days of the sync")

    def lookback_days(self) -> float:
        return self.window_days


def nps_label(score: float) -> str:
    """NPS categories: 0-6 detractor, 7-8 passive, 9-10 promoter."""
    return "detractor" if score < 7 else "passive" if score < 9 else "promoter"


def satisfaction_many(table: FactTable, as_of: float, options: SatisfactionOptions) -> FactorColumn:
    n, t, answers = table.n, as_of, table.frame("satisfaction")
    created, score, kind = answers["created"], answers["score"], answers["type"]
    exists = (created <= t) & ~np.isnan(score)
    csat = exists & (kind == "csat") & (created > t - options.window_days * DAY)
    good, total = sum_by(answers, score, csat, n), count_by(answers, csat, n)
    csat_value = np.where(total > 0, 100 * good / np.maximum(total, 1), np.nan)
    nps = last_by(answers, created, score, exists & (kind == "nps"), n)
    crm_nps = table.columns["nps"]
    use_crm = np.isnan(nps) & ~np.isnan(crm_nps) & snapshot_usable(table, t, options.snapshot_days)
    nps = np.where(use_crm, crm_nps, nps)
    nps_value = curve(nps, options.nps_curve)
    share = options.csat_share
    values = np.where(np.isnan(csat_value), nps_value,
                      np.where(np.isnan(nps_value), csat_value, csat_value * share + nps_value * (1 - share)))
    def why(i: int) -> str:
        g, k, p = good[i], total[i], float(nps[i])
        parts = []
        if p == p:
            parts.append(f"latest NPS {p:.0f} ({nps_label(p)})")
        if k:
            parts.append(f"CSAT {g:.0f} of {k:.0f} good in {options.window_days} days")
        return "; ".join(parts)

    return FactorColumn(values, why)


# ---- payment health -----------------------------------------------------------------------------

class PaymentOptions(Options):
    window_days: int = Field(default=90, ge=1, description="failed payments of the last N days")
    failed_penalty: float = Field(default=20, ge=0, description="points off per failed payment")
    past_due_penalty: float = Field(default=35, ge=0)
    dunning_penalty: float = Field(default=30, ge=0)
    grace_days: int = Field(default=3, ge=0, description="an unpaid invoice older than this is past due")

    def lookback_days(self) -> float:
        return self.window_days


def payment_many(table: FactTable, as_of: float, options: PaymentOptions) -> FactorColumn:
    n, t = table.n, as_of
    charges, invoices, dunning = table.frame("charge"), table.frame("invoice"), table.frame("dunning")
    since = t - options.window_days * DAY
    failed_charges = count_by(charges, (charges["status"] == "failed") & (charges["created"] <= t)
                              & (charges["created"] > since), n)
    created = invoices["created"]
    in_window = (created <= t) & (created > since)
    failing = in_window & ((invoices["attempt_count"] >= 2) | (invoices["status"] == "uncollectible"))
    failed = np.maximum(failed_charges, count_by(invoices, failing, n))
    unpaid_now = (invoices["status"] == "open") | (invoices["status"] == "uncollectible")
    unpaid_at = (created <= t) & (np.nan_to_num(invoices["amount_due"], nan=1) > 0) & (
        unpaid_now | ((invoices["status"] == "paid") & (invoices["paid_at"] > t)))
    overdue = (unpaid_now & (invoices["attempt_count"] >= 1)) | (created <= t - options.grace_days * DAY)
    past_due = count_by(invoices, unpaid_at & overdue, n) > 0
    in_dunning = count_by(dunning, (dunning["opened"] <= t) & ~(dunning["closed"] <= t), n) > 0
    subs = table.frame("subscription")
    has_data = table.columns["has_billing"] | (count_by(subs, subs["start"] <= t, n) > 0)
    values = np.clip(100 - failed * options.failed_penalty - past_due * options.past_due_penalty
                     - in_dunning * options.dunning_penalty, 0, 100)
    values = np.where(has_data, values, np.nan)
    def why(i: int) -> str:
        f, parts = failed[i], []
        if f:
            parts.append(f"{f:.0f} failed payment{'s' if f != 1 else ''} in {options.window_days} days")
        if past_due[i]:
            parts.append("invoice past due")
        if in_dunning[i]:
            parts.append("in dunning")
        return "; ".join(parts) or "no payment problems"

    return FactorColumn(values, why)


# ---- tenure -------------------------------------------------------------------------------------

class TenureOptions(Options):
    curve: Curve = [(0, 40), (90, 60), (180, 75), (365, 90), (730, 100)]


def tenure_many(table: FactTable, as_of: float, options: TenureOptions) -> FactorColumn:
    start = customer_start(table)
    days = np.where(start <= as_of, _days(as_of - start), np.nan)
    return FactorColumn(curve(days, options.curve), lambda i: f"customer for {days[i]:.0f} days" if days[i] == days[i] else "")


# ---- engagement recency: the last touchpoint ----------------------------------------------------

class EngagementOptions(Options):
    curve: Curve = [(0, 100), (14, 90), (30, 70), (60, 40), (120, 10), (180, 0)]

    def lookback_days(self) -> float:
        return self.curve[-1][0]


def engagement_many(table: FactTable, as_of: float, options: EngagementOptions) -> FactorColumn:
    n, t = table.n, as_of
    sources: list[tuple[str, np.ndarray]] = []
    for kind, label, columns in (("ticket", "ticket", ("created",)), ("satisfaction", "survey answer", ("created",)),
                                 ("opportunity", "opportunity", ("created", "closed")),
                                 ("contact", "new contact", ("created",))):
        frame = table.frame(kind)
        for column in columns:
            sources.append((label, max_by(frame, frame[column], frame[column] <= t, n)))
    crm = table.columns["last_activity"]
    sources.append(("CRM activity", np.where(crm <= t, crm, np.nan)))
    stacked = np.vstack([s for _, s in sources])
    any_touch = ~np.all(np.isnan(stacked), axis=0)
    best = np.argmax(np.nan_to_num(stacked, nan=-np.inf), axis=0)
    last = np.where(any_touch, np.max(np.where(np.isnan(stacked), -np.inf, stacked), axis=0), np.nan)
    days = _days(t - last)
    # a helpdesk or CRM that knows the customer but no touchpoint on record: none for a long time
    horizon = options.curve[-1][0]
    silent = ~any_touch & (table.columns["has_helpdesk"] | table.columns["has_crm"])
    days = np.where(silent, np.inf, days)
    labels = [s[0] for s in sources]

    def why(i: int) -> str:
        d = float(days[i])
        if d != d:
            return ""
        return f"no touchpoint in {horizon:.0f}+ days" if d == np.inf else \
            f"last touchpoint {d:.0f} days ago ({labels[best[i]]})"

    return FactorColumn(curve(np.where(silent, horizon, days), options.curve), why)


# ---- onboarding milestones ----------------------------------------------------------------------

MILESTONES = ("first_activity", "active_users", "team", "first_payment", "payment_method")


class OnboardingOptions(Options):
    milestones: list[str] = Field(default_factory=lambda: ["first_activity", "active_users", "team", "first_payment"])
    applies_days: int = Field(default=180, ge=1, description="only customers younger than N days are rated")
    active_users_target: int = Field(default=3, ge=1)
    team_target: int = Field(default=3, ge=1, description="contacts at the customer")
    snapshot_days: float = Field(default=2, ge=0)

    def lookback_days(self) -> float:
        return self.applies_days

    def model_post_init(self, _context: Any) -> None:
        unknown = sorted(set(self.milestones) - set(MILESTONES))
        if unknown:
            raise ValueError(f"unknown milestones {unknown} (known: {', '.join(MILESTONES)})")


def onboarding_many(table: FactTable, as_of: float, options: OnboardingOptions) -> FactorColumn:
    n, t, cols = table.n, as_of, table.columns
    start = customer_start(table)
    relevant = (start <= t) & (t - start <= options.applies_days * DAY)
    usage, contacts = table.frame("usage"), table.frame("contact")
    invoices, charges, methods = table.frame("invoice"), table.frame("charge"), table.frame("payment_method")
    crm_ok = snapshot_usable(table, t, options.snapshot_days)
    upto = usage["day"] <= t
    active_days = count_by(usage, upto & (_activity(table, "active_users") > 0), n)
    peak_users = np.fmax(max_by(usage, usage["active_users"], upto, n),
                         np.where(crm_ok, cols["active_users"], np.nan))
    paid = (invoices["amount_paid"] > 0) & ((invoices["paid_at"] <= t) | (
        np.isnan(invoices["paid_at"]) & (invoices["status"] == "paid") & (invoices["created"] <= t)))
    paid_any = (count_by(invoices, paid, n) + count_by(charges, (charges["status"] == "succeeded")
                                                      & (charges["created"] <= t), n)) > 0
    has_contacts_source = cols["has_helpdesk"] | cols["has_crm"] | (count_by(contacts, contacts["created"] <= t, n) > 0)
    usage_known = cols["has_usage"] | (crm_ok & ~(np.isnan(cols["last_login"]) & np.isnan(cols["active_users"])))
    checks: dict[str, tuple[np.ndarray, np.ndarray]] = {   # milestone: (met, can be judged)
        "first_activity": ((active_days > 0) | (crm_ok & (cols["last_login"] <= t)), usage_known),
        "active_users": (peak_users >= options.active_users_target, usage_known),
        "team": (count_by(contacts, contacts["created"] <= t, n) >= options.team_target, has_contacts_source),
        "first_payment": (paid_any, cols["has_billing"]),
        "payment_method": (count_by(methods, methods["created"] <= t, n) > 0, cols["has_billing"]),
    }
    met = np.zeros(n)
    judged = np.zeros(n)
    for name in options.milestones:
        done, can_judge = checks[name]
        met += done & can_judge
        judged += can_judge
    values = np.where(relevant & (judged > 0), 100 * met / np.maximum(judged, 1), np.nan)
    def why(i: int) -> str:
        if values[i] != values[i]:
            return ""
        missing = [name for name in options.milestones if checks[name][1][i] and not checks[name][0][i]]
        text = f"{met[i]:.0f} of {judged[i]:.0f} onboarding milestones"
        return text + (f" (missing: {', '.join(missing)})" if missing else "")

    return FactorColumn(values, why)


# ---- sentiment of recent ticket text ------------------------------------------------------------

class SentimentOptions(Options):
    window_days: int = Field(default=60, ge=1, description="tickets opened in the last N days")
    curve: Curve = [(-0.6, 0), (-0.2, 35), (0, 60), (0.3, 90), (0.6, 100)]

    def lookback_days(self) -> float:
        return self.window_days


def sentiment_many(table: FactTable, as_of: float, options: SentimentOptions) -> FactorColumn:
    n, t, tickets = table.n, as_of, table.frame("ticket")
    created, tone = tickets["created"], tickets["sentiment"]
    recent = (created <= t) & (created > t - options.window_days * DAY) & ~np.isnan(tone)
    count = count_by(tickets, recent, n)
    mean = np.where(count > 0, sum_by(tickets, tone, recent, n) / np.maximum(count, 1), np.nan)
    def why(i: int) -> str:
        m, k = float(mean[i]), count[i]
        if not k:
            return ""
        tone = "negative" if m < -0.05 else "positive" if m > 0.05 else "neutral"
        return f"ticket tone {m:+.2f} ({tone}) over {k:.0f} ticket{'s' if k != 1 else ''} in {options.window_days} days"

    return FactorColumn(curve(mean, options.curve), why)


# ---- registration -------------------------------------------------------------------------------

def per_customer(many: Callable[[FactTable, float, Any], FactorColumn]) -> Callable[..., Any]:
    """`compute(facts, as_of, options)` for one customer, running the bulk code on its facts."""
    def compute(facts: CustomerFacts, as_of: datetime, options: Any) -> tuple[float, str] | None:
        column = many(facts.table, to_epoch(as_of), options)
        value = float(column.values[0])
        return None if np.isnan(value) else (value, column.explain(0))

    compute.__name__ = many.__name__.replace("_many", "")
    return compute


def _factor(name: str, description: str, weight: float, options: type[Options],
            many: Callable[[FactTable, float, Any], FactorColumn]) -> HealthFactor:
    return HealthFactor(name=name, description=description, compute=per_customer(many),
                        default_weight=weight, options=options, compute_many=many)


# Default weights. The score is a weighted mean and most factors sit near 100 for most customers, so a
# factor's weight decides whether its one red flag can move a customer out of green at all: usage and
# payment (a fading account, a failing renewal) weigh the most; what customers say (CSAT/NPS, ticket tone)
# predicts churn better than ticket counts (the backtest's fitted weights agree); last-touchpoint recency
# weighs half, since accounts in trouble contact us more (tickets count as touchpoints), which makes it
# run against the other signals.
BUILTIN_FACTORS: tuple[HealthFactor, ...] = (
    _factor("usage", "product usage: days since last activity and its trend", 4, UsageOptions, usage_many),
    _factor("support", "support load: recent, stale and repeated tickets", 2, SupportOptions, support_many),
    _factor("satisfaction", "CSAT ratings and the latest NPS answer", 3, SatisfactionOptions, satisfaction_many),
    _factor("payment", "failed payments, past-due invoices, open dunning", 4, PaymentOptions, payment_many),
    _factor("tenure", "how long the customer has been with us", 1, TenureOptions, tenure_many),
    _factor("engagement", "days since the last touchpoint", 0.5, EngagementOptions, engagement_many),
    _factor("onboarding", "onboarding milestones reached (young customers)", 1, OnboardingOptions,
            onboarding_many),
    _factor("sentiment", "tone of recent ticket text (VADER)", 2, SentimentOptions, sentiment_many),
)
