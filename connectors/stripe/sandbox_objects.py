"""Changing the sandbox's customers, cards and subscriptions, as the API's write endpoints do.

Every change goes through here so it looks like the real API's: parameters are validated (an
unknown one is a 400), the object changes, then an event with `previous_attributes` is recorded
(`customer.updated`, `customer.subscription.deleted`, ...).
"""

from __future__ import annotations

import copy
from typing import Any

from .sandbox_builders import add_interval, build_customer, build_item
from .sandbox_store import SortedIds, Store, StripeError, previous_attributes, ref

FEEDBACK = {"too_expensive", "missing_features", "switched_service", "unused", "customer_service",
            "too_complex", "low_quality", "other"}


# --- customers and cards ----------------------------------------------------------------------

CUSTOMER_PARAMS = {"email", "name", "description", "phone", "metadata", "invoice_settings", "currency",
                   "address", "preferred_locales"}


def _apply_metadata(target: dict[str, Any], metadata: Any) -> None:
    if metadata in ("", None):
        target["metadata"] = {}
        return
    merged = dict(target.get("metadata") or {})
    for key, value in metadata.items():
        if value in ("", None):
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    target["metadata"] = merged


def update_customer(store: Store, customer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    unknown(params, CUSTOMER_PARAMS)
    before = copy.deepcopy(customer)
    for key, value in params.items():
        if key == "metadata":
            _apply_metadata(customer, value)
        elif key == "invoice_settings":
            default = (value or {}).get("default_payment_method")
            if default:
                method = store.require(default, "payment_method", "invoice_settings[default_payment_method]")
                if ref(method.get("customer")) != customer["id"]:
                    raise StripeError(400, f"The payment method `{default}` does not belong to this customer.",
                                      param="invoice_settings[default_payment_method]")
            customer["invoice_settings"] = {**customer["invoice_settings"], "default_payment_method": default or None}
        else:
            customer[key] = None if value == "" else value
    changes = previous_attributes(before, customer)
    if changes:
        store.changed(customer)
        store.emit("customer.updated", customer, changes)
    return customer


def create_customer(store: Store, params: dict[str, Any]) -> dict[str, Any]:
    unknown(params, CUSTOMER_PARAMS | {"id"})
    fields = dict(params)
    if "metadata" in fields:
        holder: dict[str, Any] = {}
        _apply_metadata(holder, fields["metadata"])
        fields["metadata"] = holder["metadata"]
    customer = store.add(build_customer(store, fields))
    store.emit("customer.created", customer)
    return customer


def delete_customer(store: Store, customer: dict[str, Any]) -> dict[str, Any]:
    """Deleting a customer cancels its subscriptions at once, as Stripe does."""
    for subscription_id in list((store.indexes[("subscription", "customer")].get(customer["id"]) or SortedIds()).ids):
        subscription = store.objects[subscription_id]
        if subscription["status"] not in ("canceled", "incomplete_expired"):
            cancel_subscription(store, subscription, {})
    snapshot = copy.deepcopy(customer)
    tombstone = store.delete(customer)
    store.emit("customer.deleted", snapshot)
    return tombstone


def attach_payment_method(store: Store, method: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
    if method.get("customer"):
        raise StripeError(400, "The payment method you provided has already been attached to a customer.",
                          code="payment_method_unexpected_state")
    method["customer"] = customer["id"]
    store.changed(method)
    store.emit("payment_method.attached", method)
    return method


def detach_payment_method(store: Store, method: dict[str, Any]) -> dict[str, Any]:
    customer_id = ref(method.get("customer"))
    if not customer_id:
        raise StripeError(400, "The payment method you provided is not attached to a customer so detachment "
                          "is impossible.", code="payment_method_unexpected_state")
    customer = store.get(customer_id, "customer")
    if customer and customer["invoice_settings"].get("default_payment_method") == method["id"]:
        update_customer(store, customer, {"invoice_settings": {"default_payment_method": ""}})
    method["customer"] = None
    store.changed(method)
    store.emit("payment_method.detached", method, {"customer": customer_id})
    return method


# --- subscriptions -------------------------------------------------------------------------------

SUBSCRIPTION_PARAMS = {"metadata", "pause_collection", "discounts", "cancel_at_period_end", "cancel_at",
                       "cancellation_details", "items", "default_payment_method", "description",
                       "proration_behavior", "off_session"}


def boolean(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise StripeError(400, f"Invalid boolean: {value}", param=param)


def integer(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {value}", param=param) from None


def unknown(params: dict[str, Any], allowed: set[str]) -> None:
    for key in params:
        if key not in allowed and key != "expand":
            raise StripeError(400, f"Received unknown parameter: {key}", param=key)


def period_end(subscription: dict[str, Any]) -> int:
    return min(item["current_period_end"] for item in subscription["items"]["data"])


def _cancellation_details(subscription: dict[str, Any], details: Any) -> None:
    details = details or {}
    feedback = details.get("feedback")
    if feedback not in (None, "") and feedback not in FEEDBACK:
        raise StripeError(400, f"Invalid cancellation_details[feedback]: must be one of {', '.join(sorted(FEEDBACK))}",
                          param="cancellation_details[feedback]")
    current = dict(subscription["cancellation_details"])
    for key in ("feedback", "comment"):
        if key in details:
            current[key] = details[key] or None
    subscription["cancellation_details"] = current


def apply_discounts(store: Store, subscription: dict[str, Any], value: Any) -> None:
    if value in ("", None):
        subscription["discounts"] = []
        return
    ids = []
    for index, entry in enumerate(value):
        if entry.get("discount"):
            ids.append(store.require(entry["discount"], "discount", f"discounts[{index}][discount]")["id"])
            continue
        coupon_id = entry.get("coupon")
        coupon = store.get(coupon_id or "", "coupon")
        if coupon is None:
            raise StripeError(400, f"No such coupon: '{coupon_id}'", code="resource_missing",
                              param=f"discounts[{index}][coupon]")
        if not coupon.get("valid", True):
            raise StripeError(400, f"Coupon expired: {coupon_id}", code="coupon_expired",
                              param=f"discounts[{index}][coupon]")
        now = store.now()
        end = (add_interval(now, "month", int(coupon["duration_in_months"]))
               if coupon.get("duration") == "repeating" and coupon.get("duration_in_months") else None)
        discount = store.add({"id": store.new_id("di"), "object": "discount", "checkout_session": None,
                              "customer": subscription["customer"], "end": end, "invoice": None,
                              "invoice_item": None, "promotion_code": None, "start": now,
                              "subscription": subscription["id"], "subscription_item": None,
                              "source": {"coupon": coupon["id"], "type": "coupon"}})
        coupon["times_redeemed"] = coupon.get("times_redeemed", 0) + 1
        store.changed(coupon)
        ids.append(discount["id"])
    subscription["discounts"] = ids


def update_subscription(store: Store, subscription: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    unknown(params, SUBSCRIPTION_PARAMS)
    if subscription["status"] in ("canceled", "incomplete_expired") and set(params) - {
            "metadata", "cancellation_details", "expand"}:
        raise StripeError(400, "A canceled subscription can only update its cancellation_details and metadata.")
    before = copy.deepcopy(subscription)
    for key, value in params.items():
        if key == "metadata":
            _apply_metadata(subscription, value)
        elif key == "pause_collection":
            subscription["pause_collection"] = _pause(value)
        elif key == "discounts":
            apply_discounts(store, subscription, value)
        elif key == "cancellation_details":
            _cancellation_details(subscription, value)
        elif key == "cancel_at_period_end":
            _cancel_at(store, subscription, period_end(subscription) if boolean(value, key) else None)
        elif key == "cancel_at":
            _cancel_at(store, subscription, integer(value, key) if value not in ("", None) else None)
        elif key == "items":
            _items(store, subscription, value)
        elif key in ("default_payment_method", "description"):
            subscription[key] = value or None
    changes = previous_attributes(before, subscription)
    if changes:
        store.changed(subscription)
        store.emit("customer.subscription.updated", subscription, changes)
    return subscription


def _pause(value: Any) -> dict[str, Any] | None:
    if value in ("", None):
        return None
    behavior = value.get("behavior")
    if behavior not in ("keep_as_draft", "mark_uncollectible", "void"):
        raise StripeError(400, "Invalid pause_collection[behavior]: must be one of keep_as_draft, "
                          "mark_uncollectible, or void", param="pause_collection[behavior]")
    resumes = value.get("resumes_at")
    return {"behavior": behavior,
            "resumes_at": integer(resumes, "pause_collection[resumes_at]") if resumes not in (None, "") else None}


def _cancel_at(store: Store, subscription: dict[str, Any], when: int | None) -> None:
    """`cancel_at_period_end` / `cancel_at`: canceled later; `canceled_at` is when it was asked."""
    end = period_end(subscription)
    subscription["cancel_at"] = when
    subscription["cancel_at_period_end"] = when is not None and when == end
    subscription["canceled_at"] = store.now() if when is not None else None
    reason = "cancellation_requested" if when is not None else None
    subscription["cancellation_details"] = {**subscription["cancellation_details"], "reason": reason}


def _items(store: Store, subscription: dict[str, Any], changes: list[dict[str, Any]]) -> None:
    items = {item["id"]: item for item in subscription["items"]["data"]}
    start, end = (min(i["current_period_start"] for i in items.values()), period_end(subscription))
    for index, change in enumerate(changes):
        item = items.get(change.get("id", ""))
        if change.get("id") and item is None:
            raise StripeError(400, f"No such subscription item: '{change['id']}'", code="resource_missing",
                              param=f"items[{index}][id]")
        if item is not None and boolean(change.get("deleted", "false"), f"items[{index}][deleted]"):
            del items[item["id"]]
            continue
        price = store.get(change["price"], "price") if change.get("price") else None
        if change.get("price") and price is None:
            raise StripeError(400, f"No such price: '{change['price']}'", code="resource_missing",
                              param=f"items[{index}][price]")
        quantity = integer(change.get("quantity", 1), f"items[{index}][quantity]")
        if item is None:
            if price is None:
                raise StripeError(400, "Missing required param: items[0][price].", param=f"items[{index}][price]")
            new = build_item(store, subscription["id"], price, quantity, (start, end), store.now())
            items[new["id"]] = new
        else:
            item["price"] = price or item["price"]
            if "quantity" in change:
                item["quantity"] = quantity
    if not items:
        raise StripeError(400, "A subscription must have at least one active plan.", param="items")
    subscription["items"] = {**subscription["items"], "data": list(items.values())}


def cancel_subscription(store: Store, subscription: dict[str, Any], params: dict[str, Any], *,
                        reason: str = "cancellation_requested", at: int | None = None) -> dict[str, Any]:
    """Cancel now (`DELETE /v1/subscriptions/{id}`): `customer.subscription.deleted`."""
    unknown(params, {"cancellation_details", "invoice_now", "prorate"})
    if subscription["status"] in ("canceled", "incomplete_expired"):
        raise StripeError(400, f"This subscription is already canceled ({subscription['id']}).")
    before = copy.deepcopy(subscription)
    now = store.now() if at is None else at
    _cancellation_details(subscription, params.get("cancellation_details"))
    subscription.update({"status": "canceled", "ended_at": now, "canceled_at": subscription["canceled_at"] or now,
                         "cancel_at_period_end": False, "pause_collection": None})
    subscription["cancellation_details"]["reason"] = subscription["cancellation_details"]["reason"] or reason
    store.changed(subscription)
    store.emit("customer.subscription.deleted", subscription, previous_attributes(before, subscription), at=at)
    return subscription


def set_status(store: Store, subscription: dict[str, Any], status: str, *, at: int | None = None) -> None:
    if subscription["status"] == status:
        return
    previous = {"status": subscription["status"]}
    subscription["status"] = status
    store.changed(subscription)
    store.emit("customer.subscription.updated", subscription, previous, at=at)


def set_delinquent(store: Store, customer_id: str, delinquent: bool, *, at: int | None = None) -> None:
    customer = store.get(customer_id, "customer")
    if customer is None or customer["delinquent"] == delinquent:
        return
    customer["delinquent"] = delinquent
    store.changed(customer)
    store.emit("customer.updated", customer, {"delinquent": not delinquent}, at=at)
