"""Billing actions on the customer's Stripe subscription.

    - stripe_pause_collection: {behavior: void, resume_after_days: 30}
    - stripe_apply_coupon: {coupon: WINBACK20}

The subscription is `subscription_id` when given, else the customer's live subscription with the
highest MRR in the chosen Stripe connector. Every call carries an Idempotency-Key derived from
the action's key, so a retried action acts once at Stripe.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from hub import ActionType

from .common import ActionParams, live_subscriptions


def subscription_id(explicit: str | None, context: dict[str, Any]) -> str:
    if explicit:
        return explicit
    connector = (context.get("connector") or {}).get("name")
    live = live_subscriptions(context, connector)
    if not live:
        raise ValueError(f"the customer has no live subscription in connector {connector!r}")
    return str(max(live, key=lambda s: (s.get("mrr") or 0, s["id"]))["id"])


class StripePauseCollection(ActionParams):
    behavior: Literal["keep_as_draft", "mark_uncollectible", "void"] = "void"
    resumes_at: datetime | None = None
    resume_after_days: int | None = Field(None, gt=0, description="resume this many days after planning")
    subscription_id: str | None = None


def plan_pause(params: StripePauseCollection, context: dict[str, Any]) -> dict[str, Any]:
    if params.resumes_at and params.resume_after_days:
        raise ValueError("give resumes_at or resume_after_days, not both")
    resumes_at = params.resumes_at
    if params.resume_after_days:
        # The planning time, not the execution time: a plan and its run pause until the same day.
        resumes_at = datetime.fromisoformat(context["now"]) + timedelta(days=params.resume_after_days)
    operation: dict[str, Any] = {"subscription_id": subscription_id(params.subscription_id, context),
                                 "behavior": params.behavior}
    if resumes_at:
        operation["resumes_at"] = resumes_at.isoformat()
    until = f" until {resumes_at.date()}" if resumes_at else ""
    return {"operation": "pause_collection", "params": operation,
            "summary": f"pause collection ({params.behavior}){until} on {operation['subscription_id']}"}


class StripeApplyCoupon(ActionParams):
    coupon: str = Field(min_length=1)
    subscription_id: str | None = None


def plan_coupon(params: StripeApplyCoupon, context: dict[str, Any]) -> dict[str, Any]:
    subscription = subscription_id(params.subscription_id, context)
    return {"operation": "apply_coupon", "params": {"subscription_id": subscription, "coupon": params.coupon},
            "summary": f"coupon {params.coupon} on {subscription}"}


STRIPE_PAUSE_COLLECTION = ActionType(name="stripe_pause_collection", params=StripePauseCollection,
                                     connector_type="stripe", plan=plan_pause,
                                     description="Pause payment collection on the customer's subscription.")
STRIPE_APPLY_COUPON = ActionType(name="stripe_apply_coupon", params=StripeApplyCoupon, connector_type="stripe",
                                 plan=plan_coupon, description="Apply a coupon to the customer's subscription.")
