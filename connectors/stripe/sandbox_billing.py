"""The sandbox's billing engine: invoices, payment attempts with card scenarios, and time.

**Payments.** Whether an attempt pays is the customer's card scenario (`sandbox_cards`). Every
attempt increments the invoice's `attempt_count`, creates a charge and records `charge.succeeded` +
`invoice.paid` or `charge.failed` + `invoice.payment_failed` (and moves the subscription to
`past_due` and the customer to `delinquent`, or back).

**Time.** Nothing happens on its own: `run_until(t)` (the sandbox's `advance_clock`) moves the account's clock and runs, in
order, everything that fell due — renewals (a new period, an invoice, a payment attempt; paused
collection keeps it as a draft, marks it uncollectible or voids it), automatic retries of failed
invoices (`BillingPolicy.retry_schedule_days` after each failure; when they run out the
subscription is canceled, marked unpaid or left past due), trial ends, `cancel_at`,
`pause_collection.resumes_at` and incomplete subscriptions expiring after 23 hours.
"""

from __future__ import annotations

import copy
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .sandbox_builders import DAY, add_interval, build_item, build_subscription, next_period_end
from .sandbox_cards import SCENARIOS, build_charge
from .sandbox_objects import (
    apply_discounts,
    cancel_subscription,
    integer,
    period_end,
    set_delinquent,
    set_status,
    unknown,
)
from .sandbox_store import Store, StripeError, previous_attributes, ref


@dataclass(frozen=True)
class BillingPolicy:
    automatic_retries: bool = True                    # Stripe retries failed renewals by itself
    retry_schedule_days: tuple[int, ...] = (3, 5, 7)  # days after each failed attempt
    after_retries: Literal["cancel", "unpaid", "past_due"] = "cancel"


