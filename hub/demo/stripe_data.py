"""The demo world as a Stripe sandbox dataset (API-shaped objects, API version 2026-06-24.dahlia).

    dataset = stripe_dataset(world)
    # {"prices": [...], "coupons": [...], "customers": [...], "payment_methods": [...],
    #  "discounts": [...], "subscriptions": [...], "invoices": [...], "charges": [...],
    #  "card_scenarios": {"cus_...": "insufficient_funds" | "ok" | ...}}

The shape is the one `connectors/stripe/sandbox.py` documents: timestamps in Unix seconds, amounts
in cents, subscription items carrying `current_period_*`, the invoice's subscription under
`parent.subscription_details`. `card_scenarios` says what the customer's card does on the next
payment attempt: soft declines sometimes recover (`ok`), hard ones (expired, lost, stolen,
fraudulent) keep failing until the card is replaced. `iter_stripe(world)` yields the objects one
company at a time, for worlds too big to hold as one dict.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from hub.demo import vocabulary as V
from hub.demo.billing import COUPONS, Attempt, InvoicePlan, SubscriptionPlan, billing_history, unit_amount
from hub.demo.world import DAY, PLANS, Company, Fate, World, token

HARD_DECLINES = {"expired_card", "lost_card", "stolen_card", "fraudulent"}
# decline code -> (failure_code, failure_message, advice_code), as Stripe reports them
DECLINES = {
    "insufficient_funds": ("card_declined", "Your card has insufficient funds.", "try_again_later"),
    "expired_card": ("expired_card", "Your card has expired.", "confirm_card_data"),
    "do_not_honor": ("card_declined", "Your card was declined.", None),
    "generic_decline": ("card_declined", "Your card was declined.", None),
    "lost_card": ("card_declined", "Your card was declined.", "do_not_try_again"),
    "stolen_card": ("card_declined", "Your card was declined.", "do_not_try_again"),
    "fraudulent": ("card_declined", "Your card was declined.", "do_not_try_again"),
}
COUPON_NAMES = {"WELCOME20": "20% off your first invoice", "ANNUAL10": "10% off annual plans",
                "RETAIN25": "25% off for 3 months"}
LINK_KEYS = ("salesforce_account_id", "salesforce_account_id", "salesforce_account_id", "sfdc_account_id")


# --- ids (truth.py names the same objects) -----------------------------------------------------

def customer_id(world: World, company: Company) -> str:
    return f"cus_{token(world.seed, 'cus', company.index)}"


def subscription_id(world: World, company: Company, number: int) -> str:
    return f"sub_1{token(world.seed, 'sub', company.index, number, length=23)}"


def invoice_id(world: World, company: Company, number: int, period_start: int) -> str:
    return f"in_1{token(world.seed, 'in', company.index, number, period_start, length=23)}"


def price_id(world: World, plan: str, interval: str) -> str:
    return f"price_1{token(world.seed, 'price', plan, interval, length=23)}"


def card_scenario(world: World, company: Company) -> str | None:
    """What the customer's card does on the next attempt (None: it pays, the sandbox default)."""
    if company.failing is None:
        return None
    if company.fate is Fate.INVOLUNTARY or company.failing in HARD_DECLINES:
        return company.failing
    return "ok" if world.rng(company, "card").random() < 0.5 else company.failing


# --- the dataset -----------------------------------------------------------------------------

COLLECTIONS = ("prices", "coupons", "customers", "payment_methods", "discounts", "subscriptions", "invoices", "charges")


def stripe_dataset(world: World) -> dict[str, Any]:
    data: dict[str, Any] = {name: [] for name in COLLECTIONS}
    data["card_scenarios"] = {}
    for collection, obj in iter_stripe(world):
        if collection == "card_scenarios":
            data["card_scenarios"][obj["customer"]] = obj["scenario"]
        else:
            data[collection].append(obj)
    return data


def iter_stripe(world: World) -> Iterator[tuple[str, dict[str, Any]]]:
    """`(collection, object)` one company at a time (card scenarios as `{"customer", "scenario"}`)."""
    for price in _prices(world):
        yield "prices", price
    for coupon in _coupons():
        yield "coupons", coupon
    for company in world.companies:
        part: dict[str, Any] = {name: [] for name in COLLECTIONS[2:]}
        part["card_scenarios"] = {}
        _export_company(world, company, part)
        for collection in COLLECTIONS[2:]:
            for obj in part[collection]:
                yield collection, obj
        for customer, scenario in part["card_scenarios"].items():
            yield "card_scenarios", {"customer": customer, "scenario": scenario}


