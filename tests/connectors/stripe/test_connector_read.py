"""The Stripe connector reading its streams from the sandbox over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from connectors.stripe.connector import StripeConnector
from connectors.stripe.settings import StripeSettings
from hub import AuthError, Kind, RateLimitedError

DAY = 86400
STREAMS = ("customers", "subscriptions", "invoices", "charges", "payment_methods")


def read_all(connector, stream, state=None):
    pages = list(connector.read(stream, state))
    return pages, [r for page in pages for r in page.records]


def backfill(connector) -> dict[str, dict]:
    return {stream: read_all(connector, stream)[0][-1].state for stream in STREAMS}


def by_id(records):
    return {r.external_id: r for r in records}


def test_check_proves_the_key_with_one_request(connector, sandbox):
    result = connector.check()
    assert result.ok and "2026-06-24.dahlia" in result.detail
    assert connector.request_count == 1


def test_a_bad_key_fails_check_cleanly_and_reads_raise_auth_error(sandbox, make_connector):
    bad = make_connector(sandbox, api_key="sk_test_not_the_right_one")
    result = bad.check()
    assert not result.ok and "Invalid API Key provided" in result.detail
    assert "sk_test_not_the_right_one" not in result.detail
    with pytest.raises(AuthError, match="Invalid API Key provided"):
        list(bad.read("customers", None))
    assert bad.request_count == 2  # a 401 is not retried


def test_every_request_carries_the_pinned_version_and_our_user_agent():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})

    settings = StripeSettings(api_key="sk_test_x", account="acct_123", api_version="2024-06-20")
    StripeConnector(settings, transport=httpx.MockTransport(handler)).check()
    headers = seen[0].headers
    assert headers["Stripe-Version"] == "2024-06-20" and headers["Stripe-Account"] == "acct_123"
    assert headers["Authorization"] == "Bearer sk_test_x" and headers["User-Agent"].startswith("churnhub/")


def test_a_full_read_of_every_stream_in_pages(make_connector, sandbox):
    connector = make_connector(sandbox, page_size=4)
    store = sandbox.store
    expected = {
        "customers": set(store.orders["customer"].ids),
        "subscriptions": set(store.orders["subscription"].ids),
        "invoices": set(store.orders["invoice"].ids),
        "charges": set(store.orders["charge"].ids),
        "payment_methods": {c["invoice_settings"]["default_payment_method"]
                            for c in map(store.objects.get, store.orders["customer"].ids)},
    }
    for stream, ids in expected.items():
        pages, records = read_all(connector, stream)
        assert len(records) == len(ids) and {r.external_id for r in records} == ids, stream
        assert all(r.kind == connector.streams[stream].kinds[0] for r in records)
        if len(ids) > 4:
            assert len(pages) > 2, stream  # 4 per page, then the event log
        assert pages[-1].state["phase"] == "events"
    subscriptions = by_id(read_all(connector, "subscriptions")[1])
    assert subscriptions["sub_demo0000007"].fields["status"] == "canceled"  # status=all
    assert subscriptions["sub_demo0000005"].fields["mrr"] == 9900 * 1  # pro monthly, 1 seat


def test_pages_carry_their_request_counts(connector):
    pages, _ = read_all(connector, "customers")
    assert sum(p.requests for p in pages) == connector.request_count


def test_a_subscription_with_more_items_than_stripe_embeds_is_read_whole(connector, sandbox):
    subscription = sandbox.create_subscription("cus_demo0000009", "price_starter_monthly")
    sandbox.update_subscription(subscription["id"], items=[{"price": "price_starter_monthly", "quantity": 1}
                                                           for _ in range(11)])
    records = by_id(read_all(connector, "subscriptions")[1])
    fields = records[subscription["id"]].fields
    assert fields["quantity"] == 12 and fields["mrr"] == 12 * 2900 and len(fields["prices"]) == 12


def with_history(sandbox) -> None:
    """Events of every stream's types, so the backfill anchors on an event id (as in a live account)."""
    sandbox.update_customer("cus_demo0000010", name="Earlier")
    sandbox.update_subscription("sub_demo0000010", metadata={"earlier": "yes"})
    sandbox.set_card_scenario("cus_demo0000011", "ok")
    sandbox.pay_invoice("in_demo0000011")