class Billing:
    """Invoices and payments of one sandbox account, and the clock-driven lifecycle."""

    def __init__(self, store: Store, policy: BillingPolicy, set_clock: Callable[[int], None]) -> None:
        self.store, self.policy, self.set_clock = store, policy, set_clock
        self.due: list[tuple[int, int, str]] = []
        self.counter = itertools.count()
        self.payment_intents: dict[str, str] = {}
        store.watchers.append(self.schedule)

    # --- the clock ----------------------------------------------------------------------------

    def due_time(self, obj: dict[str, Any]) -> int | None:
        if obj.get("object") == "invoice":
            if obj["status"] == "open" and obj.get("collection_method") == "charge_automatically":
                return obj.get("next_payment_attempt")
            return None
        if obj.get("object") != "subscription" or not obj["items"]["data"]:
            return None
        status = obj["status"]
        if status == "incomplete":
            return int(obj["created"]) + 23 * 3600
        if status not in ("active", "past_due", "trialing", "unpaid"):
            return None
        times = [period_end(obj)]
        if obj.get("cancel_at"):
            times.append(int(obj["cancel_at"]))
        if status == "trialing" and obj.get("trial_end"):
            times.append(int(obj["trial_end"]))
        if (obj.get("pause_collection") or {}).get("resumes_at"):
            times.append(int(obj["pause_collection"]["resumes_at"]))
        return min(times)

    def schedule(self, obj: dict[str, Any]) -> None:
        when = self.due_time(obj)
        if when is not None:
            heapq.heappush(self.due, (when, next(self.counter), obj["id"]))

    def run_until(self, target: int) -> None:
        """Process everything due up to `target`, in time order, each at its own moment."""
        while self.due and self.due[0][0] <= target:
            when, _, object_id = heapq.heappop(self.due)
            obj = self.store.get(object_id)
            if obj is None or self.due_time(obj) != when:
                continue  # changed since it was scheduled; the change scheduled it again
            self.set_clock(max(when, self.store.now()))
            if obj["object"] == "invoice":
                self.attempt(obj, automatic=True)
            else:
                self._subscription_due(obj, when)
            if self.due_time(obj) == when:
                raise RuntimeError(f"sandbox billing made no progress on {object_id} at {when}")
        self.set_clock(target)

    def _subscription_due(self, subscription: dict[str, Any], when: int) -> None:
        pause = subscription.get("pause_collection") or {}
        if subscription["status"] == "incomplete":
            self._expire_incomplete(subscription)
        elif subscription.get("cancel_at") and int(subscription["cancel_at"]) <= when:
            cancel_subscription(self.store, subscription, {}, at=int(subscription["cancel_at"]))
        elif subscription["status"] == "trialing" and subscription.get("trial_end") and subscription["trial_end"] <= when:
            self._renew(subscription, ending_trial=True)
        elif pause.get("resumes_at") and int(pause["resumes_at"]) <= when:
            previous = {"pause_collection": pause}
            subscription["pause_collection"] = None
            self.store.changed(subscription)
            self.store.emit("customer.subscription.updated", subscription, previous)
        else:
            self._renew(subscription)

    def _expire_incomplete(self, subscription: dict[str, Any]) -> None:
        invoice = self.store.get(ref(subscription.get("latest_invoice")) or "", "invoice")
        if invoice is not None and invoice["status"] == "open":
            self.void(invoice)
        set_status(self.store, subscription, "incomplete_expired")

    def _renew(self, subscription: dict[str, Any], *, ending_trial: bool = False) -> None:
        """A new period for the items whose period ended, and its invoice."""
        now = self.store.now()
        before = copy.deepcopy(subscription)
        if ending_trial:  # the billing cycle starts over when the trial ends
            subscription.update(status="active", billing_cycle_anchor=int(subscription["trial_end"]))
        renewed = []
        for item in subscription["items"]["data"]:
            if item["current_period_end"] > now and not ending_trial:
                continue
            recurring = item["price"]["recurring"]
            start = int(subscription["trial_end"]) if ending_trial else item["current_period_end"]
            end = next_period_end(int(subscription["billing_cycle_anchor"]), recurring["interval"],
                                  int(recurring.get("interval_count") or 1), start)
            item.update(current_period_start=start, current_period_end=end)
            renewed.append(item)
        reason = "subscription_cycle" if not ending_trial else "subscription_update"
        invoice = self.new_invoice(subscription, renewed, reason)
        # one event for the new period and the new latest invoice, as Stripe sends it
        self.store.emit("customer.subscription.updated", subscription, previous_attributes(before, subscription))
        self.store.emit("invoice.created", invoice)
        self.collect(subscription, invoice)

    def collect(self, subscription: dict[str, Any], invoice: dict[str, Any]) -> None:
        """Finalize and charge a subscription invoice, unless collection is paused or the subscription unpaid."""
        behavior = (subscription.get("pause_collection") or {}).get("behavior")
        if behavior == "keep_as_draft" or subscription["status"] == "unpaid":
            invoice["auto_advance"] = False
            self.store.changed(invoice)
            return
        self.finalize(invoice)
        if behavior == "mark_uncollectible":
            self.mark_uncollectible(invoice)
        elif behavior == "void":
            self.void(invoice)
        else:
            self.attempt(invoice, automatic=True)

    # --- new subscriptions ----------------------------------------------------------------------

    def create_subscription(self, params: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/subscriptions`: a trial, or a first invoice charged at once (`incomplete` if declined).

        Trials start without an invoice (Stripe would make a $0 one).
        """
        unknown(params, {"customer", "items", "trial_period_days", "trial_end", "default_payment_method",
                         "metadata", "discounts", "collection_method", "payment_behavior", "off_session",
                         "cancel_at_period_end", "description"})
        store, now = self.store, self.store.now()
        customer = store.require(params.get("customer") or "", "customer", "customer")
        if not params.get("items"):
            raise StripeError(400, "Missing required param: items.", param="items")
        prices = [(store.require(item.get("price") or "", "price", f"items[{i}][price]"),
                   integer(item.get("quantity", 1), f"items[{i}][quantity]")) for i, item in enumerate(params["items"])]
        trial_end = (now + integer(params["trial_period_days"], "trial_period_days") * DAY
                     if params.get("trial_period_days") else
                     integer(params["trial_end"], "trial_end") if params.get("trial_end") else None)
        subscription = build_subscription(store, {
            "customer": customer["id"], "created": now, "currency": prices[0][0].get("currency", "usd"),
            "status": "trialing" if trial_end else "incomplete", "trial_start": now if trial_end else None,
            "trial_end": trial_end, "default_payment_method": params.get("default_payment_method") or None,
            "description": params.get("description") or None,
        })
        subscription["items"] = {"object": "list", "has_more": False, "total_count": len(prices),
                                 "url": f"/v1/subscription_items?subscription={subscription['id']}", "data": [
            build_item(store, subscription["id"], price, quantity,
                       (now, trial_end or add_interval(now, price["recurring"]["interval"],
                                                       int(price["recurring"].get("interval_count") or 1))), now)
            for price, quantity in prices]}
        if params.get("metadata"):
            subscription["metadata"] = {k: str(v) for k, v in params["metadata"].items() if v not in ("", None)}
        if params.get("discounts"):
            apply_discounts(store, subscription, params["discounts"])
        if params.get("cancel_at_period_end") == "true":
            subscription.update(cancel_at_period_end=True, cancel_at=period_end(subscription), canceled_at=now)
        store.add(subscription)
        invoice = None if trial_end else self.new_invoice(subscription, subscription["items"]["data"],
                                                          "subscription_create")
        store.emit("customer.subscription.created", subscription)
        if invoice is not None:
            store.emit("invoice.created", invoice)
            self.finalize(invoice)
            if invoice["status"] == "open":
                self.attempt(invoice, automatic=False)
        return subscription

    # --- invoices -------------------------------------------------------------------------------

    def new_invoice(self, subscription: dict[str, Any], items: list[dict[str, Any]], reason: str) -> dict[str, Any]:
        """A draft invoice for `items`, now the subscription's `latest_invoice` (the caller records the events)."""
        store, now = self.store, self.store.now()
        invoice_id = store.new_id("in")
        lines = [self._line(invoice_id, subscription, item) for item in items]
        subtotal = sum(line["amount"] for line in lines)
        total = max(0, subtotal - self._discount(subscription, subtotal))
        customer = store.get(subscription["customer"], "customer") or {}
        invoice = store.add({
            "id": invoice_id, "object": "invoice", "account_country": "US", "account_name": "churnhub sandbox",
            "amount_due": total, "amount_paid": 0, "amount_remaining": total, "amount_shipping": 0,
            "attempt_count": 0, "attempted": False, "auto_advance": True, "billing_reason": reason,
            "collection_method": subscription["collection_method"], "created": now,
            "currency": subscription["currency"], "customer": subscription["customer"],
            "customer_email": customer.get("email"), "customer_name": customer.get("name"),
            "default_payment_method": None, "description": None, "discounts": list(subscription["discounts"]),
            "due_date": None, "effective_at": None, "ending_balance": None, "hosted_invoice_url": None,
            "invoice_pdf": None, "last_finalization_error": None,
            "lines": {"object": "list", "data": lines, "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"},
            "livemode": False, "metadata": {}, "next_payment_attempt": None, "number": None,
            "parent": {"quote_details": None, "type": "subscription_details",
                       "subscription_details": {"metadata": dict(subscription["metadata"]),
                                                "subscription": subscription["id"]}},
            "period_end": max((i["current_period_start"] for i in items), default=now),
            "period_start": min((i["current_period_start"] for i in items), default=now),
            "status": "draft", "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                                                      "paid_at": None, "voided_at": None},
            "subtotal": subtotal, "total": total, "webhooks_delivered_at": None,
        })
        subscription["latest_invoice"] = invoice_id
        store.changed(subscription)
        return invoice

    def _line(self, invoice_id: str, subscription: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        price, quantity = item["price"], int(item.get("quantity") or 1)
        amount = int(price.get("unit_amount") or 0) * quantity
        return {"id": self.store.new_id("il"), "object": "line_item", "amount": amount,
                "currency": price.get("currency", "usd"), "description": f"{quantity} × {price.get('nickname') or price['id']}",
                "discount_amounts": [], "discountable": True, "discounts": [], "invoice": invoice_id,
                "livemode": False, "metadata": {},
                "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                           "subscription_item_details": {"invoice_item": None, "proration": False,
                                                         "proration_details": {"credited_items": None},
                                                         "subscription": subscription["id"],
                                                         "subscription_item": item["id"]}},
                "period": {"start": item["current_period_start"], "end": item["current_period_end"]},
                "pricing": {"type": "price_details", "unit_amount_decimal": price.get("unit_amount_decimal"),
                            "price_details": {"price": price["id"], "product": price.get("product")}},
                "quantity": quantity, "subtotal": amount}

    def _discount(self, subscription: dict[str, Any], subtotal: int) -> int:
        off, now = 0, self.store.now()
        for discount_id in subscription.get("discounts") or []:
            discount = self.store.get(discount_id, "discount")
            coupon = self.store.get(ref((discount or {}).get("source", {}).get("coupon")) or "", "coupon")
            if discount is None or coupon is None or (discount.get("end") and discount["end"] <= now):
                continue
            if coupon.get("percent_off"):
                off += round(subtotal * float(coupon["percent_off"]) / 100)
            elif coupon.get("amount_off"):
                off += int(coupon["amount_off"])
        return min(off, subtotal)

    def finalize(self, invoice: dict[str, Any]) -> None:
        if invoice["status"] != "draft":
            return
        store = self.store
        customer = store.get(invoice["customer"], "customer") or {"invoice_prefix": "SANDBOX", "next_invoice_sequence": 1}
        number = f"{customer['invoice_prefix']}-{int(customer['next_invoice_sequence']):04d}"
        if "id" in customer:
            customer["next_invoice_sequence"] = int(customer["next_invoice_sequence"]) + 1
            store.changed(customer)
        invoice.update(status="open", number=number, effective_at=store.now(),
                       hosted_invoice_url=f"https://invoice.stripe.com/i/acct_sandbox/test_{invoice['id'][3:]}",
                       invoice_pdf=f"https://pay.stripe.com/invoice/acct_sandbox/test_{invoice['id'][3:]}/pdf")
        invoice["status_transitions"] = {**invoice["status_transitions"], "finalized_at": store.now()}
        store.changed(invoice)
        store.emit("invoice.finalized", invoice, {"status": "draft"})
        if invoice["amount_due"] == 0:
            self._paid(invoice, None)

    def mark_uncollectible(self, invoice: dict[str, Any]) -> dict[str, Any]:
        if invoice["status"] != "open":
            raise StripeError(400, f"You can only mark an open invoice as uncollectible; this invoice is "
                              f"{invoice['status']}.")
        self._transition(invoice, "uncollectible", "marked_uncollectible_at", "invoice.marked_uncollectible")
        set_delinquent(self.store, invoice["customer"], False)
        return invoice

    def void(self, invoice: dict[str, Any]) -> dict[str, Any]:
        if invoice["status"] not in ("open", "uncollectible"):
            raise StripeError(400, f"You can only void an open or uncollectible invoice; this invoice is {invoice['status']}.")
        self._transition(invoice, "void", "voided_at", "invoice.voided")
        return invoice

    def _transition(self, invoice: dict[str, Any], status: str, stamp: str, event: str) -> None:
        previous = {"status": invoice["status"], "next_payment_attempt": invoice["next_payment_attempt"]}
        invoice.update(status=status, next_payment_attempt=None)
        invoice["status_transitions"] = {**invoice["status_transitions"], stamp: self.store.now()}
        self.store.changed(invoice)
        self.store.emit(event, invoice, previous)

    # --- payments -------------------------------------------------------------------------------

    def pay(self, invoice: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/invoices/{id}/pay`: raises the 402 card error when the card is declined."""
        unknown(params, {"off_session", "payment_method", "paid_out_of_band", "forgive", "source", "mandate"})
        if invoice["status"] == "paid":
            raise StripeError(400, "Invoice is already paid")
        if invoice["status"] == "void":
            raise StripeError(400, "This invoice has been voided and can no longer be paid.")
        self.finalize(invoice)
        if invoice["status"] == "paid":
            return invoice
        if params.get("paid_out_of_band") == "true":
            self._paid(invoice, None)
            return invoice
        method_id = params.get("payment_method")
        if method_id:
            self.store.require(method_id, "payment_method", "payment_method")
        error = self.attempt(invoice, automatic=False, payment_method=method_id)
        if error is not None:
            raise error
        return invoice

    def _payment_method(self, invoice: dict[str, Any], explicit: str | None) -> dict[str, Any] | None:
        subscription = self.store.get(invoice_subscription(invoice) or "", "subscription") or {}
        customer = self.store.get(invoice["customer"], "customer") or {}
        method_id = (explicit or invoice.get("default_payment_method") or subscription.get("default_payment_method")
                     or (customer.get("invoice_settings") or {}).get("default_payment_method"))
        return self.store.get(method_id or "", "payment_method")

    def attempt(self, invoice: dict[str, Any], *, automatic: bool, payment_method: str | None = None) -> StripeError | None:
        """One payment attempt; returns the error a `/pay` call answers with (None when paid)."""
        store = self.store
        previous = {"attempt_count": invoice["attempt_count"], "attempted": invoice["attempted"]}
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        method = self._payment_method(invoice, payment_method)
        if method is None:
            error = StripeError(400, "This customer has no attached payment source or default payment method. "
                                "Please consider adding a default payment method.", code="missing")
            self._failed(invoice, previous, automatic)
            return error
        decline = SCENARIOS.get(store.card_scenarios.get(invoice["customer"], "ok"), None)
        intent = self.payment_intents.setdefault(invoice["id"], store.new_id("pi"))
        charge = store.add(build_charge(store, invoice, method, decline, intent))
        if decline is None:
            store.emit("charge.succeeded", charge)
            self._paid(invoice, previous)
            return None
        store.emit("charge.failed", charge)
        self._failed(invoice, previous, automatic)
        return StripeError(402, decline.message, type="card_error", code=decline.code,
                           decline_code=decline.decline_code, charge=charge["id"], advice_code=decline.advice_code,
                           payment_intent={"id": charge["payment_intent"], "object": "payment_intent",
                                           "status": "requires_payment_method"})

    def _paid(self, invoice: dict[str, Any], previous: dict[str, Any] | None) -> None:
        store = self.store
        previous = {**(previous or {}), "status": invoice["status"], "amount_paid": invoice["amount_paid"],
                    "amount_remaining": invoice["amount_remaining"]}
        invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0, next_payment_attempt=None)
        invoice["status_transitions"] = {**invoice["status_transitions"], "paid_at": store.now()}
        store.changed(invoice)
        store.emit("invoice.paid", invoice, previous)
        store.emit("invoice.payment_succeeded", invoice, previous)
        set_delinquent(store, invoice["customer"], False)
        subscription = store.get(invoice_subscription(invoice) or "", "subscription")
        if subscription is not None and subscription["status"] in ("past_due", "unpaid", "incomplete"):
            set_status(store, subscription, "active")

    def _failed(self, invoice: dict[str, Any], previous: dict[str, Any], automatic: bool) -> None:
        store, policy = self.store, self.policy
        retries_left = invoice["attempt_count"] <= len(policy.retry_schedule_days)
        scheduled = (policy.automatic_retries and retries_left and invoice["billing_reason"] != "subscription_create"
                     and invoice["collection_method"] == "charge_automatically")
        previous = {**previous, "next_payment_attempt": invoice["next_payment_attempt"]}
        delay = policy.retry_schedule_days[invoice["attempt_count"] - 1] * DAY if scheduled else 0
        invoice["next_payment_attempt"] = store.now() + delay if scheduled else None
        store.changed(invoice)
        store.emit("invoice.payment_failed", invoice, previous)
        set_delinquent(store, invoice["customer"], True)
        subscription = store.get(invoice_subscription(invoice) or "", "subscription")
        if subscription is None or subscription["status"] in ("canceled", "incomplete_expired", "incomplete"):
            return
        if policy.automatic_retries and not scheduled and automatic and invoice["billing_reason"] != "subscription_create":
            if policy.after_retries == "cancel":
                cancel_subscription(store, subscription, {}, reason="payment_failed")
                return
            if policy.after_retries == "unpaid":
                set_status(store, subscription, "unpaid")
                return
        set_status(store, subscription, "past_due")


def invoice_subscription(invoice: dict[str, Any]) -> str | None:
    parent = invoice.get("parent") or {}
    return ref((parent.get("subscription_details") or {}).get("subscription")) or ref(invoice.get("subscription"))
