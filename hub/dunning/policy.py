"""`dunning:` — the failed-payment recovery policy, and the pure decisions that read it.

    dunning:
      retries: [1, 3, 5, 7]              # days after the first failure; or `retries: stripe`
      preferred_weekdays: [tue, thu]     # move a retry to the next of these days (optional)
      do_not_honor_after: 2              # do_not_honor is soft for this many attempts, then hard
      emails:                            # rising urgency; day 0 is the failure itself
        - {day: 0, template: payment_failed_1}
        - {day: 3, template: payment_failed_2}
        - {day: 7, template: payment_failed_3}
        - {day: 14, template: payment_failed_final}
      high_value: {mrr_at_least: 100000, health_bands: [red]}   # + a CRM task for the owner
      card_expiry_notice: {enabled: false, days_before: 30}
      final_action: {after_days: 21, action: cancel_at_period_end}  # | mark_uncollectible | pause_collection | none
      variables: {product: {name: Acme Analytics}, links: {billing: "https://app.acme.example/billing"}}

Soft declines (the bank may say yes later) are retried on the schedule; hard declines (the card
will never work) are not retried blindly: the emails ask the customer to update the card, and a
new default card is retried once. `retries: stripe` leaves retrying to Stripe's Smart Retries
and runs only the communication. With hub retries, turn Stripe's automatic retries off
(Billing settings), or both will retry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hub.sections.common import Strict

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SOFT_DECLINES = ["insufficient_funds", "processing_error", "card_velocity_exceeded", "try_again_later",
                 "issuer_not_available", "reenter_transaction", "withdrawal_count_limit_exceeded",
                 "approve_with_id", "generic_decline", "do_not_honor", "authentication_required"]
HARD_DECLINES = ["expired_card", "lost_card", "stolen_card", "fraudulent", "invalid_account", "incorrect_number",
                 "invalid_number", "pickup_card", "restricted_card", "card_not_supported", "merchant_blacklist",
                 "revocation_of_authorization", "stop_payment_order", "security_violation", "do_not_try_again"]
FinalAction = Literal["cancel_at_period_end", "mark_uncollectible", "pause_collection", "none"]


class EmailStep(Strict):
    day: int = Field(ge=0, description="days after the first failure")
    template: str = Field(min_length=1)


class HighValue(Strict):
    """Accounts that also get a CRM task for their owner (either condition is enough)."""

    mrr_at_least: int | None = Field(None, ge=0, description="customer MRR in minor units")
    health_bands: list[str] = Field(default_factory=lambda: ["red"])
    subject: str = "Failed payment: {{ customer.name }} ({{ invoice.amount_due | money(invoice.currency) }})"
    due_in_days: int = Field(1, ge=0)
    priority: Literal["High", "Normal", "Low"] = "High"


class CardExpiryNotice(Strict):
    enabled: bool = False
    days_before: int = Field(30, ge=1, description="notice when the card expires within this many days "
                                                   "and before the next renewal")
    template: str = "card_expiring"


class FinalStep(Strict):
    after_days: int = Field(21, ge=0, description="days after the first failure")
    action: FinalAction = "cancel_at_period_end"
    pause_behavior: Literal["keep_as_draft", "mark_uncollectible", "void"] = "void"


class DunningSettings(Strict):
    enabled: bool = True
    connectors: list[str] | None = Field(None, description="Stripe connector instances (default: every one)")
    email_connector: str | None = Field(None, description="smtp instance (default: the first one)")
    retries: list[int] | Literal["stripe"] = Field(default_factory=lambda: [1, 3, 5, 7])
    preferred_weekdays: list[str] = Field(default_factory=list)
    soft_declines: list[str] = Field(default_factory=lambda: list(SOFT_DECLINES))
    hard_declines: list[str] = Field(default_factory=lambda: list(HARD_DECLINES))
    do_not_honor_after: int = Field(2, ge=0)
    emails: list[EmailStep] = Field(default_factory=lambda: [
        EmailStep(day=0, template="payment_failed_1"), EmailStep(day=3, template="payment_failed_2"),
        EmailStep(day=7, template="payment_failed_3"), EmailStep(day=14, template="payment_failed_final")])
    to: str = "billing_email"
    recovered_email: str | None = Field(None, description="e.g. payment_recovered, sent once when paid")
    high_value: HighValue | None = Field(default_factory=HighValue)
    card_expiry_notice: CardExpiryNotice = Field(default_factory=CardExpiryNotice)
    final_action: FinalStep = Field(default_factory=FinalStep)
    variables: dict[str, Any] = Field(default_factory=dict)

    @field_validator("retries")
    @classmethod
    def _ascending(cls, value: list[int] | str) -> list[int] | str:
        if isinstance(value, list) and (any(d < 0 for d in value) or value != sorted(set(value))):
            raise ValueError("retry days must be ascending, distinct and not negative")
        return value

    @field_validator("preferred_weekdays")
    @classmethod
    def _weekdays(cls, value: list[str]) -> list[str]:
        days = [d.strip().lower()[:3] for d in value]
        wrong = [d for d in days if d not in WEEKDAYS]
        if wrong:
            raise ValueError(f"unknown weekday(s) {', '.join(wrong)} (use mon..sun)")
        return days

    @model_validator(mode="after")
    def _sorted_emails(self) -> DunningSettings:
        self.emails = sorted(self.emails, key=lambda e: e.day)
        return self

    @property
    def hub_retries(self) -> list[int]:
        return [] if self.retries == "stripe" else list(self.retries)


def is_hard_decline(code: str | None, attempts: int, policy: DunningSettings) -> bool:
    """Hard: retrying the same card is pointless. Unknown codes are treated as soft (retried)."""
    if not code:
        return False
    if code == "do_not_honor":
        return attempts > policy.do_not_honor_after
    if code in policy.hard_declines:
        return True
    return False


def on_preferred_day(moment: datetime, weekdays: list[str]) -> datetime:
    """`moment`, moved forward to the next preferred weekday (unchanged without preferences)."""
    if not weekdays:
        return moment
    for shift in range(7):
        candidate = moment + timedelta(days=shift)
        if WEEKDAYS[candidate.weekday()] in weekdays:
            return candidate
    return moment


def retry_times(opened_at: datetime, policy: DunningSettings) -> list[datetime]:
    """When the hub retries a soft-declined invoice: the schedule, on preferred days."""
    return [on_preferred_day(opened_at + timedelta(days=day), policy.preferred_weekdays)
            for day in policy.hub_retries]