def _prices(world: World) -> list[dict[str, Any]]:
    return [{"id": price_id(world, plan.key, interval), "object": "price", "product": f"prod_{token(world.seed, 'prod', plan.key)}",
             "nickname": f"{plan.name} ({'annual' if interval == 'year' else 'monthly'})",
             "lookup_key": f"{plan.key}_{interval}ly", "unit_amount": unit_amount(plan.key, interval),
             "currency": "usd", "created": world.start - 900 * DAY,
             "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"}}
            for plan in PLANS.values() for interval in ("month", "year")]


def _coupons() -> list[dict[str, Any]]:
    return [{"id": key, "object": "coupon", "name": COUPON_NAMES[key], "percent_off": percent, "duration": duration,
             "duration_in_months": months, "valid": True} for key, (percent, duration, months) in COUPONS.items()]


def _export_company(world: World, company: Company, data: dict[str, Any]) -> None:
    rng = world.rng(company, "stripe")
    cus, pm = customer_id(world, company), f"pm_1{token(world.seed, 'pm', company.index, length=23)}"
    metadata = {rng.choice(LINK_KEYS): company.stripe_link} if company.stripe_link else {}
    name = company.name
    if company.free_mail_payer:   # someone paying privately: Stripe knows a person, not the company
        local = company.stripe_email.split("@")[0].rstrip("0123456789")
        name = " ".join(part.capitalize() for part in local.split("."))
    data["customers"].append({
        "id": cus, "object": "customer", "email": company.stripe_email, "name": name,
        "created": company.created - rng.randrange(60, 3600), "currency": "usd", "metadata": metadata,
        "delinquent": company.failing is not None, "invoice_prefix": token(world.seed, "prefix", company.index, length=8).upper(),
        "invoice_settings": {"default_payment_method": pm, "custom_fields": None, "footer": None,
                             "rendering_options": None},
        "address": {"country": company.country, "city": None, "line1": None, "line2": None,
                    "postal_code": None, "state": None}})
    this_year = world.now_datetime.year
    exp_year = this_year - 1 if company.failing == "expired_card" else this_year + rng.randint(1, 4)
    data["payment_methods"].append({
        "id": pm, "object": "payment_method", "customer": cus, "created": company.created - 30, "type": "card",
        "billing_details": {"email": company.stripe_email, "name": name, "address": None, "phone": None,
                            "tax_id": None},
        "card": {"brand": rng.choices(("visa", "mastercard", "amex"), weights=(6, 3, 1))[0],
                 "last4": f"{rng.randrange(10_000):04d}", "exp_month": rng.randint(1, 12), "exp_year": exp_year,
                 "funding": rng.choice(("credit", "credit", "debit")), "country": company.country}})
    scenario = card_scenario(world, company)
    if scenario is not None:
        data["card_scenarios"][cus] = scenario
    numbers = itertools.count(1)
    for plan in billing_history(world, company):
        _export_subscription(world, company, plan, cus, pm, data, numbers)


def _export_subscription(world: World, company: Company, plan: SubscriptionPlan, cus: str, pm: str,
                         data: dict[str, Any], numbers: Iterator[int]) -> None:
    sub = subscription_id(world, company, plan.number)
    discount_id = f"di_1{token(world.seed, 'di', company.index, plan.number, length=23)}"
    discounts = []
    if plan.coupon and COUPONS[plan.coupon][1] != "once":
        start = plan.created if COUPONS[plan.coupon][1] == "forever" else world.now - 60 * DAY
        end = None if COUPONS[plan.coupon][1] == "forever" else start + 90 * DAY
        if plan.ended_at is None and (end is None or end > world.now):
            discount = {"id": discount_id, "object": "discount", "customer": cus, "subscription": sub, "start": start, "end": end,
                        "source": {"coupon": plan.coupon, "type": "coupon"}, "checkout_session": None,
                        "invoice": None, "invoice_item": None, "promotion_code": None, "subscription_item": None}
            data["discounts"].append(discount)
            discounts.append(discount["id"])
    invoices = [_invoice(world, company, plan, invoice, (cus, sub, pm, discount_id), next(numbers), data)
                for invoice in plan.invoices]
    pause = {"behavior": "void", "resumes_at": plan.pause_resumes_at} if plan.pause_resumes_at else None
    data["subscriptions"].append({
        "id": sub, "object": "subscription", "customer": cus, "status": plan.status, "created": plan.created,
        "start_date": plan.created, "billing_cycle_anchor": plan.created, "currency": "usd",
        "collection_method": "charge_automatically", "cancel_at": plan.cancel_at,
        "cancel_at_period_end": plan.cancel_at_period_end, "canceled_at": plan.canceled_at,
        "ended_at": plan.ended_at, "pause_collection": pause, "discounts": discounts,
        "cancellation_details": {"reason": plan.cancellation_reason, "feedback": plan.feedback,
                                 "comment": V.CANCELLATION_COMMENTS.get(plan.feedback or "") if plan.feedback else None},
        "latest_invoice": invoices[-1] if invoices else None, "default_payment_method": None,
        "metadata": {"plan_tier": plan.plan},
        "items": [{"id": f"si_{token(world.seed, 'si', company.index, plan.number)}", "object": "subscription_item",
                   "price": price_id(world, plan.plan, plan.interval), "quantity": plan.quantity,
                   "created": plan.created, "current_period_start": plan.current_period_start,
                   "current_period_end": plan.current_period_end}]})


