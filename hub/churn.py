"""Churn classification: pure functions from a customer's facts to churn events and a state.

Walking a customer's subscriptions in time order (a subscription counts from its start until its
end; unconverted trials do not count, see `hub.facts`):

- the last live subscription ends -> a **voluntary** or **involuntary** churn event. Involuntary
  when the cancellation reason is a payment one (`payment_failed`, ...), the subscription ended
  `unpaid` / `incomplete_expired`, or a dunning case failed around the end; the reason is the
  decline code of the last failed charge (or the case's). Voluntary when the customer asked
  (`cancellation_requested`) or the CRM says they left; the reason is their feedback mapped to
  price, missing_features, competitor, unused, service, complexity, quality, other ("unknown"
  without feedback). An ending with no reason at all takes `churn.default_type`.
- a subscription ends or its MRR drops (an MRR snapshot shows fewer seats or a cheaper plan)
  while the customer stays live -> **contraction**, MRR lost = the drop.
- a subscription starts after a churn -> **reactivation**.
- live, but for `silent.window_days` no expansion (new subscription, MRR increase, won
  opportunity) and no adoption (new contacts, more active users), and usage of the last
  `usage_window_days` fell by `usage_drop` vs the period before -> **silent** churn, dated when
  the quiet window was complete (so re-running finds the same event).

Events are keyed by (customer, type, occurred_at), which is what makes persisting them idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from hub.facts import (
    DAY,
    CustomerFacts,
    FactTable,
    count_by,
    counted_subscriptions,
    customer_start,
    from_epoch,
    live_subscriptions,
    max_by,
    subscription_end,
    subscription_mrr_at,
    sum_by,
    to_epoch,
)
from hub.sections.churn import ChurnSettings

FULL_CHURN = ("voluntary", "involuntary")
EVENT_TYPES = ("voluntary", "involuntary", "contraction", "silent", "reactivation")
DECLINE_LOOKBACK = 60 * DAY     # a failed charge this close before an ending explains it
DUNNING_SLACK = 7 * DAY         # a dunning case closed this close to an ending explains it
SWITCH_WINDOW = DAY             # a subscription starting this close to another's end replaces it


@dataclass(frozen=True)
class ChurnEvent:
    customer_id: str
    occurred_at: datetime
    type: str
    reason: str | None
    mrr_lost: int
    currency: str | None
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "occurred_at": self.occurred_at, "type": self.type,
                "reason": self.reason, "mrr_lost": self.mrr_lost, "currency": self.currency,
                "evidence": self.evidence}


@dataclass
class Classification:
    """Every customer's events up to `as_of` and their state at `as_of`."""

    events: list[ChurnEvent]
    states: np.ndarray           # object array: active | cancelling | past_due | silent | churned_* | None
    mrr: np.ndarray              # each customer's MRR at as_of


@dataclass(frozen=True)
class _Sub:
    id: str
    start: float
    end: float
    status: str
    reason: str
    feedback: str
    currency: str
    history: tuple[tuple[float, float, float, str], ...]   # (observed, mrr, quantity, plan), oldest first
    mrr_now: float

    def mrr_before(self, moment: float) -> float:
        """MRR just before `moment`: the newest snapshot before it, else the oldest, else the record's."""
        value = self.history[0][1] if self.history else self.mrr_now
        for observed, mrr, _, _ in self.history:
            if observed < moment:
                value = mrr
        return value


