"""The Stripe client's error mapping and retry decisions, on `httpx.MockTransport`."""

from __future__ import annotations

import httpx
import pytest

from connectors.stripe.client import CardError, StripeClient
from connectors.stripe.settings import StripeSettings
from hub import NotFoundError, RetryPolicy, TransientError

SECRET = "sk_live_0123456789abcdef"


def client(handler, fake_time) -> StripeClient:
    return StripeClient(StripeSettings(api_key=SECRET), transport=httpx.MockTransport(handler),
                        sleep=fake_time.sleep, clock=fake_time.clock,
                        retry=RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=5, jitter=0))


def answers(*responses):
    seen = []

    def handler(request):
        seen.append(request)
        return responses[min(len(seen), len(responses)) - 1]
    return handler, seen


def stripe_error(status, headers=None, **error):
    return httpx.Response(status, json={"error": error}, headers={"request-id": "req_9", **(headers or {})})


def test_a_402_is_a_card_error_with_the_decline_details(fake_time):
    handler, seen = answers(stripe_error(402, type="card_error", code="card_declined", decline_code="lost_card",
                                         message="Your card was declined.", charge="ch_1", advice_code="do_not_try_again"))
    with pytest.raises(CardError) as caught:
        client(handler, fake_time).post("/v1/invoices/in_1/pay", {}, idempotency_key="k")
    declined = caught.value
    assert (declined.decline_code, declined.charge, declined.advice_code, declined.code) == (
        "lost_card", "ch_1", "do_not_try_again", "lost_card")
    assert declined.api_message == "Your card was declined." and declined.request_id == "req_9"
    assert len(seen) == 1 and seen[0].headers["Idempotency-Key"] == "k"


def test_stripe_should_retry_false_is_obeyed_on_a_500(fake_time):
    handler, seen = answers(stripe_error(500, {"Stripe-Should-Retry": "false"}, type="api_error", message="oops"))
    with pytest.raises(TransientError, match="oops"):
        client(handler, fake_time).post("/v1/subscriptions/sub_1", {"metadata": {"a": "b"}}, idempotency_key="k")
    assert len(seen) == 1


def test_a_409_conflict_is_retried_with_the_same_key(fake_time):
    handler, seen = answers(stripe_error(409, type="idempotency_error", message="in progress"),
                            httpx.Response(200, json={"id": "sub_1", "object": "subscription"}))
    body = client(handler, fake_time).post("/v1/subscriptions/sub_1", {"cancel_at_period_end": True},
                                           idempotency_key="same")
    assert body["id"] == "sub_1" and [r.headers["Idempotency-Key"] for r in seen] == ["same", "same"]
    assert seen[0].content == b"cancel_at_period_end=true" and fake_time.sleeps == [0.5]


def test_a_400_names_the_parameter_and_keeps_the_key_secret(fake_time):
    handler, _ = answers(stripe_error(404, type="invalid_request_error", code="resource_missing",
                                      message=f"No such customer: 'cus_x' (key {SECRET})", param="id"))
    with pytest.raises(NotFoundError) as caught:
        client(handler, fake_time).get("/v1/customers/cus_x")
    assert "(param: id)" in str(caught.value) and SECRET not in str(caught.value)
    assert caught.value.code == "resource_missing"


def test_list_parameters_are_bracket_encoded(fake_time):
    handler, seen = answers(httpx.Response(200, json={"object": "list", "data": [], "has_more": False}))
    client(handler, fake_time).list_page("/v1/events", {"types": ["a.b", "c.d"], "created": {"gt": 5}},
                                         ending_before="evt_1", limit=100)
    assert seen[0].url.params.multi_items() == [("types[0]", "a.b"), ("types[1]", "c.d"), ("created[gt]", "5"),
                                                ("limit", "100"), ("ending_before", "evt_1")]
