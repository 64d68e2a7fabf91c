"""The Stripe sandbox over real HTTP: the API semantics the connector and the demo rely on."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.stripe import signature
from hub import serve_in_thread

KEY = "sk_test_churnhub_0123456789"
DAY = 86400


def newest_first(http: httpx.Client, path: str, **params) -> list[dict]:
    return http.get(path, params={"limit": 100, **params}).json()["data"]


def event_types(sandbox, since: int) -> list[str]:
    return [e["type"] for e in reversed(sandbox.events(created_since=since))]


# --- requests --------------------------------------------------------------------------------

def test_requests_need_the_api_key(sandbox):
    missing = httpx.get(f"{sandbox.url}/v1/customers")
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "did not provide an API key" in missing.json()["error"]["message"]
    wrong = httpx.get(f"{sandbox.url}/v1/customers", headers={"Authorization": "Bearer sk_test_wrong_key_98765"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"].startswith("Invalid API Key provided: sk_test_")
    assert "sk_test_wrong_key_98765" not in wrong.text and wrong.headers["Request-Id"].startswith("req_")
    assert httpx.get(f"{sandbox.url}/v1/customers", auth=(KEY, "")).status_code == 200


def test_lists_are_newest_first_with_limits_and_cursors(http):
    everything = newest_first(http, "/v1/customers")
    assert len(everything) == 12
    assert [c["created"] for c in everything] == sorted((c["created"] for c in everything), reverse=True)
    default = http.get("/v1/customers").json()
    assert default["object"] == "list" and default["url"] == "/v1/customers"
    assert len(default["data"]) == 10 and default["has_more"] is True
    ids = [c["id"] for c in everything]
    after = http.get("/v1/customers", params={"limit": 3, "starting_after": ids[4]}).json()
    assert [c["id"] for c in after["data"]] == ids[5:8] and after["has_more"] is True
    before = http.get("/v1/customers", params={"limit": 2, "ending_before": ids[5]}).json()
    assert [c["id"] for c in before["data"]] == ids[3:5] and before["has_more"] is True
    last = http.get("/v1/customers", params={"limit": 5, "starting_after": ids[8]}).json()
    assert [c["id"] for c in last["data"]] == ids[9:] and last["has_more"] is False


@pytest.mark.parametrize(("params", "param"), [
    ({"limit": 101}, "limit"), ({"limit": 0}, "limit"), ({"limit": "ten"}, "limit"),
    ({"starting_after": "cus_nobody"}, "starting_after"), ({"created[gt]": "yesterday"}, "created[gt]"),
])
def test_invalid_list_parameters_are_400s(http, params, param):
    response = http.get("/v1/customers", params=params)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_only_one_cursor_at_a_time(http):
    ids = [c["id"] for c in newest_first(http, "/v1/customers")]
    response = http.get("/v1/customers", params={"starting_after": ids[1], "ending_before": ids[0]})
    assert response.status_code == 400 and "only specify one" in response.json()["error"]["message"]


def test_created_filters(http):
    everything = newest_first(http, "/v1/customers")
    window = newest_first(http, "/v1/customers", **{"created[gte]": everything[3]["created"],
                                                    "created[lte]": everything[1]["created"]})
    assert window == everything[1:4]
    assert newest_first(http, "/v1/customers", **{"created[gt]": everything[3]["created"],
                                                  "created[lt]": everything[1]["created"]}) == everything[2:3]
    assert newest_first(http, "/v1/customers", created=everything[5]["created"]) == everything[5:6]


def test_subscriptions_hide_canceled_ones_unless_asked(http):
    default = {s["id"] for s in newest_first(http, "/v1/subscriptions")}
    everything = {s["id"]: s["status"] for s in newest_first(http, "/v1/subscriptions", status="all")}
    assert "sub_demo0000007" in everything and everything["sub_demo0000007"] == "canceled"
    assert default == {i for i, status in everything.items() if status != "canceled"}
    assert [s["id"] for s in newest_first(http, "/v1/subscriptions", status="canceled")] == ["sub_demo0000007"]
    assert [s["id"] for s in newest_first(http, "/v1/subscriptions", customer="cus_demo0000005")] == ["sub_demo0000005"]


def test_ids_carry_stripes_prefixes(http, sandbox):
    customer = http.post("/v1/customers", data={"email": "new@prefix.example"}).json()
    assert customer["id"].startswith("cus_") and customer["object"] == "customer"
    card = sandbox.add_card(customer["id"], last4="4444")
    subscription = sandbox.create_subscription(customer["id"], "price_pro_monthly")
    assert card["id"].startswith("pm_") and subscription["id"].startswith("sub_")
    assert subscription["latest_invoice"].startswith("in_")
    assert subscription["items"]["data"][0]["id"].startswith("si_")
    assert all(e["id"].startswith("evt_") for e in sandbox.events())


def test_form_bodies_with_bracket_keys(http):
    created = http.post("/v1/customers", data={"email": "ops@bracket.example", "metadata[crm_id]": "001",
                                               "metadata[tier]": "gold"}).json()
    assert created["metadata"] == {"crm_id": "001", "tier": "gold"}
    updated = http.post(f"/v1/customers/{created['id']}", data={"metadata[tier]": "", "name": "Bracket"}).json()
    assert updated["metadata"] == {"crm_id": "001"} and updated["name"] == "Bracket"
    item = http.get("/v1/subscriptions/sub_demo0000001").json()["items"]["data"][0]
    changed = http.post("/v1/subscriptions/sub_demo0000001",
                        data={"items[0][id]": item["id"], "items[0][quantity]": "9"}).json()
    assert changed["items"]["data"][0]["quantity"] == 9
    unknown = http.post("/v1/subscriptions/sub_demo0000001", data={"bogus": "1"})
    assert unknown.status_code == 400 and unknown.json()["error"]["message"] == "Received unknown parameter: bogus"


def test_expand_on_objects_and_lists(http):
    customers = http.get("/v1/customers", params={"expand[]": "data.invoice_settings.default_payment_method"}).json()
    methods = [c["invoice_settings"]["default_payment_method"] for c in customers["data"]]
    assert all(m["object"] == "payment_method" and m["customer"] == c["id"]
               for m, c in zip(methods, customers["data"], strict=True))
    subscription = http.get("/v1/subscriptions/sub_demo0000001", params={"expand[0]": "customer"}).json()
    assert subscription["customer"]["id"] == "cus_demo0000001"
    plain = http.get("/v1/subscriptions/sub_demo0000001").json()
    assert plain["customer"] == "cus_demo0000001"


def test_subscription_items_are_truncated_like_nested_lists(http, sandbox):
    items = [{"price": "price_starter_monthly", "quantity": n} for n in range(1, 13)]
    created = sandbox.create_subscription("cus_demo0000009", "price_pro_monthly")
    http.post(f"/v1/subscriptions/{created['id']}", data={
        f"items[{i}][{k}]": v for i, entry in enumerate(items) for k, v in entry.items()})
    shown = http.get(f"/v1/subscriptions/{created['id']}").json()["items"]
    assert len(shown["data"]) == 10 and shown["has_more"] is True
    first = http.get("/v1/subscription_items", params={"subscription": created["id"], "limit": 8}).json()
    rest = http.get("/v1/subscription_items", params={"subscription": created["id"], "limit": 8,
                                                      "starting_after": first["data"][-1]["id"]}).json()
    assert len(first["data"]) + len(rest["data"]) == 13 and first["has_more"] and not rest["has_more"]


# --- deletes and events ----------------------------------------------------------------------

def test_deleting_a_customer_leaves_a_tombstone_and_cancels_its_subscriptions(http, sandbox):
    since = sandbox.now()
    deleted = http.delete("/v1/customers/cus_demo0000001").json()
    assert deleted == {"id": "cus_demo0000001", "object": "customer", "deleted": True}
    assert http.get("/v1/customers/cus_demo0000001").json() == deleted
    assert "cus_demo0000001" not in {c["id"] for c in newest_first(http, "/v1/customers")}
    assert http.get("/v1/subscriptions/sub_demo0000001").json()["status"] == "canceled"
    assert event_types(sandbox, since) == ["customer.subscription.deleted", "customer.deleted"]
    assert http.delete("/v1/customers/cus_demo0000001").status_code == 404


def test_every_change_is_an_event_with_previous_attributes(http, sandbox):
    since = sandbox.now()
    http.post("/v1/customers/cus_demo0000002", data={"email": "new@globex.example"})
    http.post("/v1/subscriptions/sub_demo0000002", data={"cancel_at_period_end": "true"})
    http.delete("/v1/subscriptions/sub_demo0000003")
    assert event_types(sandbox, since) == ["customer.updated", "customer.subscription.updated",
                                           "customer.subscription.deleted"]
    updated = sandbox.events("customer.updated")[0]
    assert updated["data"]["previous_attributes"] == {"email": "billing@initech.example"}
    assert updated["data"]["object"]["email"] == "new@globex.example"
    assert updated["request"]["id"].startswith("req_")


def test_events_filter_by_type_and_walk_forward(http, sandbox):
    for n in range(4):
        http.post("/v1/customers/cus_demo0000002", data={"metadata[n]": str(n)})
    http.delete("/v1/subscriptions/sub_demo0000003")
    customer_events = newest_first(http, "/v1/events", **{"types[]": ["customer.updated", "customer.deleted"]})
    assert len(customer_events) == 4
    assert [e["type"] for e in newest_first(http, "/v1/events", type="customer.subscription.*")] == [
        "customer.subscription.deleted"]
    oldest = customer_events[-1]
    forward = http.get("/v1/events", params={"type": "customer.updated", "ending_before": oldest["id"],
                                             "limit": 2}).json()
    assert [e["id"] for e in forward["data"]] == [customer_events[1]["id"], customer_events[2]["id"]]
    assert forward["has_more"] is True


def test_events_older_than_30_days_are_gone(http, sandbox):
    http.post("/v1/customers/cus_demo0000002", data={"name": "Old news"})
    old = sandbox.events("customer.updated")[0]
    assert http.get(f"/v1/events/{old['id']}").status_code == 200
    sandbox.advance_clock(31 * DAY)
    assert old["id"] not in {e["id"] for e in newest_first(http, "/v1/events", type="customer.updated")}
    assert http.get(f"/v1/events/{old['id']}").status_code == 404
    cursor = http.get("/v1/events", params={"ending_before": old["id"]})
    assert cursor.status_code == 400
    assert cursor.json()["error"]["code"] == "resource_missing" and cursor.json()["error"]["param"] == "ending_before"


# --- payments ----------------------------------------------------------------------------------

def test_an_invoice_payment_declines_then_succeeds_per_the_card_scenario(http, sandbox):
    since = sandbox.now()
    declined = http.post("/v1/invoices/in_demo0000005/pay")
    assert declined.status_code == 402
    error = declined.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == ("card_error", "card_declined", "insufficient_funds")
    assert error["message"] == "Your card has insufficient funds." and error["charge"].startswith("ch_")
    charge = http.get(f"/v1/charges/{error['charge']}").json()
    assert charge["status"] == "failed" and charge["outcome"]["reason"] == "insufficient_funds"
    assert http.get("/v1/invoices/in_demo0000005").json()["attempt_count"] == 2
    assert event_types(sandbox, since) == ["charge.failed", "invoice.payment_failed"]

    assert http.post("/_sandbox/card_scenario", data={"customer": "cus_demo0000005", "scenario": "ok"}).status_code == 200
    paid = http.post("/v1/invoices/in_demo0000005/pay").json()
    assert paid["status"] == "paid" and paid["amount_paid"] == paid["amount_due"] and paid["attempt_count"] == 3
    assert http.get("/v1/subscriptions/sub_demo0000005").json()["status"] == "active"
    assert http.get("/v1/customers/cus_demo0000005").json()["delinquent"] is False
    assert event_types(sandbox, since)[2:] == ["charge.succeeded", "invoice.paid", "invoice.payment_succeeded",
                                               "customer.updated", "customer.subscription.updated"]
    again = http.post("/v1/invoices/in_demo0000005/pay")
    assert again.status_code == 400 and again.json()["error"]["message"] == "Invoice is already paid"


@pytest.mark.parametrize(("scenario", "code"), [("expired_card", "expired_card"), ("lost_card", "card_declined"),
                                                ("stolen_card", "card_declined"), ("fraudulent", "card_declined"),
                                                ("do_not_honor", "card_declined")])
def test_hard_declines(http, sandbox, scenario, code):
    sandbox.set_card_scenario("cus_demo0000005", scenario)
    error = http.post("/v1/invoices/in_demo0000005/pay").json()["error"]
    assert (error["code"], error["decline_code"]) == (code, scenario)


def test_unknown_card_scenario_is_refused(http, sandbox):
    response = http.post("/_sandbox/card_scenario", data={"customer": "cus_demo0000005", "scenario": "lucky"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "scenario"
    with pytest.raises(ValueError, match="lucky"):
        sandbox.set_card_scenario("cus_demo0000005", "lucky")


def test_mark_uncollectible_only_for_open_invoices(http):
    marked = http.post("/v1/invoices/in_demo0000011/mark_uncollectible").json()
    assert marked["status"] == "uncollectible" and marked["next_payment_attempt"] is None
    again = http.post("/v1/invoices/in_demo0000011/mark_uncollectible")
    assert again.status_code == 400


# --- idempotency, errors, limits -----------------------------------------------------------------

def test_idempotent_replay_acts_once(http, sandbox):
    headers = {"Idempotency-Key": "key-1"}
    first = http.post("/v1/invoices/in_demo0000005/pay", headers=headers)
    second = http.post("/v1/invoices/in_demo0000005/pay", headers=headers)
    assert first.status_code == second.status_code == 402
    assert first.json() == second.json() and second.headers["Idempotent-Replayed"] == "true"
    assert http.get("/v1/invoices/in_demo0000005").json()["attempt_count"] == 2  # one attempt, not two
    mismatch = http.post("/v1/invoices/in_demo0000005/pay", headers=headers, data={"off_session": "true"})
    assert mismatch.status_code == 400 and mismatch.json()["error"]["type"] == "idempotency_error"
    other_path = http.post("/v1/customers/cus_demo0000005", headers=headers, data={"name": "x"})
    assert other_path.status_code == 400 and other_path.json()["error"]["type"] == "idempotency_error"


def test_the_same_parameters_in_another_order_replay(http):
    headers = {"Idempotency-Key": "key-order"}
    first = http.post("/v1/customers", headers=headers, content="email=a%40b.example&name=AB")
    second = http.post("/v1/customers", headers=headers, content="name=AB&email=a%40b.example")
    assert first.json()["id"] == second.json()["id"] and second.headers["Idempotent-Replayed"] == "true"


def test_a_500_is_replayed_too(http, sandbox):
    sandbox.fail_next(1, path="/v1/invoices/")
    headers = {"Idempotency-Key": "key-500"}
    first = http.post("/v1/invoices/in_demo0000005/pay", headers=headers)
    assert first.status_code == 500 and first.json()["error"]["type"] == "api_error"
    sandbox.set_card_scenario("cus_demo0000005", "ok")
    replay = http.post("/v1/invoices/in_demo0000005/pay", headers=headers)
    assert replay.status_code == 500 and replay.headers["Idempotent-Replayed"] == "true"
    assert http.get("/v1/invoices/in_demo0000005").json()["attempt_count"] == 1
    assert http.post("/v1/invoices/in_demo0000005/pay", headers={"Idempotency-Key": "key-new"}).status_code == 200


def test_validation_errors_are_not_saved_under_the_key(http):
    headers = {"Idempotency-Key": "key-400"}
    assert http.post("/v1/subscriptions/sub_demo0000001", headers=headers, data={"bogus": "1"}).status_code == 400
    retried = http.post("/v1/subscriptions/sub_demo0000001", headers=headers, data={"bogus": "1"})
    assert retried.status_code == 400 and "Idempotent-Replayed" not in retried.headers


def test_a_concurrent_request_with_the_same_key_is_a_409(sandbox):
    hold = sandbox.hold_next("/v1/customers/")
    headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": "key-busy"}
    results: list[httpx.Response] = []
    first = threading.Thread(target=lambda: results.append(httpx.post(
        f"{sandbox.url}/v1/customers/cus_demo0000003", data={"name": "Busy"}, headers=headers)))
    first.start()
    assert hold.entered.wait(5)
    conflict = httpx.post(f"{sandbox.url}/v1/customers/cus_demo0000003", data={"name": "Busy"}, headers=headers)
    hold.release()
    first.join(5)
    assert conflict.status_code == 409 and conflict.json()["error"]["type"] == "idempotency_error"
    assert results[0].status_code == 200 and results[0].json()["name"] == "Busy"


def test_rate_limit_answers_429_with_the_retry_hint(start_stripe):
    frozen = start_stripe(rate_limit=2, rate_clock=lambda: 0.0)
    with httpx.Client(base_url=frozen.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        statuses = [http.get("/v1/balance") for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].headers["Stripe-Should-Retry"] == "true"
    assert statuses[2].json()["error"]["code"] == "rate_limit"


def test_unknown_objects_are_404_in_stripes_shape(http):
    response = http.get("/v1/invoices/in_nope")
    assert response.status_code == 404
    assert response.json()["error"] == {"type": "invalid_request_error", "message": "No such invoice: 'in_nope'",
                                         "code": "resource_missing",
                                         "doc_url": "https://stripe.com/docs/error-codes/resource-missing"}


# --- webhooks ----------------------------------------------------------------------------------

def test_webhooks_are_signed_and_posted_for_every_event(start_stripe):
    received: list[tuple[bytes, str]] = []

    async def receive(request: Request) -> Response:
        received.append((await request.body(), request.headers.get("stripe-signature", "")))
        return Response("ok")

    receiver = serve_in_thread(Starlette(routes=[Route("/hooks", receive, methods=["POST"])]))
    try:
        sandbox = start_stripe(webhook_url=f"{receiver.url}/hooks", webhook_secret="whsec_test")
        sandbox.update_customer("cus_demo0000004", name="Hooked")
        sandbox.cancel_subscription("sub_demo0000004", feedback="unused")
        assert sandbox.wait_for_webhooks(10)
    finally:
        receiver.stop()
    assert len(received) == 2
    for body, header in received:
        assert signature.verify(body, header, "whsec_test", now=time.time())
    assert [d.status for d in sandbox.webhooks.deliveries] == [200, 200]
    assert [e["pending_webhooks"] for e in sandbox.events()] == [1, 1]


def test_webhooks_are_off_unless_configured(sandbox):
    sandbox.update_customer("cus_demo0000004", name="Quiet")
    assert sandbox.webhooks.deliveries == [] and sandbox.webhooks.endpoints == []


# --- time ----------------------------------------------------------------------------------

def one_customer(**subscription) -> dict:
    start = 1_780_000_000
    return {
        "prices": [{"id": "price_m", "unit_amount": 5000, "recurring": {"interval": "month"}}],
        "customers": [{"id": "cus_t", "email": "t@time.example", "created": start - 40 * DAY,
                       "invoice_settings": {"default_payment_method": "pm_t"}}],
        "payment_methods": [{"id": "pm_t", "customer": "cus_t", "created": start - 40 * DAY}],
        "subscriptions": [{"id": "sub_t", "customer": "cus_t", "created": start - 40 * DAY,
                           "billing_cycle_anchor": start - 30 * DAY + 3600, **subscription,
                           "items": [{"price": "price_m", "quantity": 2}]}],
    }


def test_advancing_the_clock_renews_and_retries_until_the_subscription_is_canceled(start_stripe):
    sandbox = start_stripe(one_customer(), serve=False)
    sandbox.set_card_scenario("cus_t", "insufficient_funds")
    renewal = sandbox.now() + 3600
    events = [e["type"] for e in reversed(sandbox.advance_clock(2 * 3600))]
    assert events[:4] == ["customer.subscription.updated", "invoice.created", "invoice.finalized", "charge.failed"]
    invoice = sandbox.get(sandbox.get("sub_t")["latest_invoice"])
    assert invoice["amount_due"] == 10000 and invoice["attempt_count"] == 1
    assert invoice["next_payment_attempt"] == renewal + 3 * DAY
    assert sandbox.get("sub_t")["status"] == "past_due" and sandbox.get("cus_t")["delinquent"] is True
    sandbox.advance_clock(3 * DAY + 5 * DAY)
    assert sandbox.get(invoice["id"])["attempt_count"] == 3
    sandbox.advance_clock(7 * DAY)
    final = sandbox.get("sub_t")
    assert final["status"] == "canceled" and final["cancellation_details"]["reason"] == "payment_failed"
    assert sandbox.get(invoice["id"])["attempt_count"] == 4 and sandbox.get(invoice["id"])["next_payment_attempt"] is None


def test_a_paid_renewal_moves_the_period_by_a_calendar_month(start_stripe):
    sandbox = start_stripe(one_customer(), serve=False)
    before = sandbox.get("sub_t")["items"]["data"][0]
    sandbox.advance_clock(2 * 3600)
    after = sandbox.get("sub_t")["items"]["data"][0]
    assert after["current_period_start"] == before["current_period_end"] == 1_780_003_600
    assert after["current_period_end"] == 1_780_003_600 + 31 * DAY  # 2026-05-28 -> 2026-06-28: May has 31
    assert sandbox.get(sandbox.get("sub_t")["latest_invoice"])["status"] == "paid"


def test_cancel_at_period_end_cancels_when_the_period_ends(start_stripe):
    sandbox = start_stripe(one_customer(), serve=False)
    sandbox.update_subscription("sub_t", cancel_at_period_end=True)
    assert sandbox.get("sub_t")["status"] == "active" and sandbox.get("sub_t")["cancel_at"] == 1_780_003_600
    sandbox.advance_clock(2 * 3600)
    ended = sandbox.get("sub_t")
    assert ended["status"] == "canceled" and ended["ended_at"] == 1_780_003_600
    assert ended["cancellation_details"]["reason"] == "cancellation_requested"
    assert sandbox.events("invoice.created") == []


def test_paused_collection_keeps_renewals_as_drafts_until_it_resumes(start_stripe):
    sandbox = start_stripe(one_customer(), serve=False)
    sandbox.update_subscription("sub_t", pause_collection={"behavior": "keep_as_draft",
                                                           "resumes_at": sandbox.now() + 10 * DAY})
    sandbox.advance_clock(2 * 3600)
    draft = sandbox.get(sandbox.get("sub_t")["latest_invoice"])
    assert draft["status"] == "draft" and sandbox.events("charge.succeeded") == []
    sandbox.advance_clock(10 * DAY)
    assert sandbox.get("sub_t")["pause_collection"] is None and sandbox.get("sub_t")["status"] == "active"


def test_trials_end_with_a_first_invoice_and_declined_starts_expire(start_stripe):
    sandbox = start_stripe(one_customer(status="canceled"), serve=False)
    trial = sandbox.create_subscription("cus_t", "price_m", trial_period_days=7)
    assert trial["status"] == "trialing" and trial["latest_invoice"] is None
    sandbox.advance_clock(7 * DAY)
    assert sandbox.get(trial["id"])["status"] == "active"
    assert sandbox.get(sandbox.get(trial["id"])["latest_invoice"])["status"] == "paid"

    sandbox.set_card_scenario("cus_t", "do_not_honor")
    failed = sandbox.create_subscription("cus_t", "price_m")
    assert failed["status"] == "incomplete"
    sandbox.advance_clock(23 * 3600)
    assert sandbox.get(failed["id"])["status"] == "incomplete_expired"
    assert sandbox.get(failed["latest_invoice"])["status"] == "void"


def test_http_controls_for_the_demo(http, sandbox):
    moved = http.post("/_sandbox/advance_clock", data={"seconds": str(DAY)}).json()
    assert moved["now"] == sandbox.now() == 1_780_000_000 + DAY


# --- scale ---------------------------------------------------------------------------------

def test_a_hundred_thousand_customers_are_served_without_sorting_per_request(start_stripe):
    now = 1_780_000_000
    customers = [{"id": f"cus_{n:08d}", "email": f"c{n}@scale.example", "created": now - n} for n in range(100_000)]
    sandbox = start_stripe({"customers": customers})
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        started = time.perf_counter()
        deep = http.get("/v1/customers", params={"limit": 100, "starting_after": "cus_00099000"}).json()
        filtered = http.get("/v1/customers", params={"limit": 100, "created[lte]": now - 50_000}).json()
        elapsed = time.perf_counter() - started
    assert [c["id"] for c in deep["data"]][:2] == ["cus_00099001", "cus_00099002"] and deep["has_more"]
    assert filtered["data"][0]["id"] == "cus_00050000"
    assert elapsed < 1.0
