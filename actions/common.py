"""What the built-in actions share: strict params and reading the customer context."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

# Who an email or ticket is for; anything else must be an email address.
RECIPIENTS = ("primary_contact", "owner", "billing_email")
# Subscription statuses that still bill (Stripe's names).
LIVE_SUBSCRIPTION = ("active", "trialing", "past_due", "unpaid")


class ActionParams(BaseModel):
    """Base of every action's params: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


def account_id(context: Mapping[str, Any], what: str) -> str:
    """The customer's account id in the chosen connector (the Zendesk org, the Salesforce Account)."""
    account = context.get("account")
    connector = (context.get("connector") or {}).get("name")
    if not account or not account.get("id"):
        raise ValueError(f"the customer has no {what} in connector {connector!r}")
    return str(account["id"])


def live_subscriptions(context: Mapping[str, Any], connector: str | None = None) -> list[Mapping[str, Any]]:
    """The customer's billing subscriptions, largest MRR first (optionally of one connector)."""
    return [s for s in context.get("subscriptions") or ()
            if s.get("status") in LIVE_SUBSCRIPTION and (connector is None or s.get("connector") == connector)]


def first_name(name: str | None) -> str | None:
    return name.split()[0] if name and name.split() else None


def person(who: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """`primary_contact`, `owner`, `billing_email` or an address -> {name, first_name, email, ...}."""
    customer = context.get("customer") or {}
    if who == "billing_email":
        email = context.get("billing_email")
        found: Mapping[str, Any] | None = {"name": customer.get("name"), "email": email} if email else None
    elif who in RECIPIENTS:
        found = context.get(who)
    elif "@" in who:
        found = {"name": None, "email": who}
    else:
        raise ValueError(f"unknown recipient {who!r}: use {', '.join(RECIPIENTS)} or an email address")
    if not found or not found.get("email"):
        raise ValueError(f"the customer has no {who.replace('_', ' ')} with an email address")
    return {**found, "first_name": found.get("first_name") or first_name(found.get("name"))}