def test_incremental_read_follows_changes_through_events(connector, sandbox):
    with_history(sandbox)
    states = backfill(connector)
    assert all(state["events"]["id"] for state in states.values())
    sandbox.update_customer("cus_demo0000001", email="finance@new-domain.example", name="First rename")
    sandbox.update_customer("cus_demo0000001", name="Second rename")
    sandbox.update_subscription("sub_demo0000002", metadata={"health": "red"})
    sandbox.cancel_subscription("sub_demo0000003", feedback="switched_service", comment="went elsewhere")
    sandbox.delete_customer("cus_demo0000004")
    sandbox.add_card("cus_demo0000006", last4="1881", exp_month=1, exp_year=2031)
    sandbox.set_card_scenario("cus_demo0000000", "insufficient_funds")
    subscription = sandbox.get("sub_demo0000000")
    sandbox.advance_clock(subscription["items"]["data"][0]["current_period_end"] - sandbox.now() + 60)

    customers = by_id(read_all(connector, "customers", states["customers"])[1])
    assert customers["cus_demo0000001"].fields["domains"] == ["new-domain.example"]
    assert customers["cus_demo0000001"].fields["name"] == "Second rename"  # the newest event wins
    assert customers["cus_demo0000004"].deleted
    assert customers["cus_demo0000000"].fields["delinquent"] is True

    subscriptions = by_id(read_all(connector, "subscriptions", states["subscriptions"])[1])
    assert subscriptions["sub_demo0000002"].fields["metadata"] == {"health": "red"}
    canceled = subscriptions["sub_demo0000003"].fields
    assert (canceled["status"], canceled["cancellation_feedback"], canceled["cancellation_comment"]) == (
        "canceled", "switched_service", "went elsewhere")
    assert subscriptions["sub_demo0000004"].fields["status"] == "canceled"  # its customer was deleted
    assert not any(r.deleted for r in subscriptions.values())
    assert subscriptions["sub_demo0000000"].fields["status"] == "past_due"

    invoices = read_all(connector, "invoices", states["invoices"])[1]
    failed = [r for r in invoices if r.fields["account_id"] == "cus_demo0000000"]
    assert failed[-1].fields["status"] == "open" and failed[-1].fields["attempt_count"] == 1
    assert len({r.external_id for r in invoices}) == len(invoices)  # the newest event per object wins
    charges = read_all(connector, "charges", states["charges"])[1]
    assert [c.fields["decline_code"] for c in charges if c.fields["account_id"] == "cus_demo0000000"] == [
        "insufficient_funds"]

    methods = by_id(read_all(connector, "payment_methods", states["payment_methods"])[1])
    assert methods["pm_demo0000006"].deleted  # no longer the default
    new_card = next(r for r in methods.values() if r.fields.get("last4") == "1881")
    assert new_card.fields["account_id"] == "cus_demo0000006" and new_card.fields["exp_year"] == 2031
    assert methods["pm_demo0000004"].deleted  # its customer is gone


@pytest.mark.parametrize("history", [True, False], ids=["anchored-on-an-event", "no-events-yet"])
def test_an_unchanged_account_costs_one_events_request_per_stream_and_yields_nothing(connector, sandbox, history):
    if history:
        with_history(sandbox)
    states = backfill(connector)
    for stream in STREAMS:
        before = connector.request_count
        pages, records = read_all(connector, stream, states[stream])
        assert records == [] and connector.request_count - before == 1, stream
        assert pages[-1].state["events"]["id"] == states[stream]["events"]["id"]


def test_changes_made_during_a_backfill_are_not_lost(make_connector, sandbox):
    connector = make_connector(sandbox, page_size=3)
    pages = connector.read("customers", None)
    first = next(pages)
    state = first.state
    created = sandbox.create_customer(email="late@arrival.example")  # lands before the cursor
    sandbox.update_customer(first.records[0].external_id, name="Renamed meanwhile")
    rest = [r for page in connector.read("customers", state) for r in page.records]
    latest = by_id([*first.records, *rest])  # in order: the last word on each id wins
    assert created["id"] in latest
    assert latest[first.records[0].external_id].fields["name"] == "Renamed meanwhile"


@pytest.mark.parametrize("stream", ["customers", "subscriptions", "payment_methods"])
def test_resuming_from_any_page_loses_and_repeats_nothing(make_connector, sandbox, stream):
    connector = make_connector(sandbox, page_size=3)
    pages, records = read_all(connector, stream)
    everything = [r.external_id for r in records]
    assert len(set(everything)) == len(everything) and len(pages) >= 4
    for index, page in enumerate(pages):
        resumed = [r.external_id for p in connector.read(stream, page.state) for r in p.records]
        done = [r.external_id for p in pages[:index + 1] for r in p.records]
        assert done + resumed == everything, (stream, index)


