"""Outbound operations against the sandbox: each acts once, declines are outcomes."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError

from connectors.stripe.connector import StripeConnector
from connectors.stripe.operations import (
    ApplyCoupon,
    CancelAtPeriodEnd,
    MarkUncollectible,
    PauseCollection,
    ResumeCollection,
    RetryInvoice,
    SetMetadata,
    stripe_idempotency_key,
)
from connectors.stripe.settings import StripeSettings
from hub import AuthError

OPERATIONS = {"retry_invoice", "mark_uncollectible", "pause_collection", "resume_collection", "apply_coupon",
              "cancel_at_period_end", "set_metadata"}


def posts(sandbox, path_part: str):
    return [r for r in sandbox.requests if r.method == "POST" and path_part in r.path]


def test_the_connector_offers_every_operation_with_a_params_model(connector):
    assert set(connector.operations) == OPERATIONS
    assert connector.operations["retry_invoice"].params is RetryInvoice


def test_retry_invoice_pays_and_reports_the_invoice(connector, sandbox):
    sandbox.set_card_scenario("cus_demo0000005", "ok")
    result = connector.execute("retry_invoice", RetryInvoice(invoice_id="in_demo0000005"), idempotency_key="act-1")
    assert result.ok and result.external_id == "in_demo0000005"
    assert result.data["status"] == "paid" and result.data["attempt_count"] == 2
    assert sandbox.get("in_demo0000005")["status"] == "paid"
    assert posts(sandbox, "/pay")[0].idempotency_key == "churnhub-retry_invoice-act-1"


def test_a_declined_retry_is_a_structured_result_not_an_exception(connector, sandbox):
    result = connector.execute("retry_invoice", RetryInvoice(invoice_id="in_demo0000011"), idempotency_key="act-2")
    assert not result.ok and not result.retryable
    assert (result.code, result.error) == ("expired_card", "Your card has expired.")
    assert result.data["charge"].startswith("ch_") and result.data["status"] == 402
    assert result.data["advice_code"] == "confirm_card_data"
    assert sandbox.get(result.data["charge"])["status"] == "failed"
    assert sandbox.get("in_demo0000011")["attempt_count"] == 2


def test_a_replayed_action_key_acts_once_at_stripe(connector, sandbox):
    params = RetryInvoice(invoice_id="in_demo0000005")
    first = connector.execute("retry_invoice", params, idempotency_key="act-3")
    second = connector.execute("retry_invoice", params, idempotency_key="act-3")
    assert first == second and first.code == "insufficient_funds"
    assert sandbox.get("in_demo0000005")["attempt_count"] == 2  # one attempt only
    assert [r.replayed for r in posts(sandbox, "/pay")] == [False, True]
    assert len(sandbox.events("charge.failed")) == 1


def test_a_new_action_key_is_a_new_attempt(connector, sandbox):
    for key in ("dunning-1", "dunning-2"):
        connector.execute("retry_invoice", RetryInvoice(invoice_id="in_demo0000005"), idempotency_key=key)
    assert sandbox.get("in_demo0000005")["attempt_count"] == 3


def test_a_stripe_500_replayed_under_the_key_is_retryable_and_acted_on_nothing(connector, sandbox):
    sandbox.fail_next(1, path="/v1/invoices/")
    sandbox.set_card_scenario("cus_demo0000005", "ok")
    result = connector.execute("retry_invoice", RetryInvoice(invoice_id="in_demo0000005"), idempotency_key="act-4")
    assert not result.ok and result.retryable and "HTTP 500" in result.error
    attempts = posts(sandbox, "/pay")
    assert len(attempts) == 6 and all(r.replayed for r in attempts[1:])  # retried with the same key
    assert sandbox.get("in_demo0000005")["attempt_count"] == 1


def test_mark_uncollectible(connector, sandbox):
    result = connector.execute("mark_uncollectible", MarkUncollectible(invoice_id="in_demo0000011"),
                               idempotency_key="act-5")
    assert result.ok and result.data["status"] == "uncollectible"
    refused = connector.execute("mark_uncollectible", MarkUncollectible(invoice_id="in_demo0000011"),
                                idempotency_key="act-6")
    assert not refused.ok and not refused.retryable and "open invoice" in refused.error


def test_pause_and_resume_collection(connector, sandbox):
    resumes = datetime(2026, 7, 1, tzinfo=UTC)
    paused = connector.execute("pause_collection", PauseCollection(
        subscription_id="sub_demo0000002", behavior="keep_as_draft", resumes_at=resumes), idempotency_key="act-7")
    assert paused.ok and paused.data["paused"] and paused.data["status"] == "active"
    assert sandbox.get("sub_demo0000002")["pause_collection"] == {"behavior": "keep_as_draft",
                                                                  "resumes_at": int(resumes.timestamp())}
    resumed = connector.execute("resume_collection", ResumeCollection(subscription_id="sub_demo0000002"),
                                idempotency_key="act-8")
    assert resumed.ok and not resumed.data["paused"]
    assert sandbox.get("sub_demo0000002")["pause_collection"] is None


def test_apply_coupon(connector, sandbox):
    result = connector.execute("apply_coupon", ApplyCoupon(subscription_id="sub_demo0000002", coupon="WINBACK20"),
                               idempotency_key="act-9")
    assert result.ok and len(result.data["discounts"]) == 1
    discount = sandbox.get(result.data["discounts"][0])
    assert discount["source"] == {"coupon": "WINBACK20", "type": "coupon"} and discount["end"] is not None
    unknown = connector.execute("apply_coupon", ApplyCoupon(subscription_id="sub_demo0000002", coupon="NOPE"),
                                idempotency_key="act-10")
    assert not unknown.ok and unknown.code == "resource_missing" and "No such coupon: 'NOPE'" in unknown.error


def test_cancel_at_period_end_with_feedback(connector, sandbox):
    result = connector.execute("cancel_at_period_end", CancelAtPeriodEnd(
        subscription_id="sub_demo0000003", feedback="too_expensive", comment="asked for a discount"),
        idempotency_key="act-11")
    assert result.ok and result.data["cancel_at_period_end"] and result.data["status"] == "active"
    assert result.data["cancellation_feedback"] == "too_expensive"
    assert result.data["cancel_at"] == result.data["current_period_end"]
    undone = connector.execute("cancel_at_period_end", CancelAtPeriodEnd(
        subscription_id="sub_demo0000003", cancel_at_period_end=False), idempotency_key="act-12")
    assert undone.ok and not undone.data["cancel_at_period_end"] and undone.data["cancel_at"] is None


def test_set_metadata_on_customers_and_subscriptions(connector, sandbox):
    sandbox.update_customer("cus_demo0000003", metadata={"old": "x"})
    result = connector.execute("set_metadata", SetMetadata(
        object="customer", id="cus_demo0000003", metadata={"health": "green", "old": None}), idempotency_key="act-13")
    assert result.ok and sandbox.get("cus_demo0000003")["metadata"] == {
        "salesforce_account_id": "001demo00000003", "health": "green"}  # merged; "old" removed
    result = connector.execute("set_metadata", SetMetadata(
        object="subscription", id="sub_demo0000003", metadata={"playbook": "save"}), idempotency_key="act-14")
    assert result.ok and result.data["metadata"] == {"playbook": "save"}


def test_operations_on_missing_objects_are_final_refusals(connector):
    result = connector.execute("retry_invoice", RetryInvoice(invoice_id="in_missing"), idempotency_key="act-15")
    assert not result.ok and not result.retryable and result.code == "resource_missing"


def test_params_are_validated():
    with pytest.raises(ValidationError):
        RetryInvoice(invoice_id="sub_wrong_kind")
    with pytest.raises(ValidationError):
        PauseCollection(subscription_id="sub_1", behavior="forever")
    with pytest.raises(ValidationError):
        SetMetadata(object="invoice", id="in_1", metadata={"a": "b"})
    with pytest.raises(ValidationError):
        ApplyCoupon(subscription_id="sub_1", coupon="X", extra=1)


def test_params_given_as_another_model_are_converted(connector, sandbox):
    from pydantic import BaseModel

    class Loose(BaseModel):
        invoice_id: str

    sandbox.set_card_scenario("cus_demo0000005", "ok")
    assert connector.execute("retry_invoice", Loose(invoice_id="in_demo0000005"), idempotency_key="act-16").ok
    with pytest.raises(ValueError, match="unknown Stripe operation"):
        connector.execute("refund_everything", Loose(invoice_id="in_1"), idempotency_key="act-17")


def test_idempotency_keys_are_derived_and_bounded():
    assert stripe_idempotency_key("apply_coupon", "action-42") == "churnhub-apply_coupon-action-42"
    long = stripe_idempotency_key("apply_coupon", "x" * 400)
    assert len(long) <= 255 and long == stripe_idempotency_key("apply_coupon", "x" * 400)
    assert long != stripe_idempotency_key("apply_coupon", "y" * 400)


def test_a_refused_key_raises_auth_error_instead_of_a_result():
    def handler(request):
        return httpx.Response(401, json={"error": {"type": "invalid_request_error",
                                                   "message": "Invalid API Key provided: sk_test_****oops"}})

    connector = StripeConnector(StripeSettings(api_key="sk_test_oops"), transport=httpx.MockTransport(handler))
    with pytest.raises(AuthError, match="Invalid API Key"):
        connector.execute("retry_invoice", RetryInvoice(invoice_id="in_1"), idempotency_key="k")
