"""The signals a trigger can read, each computed for every customer at once (numpy columns).

    health.score < 70 or health.band_changed_to == "red"
    days_since_last_login >= 14
    tickets_opened(10d) >= 3
    ticket_open_longer_than(5d)
    nps < 7
    onboarding_overdue
    payment_failed
    churned_days_ago in [30, 60, 90]
    silent_churn
    usage_near_plan_limit

`CATALOG` lists them (names, arguments, meaning) for `config validate`; `SignalInputs` is what
they are computed from: a `FactTable` plus the few per-customer values that live in the hub's own
tables (stored health scores, churn events, status), loaded with set-based queries by
`load_inputs`. `SignalTable(inputs, as_of).column(signal)` computes one column, cached.
Missing values are NaN (numbers) or "" (text) and compare false.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, and_, func, select

from hub.expressions import Signal, SignalSpec
from hub.facts import (
    DAY,
    FactTable,
    count_by,
    customer_mrr_at,
    customer_start,
    last_by,
    live_subscriptions,
    max_by,
)
from hub.factsdb import CustomerIndex
from hub.models import ChurnEvent, Customer, HealthScore

if TYPE_CHECKING:
    from hub.playbooks.config import OnboardingDue

FULL_CHURN = ("voluntary", "involuntary")
CLOSED_TICKET = ("solved", "closed")
MILESTONE_NAMES = ("first_activity", "active_users", "team", "first_payment")


def _spec(name: str, description: str, arity: int = 0, example: str = "") -> tuple[str, SignalSpec]:
    return name, SignalSpec(name, description, arity, example or name)


CATALOG: dict[str, SignalSpec] = dict([
    _spec("health.score", "the latest stored health score (0..100)"),
    _spec("health.band", 'its band: "green", "yellow" or "red"'),
    _spec("health.previous_score", "the score before the latest one"),
    _spec("health.previous_band", "the band before the latest one"),
    _spec("health.band_changed_to", 'the new band when the latest score changed band, else ""',
          example='health.band_changed_to == "red"'),
    _spec("health.score_change", "latest score minus the previous one"),
    _spec("days_since_last_login", "days since the last login or active usage day (CRM or usage facts)"),
    _spec("tickets_opened", "tickets opened within the last D days", 1, "tickets_opened(7d) >= 3"),
    _spec("open_tickets", "tickets open now"),
    _spec("oldest_open_ticket_days", "age in days of the oldest open ticket"),
    _spec("ticket_open_longer_than", "a ticket has been open longer than D days", 1, "ticket_open_longer_than(5d)"),
    _spec("nps", "the latest NPS answer (0..10)"),
    _spec("onboarding_milestones_overdue", "onboarding milestones not reached by their due date"),
    _spec("onboarding_overdue", "at least one onboarding milestone is overdue"),
    _spec("payment_failed", "the latest charge failed, an invoice is open after a failed attempt, or dunning is open"),
    _spec("churned", "the customer has churned (no live subscription)"),
    _spec("churned_days_ago", "whole days since the customer's last full churn (only while churned)",
          example="churned_days_ago in [30, 60, 90]"),
    _spec("churn_state", 'active, past_due, cancelling, silent, churned_voluntary, churned_involuntary'),
    _spec("silent_churn", "still paying, but usage fell and nothing grew (churn classification)"),
    _spec("plan_usage", "active users of the last 7 days over the seats paid for"),
    _spec("usage_near_plan_limit", "plan_usage at or above `playbooks.near_limit` (default 90%)"),
    _spec("mrr", "MRR now, in minor units (49900 = 499.00)"),
    _spec("plan", "the plan of the largest live subscription"),
    _spec("lifecycle_stage", "the CRM lifecycle stage"),
    _spec("status", 'the hub\'s own lifecycle status (e.g. "At risk")'),
    _spec("customer_age_days", "days since the relationship began"),
    _spec("active_users", "peak active users in the last 7 days"),
])


@dataclass
class SignalInputs:
    """Everything signals are computed from, aligned with `table.ids`."""

    table: FactTable
    health_score: np.ndarray           # float, NaN: never scored
    health_band: np.ndarray            # object, "" when unknown
    previous_score: np.ndarray
    previous_band: np.ndarray
    status: np.ndarray                 # object
    churn_state: np.ndarray            # object
    last_full_churn: np.ndarray        # epoch seconds, NaN: never
    onboarding: OnboardingDue | None = None   # the due dates (defaults when None)
    near_limit: float = 0.9

    @classmethod
    def from_table(cls, table: FactTable, **values: Any) -> SignalInputs:
        """Inputs with empty hub-side values, overridden by `values` (tests describe customers this way)."""
        n = table.n
        empty = {"health_score": np.full(n, np.nan), "health_band": np.full(n, "", dtype=object),
                 "previous_score": np.full(n, np.nan), "previous_band": np.full(n, "", dtype=object),
                 "status": np.full(n, "", dtype=object), "churn_state": np.full(n, "", dtype=object),
                 "last_full_churn": np.full(n, np.nan)}
        for key, value in values.items():
            if key in empty:
                kind = empty[key].dtype
                values[key] = np.array(value, dtype=kind)
        return cls(table, **{**empty, **values})


def load_inputs(connection: Connection, table: FactTable, as_of: float) -> SignalInputs:
    """The hub-side values for every customer of `table` (three set-based queries)."""
    index = CustomerIndex(table.ids)
    inputs = SignalInputs.from_table(table)
    scores = HealthScore.__table__
    moment = _datetime(as_of)
    ranked = (select(scores.c.customer_id, scores.c.score, scores.c.band,
                     func.row_number().over(partition_by=scores.c.customer_id,
                                            order_by=(scores.c.scored_at.desc(), scores.c.id.desc())).label("rank"))
              .where(scores.c.scored_at <= moment).subquery())
    rows = connection.execute(select(ranked.c.customer_id, ranked.c.score, ranked.c.band, ranked.c.rank)
                              .where(ranked.c.rank <= 2)).all()
    if rows:
        position = index.positions([r[0] for r in rows])
        for (_, score, band, rank), i in zip(rows, position.tolist(), strict=True):
            if i < 0:
                continue
            if rank == 1:
                inputs.health_score[i], inputs.health_band[i] = score, band or ""
            else:
                inputs.previous_score[i], inputs.previous_band[i] = score, band or ""
    customers = Customer.__table__
    rows = connection.execute(select(customers.c.id, customers.c.status, customers.c.churn_state)).all()
    if rows:
        position = index.positions([r[0] for r in rows])
        known = position >= 0
        inputs.status[position[known]] = np.array([r[1] or "" for r in rows], dtype=object)[known]
        inputs.churn_state[position[known]] = np.array([r[2] or "" for r in rows], dtype=object)[known]
    events = ChurnEvent.__table__
    rows = connection.execute(select(events.c.customer_id, func.max(events.c.occurred_at))
                              .where(and_(events.c.type.in_(FULL_CHURN), events.c.occurred_at <= moment))
                              .group_by(events.c.customer_id)).all()
    if rows:
        position = index.positions([r[0] for r in rows])
        known = position >= 0
        when = np.array([_epoch(r[1]) for r in rows], dtype=float)
        inputs.last_full_churn[position[known]] = when[known]
    return inputs


def _datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _epoch(value: datetime | None) -> float:
    if value is None:
        return np.nan
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


class SignalTable:
    """Signal columns for every customer of `inputs.table` as of `as_of` (epoch seconds), cached."""

    def __init__(self, inputs: SignalInputs, as_of: float) -> None:
        self.inputs, self.table, self.t = inputs, inputs.table, as_of
        self.n = inputs.table.n
        self._cache: dict[str, np.ndarray] = {}

    def column(self, signal: Signal) -> np.ndarray:
        values = self._cache.get(signal.key)
        if values is None:
            compute = COMPUTE.get(signal.name)
            if compute is None:
                raise KeyError(f"unknown signal {signal.name!r}")
            values = self._cache[signal.key] = compute(self, *signal.args)
        return values

    def named(self, name: str, *args: Any) -> np.ndarray:
        return self.column(Signal(name, tuple(args), 0))

    # ---- building blocks --------------------------------------------------------------------

    def days(self, moment: np.ndarray) -> np.ndarray:
        return (self.t - moment) / DAY

    def last_login(self) -> np.ndarray:
        usage = self.table.frame("usage")
        active = (usage["day"] <= self.t) & ((np.nan_to_num(usage["logins"]) > 0)
                                             | (np.nan_to_num(usage["active_users"]) > 0))
        from_usage = max_by(usage, usage["day"], active, self.n)
        crm = self.table.columns["last_login"]
        return np.fmax(from_usage, np.where(crm <= self.t, crm, np.nan))

    def open_ticket_age(self) -> np.ndarray:
        tickets = self.table.frame("ticket")
        created = tickets["created"]
        still_open = (created <= self.t) & ~np.isin(tickets["status"], CLOSED_TICKET) & ~(tickets["solved"] <= self.t)
        oldest = -max_by(tickets, -created, still_open, self.n)
        return self.days(oldest)

    def peak_users(self, window_days: float = 7) -> np.ndarray:
        usage = self.table.frame("usage")
        recent = (usage["day"] <= self.t) & (usage["day"] > self.t - window_days * DAY)
        return np.fmax(max_by(usage, usage["active_users"], recent, self.n), self.table.columns["active_users"])

    def onboarding_overdue_count(self) -> np.ndarray:
        from hub.playbooks.config import OnboardingDue  # config imports this module's CATALOG

        due = self.inputs.onboarding or OnboardingDue()
        t, n, cols = self.t, self.n, self.table.columns
        age = self.days(customer_start(self.table))
        contacts, invoices, charges = (self.table.frame(k) for k in ("contact", "invoice", "charge"))
        paid = (count_by(invoices, (np.nan_to_num(invoices["amount_paid"]) > 0) & (invoices["created"] <= t), n)
                + count_by(charges, (charges["status"] == "succeeded") & (charges["created"] <= t), n)) > 0
        usage_known = cols["has_usage"] | ~np.isnan(cols["last_login"]) | ~np.isnan(cols["active_users"])
        team_known = cols["has_helpdesk"] | cols["has_crm"] | (len(contacts) > 0)
        checks = {   # milestone: (reached, can be judged)
            "first_activity": (~np.isnan(self.last_login()), usage_known),
            "active_users": (np.nan_to_num(self.peak_users(3650)) >= due.active_users_target, usage_known),
            "team": (count_by(contacts, contacts["created"] <= t, n) >= due.team_target, team_known),
            "first_payment": (paid, cols["has_billing"]),
        }
        applies = age <= due.applies.total_seconds() / DAY
        overdue = np.zeros(n)
        for name in MILESTONE_NAMES:
            reached, judged = checks[name]
            late = age > getattr(due, name).total_seconds() / DAY
            overdue += applies & judged & late & ~reached
        return overdue


def _health_changed(s: SignalTable) -> np.ndarray:
    band, previous = s.inputs.health_band, s.inputs.previous_band
    changed = (band != "") & (previous != "") & (band != previous)
    return np.where(changed, band, "").astype(object)


def _tickets_opened(s: SignalTable, days: float) -> np.ndarray:
    tickets = s.table.frame("ticket")
    created = tickets["created"]
    return count_by(tickets, (created <= s.t) & (created > s.t - days * DAY), s.n)


def _open_tickets(s: SignalTable) -> np.ndarray:
    tickets = s.table.frame("ticket")
    still_open = (tickets["created"] <= s.t) & ~np.isin(tickets["status"], CLOSED_TICKET) & ~(tickets["solved"] <= s.t)
    return count_by(tickets, still_open, s.n)


def _nps(s: SignalTable) -> np.ndarray:
    answers = s.table.frame("satisfaction")
    latest = last_by(answers, answers["created"], answers["score"],
                     (answers["type"] == "nps") & (answers["created"] <= s.t), s.n)
    return np.where(np.isnan(latest), s.table.columns["nps"], latest)


def _payment_failed(s: SignalTable) -> np.ndarray:
    t, n = s.t, s.n
    charges, invoices, dunning = (s.table.frame(k) for k in ("charge", "invoice", "dunning"))
    failed = (charges["status"] == "failed").astype(float)
    last_failed = last_by(charges, charges["created"], failed, charges["created"] <= t, n) == 1
    retried_open = count_by(invoices, (invoices["status"] == "open") & (np.nan_to_num(invoices["attempt_count"]) >= 1)
                            & (invoices["created"] <= t), n) > 0
    open_case = count_by(dunning, (dunning["opened"] <= t) & ~(dunning["closed"] <= t), n) > 0
    return last_failed | retried_open | open_case


def _churned(s: SignalTable) -> np.ndarray:
    state = s.inputs.churn_state.astype(str)
    return np.char.startswith(state, "churned")


def _churned_days_ago(s: SignalTable) -> np.ndarray:
    days = np.floor(s.days(s.inputs.last_full_churn))
    return np.where(_churned(s), days, np.nan)


def _plan_usage(s: SignalTable) -> np.ndarray:
    subs = s.table.frame("subscription")
    live = live_subscriptions(s.table, s.t)
    seats = np.bincount(subs.customer[live], weights=np.nan_to_num(subs["quantity"][live]), minlength=s.n)
    users = s.peak_users()
    return np.where(seats > 0, users / np.maximum(seats, 1), np.nan)


def _plan(s: SignalTable) -> np.ndarray:
    subs = s.table.frame("subscription")
    rows = np.nonzero(live_subscriptions(s.table, s.t))[0]
    out = np.full(s.n, "", dtype=object)
    if len(rows):
        ranked = rows[np.lexsort((np.nan_to_num(subs["mrr"][rows]), subs.customer[rows]))]
        customers = subs.customer[ranked]
        last = np.ones(len(ranked), dtype=bool)
        last[:-1] = customers[:-1] != customers[1:]
        out[customers[last]] = subs["plan"][ranked[last]].astype(object)
    return out


COMPUTE: dict[str, Callable[..., np.ndarray]] = {
    "health.score": lambda s: s.inputs.health_score,
    "health.band": lambda s: s.inputs.health_band,
    "health.previous_score": lambda s: s.inputs.previous_score,
    "health.previous_band": lambda s: s.inputs.previous_band,
    "health.band_changed_to": _health_changed,
    "health.score_change": lambda s: s.inputs.health_score - s.inputs.previous_score,
    "days_since_last_login": lambda s: s.days(s.last_login()),
    "tickets_opened": _tickets_opened,
    "open_tickets": _open_tickets,
    "oldest_open_ticket_days": lambda s: s.open_ticket_age(),
    "ticket_open_longer_than": lambda s, days: np.nan_to_num(s.open_ticket_age(), nan=-1) > days,
    "nps": _nps,
    "onboarding_milestones_overdue": lambda s: s.onboarding_overdue_count(),
    "onboarding_overdue": lambda s: s.onboarding_overdue_count() > 0,
    "payment_failed": _payment_failed,
    "churned": _churned,
    "churned_days_ago": _churned_days_ago,
    "churn_state": lambda s: s.inputs.churn_state,
    "silent_churn": lambda s: s.inputs.churn_state == "silent",
    "plan_usage": _plan_usage,
    "usage_near_plan_limit": lambda s: np.nan_to_num(_plan_usage(s)) >= s.inputs.near_limit,
    "mrr": lambda s: customer_mrr_at(s.table, s.t),
    "plan": _plan,
    "lifecycle_stage": lambda s: s.table.columns["lifecycle_stage"].astype(object),
    "status": lambda s: s.inputs.status,
    "customer_age_days": lambda s: s.days(customer_start(s.table)),
    "active_users": lambda s: s.peak_users(),
}

assert set(COMPUTE) == set(CATALOG), set(COMPUTE) ^ set(CATALOG)


def json_value(value: Any) -> Any:
    """A column's entry as plain JSON: NaN -> None, numpy scalars -> Python, whole floats -> int."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return int(value) if value.is_integer() else round(value, 3)
    return value