def test_a_stale_events_cursor_means_a_full_reread_with_a_note(connector, sandbox):
    states = backfill(connector)
    sandbox.advance_clock(31 * DAY)
    pages, records = read_all(connector, "customers", states["customers"])
    assert pages[0].full_refresh and "30 days of events" in pages[0].notes[0]
    assert {r.external_id for r in records} >= set(sandbox.store.orders["customer"].ids)
    again, nothing = read_all(connector, "customers", pages[-1].state)
    assert nothing == [] and not any(p.full_refresh for p in again)


def test_a_cursor_event_stripe_no_longer_knows_means_a_full_reread(connector, sandbox):
    state = backfill(connector)["customers"]
    state = {**state, "events": {**state["events"], "id": "evt_forgotten"}}
    pages, records = read_all(connector, "customers", state)
    assert pages[0].full_refresh and len(records) == 12


def test_a_state_it_did_not_write_means_a_full_reread(connector):
    pages, records = read_all(connector, "customers", {"cursor": "cus_x"})
    assert pages[0].full_refresh and "not understood" in pages[0].notes[0] and len(records) == 12


def test_an_old_cursor_event_is_fine_while_the_stream_was_polled(make_connector, start_stripe):
    quiet = start_stripe({"customers": [{"id": f"cus_q{n}", "created": 1_770_000_000 + n} for n in range(3)]})
    connector = make_connector(quiet)
    state = read_all(connector, "customers")[0][-1].state
    quiet.update_customer("cus_q1", name="First change")
    state = read_all(connector, "customers", state)[0][-1].state
    quiet.advance_clock(20 * DAY)
    state = read_all(connector, "customers", state)[0][-1].state  # nothing new, but polled
    quiet.advance_clock(15 * DAY)  # the cursor event is now 35 days old: no longer listable
    quiet.update_customer("cus_q2", name="Second change")
    pages, records = read_all(connector, "customers", state)
    assert not any(p.full_refresh for p in pages)
    assert [(r.external_id, r.fields["name"]) for r in records] == [("cus_q2", "Second change")]


def test_429s_are_waited_out_on_injected_time(start_stripe, make_connector, fake_time):
    limited = start_stripe(rate_limit=2, rate_clock=fake_time.clock)
    connector = make_connector(limited, fake_time, page_size=2, requests_per_second=1000)
    records = [r for page in connector.read("customers", None) for r in page.records]
    assert len(records) == 12
    throttled = [r for r in limited.requests if r.status == 429]
    assert throttled and fake_time.sleeps  # it slept (on fake time) instead of failing
    assert len(limited.requests) == connector.request_count


def test_429s_beyond_the_budget_raise_rate_limited(start_stripe, make_connector, fake_time):
    frozen = start_stripe(rate_limit=1, rate_clock=lambda: 0.0)
    connector = make_connector(frozen, fake_time, requests_per_second=1000)
    with pytest.raises(RateLimitedError, match="Request rate limit exceeded"):
        list(connector.read("customers", None))
    assert connector.request_count == 1 + 6  # the first request used the only token; then six attempts


def test_unknown_stream_is_refused(connector):
    with pytest.raises(ValueError, match="no stream 'tickets'"):
        list(connector.read("tickets", None))


def test_connector_type_is_registered_by_the_plugin():
    from connectors.stripe import plugin
    from hub.plugins import build_registry, load_plugins, new_plugin_manager

    pm = new_plugin_manager()
    infos = load_plugins(pm, allow=["connectors.stripe.plugin"], builtins=["connectors.stripe.plugin"])
    registry = build_registry(pm, infos)
    stripe = registry.connector_types["stripe"]
    assert stripe.settings is StripeSettings and stripe.start_sandbox is plugin.start_sandbox
    sandbox = stripe.start_sandbox(None, rate_limit=None)
    try:
        with stripe.create(stripe.settings.model_validate(sandbox.settings())) as connector:
            assert connector.check().ok
            assert set(connector.streams) == set(STREAMS) and Kind.ACCOUNT in connector.streams["customers"].kinds
    finally:
        sandbox.stop()
