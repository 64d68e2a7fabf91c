"""Pure functions: Stripe API JSON -> canonical `Record`s.

    customer        -> account         (links from metadata, domain of the email)
    subscription    -> subscription    (MRR normalised to one month over every item)
    invoice         -> invoice
    charge          -> charge          (decline code from the outcome)
    payment method  -> payment_method  (a customer's default card, expanded on the customer)

Both API shapes are understood: this version's (`current_period_*` on subscription items, the
invoice's subscription under `parent.subscription_details`) and older ones (`current_period_*`,
`plan` and `quantity` on the subscription, a top-level `subscription` on invoices and `invoice`
on charges). A reference may be an id or an expanded object. Timestamps become
`2024-05-01T12:00:00Z`; money stays in integer minor units.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hub import Kind, Record

from .mrr import item_price, item_quantity, monthly_recurring_revenue

# metadata keys that name the same company in another system -> canonical link names
LINK_KEYS = {
    "salesforce_account_id": "salesforce_account_id",
    "salesforce_id": "salesforce_account_id",
    "sfdc_account_id": "salesforce_account_id",
    "zendesk_organization_id": "zendesk_organization_id",
    "zendesk_org_id": "zendesk_organization_id",
}
_SF_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

OBJECT_KINDS = {
    "customer": Kind.ACCOUNT,
    "subscription": Kind.SUBSCRIPTION,
    "invoice": Kind.INVOICE,
    "charge": Kind.CHARGE,
    "payment_method": Kind.PAYMENT_METHOD,
}


# Formatted timestamps by unix second: a customer's invoices share their period bounds, so a
# page formats each distinct moment about six times (measured: 11k distinct in 70k calls).
_ISO_TEXT: dict[int, str] = {}
ISO_CACHE_SIZE = 1 << 14   # emptied when full: a bound on memory (about 2 MB), not an eviction policy


def iso(timestamp: Any) -> str | None:
    """Unix seconds -> `2024-05-01T12:00:00Z` (None stays None)."""
    if type(timestamp) is int:   # the usual case, first (a bool is not exactly an int)
        text = _ISO_TEXT.get(timestamp)
        if text is None:
            if len(_ISO_TEXT) >= ISO_CACHE_SIZE:
                _ISO_TEXT.clear()
            text = _ISO_TEXT[timestamp] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
        return text
    if timestamp is None or isinstance(timestamp, bool):
        return None
    # what datetime.strftime does underneath, without building the datetime: a third of the time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(timestamp)))


def moment(timestamp: Any) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(int(timestamp), UTC)


def ref(value: Any) -> str | None:
    """The id of a reference that may be expanded (`"cus_1"` or `{"id": "cus_1", ...}`)."""
    # exact-type checks first: isinstance against the Mapping ABC triples the cost of a call
    if type(value) is str:
        return value or None
    if value is None:
        return None
    if type(value) is dict or isinstance(value, Mapping):
        return value.get("id")
    return value if isinstance(value, str) and value else None


def dig(obj: Any, *path: str) -> Any:
    for part in path:
        if type(obj) is not dict and not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def is_deleted(obj: Mapping[str, Any]) -> bool:
    return bool(obj.get("deleted"))


def tombstone(kind: str, external_id: str, updated_at: datetime | None = None) -> Record:
    return Record(kind, external_id, {}, deleted=True, updated_at=updated_at)


# --- customers -----------------------------------------------------------------------------

def salesforce_id(value: str) -> str:
    """A 15-character Salesforce id gets its 3-character checksum suffix (18 is the stable form)."""
    if len(value) != 15 or not value.isalnum():
        return value
    return value + "".join(
        _SF_SUFFIX[sum(1 << i for i, char in enumerate(value[start:start + 5]) if "A" <= char <= "Z")]
        for start in (0, 5, 10))


def links_from_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    links: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        name = LINK_KEYS.get(key.strip().lower())
        if name and isinstance(value, str | int) and str(value).strip():
            text = str(value).strip()
            links[name] = salesforce_id(text) if name == "salesforce_account_id" else text
    return links


def email_domain(email: Any) -> str | None:
    if not isinstance(email, str) or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower() or None


def map_customer(customer: Mapping[str, Any], updated_at: datetime | None = None) -> Record:
    if is_deleted(customer):
        return tombstone(Kind.ACCOUNT, customer["id"], updated_at)
    email = customer.get("email")
    domain = email_domain(email)
    fields = {
        "name": customer.get("name") or email or customer["id"],
        "email": email,
        "domains": [domain] if domain else [],
        "links": links_from_metadata(customer.get("metadata")),
        "created_at": iso(customer.get("created")),
        "delinquent": bool(customer.get("delinquent")),
        "currency": customer.get("currency"),
        "balance": customer.get("balance"),
        "default_payment_method": ref(dig(customer, "invoice_settings", "default_payment_method")),
        "metadata": dict(customer.get("metadata") or {}),
    }
    return Record(Kind.ACCOUNT, customer["id"], fields, updated_at=updated_at)


# --- payment methods -----------------------------------------------------------------------

def map_payment_method(method: Mapping[str, Any], *, customer_id: str | None = None, default: bool = False,
                       updated_at: datetime | None = None) -> Record:
    card = method.get("card") or {}
    fields = {
        "account_id": customer_id or ref(method.get("customer")),
        "type": method.get("type"),
        "brand": card.get("brand"),
        "last4": card.get("last4"),
        "exp_month": card.get("exp_month"),
        "exp_year": card.get("exp_year"),
        "funding": card.get("funding"),
        "country": card.get("country"),
        "default": default,
        "created_at": iso(method.get("created")),
    }
    return Record(Kind.PAYMENT_METHOD, method["id"], fields, updated_at=updated_at)


def map_default_payment_method(customer: Mapping[str, Any], updated_at: datetime | None = None) -> Record | None:
    """The customer's default payment method, when it is expanded on the customer."""
    method = dig(customer, "invoice_settings", "default_payment_method")
    if not isinstance(method, Mapping) or not method.get("id"):
        return None
    return map_payment_method(method, customer_id=customer["id"], default=True, updated_at=updated_at)


