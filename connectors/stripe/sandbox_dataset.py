"""Seeding the sandbox from a dataset of API-shaped objects, and a small built-in demo world.

The format is documented in `connectors/stripe/sandbox.py`. Seed objects keep every field they
have; missing ones get this API version's defaults, so a dataset can be terse:

    {"customers": [{"id": "cus_A", "email": "ops@acme.io", "created": 1714000000}],
     "payment_methods": [{"id": "pm_A", "customer": "cus_A", "card": {"last4": "0002"}}],
     "prices": [{"id": "price_pro", "unit_amount": 9900, "recurring": {"interval": "month"}}],
     "subscriptions": [{"id": "sub_A", "customer": "cus_A", "items": [{"price": "price_pro", "quantity": 3}]}],
     "card_scenarios": {"cus_A": "insufficient_funds"}}
"""

from __future__ import annotations

import copy
import gc
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .sandbox_builders import (
    DAY,
    add_interval,
    build_coupon,
    build_customer,
    build_item,
    build_payment_method,
    build_price,
    build_subscription,
    next_period_end,
)
from .sandbox_cards import SCENARIOS
from .sandbox_store import Store

INVOICE_DEFAULTS: dict[str, Any] = {
    "object": "invoice", "account_country": "US", "amount_paid": 0, "attempt_count": 0, "attempted": False,
    "auto_advance": True, "billing_reason": "subscription_cycle", "collection_method": "charge_automatically",
    "currency": "usd", "default_payment_method": None, "discounts": [], "due_date": None,
    "hosted_invoice_url": None, "last_finalization_error": None, "livemode": False, "metadata": {},
    "next_payment_attempt": None, "number": None, "parent": None, "status": "draft",
    "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None, "paid_at": None, "voided_at": None},
}
CHARGE_DEFAULTS: dict[str, Any] = {
    "object": "charge", "amount_refunded": 0, "captured": True, "currency": "usd", "disputed": False,
    "failure_code": None, "failure_message": None, "livemode": False, "metadata": {}, "outcome": None,
    "paid": True, "payment_intent": None, "payment_method": None, "refunded": False, "status": "succeeded",
}


