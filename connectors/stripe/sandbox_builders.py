"""Building sandbox objects with this API version's fields, and billing-period arithmetic.

A seed object's own fields win over the defaults. The builders take ownership of the dicts they
are given (callers pass fresh ones), so seeding 100k objects copies nothing twice.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import Any

from .sandbox_store import Store

DAY = 86400


def add_interval(anchor: int, interval: str, count: int = 1, times: int = 1) -> int:
    """`anchor` moved by `times` x `count` intervals; months keep the anchor's day (clamped)."""
    if interval in ("day", "week"):
        return anchor + (7 if interval == "week" else 1) * DAY * count * times
    start = datetime.fromtimestamp(anchor, UTC)
    months = start.month - 1 + count * times * (12 if interval == "year" else 1)
    year, month = start.year + months // 12, months % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def next_period_end(anchor: int, interval: str, count: int, after: int) -> int:
    """The first period boundary of a cycle anchored at `anchor` strictly later than `after`."""
    approx = {"day": DAY, "week": 7 * DAY, "month": 28 * DAY, "year": 365 * DAY}[interval] * count
    times = max(1, (after - anchor) // approx - 1)
    while add_interval(anchor, interval, count, times) <= after:
        times += 1
    return add_interval(anchor, interval, count, times)


def build_customer(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    customer = {
        "id": fields.get("id") or store.new_id("cus"), "object": "customer", "address": None, "balance": 0,
        "created": store.now(), "currency": None, "default_source": None, "delinquent": False,
        "description": None, "discount": None, "email": None,
        "invoice_prefix": store.new_id("x")[2:10].upper(),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                             "rendering_options": None},
        "livemode": False, "metadata": {}, "name": None, "next_invoice_sequence": 1, "phone": None,
        "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
    }
    customer.update(fields)
    return customer


def build_payment_method(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    card = {"brand": "visa", "checks": {"address_line1_check": None, "address_postal_code_check": None,
                                         "cvc_check": "pass"},
            "country": "US", "display_brand": "visa", "exp_month": 12, "exp_year": 2030, "fingerprint": None,
            "funding": "credit", "last4": "4242", "networks": {"available": ["visa"], "preferred": None},
            "three_d_secure_usage": {"supported": True}, "wallet": None, "regulated_status": "unregulated"}
    card.update(fields.get("card") or {})
    method = {
        "id": fields.get("id") or store.new_id("pm"), "object": "payment_method", "allow_redisplay": "unspecified",
        "billing_details": {"address": None, "email": None, "name": None, "phone": None, "tax_id": None},
        "created": store.now(), "customer": None, "livemode": False, "metadata": {}, "type": "card",
    }
    method.update({k: v for k, v in fields.items() if k != "card"})
    method["card"] = card
    return method


def build_coupon(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    coupon = {"id": fields.get("id") or store.new_id("x")[2:10], "object": "coupon", "amount_off": None,
              "created": store.now(), "currency": None, "duration": "once", "duration_in_months": None,
              "livemode": False, "max_redemptions": None, "metadata": {}, "name": None, "percent_off": None,
              "redeem_by": None, "times_redeemed": 0, "valid": True}
    coupon.update(fields)
    return coupon


def build_price(fields: dict[str, Any]) -> dict[str, Any]:
    price = {"id": fields.get("id"), "object": "price", "active": True, "billing_scheme": "per_unit",
             "created": fields.get("created", 0), "currency": "usd", "livemode": False, "lookup_key": None,
             "metadata": {}, "nickname": None, "product": None, "tax_behavior": "unspecified", "tiers_mode": None,
             "transform_quantity": None, "type": "recurring", "unit_amount": 0, "unit_amount_decimal": None}
    price.update(fields)
    price["recurring"] = {"interval": "month", "interval_count": 1, "meter": None, "usage_type": "licensed",
                          "trial_period_days": None, **(fields.get("recurring") or {})}
    if price["unit_amount_decimal"] is None and price["unit_amount"] is not None:
        price["unit_amount_decimal"] = str(price["unit_amount"])
    return price


def build_item(store: Store, subscription_id: str, price: dict[str, Any], quantity: int,
               period: tuple[int, int], created: int, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    item = {"id": store.new_id("si"), "object": "subscription_item", "created": created, "discounts": [],
            "metadata": {}, "price": price, "quantity": quantity, "subscription": subscription_id,
            "tax_rates": [], "current_period_start": period[0], "current_period_end": period[1],
            "billing_thresholds": None}
    item.update({k: v for k, v in (fields or {}).items() if k not in ("price", "quantity")})
    return item


def build_subscription(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    subscription = {
        "id": fields.get("id") or store.new_id("sub"), "object": "subscription", "application": None,
        "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
        "billing_cycle_anchor": None, "billing_mode": {"type": "classic"}, "cancel_at": None,
        "cancel_at_period_end": False, "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically", "created": store.now(), "currency": "usd",
        "customer": None, "days_until_due": None, "default_payment_method": None, "description": None,
        "discounts": [], "ended_at": None, "latest_invoice": None, "livemode": False, "metadata": {},
        "pause_collection": None, "pending_update": None, "schedule": None, "start_date": None,
        "status": "active", "test_clock": None, "trial_end": None, "trial_start": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
    }
    subscription.update(fields)
    subscription["billing_cycle_anchor"] = subscription["billing_cycle_anchor"] or subscription["created"]
    subscription["start_date"] = subscription["start_date"] or subscription["created"]
    return subscription