# --- subscriptions -------------------------------------------------------------------------

def subscription_items(subscription: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = dig(subscription, "items", "data")
    if items:
        return list(items)
    if subscription.get("plan"):  # very old versions: one plan on the subscription itself
        return [{"plan": subscription["plan"], "quantity": subscription.get("quantity", 1)}]
    return []


def _current_period(subscription: Mapping[str, Any], items: list[Mapping[str, Any]]) -> tuple[Any, Any]:
    periods = [(i["current_period_end"], i.get("current_period_start")) for i in items
               if i.get("current_period_end") is not None]
    if periods:  # this API version: per item; the subscription renews at the earliest end
        end, start = min(periods, key=lambda p: p[0])
        return start, end
    return subscription.get("current_period_start"), subscription.get("current_period_end")


def map_subscription(subscription: Mapping[str, Any], items: list[Mapping[str, Any]] | None = None,
                     updated_at: datetime | None = None) -> Record:
    """`items` replaces `items.data` when the embedded list was truncated (`has_more`)."""
    items = list(items) if items is not None else subscription_items(subscription)
    first = item_price(items[0]) if items else {}
    recurring = first.get("recurring") or {}
    period_start, period_end = _current_period(subscription, items)
    pause = subscription.get("pause_collection") or None
    cancellation = subscription.get("cancellation_details") or {}
    discounts = list(subscription.get("discounts") or [])
    if subscription.get("discount"):  # older versions: one discount object
        discounts.append(subscription["discount"])
    fields = {
        "account_id": ref(subscription.get("customer")),
        "status": subscription.get("status"),
        "plan": first.get("id"),
        "prices": [item_price(i).get("id") for i in items],
        "quantity": sum(item_quantity(i) for i in items),
        "interval": recurring.get("interval"),
        "interval_count": (recurring.get("interval_count") or 1) if items else None,
        "mrr": monthly_recurring_revenue(items),
        "currency": subscription.get("currency") or first.get("currency"),
        "discounts": [ref(d) for d in discounts if ref(d)],
        "coupons": [c for c in (ref(dig(d, "source", "coupon")) or ref(dig(d, "coupon"))
                                for d in discounts if isinstance(d, Mapping)) if c],
        "trial_start": iso(subscription.get("trial_start")),
        "trial_end": iso(subscription.get("trial_end")),
        "cancel_at_period_end": bool(subscription.get("cancel_at_period_end")),
        "cancel_at": iso(subscription.get("cancel_at")),
        "canceled_at": iso(subscription.get("canceled_at")),
        "ended_at": iso(subscription.get("ended_at")),
        "cancellation_reason": cancellation.get("reason"),
        "cancellation_feedback": cancellation.get("feedback"),
        "cancellation_comment": cancellation.get("comment"),
        "paused": pause is not None or subscription.get("status") == "paused",
        "pause_behavior": (pause or {}).get("behavior"),
        "pause_resumes_at": iso((pause or {}).get("resumes_at")),
        "current_period_start": iso(period_start),
        "current_period_end": iso(period_end),
        "collection_method": subscription.get("collection_method"),
        "latest_invoice": ref(subscription.get("latest_invoice")),
        "created_at": iso(subscription.get("created")),
        "start_date": iso(subscription.get("start_date")),
        "metadata": dict(subscription.get("metadata") or {}),
    }
    return Record(Kind.SUBSCRIPTION, subscription["id"], fields, updated_at=updated_at)


# --- invoices and charges ------------------------------------------------------------------

def invoice_subscription(invoice: Mapping[str, Any]) -> str | None:
    return ref(dig(invoice, "parent", "subscription_details", "subscription")) or ref(invoice.get("subscription"))


def map_invoice(invoice: Mapping[str, Any], updated_at: datetime | None = None) -> Record:
    if is_deleted(invoice):
        return tombstone(Kind.INVOICE, invoice["id"], updated_at)
    fields = {
        "account_id": ref(invoice.get("customer")),
        "subscription_id": invoice_subscription(invoice),
        "status": invoice.get("status"),
        "number": invoice.get("number"),
        "amount_due": invoice.get("amount_due"),
        "amount_paid": invoice.get("amount_paid"),
        "amount_remaining": invoice.get("amount_remaining"),
        "total": invoice.get("total"),
        "currency": invoice.get("currency"),
        "attempt_count": invoice.get("attempt_count"),
        "attempted": bool(invoice.get("attempted")),
        "next_payment_attempt": iso(invoice.get("next_payment_attempt")),
        "hosted_invoice_url": invoice.get("hosted_invoice_url"),
        "billing_reason": invoice.get("billing_reason"),
        "collection_method": invoice.get("collection_method"),
        "created_at": iso(invoice.get("created")),
        "due_date": iso(invoice.get("due_date")),
        "period_start": iso(invoice.get("period_start")),
        "period_end": iso(invoice.get("period_end")),
        "paid_at": iso(dig(invoice, "status_transitions", "paid_at")),
        "metadata": dict(invoice.get("metadata") or {}),
    }
    return Record(Kind.INVOICE, invoice["id"], fields, updated_at=updated_at)


def decline_code(charge: Mapping[str, Any]) -> str | None:
    """Why the issuer said no: `outcome.reason` of a declined charge, else its `failure_code`."""
    if charge.get("status") != "failed":
        return None
    outcome = charge.get("outcome") or {}
    if outcome.get("type") in ("issuer_declined", "blocked", "invalid") and outcome.get("reason"):
        return outcome["reason"]
    return charge.get("failure_code")


def map_charge(charge: Mapping[str, Any], updated_at: datetime | None = None) -> Record:
    outcome = charge.get("outcome") or {}
    fields = {
        "account_id": ref(charge.get("customer")),
        "invoice_id": ref(charge.get("invoice")),
        "payment_intent": ref(charge.get("payment_intent")),
        "payment_method": ref(charge.get("payment_method")),
        "status": charge.get("status"),
        "paid": bool(charge.get("paid")),
        "amount": charge.get("amount"),
        "amount_refunded": charge.get("amount_refunded"),
        "currency": charge.get("currency"),
        "failure_code": charge.get("failure_code"),
        "failure_message": charge.get("failure_message"),
        "decline_code": decline_code(charge),
        "outcome_type": outcome.get("type"),
        "outcome_reason": outcome.get("reason"),
        "advice_code": outcome.get("advice_code"),
        "network_status": outcome.get("network_status"),
        "risk_level": outcome.get("risk_level"),
        "created_at": iso(charge.get("created")),
    }
    return Record(Kind.CHARGE, charge["id"], fields, updated_at=updated_at)


# --- events --------------------------------------------------------------------------------

def map_event_object(event: Mapping[str, Any]) -> Record | None:
    """The record an event says its object now is; None for events about other things.

    `*.deleted` events are tombstones, except `customer.subscription.deleted`: Stripe sends it
    when a subscription is *canceled*, and the subscription stays readable (`status=all` lists
    it), so it is mapped as the canceled subscription it is.
    """
    obj = dig(event, "data", "object")
    if not isinstance(obj, Mapping) or not obj.get("id"):
        return None  # e.g. invoice.upcoming describes an invoice that does not exist yet
    kind = OBJECT_KINDS.get(obj.get("object", ""))
    if kind is None:
        return None
    when = moment(event.get("created"))
    if str(event.get("type", "")).endswith(".deleted") and kind != Kind.SUBSCRIPTION:
        return tombstone(kind, obj["id"], when)
    mapper = {Kind.ACCOUNT: map_customer, Kind.SUBSCRIPTION: map_subscription, Kind.INVOICE: map_invoice,
              Kind.CHARGE: map_charge}.get(kind)
    if mapper is None:
        return map_payment_method(obj, updated_at=when)
    return mapper(obj, updated_at=when)