def load(dataset: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A private copy of the dataset (the sandbox changes its objects in place)."""
    if isinstance(dataset, str | Path):
        return json.loads(Path(dataset).read_text())
    return json.loads(json.dumps(dataset))


def seed(store: Store, dataset: Mapping[str, Any]) -> None:
    """Put every object of `dataset` into `store` (no events, except the dataset's own)."""
    paused = gc.isenabled()
    gc.disable()  # a million fresh dicts would trigger collections that find nothing to free
    try:
        _seed(store, dataset)
    finally:
        if paused:
            gc.enable()


def _seed(store: Store, dataset: Mapping[str, Any]) -> None:
    now = store.now()
    for price in dataset.get("prices", ()):
        store.add(build_price(price))
    for coupon in dataset.get("coupons", ()):
        store.add(build_coupon(store, coupon))
    store.add_sorted(build_customer(store, c) for c in dataset.get("customers", ()))
    store.add_sorted(build_payment_method(store, m) for m in dataset.get("payment_methods", ()))
    for discount in dataset.get("discounts", ()):
        store.add({"object": "discount", **discount})
    store.add_sorted(_subscription(store, s, now) for s in dataset.get("subscriptions", ()))
    store.add_sorted(_invoice(i) for i in dataset.get("invoices", ()))
    store.add_sorted({**copy.deepcopy(CHARGE_DEFAULTS), **c} for c in dataset.get("charges", ()))
    store.add_sorted(dataset.get("events", ()))
    for customer_id, scenario in (dataset.get("card_scenarios") or {}).items():
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown card scenario {scenario!r} for {customer_id} (known: {', '.join(SCENARIOS)})")
        store.card_scenarios[customer_id] = scenario


def _subscription(store: Store, fields: Mapping[str, Any], now: int) -> dict[str, Any]:
    raw_items = fields.get("items") or []
    if isinstance(raw_items, Mapping):
        raw_items = raw_items.get("data") or []
    subscription = build_subscription(store, {k: v for k, v in fields.items() if k != "items"})
    anchor = int(subscription["billing_cycle_anchor"])
    until = int(subscription.get("ended_at") or now)
    items = []
    for raw in raw_items:
        price = raw["price"]
        # items of one price share its (never changed) object
        price = (store.get(price, "price") or build_price({"id": price})) if isinstance(price, str) \
            else build_price(price)
        recurring = price["recurring"]
        count = int(recurring.get("interval_count") or 1)
        end = raw.get("current_period_end") or next_period_end(anchor, recurring["interval"], count, until)
        start = raw.get("current_period_start") or max(anchor, add_interval(end, recurring["interval"], -count))
        items.append(build_item(store, subscription["id"], price, int(raw.get("quantity", 1)), (start, end),
                                int(raw.get("created") or subscription["created"]), dict(raw)))
    subscription["items"] = {"object": "list", "data": items, "has_more": False, "total_count": len(items),
                             "url": f"/v1/subscription_items?subscription={subscription['id']}"}
    if not fields.get("currency") and items:
        subscription["currency"] = items[0]["price"].get("currency", "usd")
    return subscription


def _invoice(fields: Mapping[str, Any]) -> dict[str, Any]:
    invoice = {**copy.deepcopy(INVOICE_DEFAULTS), **fields}
    invoice.setdefault("amount_due", invoice.get("total", 0))
    invoice.setdefault("total", invoice["amount_due"])
    invoice.setdefault("subtotal", invoice["total"])
    invoice.setdefault("amount_remaining", invoice["amount_due"] - invoice["amount_paid"])
    invoice.setdefault("lines", {"object": "list", "data": [], "has_more": False,
                                 "url": f"/v1/invoices/{invoice['id']}/lines"})
    return invoice


# --- a built-in world ------------------------------------------------------------------------

COMPANIES = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell", "cyberdyne",
             "soylent", "vandelay", "dunder", "oscorp", "gringotts", "monarch"]
PRICES = [
    {"id": "price_starter_monthly", "nickname": "Starter", "unit_amount": 2900, "product": "prod_starter",
     "recurring": {"interval": "month", "interval_count": 1}},
    {"id": "price_pro_monthly", "nickname": "Pro", "unit_amount": 9900, "product": "prod_pro",
     "recurring": {"interval": "month", "interval_count": 1}},
    {"id": "price_pro_yearly", "nickname": "Pro (yearly)", "unit_amount": 99000, "product": "prod_pro",
     "recurring": {"interval": "year", "interval_count": 1}},
    {"id": "price_seat_weekly", "nickname": "Seat (weekly)", "unit_amount": 700, "product": "prod_seat",
     "recurring": {"interval": "week", "interval_count": 2}},
]
COUPONS = [{"id": "WINBACK20", "name": "20% off for 3 months", "percent_off": 20, "duration": "repeating",
            "duration_in_months": 3},
           {"id": "SAVE10", "name": "$10 off once", "amount_off": 1000, "currency": "usd", "duration": "once"}]


def demo_dataset(customers: int = 12, *, now: int, seed: int = 7) -> dict[str, Any]:
    """A small, deterministic account: one customer per company, each with a card and (mostly) a
    subscription; every 6th customer's card has a decline scenario. `customers` may be large
    (100k) for benchmarks."""
    rng = random.Random(seed)
    data: dict[str, Any] = {"prices": PRICES, "coupons": COUPONS, "customers": [], "payment_methods": [],
                            "subscriptions": [], "card_scenarios": {}}
    scenarios = ["insufficient_funds", "expired_card", "insufficient_funds", "do_not_honor"]
    for n in range(customers):
        company = f"{COMPANIES[n % len(COMPANIES)]}{n // len(COMPANIES) or ''}"
        created = now - rng.randint(40, 700) * DAY - n
        customer_id, method_id = f"cus_demo{n:07d}", f"pm_demo{n:07d}"
        metadata = {"salesforce_account_id": f"001demo{n:08d}"} if n % 3 == 0 else {}
        if n % 4 == 1:
            metadata["zendesk_organization_id"] = str(360000000 + n)
        data["customers"].append({
            "id": customer_id, "email": f"billing@{company}.example", "name": company.title(), "created": created,
            "currency": "usd", "metadata": metadata,
            "invoice_settings": {"default_payment_method": method_id, "custom_fields": None, "footer": None,
                                 "rendering_options": None}})
        data["payment_methods"].append({"id": method_id, "customer": customer_id, "created": created,
                                        "card": {"brand": ["visa", "mastercard", "amex"][n % 3],
                                                 "last4": f"{4242 + n % 5000:04d}", "exp_month": 1 + n % 12,
                                                 "exp_year": 2026 + n % 5}})
        if n % 6 == 5:
            data["card_scenarios"][customer_id] = scenarios[(n // 6) % len(scenarios)]
        if n % 10 == 9:
            continue  # a customer without a subscription
        price = PRICES[n % len(PRICES)]
        subscription: dict[str, Any] = {"id": f"sub_demo{n:07d}", "customer": customer_id, "created": created,
                                        "items": [{"price": price["id"], "quantity": 1 + n % 5}]}
        if n % 11 == 7:
            subscription.update(status="canceled", canceled_at=now - 20 * DAY, ended_at=now - 20 * DAY,
                                cancellation_details={"reason": "cancellation_requested",
                                                      "feedback": "too_expensive", "comment": None})
        elif customer_id in data["card_scenarios"]:
            _past_due(data, n, subscription, price, data["card_scenarios"][customer_id], now)
        data["subscriptions"].append(subscription)
    return data


def _past_due(data: dict[str, Any], n: int, subscription: dict[str, Any], price: Mapping[str, Any],
              scenario: str, now: int) -> None:
    """The renewal a day ago was declined: an open invoice, a failed charge, a retry in two days."""
    decline = SCENARIOS[scenario]
    assert decline is not None
    customer_id, amount = subscription["customer"], price["unit_amount"] * subscription["items"][0]["quantity"]
    subscription["status"] = "past_due"
    data["customers"][-1]["delinquent"] = True
    data.setdefault("invoices", []).append({
        "id": f"in_demo{n:07d}", "customer": customer_id, "status": "open", "amount_due": amount,
        "attempt_count": 1, "attempted": True, "next_payment_attempt": now + 2 * DAY, "created": now - DAY,
        "period_start": now - 31 * DAY, "period_end": now - DAY, "number": f"DEMO-{n:05d}",
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_sandbox/test_demo{n:07d}",
        "parent": {"type": "subscription_details", "quote_details": None,
                   "subscription_details": {"subscription": subscription["id"], "metadata": {}}},
        "status_transitions": {"finalized_at": now - DAY, "marked_uncollectible_at": None, "paid_at": None,
                               "voided_at": None}})
    data.setdefault("charges", []).append({
        "id": f"ch_demo{n:07d}", "customer": customer_id, "amount": amount, "status": "failed", "paid": False,
        "captured": False, "created": now - DAY, "failure_code": decline.code, "failure_message": decline.message,
        "payment_method": f"pm_demo{n:07d}", "payment_intent": f"pi_demo{n:07d}",
        "outcome": {"type": "issuer_declined", "reason": decline.decline_code, "advice_code": decline.advice_code,
                    "network_status": "declined_by_network", "network_decline_code": decline.network_decline_code,
                    "risk_level": "normal", "seller_message": "The bank did not return any further details "
                    "with this decline."}})
