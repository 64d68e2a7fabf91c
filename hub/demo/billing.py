"""A company's billing history in the demo world: subscriptions, invoices and payment attempts.

Abstract (no Stripe shapes yet): `stripe_data.py` turns it into API objects and `truth.py` counts
from it. Derived lazily and deterministically per company (`World.rng(company, "billing")`).

    for subscription in billing_history(world, company):
        subscription.status, [invoice.status for invoice in subscription.invoices]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.demo.world import (
    DAY,
    PLANS,
    RETRY_SCHEDULE_DAYS,
    Company,
    Fate,
    World,
    last_period_start,
    period_end,
    period_starts,
)

SOFT_DECLINES = ("insufficient_funds", "generic_decline", "expired_card", "do_not_honor")
COUPONS = {  # id -> (percent_off, duration, duration_in_months)
    "WELCOME20": (20, "once", None),
    "ANNUAL10": (10, "forever", None),
    "RETAIN25": (25, "repeating", 3),
}


@dataclass(slots=True)
class Attempt:
    at: int
    decline_code: str | None       # None: the charge succeeded


@dataclass(slots=True)
class InvoicePlan:
    period_start: int
    period_end: int
    plan: str
    quantity: int
    unit_amount: int
    subtotal: int
    discount: int
    billing_reason: str            # subscription_create | subscription_cycle
    status: str                    # paid | open | uncollectible | void
    attempts: list[Attempt] = field(default_factory=list)
    next_payment_attempt: int | None = None

    @property
    def total(self) -> int:
        return self.subtotal - self.discount

    @property
    def failing(self) -> bool:
        """Open with failed attempts: dunning work (what `truth.failed_invoices` counts)."""
        return self.status == "open" and len(self.attempts) > 0


@dataclass(slots=True)
class SubscriptionPlan:
    number: int                    # 0: the first subscription, 1: after a reactivation
    created: int
    interval: str
    plan: str
    quantity: int                  # now (after any downgrade)
    status: str                    # active | past_due | canceled
    current_period_start: int
    current_period_end: int
    invoices: list[InvoicePlan]
    canceled_at: int | None = None
    ended_at: int | None = None
    cancel_at: int | None = None
    cancel_at_period_end: bool = False
    cancellation_reason: str | None = None
    feedback: str | None = None
    pause_resumes_at: int | None = None
    coupon: str | None = None
    downgraded_at: int | None = None
    previous_plan: str | None = None
    previous_quantity: int | None = None

    @property
    def unit_amount(self) -> int:
        return unit_amount(self.plan, self.interval)


def unit_amount(plan: str, interval: str) -> int:
    spec = PLANS[plan]
    return spec.annual_per_seat if interval == "year" else spec.monthly_per_seat


def billing_history(world: World, company: Company) -> list[SubscriptionPlan]:
    rng = world.rng(company, "billing")
    ended = company.fate in (Fate.VOLUNTARY, Fate.REACTIVATED, Fate.INVOLUNTARY)
    first_end = company.event_at if ended else None
    subscriptions = [_subscription(world, company, rng, 0, company.created, first_end)]
    if company.reactivated_at is not None:
        subscriptions.append(_subscription(world, company, rng, 1, company.reactivated_at, None))
    return subscriptions


def _discount(coupon: str | None, subtotal: int, first: bool, period_start: int, world: World) -> int:
    if coupon is None:
        return 0
    percent, duration, _months = COUPONS[coupon]
    applies = (duration == "forever" or (duration == "once" and first)
               or (duration == "repeating" and period_start >= world.now - 90 * DAY))
    return subtotal * percent // 100 if applies else 0


def _subscription(world: World, company: Company, rng, number: int, anchor: int, end: int | None) -> SubscriptionPlan:
    involuntary = company.fate is Fate.INVOLUNTARY and number == 0
    # a voluntary cancellation ends at a period boundary (no renewal there); an involuntary one
    # ends after the renewal at its boundary failed every retry
    last = (end - 1 if not involuntary else end) if end is not None else world.now
    starts = period_starts(anchor, company.interval, last, since=world.start)
    coupon = company.coupon if number == 0 else "RETAIN25"   # a win-back offer brought them back
    downgraded = company.fate is Fate.CONTRACTION and company.event_at is not None
    failing_now = company.failing is not None and not involuntary and number == len(_anchors(company)) - 1
    invoices: list[InvoicePlan] = []
    for k, start in enumerate(starts):
        first, last_one = start == anchor, k == len(starts) - 1
        later = downgraded and start >= company.event_at
        plan = (company.new_plan or company.plan) if later else company.plan
        quantity = (company.new_seats or company.seats) if later else company.seats
        if number == 1:
            quantity = max(1, company.seats * 2 // 3)
        amount = unit_amount(plan, company.interval)
        subtotal = amount * quantity
        invoice = InvoicePlan(start, period_end(anchor, company.interval, start), plan, quantity, amount, subtotal,
                              _discount(coupon, subtotal, first, start, world),
                              "subscription_create" if first else "subscription_cycle", "paid")
        if company.paused_from is not None and start >= company.paused_from:
            invoice.status = "void"          # pause_collection behavior=void
        elif involuntary and last_one:
            invoice.attempts = [Attempt(start + d * DAY, company.failing) for d in RETRY_SCHEDULE_DAYS]
            invoice.status = "uncollectible"
        elif failing_now and last_one and not first:
            done = [d for d in RETRY_SCHEDULE_DAYS if start + d * DAY <= world.now]
            invoice.attempts = [Attempt(start + d * DAY, company.failing) for d in done]
            invoice.status = "open"
            invoice.next_payment_attempt = start + RETRY_SCHEDULE_DAYS[len(done)] * DAY
        else:
            invoice.attempts = _paid_attempts(rng, world, company, start, end if involuntary else None)
        invoices.append(invoice)
    current_start = last_period_start(anchor, company.interval, last)
    current_end = period_end(anchor, company.interval, current_start)
    sub = SubscriptionPlan(number, anchor, company.interval,
                           (company.new_plan or company.plan) if downgraded else company.plan,
                           (company.new_seats or company.seats) if downgraded else company.seats,
                           "active", current_start, current_end, invoices, coupon=coupon)
    if number == 1:
        sub.quantity = max(1, company.seats * 2 // 3)
    if downgraded:
        sub.downgraded_at, sub.previous_plan, sub.previous_quantity = company.event_at, company.plan, company.seats
    if end is not None:
        sub.status, sub.ended_at = "canceled", end
        if involuntary:
            sub.canceled_at, sub.cancellation_reason = end, "payment_failed"
            sub.current_period_end = end
        else:
            sub.canceled_at, sub.cancel_at, sub.cancel_at_period_end = company.requested_at, end, True
            sub.cancellation_reason, sub.feedback = "cancellation_requested", company.feedback
            sub.current_period_end = end
    elif failing_now and invoices and invoices[-1].failing:
        sub.status = "past_due"
    elif company.pending_cancel_at is not None:
        sub.canceled_at, sub.cancel_at, sub.cancel_at_period_end = company.pending_cancel_at, current_end, True
        sub.cancellation_reason, sub.feedback = "cancellation_requested", company.feedback
    if company.paused_from is not None and end is None:
        sub.pause_resumes_at = world.now + int(rng.uniform(14, 60)) * DAY
    return sub


def _anchors(company: Company) -> list[int]:
    return [company.created] + ([company.reactivated_at] if company.reactivated_at is not None else [])


def _paid_attempts(rng, world: World, company: Company, start: int, involuntary_end: int | None) -> list[Attempt]:
    """Paid on the first attempt, or after a soft decline (more often before an involuntary churn)."""
    risk = 0.02 + 0.06 * company.propensity
    if involuntary_end is not None and start >= involuntary_end - 120 * DAY:
        risk += 0.35   # the card was already shaky in the months before it finally failed
    if start + 3 * DAY <= world.now and rng.random() < risk:
        return [Attempt(start, rng.choice(SOFT_DECLINES)), Attempt(start + 3 * DAY, None)]
    return [Attempt(start, None)]
