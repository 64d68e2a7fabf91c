"""The connector verifies webhook deliveries (`Stripe-Signature`, its `webhook_secret`) and maps an
event's object to the record the streams would yield for it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.stripe import signature
from connectors.stripe.connector import StripeConnector
from connectors.stripe.mapping import map_invoice
from connectors.stripe.settings import StripeSettings
from hub import AuthError, Kind, PermanentError

SECRET = "whsec_unit_test"
NOW = 1_700_000_000


def connector(**settings: Any) -> StripeConnector:
    values = {"api_key": "sk_test_x", "base_url": "http://127.0.0.1:9", "webhook_secret": SECRET, **settings}
    return StripeConnector(StripeSettings(**values), clock=lambda: float(NOW))


def event(type_: str = "invoice.payment_failed", obj: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "evt_1", "object": "event", "type": type_, "created": NOW - 5,
            "data": {"object": obj or {"id": "in_1", "object": "invoice", "status": "open"}}}


def delivery(payload: Any = None, *, secret: str = SECRET, at: int = NOW) -> tuple[dict[str, str], bytes]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload or event()).encode()
    return {"Stripe-Signature": signature.sign(body, secret, at)}, body


def test_a_genuine_delivery_is_parsed() -> None:
    headers, body = delivery()
    verified = connector().verify_webhook({k.lower(): v for k, v in headers.items()}, body)  # headers are case-blind
    assert (verified.id, verified.type) == ("evt_1", "invoice.payment_failed")
    assert verified.payload["data"]["object"]["id"] == "in_1"


def test_any_v1_may_match_while_the_secret_is_rolled() -> None:
    _, body = delivery()
    header = f"t={NOW},v1={signature.compute(body, 'whsec_old', NOW)},v0=ignored,v1={signature.compute(body, SECRET, NOW)}"
    assert connector().verify_webhook({"Stripe-Signature": header}, body).id == "evt_1"


def test_forged_tampered_and_unsigned_deliveries_are_auth_errors() -> None:
    hub_connector = connector()
    headers, body = delivery(secret="whsec_someone_else")
    with pytest.raises(AuthError, match="does not match"):
        hub_connector.verify_webhook(headers, body)
    headers, body = delivery()
    with pytest.raises(AuthError):
        hub_connector.verify_webhook(headers, body + b" ")
    with pytest.raises(AuthError, match="missing Stripe-Signature"):
        hub_connector.verify_webhook({}, body)


@pytest.mark.parametrize("at, accepted", [(NOW - 300, True), (NOW + 300, True), (NOW - 301, False),
                                          (NOW + 301, False)])
def test_the_tolerance_is_300_seconds_either_way(at: int, accepted: bool) -> None:
    headers, body = delivery(at=at)
    if accepted:
        assert connector().verify_webhook(headers, body).id == "evt_1"
    else:
        with pytest.raises(PermanentError, match="stale"):
            connector().verify_webhook(headers, body)


def test_the_tolerance_is_a_setting() -> None:
    headers, body = delivery(at=NOW - 600)
    assert connector(webhook_tolerance=900).verify_webhook(headers, body).id == "evt_1"
    with pytest.raises(PermanentError):
        connector().verify_webhook(headers, body)


@pytest.mark.parametrize("header", ["v1=abc", f"t={NOW}", "t=soon,v1=abc", "garbage"])
def test_a_malformed_header_is_a_permanent_error(header: str) -> None:
    with pytest.raises(PermanentError, match="malformed"):
        connector().verify_webhook({"Stripe-Signature": header}, b"{}")


@pytest.mark.parametrize("body, message", [(b"not json", "not JSON"), (b"[1, 2]", "not a Stripe event"),
                                           (b'{"id": "evt_1"}', "not a Stripe event")])
def test_a_signed_body_that_is_not_an_event_is_a_permanent_error(body: bytes, message: str) -> None:
    headers, body = delivery(body)
    with pytest.raises(PermanentError, match=message):
        connector().verify_webhook(headers, body)


def test_without_a_webhook_secret_deliveries_are_refused_with_how_to_fix_it() -> None:
    headers, body = delivery()
    with pytest.raises(AuthError, match="webhook_secret"):
        connector(webhook_secret=None).verify_webhook(headers, body)


def test_the_secret_is_not_shown_with_the_settings() -> None:
    settings = StripeSettings(api_key="sk_test_x", webhook_secret=SECRET)
    assert SECRET not in repr(settings) and settings.webhook_tolerance == 300


def test_webhook_records_are_the_object_mapped_like_the_streams(stripe_example) -> None:
    invoice = stripe_example("invoice")
    headers, body = delivery(event("invoice.paid", invoice))
    hub_connector = connector()
    [record] = hub_connector.webhook_records(hub_connector.verify_webhook(headers, body))
    assert (record.kind, record.external_id) == (Kind.INVOICE, invoice["id"])
    assert record.fields == map_invoice(invoice).fields
    deleted = hub_connector.webhook_records(hub_connector.verify_webhook(
        *delivery(event("customer.deleted", stripe_example("customer")))))
    assert [(r.kind, r.deleted) for r in deleted] == [(Kind.ACCOUNT, True)]
    other = event("charge.dispute.created", {"id": "dp_1", "object": "dispute"})
    assert hub_connector.webhook_records(hub_connector.verify_webhook(*delivery(other))) == ()