class _Context:
    """Per-table precomputation shared by every customer's classification.

    The per-customer walk reads frame columns as Python lists (`column`): indexing a numpy array
    one scalar at a time costs several times more, and only candidate customers are walked.
    """

    def __init__(self, table: FactTable, rules: ChurnSettings, as_of: float) -> None:
        self.table, self.rules, self.as_of = table, rules, as_of
        self.end = subscription_end(table)
        self.counted = counted_subscriptions(table, rules.count_trials)
        self._columns: dict[tuple[str, str], list[Any]] = {}
        self.history: dict[str, list[tuple[float, float, float, str]]] = {}
        changes = table.frame("mrr_change")
        seen = np.nonzero(changes["observed"] <= as_of)[0]
        for sub_id, observed, mrr, quantity, plan in zip(
                changes["subscription_id"][seen].tolist(), changes["observed"][seen].tolist(),
                changes["mrr"][seen].tolist(), changes["quantity"][seen].tolist(), changes["plan"][seen].tolist(),
                strict=True):
            self.history.setdefault(sub_id, []).append((observed, mrr, quantity, plan))
        for entries in self.history.values():
            entries.sort()
        subs = table.frame("subscription")
        self._sub_end = np.where(self.end <= as_of, self.end, np.inf).tolist()
        self._sub_mrr = np.nan_to_num(subs["mrr"]).tolist()
        self._sub_walked = (self.counted & (subs["start"] <= as_of)).tolist()
        self._sub_columns: tuple[list[Any], ...] | None = None

    def column(self, kind: str, name: str) -> list[Any]:
        key = (kind, name)
        values = self._columns.get(key)
        if values is None:
            values = self._columns[key] = self.table.frame(kind)[name].tolist()
        return values

    def subscriptions(self, i: int) -> list[_Sub]:
        rows = self.table.rows_of("subscription", i)
        if self._sub_columns is None:   # fetched once: every walked customer needs them
            self._sub_columns = tuple(self.column("subscription", name)
                                      for name in ("id", "start", "status", "reason", "feedback", "currency"))
        ids, starts, status, reason, feedback, currency = self._sub_columns
        walked, ends, mrrs, history = self._sub_walked, self._sub_end, self._sub_mrr, self.history
        out = []
        for r in range(rows.start, rows.stop):
            if not walked[r]:
                continue
            sub_id = ids[r]
            out.append(_Sub(str(sub_id), starts[r], ends[r], str(status[r]), str(reason[r]),
                            str(feedback[r]), str(currency[r]), tuple(history.get(sub_id, ())), mrrs[r]))
        return out


def _latest_decline(ctx: _Context, i: int, moment: float) -> str | None:
    rows = ctx.table.rows_of("charge", i)
    if rows.start == rows.stop:
        return None
    created, status, codes = ctx.column("charge", "created"), ctx.column("charge", "status"), \
        ctx.column("charge", "decline_code")
    best, code = -np.inf, None
    for r in range(rows.start, rows.stop):
        if status[r] == "failed" and moment - DECLINE_LOOKBACK <= created[r] <= moment and created[r] > best:
            best, code = created[r], str(codes[r]) or None
    return code


def _failed_dunning(ctx: _Context, i: int, moment: float, rules: ChurnSettings) -> tuple[bool, str | None]:
    """Whether a dunning case had failed (or was still open) when the subscription ended."""
    rows = ctx.table.rows_of("dunning", i)
    if rows.start == rows.stop:   # most customers never had a dunning case
        return False, None
    opened_at, closed_at = ctx.column("dunning", "opened"), ctx.column("dunning", "closed")
    statuses, codes = ctx.column("dunning", "status"), ctx.column("dunning", "decline_code")
    for r in range(rows.start, rows.stop):
        opened, closed, status = opened_at[r], closed_at[r], statuses[r]
        if not opened <= moment:
            continue
        still_open = closed != closed   # NaN: not closed yet
        failed = status in rules.dunning_failed_statuses and abs((moment if still_open else closed) - moment) <= DUNNING_SLACK
        if failed or (still_open and status not in rules.dunning_recovered_statuses):
            return True, str(codes[r]) or None
    return False, None


def _subscription_dunning_failed(ctx: _Context, i: int, sub: _Sub, rules: ChurnSettings) -> tuple[bool, str | None]:
    """Whether a dunning case on one of this subscription's invoices had failed (e.g. exhausted)."""
    rows = ctx.table.rows_of("dunning", i)
    if rows.start == rows.stop:
        return False, None
    sub_ids, statuses = ctx.column("dunning", "subscription_id"), ctx.column("dunning", "status")
    opened, codes = ctx.column("dunning", "opened"), ctx.column("dunning", "decline_code")
    for r in range(rows.start, rows.stop):
        if sub_ids[r] == sub.id and statuses[r] in rules.dunning_failed_statuses and opened[r] <= sub.end:
            return True, str(codes[r]) or None
    return False, None


