"""Monthly recurring revenue: what a subscription's items are worth per month, in minor units.

An item's price (or, in older API versions, its plan) is billed every `interval_count`
`interval`s; a month is 12/365 of a year of days, 12/52 of a year of weeks. Quantities are
transformed (`transform_quantity`) and tiers applied as Stripe bills them; the sum over the
items is rounded once, half up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

# months per billing interval of one unit: an amount billed every `interval` is worth amount / months
MONTHS_PER_INTERVAL = {
    "day": Fraction(12, 365),
    "week": Fraction(12, 52),
    "month": Fraction(1),
    "year": Fraction(12),
}


def item_price(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item's price, from `price` (current) or `plan` (older versions) in the price's shape."""
    price = item.get("price")
    if isinstance(price, Mapping):
        return dict(price)
    plan = item.get("plan") or {}
    return {
        "id": plan.get("id"), "currency": plan.get("currency"), "unit_amount": plan.get("amount"),
        "unit_amount_decimal": plan.get("amount_decimal"), "billing_scheme": plan.get("billing_scheme"),
        "tiers": plan.get("tiers"), "tiers_mode": plan.get("tiers_mode"),
        "recurring": {"interval": plan.get("interval"), "interval_count": plan.get("interval_count"),
                      "usage_type": plan.get("usage_type")},
    }


def billed_quantity(quantity: int, transform: Mapping[str, Any] | None) -> int:
    """`transform_quantity` divides the quantity before billing (`round: up|down`)."""
    divide_by = (transform or {}).get("divide_by")
    if not divide_by:
        return quantity
    exact = Fraction(quantity, int(divide_by))
    return math.ceil(exact) if transform.get("round") == "up" else math.floor(exact)


def amount_per_interval(price: Mapping[str, Any], quantity: int) -> Fraction:
    """What one billing interval of `quantity` units costs, in minor units (tiers included)."""
    if price.get("billing_scheme") == "tiered":
        return tiered_amount(price.get("tiers") or [], price.get("tiers_mode"), quantity)
    if price.get("unit_amount_decimal") is not None:
        unit = Fraction(str(price["unit_amount_decimal"]))
    else:
        unit = Fraction(price.get("unit_amount") or 0)
    return unit * billed_quantity(quantity, price.get("transform_quantity"))


def tiered_amount(tiers: list[Mapping[str, Any]], mode: str | None, quantity: int) -> Fraction:
    def unit(tier: Mapping[str, Any]) -> Fraction:
        decimal = tier.get("unit_amount_decimal")
        return Fraction(str(decimal)) if decimal is not None else Fraction(tier.get("unit_amount") or 0)

    def flat(tier: Mapping[str, Any]) -> Fraction:
        decimal = tier.get("flat_amount_decimal")
        return Fraction(str(decimal)) if decimal is not None else Fraction(tier.get("flat_amount") or 0)

    total, below = Fraction(0), 0
    for tier in tiers:
        up_to = tier.get("up_to")
        top = quantity if up_to in (None, "inf") else min(quantity, int(up_to))
        if mode == "volume":
            if up_to in (None, "inf") or quantity <= int(up_to):
                return unit(tier) * quantity + flat(tier)
            continue
        if top > below:  # graduated: each tier prices its own slice
            total += unit(tier) * (top - below) + flat(tier)
        below = max(below, top)
        if below >= quantity:
            break
    return total


def monthly(amount: Fraction, interval: str | None, interval_count: int | None) -> Fraction:
    """An amount billed every `interval_count` `interval`s, as an amount per month."""
    months = MONTHS_PER_INTERVAL.get(interval or "month")
    if months is None:
        raise ValueError(f"unknown billing interval {interval!r}")
    return amount / (months * max(1, int(interval_count or 1)))


def item_quantity(item: Mapping[str, Any]) -> int:
    quantity = item.get("quantity")
    return 1 if quantity is None else int(quantity)


def monthly_recurring_revenue(items: list[Mapping[str, Any]]) -> int:
    """Sum over licensed recurring items of price x quantity per month, rounded to minor units.

    Metered prices are left out (their amount depends on usage not yet reported).
    """
    total = Fraction(0)
    for item in items:
        price = item_price(item)
        recurring = price.get("recurring") or {}
        if price.get("type") == "one_time" or recurring.get("usage_type") == "metered":
            continue
        amount = amount_per_interval(price, item_quantity(item))
        total += monthly(amount, recurring.get("interval"), recurring.get("interval_count"))
    return math.floor(total + Fraction(1, 2))
