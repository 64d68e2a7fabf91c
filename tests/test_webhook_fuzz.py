"""A fuzz pass of `POST /webhooks/stripe/{connector}`: whatever arrives, the answer is a clean 4xx
(or a 200 for a genuine event), nothing unsigned is stored, and the server keeps serving."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from connectors.stripe.signature import sign
from hub import serve_in_thread
from hub.app import Hub
from hub.models import WebhookEvent
from hub.web import MAX_BODY, EventProcessor, create_app

SECRET = "whsec_fuzz_0123456789abcdef"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Hub]]:
    directory = tmp_path_factory.mktemp("fuzz")
    config = directory / "churnhub.yaml"
    config.write_text(yaml.safe_dump({"connectors": {"billing": {
        "type": "stripe", "api_key": "sk_test_fuzz", "base_url": "http://127.0.0.1:9", "webhook_secret": SECRET}}}))
    hub = Hub.from_config(config)
    hub.ensure_database()
    server = serve_in_thread(create_app(hub, EventProcessor(hub)), name="churnhub-serve")   # real HTTP, loopback
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, hub
    server.stop()
    hub.close()


def stored(hub: Hub) -> int:
    with hub.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(WebhookEvent)).scalar_one()


def event(event_id: str) -> bytes:
    return json.dumps({"id": event_id, "type": "invoice.paid", "created": int(time.time()),
                       "data": {"object": {"id": "in_fuzz", "object": "invoice", "customer": "cus_1",
                                           "status": "paid", "amount_due": 100, "amount_paid": 100,
                                           "currency": "usd", "created": int(time.time())}}}).encode()


header_values = st.one_of(st.none(), st.text(max_size=200),
                          st.builds(lambda t, v: f"t={t},v1={v}", st.integers(-10, 2**40), st.text(max_size=80)))


@FUZZ
@given(body=st.binary(max_size=2000), signature=header_values,
       content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]))
def test_unsigned_or_garbled_deliveries_are_refused_cleanly_and_not_stored(
        server: tuple[httpx.Client, Hub], body: bytes, signature: str | None, content_type: str) -> None:
    client, hub = server
    before = stored(hub)
    headers: dict[str, bytes] = {"content-type": content_type.encode()} if content_type else {}
    if signature is not None:   # any bytes HTTP lets a client put in a header value
        raw = signature.encode("utf-8", "surrogatepass")
        headers["stripe-signature"] = bytes(b for b in raw if b >= 0x20 and b != 0x7F).strip()
    response = client.post("/webhooks/stripe/billing", content=body, headers=headers)
    assert response.status_code in (400, 401), response.text
    assert "error" in response.json()
    assert stored(hub) == before


@FUZZ
@given(body=st.binary(min_size=1, max_size=500))
def test_signed_garbage_is_a_400_never_a_crash(server: tuple[httpx.Client, Hub], body: bytes) -> None:
    client, hub = server
    before = stored(hub)
    response = client.post("/webhooks/stripe/billing", content=body,
                           headers={"stripe-signature": sign(body, SECRET, int(time.time()))})
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert stored(hub) == before


def test_non_utf8_and_oversized_bodies(server: tuple[httpx.Client, Hub]) -> None:
    client, hub = server
    before = stored(hub)
    latin = b'{"id": "evt_\xff\xfe", "type": "invoice.paid"}'
    response = client.post("/webhooks/stripe/billing", content=latin,
                           headers={"stripe-signature": sign(latin, SECRET, int(time.time()))})
    assert response.status_code == 400
    huge = b"{" + b" " * (MAX_BODY + 10) + b"}"
    response = client.post("/webhooks/stripe/billing", content=huge,
                           headers={"stripe-signature": sign(huge, SECRET, int(time.time()))})
    assert response.status_code == 413 and "too large" in response.json()["error"]
    assert stored(hub) == before


def test_after_the_fuzz_a_genuine_event_is_accepted_once(server: tuple[httpx.Client, Hub]) -> None:
    client, hub = server
    before = stored(hub)
    body = event("evt_after_fuzz")
    for _ in range(2):
        response = client.post("/webhooks/stripe/billing", content=body,
                               headers={"stripe-signature": sign(body, SECRET, int(time.time()))})
        assert response.status_code == 200
    assert response.json()["duplicate"] is True
    assert stored(hub) == before + 1
    assert client.get("/healthz").status_code == 200


def test_an_unknown_connector_is_404(server: tuple[httpx.Client, Hub]) -> None:
    client, _ = server
    assert client.post("/webhooks/stripe/nope", content=b"{}").status_code == 404