def _classify_ending(ctx: _Context, i: int, sub: _Sub, rules: ChurnSettings) -> tuple[str, str, dict[str, Any]]:
    evidence: dict[str, Any] = {"subscription": sub.id, "status": sub.status}
    if sub.reason:
        evidence["cancellation_reason"] = sub.reason
    if sub.feedback:
        evidence["feedback"] = sub.feedback
    dunning_failed, dunning_code = _failed_dunning(ctx, i, sub.end, rules)
    # the hub's own final dunning action (cancel_at_period_end) makes Stripe record
    # `cancellation_requested`: the unpaid invoice, not the customer, ended this subscription
    ended_by_dunning, case_code = _subscription_dunning_failed(ctx, i, sub, rules)
    payment = (ended_by_dunning or sub.reason in rules.involuntary_reasons or sub.status in rules.involuntary_statuses
               or (not sub.reason and dunning_failed))
    if payment and (ended_by_dunning or sub.reason not in rules.voluntary_reasons):
        dunning_failed = dunning_failed or ended_by_dunning
        code = (case_code if ended_by_dunning else None) or _latest_decline(ctx, i, sub.end) or dunning_code
        if code:
            evidence["decline_code"] = code
        if dunning_failed:
            evidence["dunning"] = "failed"
        return "involuntary", code or sub.reason or sub.status, evidence
    stage = str(ctx.table.columns["lifecycle_stage"][i]).lower()
    if sub.reason in rules.voluntary_reasons or stage in rules.crm_churned_stages or sub.feedback:
        if stage in rules.crm_churned_stages:
            evidence["crm_stage"] = stage
        return "voluntary", rules.feedback_reasons.get(sub.feedback, "other") if sub.feedback else "unknown", evidence
    return rules.default_type, "unknown", evidence


def _snapshot_contractions(customer_id: str, sub: _Sub, rules: ChurnSettings) -> list[ChurnEvent]:
    events = []
    for (_, mrr_a, qty_a, plan_a), (observed, mrr_b, qty_b, plan_b) in zip(sub.history, sub.history[1:], strict=False):
        if observed >= sub.end or mrr_a - mrr_b < rules.contraction_min_mrr:
            continue
        reason = "fewer_seats" if qty_b < qty_a else "downgrade" if plan_b != plan_a else "price_change"
        events.append(ChurnEvent(customer_id, from_epoch(observed), "contraction", reason, int(mrr_a - mrr_b),
                                 sub.currency or None, {"subscription": sub.id, "mrr_before": int(mrr_a),
                                                        "mrr_after": int(mrr_b), "quantity_before": qty_a,
                                                        "quantity_after": qty_b, "plan_before": plan_a,
                                                        "plan_after": plan_b}))
    return events


def customer_events(ctx: _Context, i: int) -> tuple[list[ChurnEvent], str | None]:
    """Customer i's churn events up to `ctx.as_of`, and the type of its latest full churn."""
    table, rules = ctx.table, ctx.rules
    customer_id = str(table.ids[i])
    subs = ctx.subscriptions(i)
    events: list[ChurnEvent] = []
    for sub in subs:
        events += _snapshot_contractions(customer_id, sub, rules)
    # starts before ends at the same instant; a subscription starting within a day of another's
    # end replaces it (a plan switch): only a net MRR loss counts, as contraction
    moments = sorted([(s.start, 0, s) for s in subs] + [(s.end, 1, s) for s in subs if s.end < np.inf],
                     key=lambda m: (m[0], m[1]))
    live: set[str] = set()
    last_churn: str | None = None
    for moment, is_end, sub in moments:
        if not is_end:
            if not live and last_churn is not None:
                events.append(ChurnEvent(customer_id, from_epoch(moment), "reactivation", None, 0,
                                         sub.currency or None, {"subscription": sub.id, "mrr": int(sub.mrr_before(np.inf))}))
                last_churn = None
            live.add(sub.id)
            continue
        live.discard(sub.id)
        replacements = [s for s in subs if s is not sub and abs(s.start - moment) <= SWITCH_WINDOW]
        kind, reason, evidence = _classify_ending(ctx, i, sub, rules)
        lost = int(sub.mrr_before(moment))
        if live or replacements:
            if replacements:
                lost -= int(sum(r.mrr_before(np.inf) for r in replacements))
                reason, evidence["replaced_by"] = "downgrade", [r.id for r in replacements]
            elif not (kind == "involuntary" or sub.feedback):
                reason = "subscription_ended"
            if lost >= rules.contraction_min_mrr:
                evidence["others_live"] = sorted(live)
                events.append(ChurnEvent(customer_id, from_epoch(moment), "contraction", reason, lost,
                                         sub.currency or None, evidence))
            continue
        events.append(ChurnEvent(customer_id, from_epoch(moment), kind, reason, lost, sub.currency or None, evidence))
        last_churn = kind
    return events, last_churn


