"""Pure mapping of Stripe JSON to canonical records: this API version's shapes and older ones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.stripe.mapping import (
    dig,
    iso,
    map_charge,
    map_customer,
    map_default_payment_method,
    map_event_object,
    map_invoice,
    map_payment_method,
    map_subscription,
    ref,
)
from connectors.stripe.mrr import monthly_recurring_revenue
from hub import Kind


def test_stripes_example_customer(stripe_example):
    record = map_customer(stripe_example("customer"))
    assert (record.kind, record.external_id, record.deleted) == (Kind.ACCOUNT, "cus_QXg1o8vcGmoR32", False)
    assert record.fields["name"] == "cus_QXg1o8vcGmoR32"  # no name, no email: the id is all there is
    assert record.fields["domains"] == [] and record.fields["links"] == {}
    assert record.fields["created_at"] == "2009-02-13T23:31:30Z"
    assert record.fields["delinquent"] is False and record.fields["currency"] == "usd"
    assert record.fields["default_payment_method"] is None


def test_customer_links_and_domain_come_from_metadata_and_email(stripe_example):
    customer = stripe_example("customer")
    customer.update(email="Jane.Doe@Acme.IO", name="Acme", metadata={
        "salesforce_account_id": "001A0000006Vm9r", "zendesk_organization_id": "360012345", "plan_note": "vip"})
    customer["invoice_settings"]["default_payment_method"] = {"id": "pm_1", "object": "payment_method"}
    fields = map_customer(customer).fields
    assert fields["domains"] == ["acme.io"] and fields["email"] == "Jane.Doe@Acme.IO"
    # 15-character Salesforce ids get their checksum suffix: the 18-character form matches everywhere
    assert fields["links"] == {"salesforce_account_id": "001A0000006Vm9rIAC", "zendesk_organization_id": "360012345"}
    assert fields["metadata"]["plan_note"] == "vip"
    assert fields["default_payment_method"] == "pm_1"


def test_deleted_customer_is_a_tombstone(stripe_example):
    record = map_customer(stripe_example("deleted_customer"))
    assert record.deleted and record.external_id == "cus_QXg1o8vcGmoR32" and record.fields == {}


def test_stripes_example_subscription_in_this_api_version(stripe_example):
    subscription = stripe_example("subscription")
    fields = map_subscription(subscription).fields
    assert fields["account_id"] == "cus_QXg1o8vcGmoR32" and fields["status"] == "active"
    assert fields["plan"] == "price_1PgafmB7WZ01zgkW6dKueIc5"  # the price wins over the legacy plan
    assert (fields["interval"], fields["interval_count"], fields["quantity"]) == ("month", 1, 1)
    assert fields["cancel_at_period_end"] is True and fields["canceled_at"] == "2009-02-13T23:31:30Z"
    assert fields["paused"] is True and fields["pause_behavior"] == "mark_uncollectible"
    assert fields["trial_end"] == "2009-02-13T23:31:30Z" and fields["ended_at"] == "2009-02-13T23:31:30Z"
    # current_period_* live on the items in this version
    assert fields["current_period_end"] == "2000-12-08T15:02:53Z"
    assert fields["current_period_start"] == "2030-02-06T01:08:38Z"
    # the example price divides the quantity by 1592560163 (rounding down) before billing...
    assert fields["mrr"] == 0
    # ... without that transformation it is 20.00 a month
    subscription["items"]["data"][0]["price"]["transform_quantity"] = None
    assert map_subscription(subscription).fields["mrr"] == 2000


def test_cancellation_details_are_kept(stripe_example):
    subscription = stripe_example("subscription")
    subscription.update(status="canceled", cancellation_details={
        "reason": "cancellation_requested", "feedback": "too_expensive", "comment": "budget cut"})
    fields = map_subscription(subscription).fields
    assert (fields["cancellation_reason"], fields["cancellation_feedback"], fields["cancellation_comment"]) == (
        "cancellation_requested", "too_expensive", "budget cut")


OLD_SUBSCRIPTION = {
    "id": "sub_old", "object": "subscription", "customer": {"id": "cus_old", "object": "customer"},
    "status": "past_due", "current_period_start": 1_600_000_000, "current_period_end": 1_602_592_000,
    "plan": {"id": "gold", "amount": 5000, "currency": "eur", "interval": "month", "interval_count": 1},
    "quantity": 2, "pause_collection": None, "cancel_at_period_end": False,
    "discount": {"id": "di_old", "object": "discount", "coupon": {"id": "WELCOME", "percent_off": 10}},
    "items": {"object": "list", "has_more": False, "data": [
        {"id": "si_old", "quantity": 2,
         "plan": {"id": "gold", "amount": 5000, "currency": "eur", "interval": "month", "interval_count": 1}}]},
}


def test_older_api_subscription_shape():
    fields = map_subscription(OLD_SUBSCRIPTION).fields
    assert fields["account_id"] == "cus_old" and fields["plan"] == "gold"
    assert fields["mrr"] == 10000 and fields["quantity"] == 2 and fields["currency"] == "eur"
    assert fields["current_period_start"] == "2020-09-13T12:26:40Z"
    assert fields["current_period_end"] == "2020-10-13T12:26:40Z"
    assert fields["discounts"] == ["di_old"] and fields["coupons"] == ["WELCOME"]
    assert fields["paused"] is False


def test_very_old_subscription_without_items_uses_the_top_level_plan():
    subscription = {k: v for k, v in OLD_SUBSCRIPTION.items() if k != "items"}
    assert map_subscription(subscription).fields["mrr"] == 10000


def item(interval: str, count: int, unit: int | None, quantity: int | None = 1, **price) -> dict:
    return {"quantity": quantity, "price": {"id": "price_x", "unit_amount": unit, **price,
                                            "recurring": {"interval": interval, "interval_count": count,
                                                          "usage_type": price.pop("usage_type", "licensed")}}}


@pytest.mark.parametrize(("items", "expected"), [
    ([item("month", 1, 1000, 3)], 3000),
    ([item("year", 1, 12000)], 1000),                  # a year is 12 months
    ([item("year", 2, 24000)], 1000),                  # every 2 years
    ([item("month", 3, 3000)], 1000),                  # quarterly
    ([item("week", 1, 1000)], 4333),                   # 52 weeks / 12 months
    ([item("week", 2, 700, 4)], 6067),                 # 700 x 4 seats every 2 weeks
    ([item("day", 1, 100)], 3042),                     # 365 days / 12 months
    ([item("week", 1, 1), item("week", 1, 1)], 9),     # summed exactly, rounded once (not 4 + 4)
    ([item("month", 1, None, 3, unit_amount_decimal="0.5")], 2),
    ([item("month", 1, 1000), item("month", 1, 50, usage_type="metered")], 1000),   # usage unknown yet
    ([item("month", 1, 1000, None)], 1000),            # no quantity means one
    ([item("month", 1, 9900, 10, transform_quantity={"divide_by": 4, "round": "up"})], 29700),
    ([], 0),
])
def test_mrr_is_normalised_to_one_month(items, expected):
    assert monthly_recurring_revenue(items) == expected


def tiered(mode: str, quantity: int) -> list[dict]:
    tiers = [{"up_to": 5, "unit_amount": 1000, "flat_amount": 0},
             {"up_to": None, "unit_amount": 500, "flat_amount": 2000}]
    return [{"quantity": quantity, "price": {"billing_scheme": "tiered", "tiers_mode": mode, "tiers": tiers,
                                             "recurring": {"interval": "month", "interval_count": 1}}}]


def test_mrr_of_tiered_prices():
    assert monthly_recurring_revenue(tiered("graduated", 8)) == 5 * 1000 + 3 * 500 + 2000
    assert monthly_recurring_revenue(tiered("volume", 8)) == 8 * 500 + 2000
    assert monthly_recurring_revenue(tiered("volume", 4)) == 4 * 1000


def test_unknown_interval_is_an_error():
    with pytest.raises(ValueError, match="fortnight"):
        monthly_recurring_revenue([item("fortnight", 1, 100)])


def test_items_given_separately_replace_a_truncated_list(stripe_example):
    subscription = stripe_example("subscription")
    subscription["items"]["has_more"] = True
    full = [item("month", 1, 1000, 1) for _ in range(12)]
    fields = map_subscription(subscription, full).fields
    assert fields["mrr"] == 12000 and fields["quantity"] == 12


def test_stripes_example_invoice(stripe_example):
    record = map_invoice(stripe_example("invoice"))
    fields = record.fields
    assert (record.kind, record.external_id) == (Kind.INVOICE, "in_1Pgc6tB7WZ01zgkWu9fdqL6I")
    assert fields["subscription_id"] == "subscription"  # parent.subscription_details in this version
    assert (fields["status"], fields["amount_due"], fields["amount_paid"], fields["amount_remaining"]) == (
        "draft", 1000, 0, 1000)
    assert fields["attempt_count"] == 0 and fields["attempted"] is False
    assert fields["next_payment_attempt"] == "2009-02-13T23:31:30Z"
    assert fields["hosted_invoice_url"] is None and fields["billing_reason"] == "manual"
    assert fields["due_date"] == "2009-02-13T23:31:30Z" and fields["account_id"] == "cus_QXg1o8vcGmoR32"


def test_older_invoice_names_its_subscription_at_the_top(stripe_example):
    invoice = stripe_example("invoice")
    invoice.pop("parent")
    invoice["subscription"] = {"id": "sub_top", "object": "subscription"}
    assert map_invoice(invoice).fields["subscription_id"] == "sub_top"


def test_stripes_example_charge(stripe_example):
    fields = map_charge(stripe_example("charge")).fields
    assert fields["status"] == "succeeded" and fields["paid"] is True and fields["amount"] == 100
    assert fields["decline_code"] is None and fields["failure_code"] is None
    assert fields["payment_method"] == "card_1PgaftB7WZ01zgkWm3waTcFp" and fields["invoice_id"] is None


def test_declined_charges_carry_the_decline_code(stripe_example):
    charge = stripe_example("charge")
    charge.update(status="failed", paid=False, customer="cus_1", invoice="in_old", failure_code="card_declined",
                  failure_message="Your card has insufficient funds.",
                  outcome={"type": "issuer_declined", "reason": "insufficient_funds", "advice_code": "try_again_later",
                           "network_status": "declined_by_network", "risk_level": "normal"})
    fields = map_charge(charge).fields
    assert (fields["decline_code"], fields["failure_code"], fields["advice_code"]) == (
        "insufficient_funds", "card_declined", "try_again_later")
    assert fields["outcome_type"] == "issuer_declined" and fields["account_id"] == "cus_1"
    assert fields["invoice_id"] == "in_old"  # charges named their invoice before 2025-03-31.basil
    charge["outcome"] = {"type": "issuer_declined", "reason": None}
    charge["failure_code"] = "expired_card"
    assert map_charge(charge).fields["decline_code"] == "expired_card"


def test_stripes_example_payment_method(stripe_example):
    record = map_payment_method(stripe_example("payment_method"))
    assert record.kind == Kind.PAYMENT_METHOD and record.external_id == "pm_1Pgc75B7WZ01zgkWlHVgdEGJ"
    assert (record.fields["brand"], record.fields["exp_month"], record.fields["exp_year"], record.fields["last4"]) == (
        "visa", 8, 2030, "4242")


def test_default_payment_method_comes_from_the_expanded_customer(stripe_example):
    customer = stripe_example("customer")
    assert map_default_payment_method(customer) is None  # not set
    customer["invoice_settings"]["default_payment_method"] = "pm_only_an_id"
    assert map_default_payment_method(customer) is None  # not expanded
    customer["invoice_settings"]["default_payment_method"] = stripe_example("payment_method")
    record = map_default_payment_method(customer)
    assert record.fields["account_id"] == "cus_QXg1o8vcGmoR32" and record.fields["default"] is True


def event(type_: str, obj: dict, created: int = 1_700_000_000) -> dict:
    return {"id": "evt_1", "object": "event", "type": type_, "created": created, "data": {"object": obj}}


def test_deleted_events_are_tombstones_stamped_with_the_event_time(stripe_example):
    record = map_event_object(event("customer.deleted", stripe_example("customer")))
    assert record.deleted and record.kind == Kind.ACCOUNT and record.fields == {}
    assert record.updated_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_a_deleted_subscription_event_is_a_canceled_subscription(stripe_example):
    subscription = stripe_example("subscription")
    subscription["status"] = "canceled"
    record = map_event_object(event("customer.subscription.deleted", subscription))
    assert not record.deleted and record.fields["status"] == "canceled"


def test_events_about_other_things_map_to_nothing(stripe_example):
    assert map_event_object(stripe_example("event")) is None  # plan.created
    assert map_event_object(event("invoice.upcoming", {**stripe_example("invoice"), "id": None})) is None
    assert map_event_object(event("charge.dispute.created", {"id": "dp_1", "object": "dispute"})) is None
    updated = map_event_object(event("invoice.payment_failed", stripe_example("invoice")))
    assert updated.kind == Kind.INVOICE and updated.fields["status"] == "draft"


@pytest.mark.parametrize(("value", "expected"), [
    (1714564800, "2024-05-01T12:00:00Z"), (0, "1970-01-01T00:00:00Z"), (1714564800.9, "2024-05-01T12:00:00Z"),
    ("1714564800", "2024-05-01T12:00:00Z"), (None, None), (True, None), (False, None),
])
def test_iso_formats_unix_seconds_in_utc(value: object, expected: str | None) -> None:
    assert iso(value) == expected


def test_iso_agrees_with_datetime_formatting() -> None:
    for timestamp in range(951_782_400, 1_900_000_000, 86_399 * 7):   # from 2000-02-29, odd times of day
        assert iso(timestamp) == datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Expanded(dict):   # a Mapping that is not exactly a dict, as a StripeObject is
    pass


@pytest.mark.parametrize(("value", "expected"), [
    ("cus_1", "cus_1"), ("", None), (None, None), (42, None), ({"id": "cus_2", "object": "customer"}, "cus_2"),
    (Expanded(id="cus_3"), "cus_3"), ({"object": "customer"}, None),
])
def test_ref_reads_ids_and_expanded_objects(value: object, expected: str | None) -> None:
    assert ref(value) == expected


def test_dig_follows_mappings_and_stops_at_anything_else() -> None:
    obj = {"a": Expanded(b={"c": 1}), "s": "text"}
    assert dig(obj, "a", "b", "c") == 1
    assert dig(obj, "s", "x") is None and dig(obj, "missing", "x") is None and dig(None, "a") is None