def _invoice(world: World, company: Company, plan: SubscriptionPlan, invoice: InvoicePlan,
             refs: tuple[str, str, str, str], number: int, data: dict[str, Any]) -> str:
    cus, sub, pm, discount_id = refs
    inv = invoice_id(world, company, plan.number, invoice.period_start)
    paid = invoice.status == "paid"
    paid_at = invoice.attempts[-1].at if paid else None
    intent = f"pi_3{token(world.seed, 'pi', inv, length=23)}"
    for n, attempt in enumerate(invoice.attempts):
        data["charges"].append(_charge(world, inv, intent, n, attempt, invoice.total, cus, pm, company))
    price = price_id(world, invoice.plan, plan.interval)
    per = "year" if plan.interval == "year" else "month"
    transitions = {"finalized_at": invoice.period_start, "paid_at": paid_at,
                   "voided_at": invoice.period_start if invoice.status == "void" else None,
                   "marked_uncollectible_at": plan.ended_at if invoice.status == "uncollectible" else None}
    data["invoices"].append({
        "id": inv, "object": "invoice", "customer": cus, "customer_email": company.stripe_email,
        "status": invoice.status, "created": invoice.period_start, "currency": "usd",
        "collection_method": "charge_automatically", "billing_reason": invoice.billing_reason,
        "subtotal": invoice.subtotal, "total": invoice.total, "amount_due": invoice.total,
        "amount_paid": invoice.total if paid else 0,
        "amount_remaining": 0 if paid or invoice.status == "void" else invoice.total,
        "attempt_count": len(invoice.attempts), "attempted": bool(invoice.attempts),
        "next_payment_attempt": invoice.next_payment_attempt,
        "number": f"{token(world.seed, 'prefix', company.index, length=8).upper()}-{number:04d}",
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_lumendemo/test_{token(world.seed, 'hosted', inv, length=32)}",
        "period_start": invoice.period_start, "period_end": invoice.period_start,
        "total_discount_amounts": [{"amount": invoice.discount, "discount": discount_id}] if invoice.discount else [],
        "status_transitions": transitions, "default_payment_method": None,
        "parent": {"type": "subscription_details", "quote_details": None,
                   "subscription_details": {"subscription": sub, "metadata": {}}},
        "lines": {"object": "list", "has_more": False, "total_count": 1, "url": f"/v1/invoices/{inv}/lines",
                  "data": [{"id": f"il_1{token(world.seed, 'il', inv, length=23)}", "object": "line_item",
                            "amount": invoice.subtotal, "currency": "usd", "quantity": invoice.quantity,
                            "description": f"{invoice.quantity} × {PLANS[invoice.plan].name} "
                                           f"(at ${invoice.unit_amount / 100:,.2f} / {per})",
                            "period": {"start": invoice.period_start, "end": invoice.period_end},
                            "pricing": {"type": "price_details", "unit_amount_decimal": str(invoice.unit_amount),
                                        "price_details": {"price": price, "product": None}}}]}})
    return inv


def _charge(world: World, inv: str, intent: str, n: int, attempt: Attempt, amount: int, cus: str, pm: str,
            company: Company) -> dict[str, Any]:
    ok = attempt.decline_code is None
    failure_code, message, advice = DECLINES[attempt.decline_code] if not ok else (None, None, None)
    outcome = {"network_status": "approved_by_network" if ok else "declined_by_network",
               "reason": attempt.decline_code, "risk_level": "normal", "risk_score": 20 + n,
               "seller_message": "Payment complete." if ok else
               "The bank did not return any further details with this decline.",
               "type": "authorized" if ok else "issuer_declined", "advice_code": advice}
    return {"id": f"ch_3{token(world.seed, 'ch', inv, n, length=23)}", "object": "charge", "amount": amount,
            "amount_captured": amount if ok else 0, "currency": "usd", "created": attempt.at, "customer": cus,
            "invoice": inv, "payment_intent": intent, "payment_method": pm, "status": "succeeded" if ok else "failed",
            "paid": ok, "captured": ok, "failure_code": failure_code, "failure_message": message, "outcome": outcome,
            "description": "Subscription update", "receipt_email": company.stripe_email,
            "calculated_statement_descriptor": "LUMEN METRICS",
            "billing_details": {"email": company.stripe_email, "name": None, "address": None, "phone": None}}