# ---- silent churn (vectorised) ------------------------------------------------------------------

def silent_churn(table: FactTable, rules: ChurnSettings, as_of: float,
                 live: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(silent?, when the quiet window completed, usage change) for every customer at `as_of`."""
    n, silent = table.n, rules.silent
    window, usage_window = silent.window_days * DAY, silent.usage_window_days * DAY
    live = (count_by(table.frame("subscription"), live_subscriptions(table, as_of), n) > 0) if live is None else live
    subs = table.frame("subscription")
    opportunities, contacts, usage = table.frame("opportunity"), table.frame("contact"), table.frame("usage")
    positive = [
        customer_start(table),
        max_by(subs, subs["start"], subs["start"] <= as_of, n),
        _mrr_increases(table, as_of),
        max_by(opportunities, opportunities["closed"], (opportunities["won"] == 1) & (opportunities["closed"] <= as_of), n),
        max_by(contacts, contacts["created"], contacts["created"] <= as_of, n),
        _adoption_moments(table, as_of, usage_window),
    ]
    last_positive = np.nanmax(np.vstack([np.where(np.isnan(p), -np.inf, p) for p in positive]), axis=0)
    day = usage["day"]
    activity = np.where(np.isnan(usage["active_users"]), np.nan_to_num(usage["logins"]), usage["active_users"])
    recent = sum_by(usage, activity, (day <= as_of) & (day > as_of - usage_window), n)
    prior = sum_by(usage, activity, (day <= as_of - usage_window) & (day > as_of - 2 * usage_window), n)
    change = np.where(prior > 0, recent / np.where(prior > 0, prior, 1) - 1, np.nan)
    quiet_since = last_positive + window
    is_silent = (silent.enabled & live & np.isfinite(last_positive) & (quiet_since <= as_of)
                 & (change <= -silent.usage_drop))
    return is_silent, np.floor(quiet_since / DAY) * DAY, change


def _mrr_increases(table: FactTable, as_of: float) -> np.ndarray:
    """Per customer, the newest snapshot that showed a subscription's MRR going up."""
    changes = table.frame("mrr_change")
    out = np.full(table.n, np.nan)
    if not len(changes):
        return out
    order = np.lexsort((changes["observed"], changes["subscription_id"].astype(str)))
    sub, observed, mrr = changes["subscription_id"][order], changes["observed"][order], changes["mrr"][order]
    rises = np.zeros(len(order), dtype=bool)
    rises[1:] = (sub[1:] == sub[:-1]) & (mrr[1:] > mrr[:-1]) & (observed[1:] <= as_of)
    customers = changes.customer[order]
    np.fmax.at(out, customers[rises], observed[rises])
    return out


def _adoption_moments(table: FactTable, as_of: float, usage_window: float) -> np.ndarray:
    """Per customer, the newest usage day that set a new peak of active users (adoption).

    That is the first day the customer's all-time peak was reached, unless it was their very
    first day (nothing was exceeded): found with segment reductions, no per-row loop.
    """
    usage = table.frame("usage")
    out = np.full(table.n, np.nan)
    rows = np.nonzero((usage["day"] <= as_of) & ~np.isnan(usage["active_users"]))[0]
    if not len(rows):
        return out
    customers, days = usage.customer[rows], usage["day"][rows]
    in_order = (customers[1:] > customers[:-1]) | ((customers[1:] == customers[:-1]) & (days[1:] >= days[:-1]))
    if not in_order.all():   # frames come sorted by customer, and usually by day within one
        rows = rows[np.lexsort((days, customers))]
        customers, days = usage.customer[rows], usage["day"][rows]
    users = usage["active_users"][rows]
    starts = np.flatnonzero(np.r_[True, customers[1:] != customers[:-1]])
    segment = np.cumsum(np.r_[True, customers[1:] != customers[:-1]]) - 1
    at_peak = np.flatnonzero(users == np.maximum.reduceat(users, starts)[segment])
    first_at_peak = at_peak[np.r_[True, segment[at_peak][1:] != segment[at_peak][:-1]]]
    adopted = first_at_peak[first_at_peak != starts[segment[first_at_peak]]]
    out[customers[adopted]] = days[adopted]
    return out


# ---- the whole table ----------------------------------------------------------------------------

def classify_table(table: FactTable, rules: ChurnSettings, as_of: float | datetime) -> Classification:
    """Every customer's churn events up to `as_of` and their state at `as_of`."""
    as_of = to_epoch(as_of)
    ctx = _Context(table, rules, as_of)
    n, subs = table.n, table.frame("subscription")
    live_rows = live_subscriptions(table, as_of, end=ctx.end, counted=ctx.counted)
    live = count_by(subs, live_rows, n) > 0
    mrr = sum_by(subs, subscription_mrr_at(table, as_of), live_rows, n)
    ended = ctx.counted & (subs["start"] <= as_of) & (ctx.end <= as_of)
    changes = table.frame("mrr_change")
    seen = np.nonzero(changes["observed"] <= as_of)[0]
    _, inverse, counts = np.unique(changes["subscription_id"][seen].astype(str), return_inverse=True,
                                   return_counts=True)
    has_history = np.bincount(changes.customer[seen[counts[inverse] > 1]], minlength=n) > 0
    candidates = (count_by(subs, ended, n) > 0) | has_history
    events: list[ChurnEvent] = []
    last_type = np.full(n, None, dtype=object)
    for i in np.nonzero(candidates)[0].tolist():
        found, last = customer_events(ctx, i)
        events += found
        last_type[i] = last
    silent, quiet_since, change = silent_churn(table, rules, as_of, live)
    for i in np.nonzero(silent)[0].tolist():
        events.append(ChurnEvent(str(table.ids[i]), from_epoch(quiet_since[i]), "silent", "usage_falling", 0, None,
                                 {"usage_change": round(float(change[i]), 3),
                                  "quiet_days": rules.silent.window_days}))
    states = _states(table, rules, as_of, live, live_rows, silent, last_type, ctx.counted)
    return Classification(events, states, mrr)


def _states(table: FactTable, rules: ChurnSettings, as_of: float, live: np.ndarray, live_rows: np.ndarray,
            silent: np.ndarray, last_type: np.ndarray, counted: np.ndarray) -> np.ndarray:
    n, subs = table.n, table.frame("subscription")
    states = np.full(n, None, dtype=object)
    had_subs = count_by(subs, counted & (subs["start"] <= as_of), n) > 0
    ended = had_subs & ~live
    states[ended] = np.where(last_type[ended] == "involuntary", "churned_involuntary", "churned_voluntary")
    crm_gone = np.isin(np.char.lower(table.columns["lifecycle_stage"].astype(str)), rules.crm_churned_stages)
    states[~had_subs & crm_gone] = "churned_voluntary"
    cancelling_rows = live_rows & (subs["cancel_at_period_end"] == 1)
    all_cancelling = live & (count_by(subs, cancelling_rows, n) == count_by(subs, live_rows, n))
    past_due = count_by(subs, live_rows & (subs["status"] == "past_due"), n) > 0
    states[live] = "active"
    states[live & past_due] = "past_due"
    states[live & silent] = "silent"
    states[live & all_cancelling] = "cancelling"
    return states


def classify(facts: CustomerFacts, rules: ChurnSettings, as_of: datetime) -> tuple[list[ChurnEvent], str | None]:
    """One customer's events and state: the table code on a one-customer table."""
    result = classify_table(facts.table, rules, as_of)
    return result.events, result.states[0]


def full_churns(events: Iterable[ChurnEvent]) -> list[ChurnEvent]:
    return [e for e in events if e.type in FULL_CHURN]
