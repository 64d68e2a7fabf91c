"""The outbox through real connectors against their sandboxes, with crashes at every step.

A crash (`Crash`, raised from the runner's checkpoint) stops the runner like SIGKILL: the database
keeps only what was committed. After the lease expires a second worker takes over. Each test
then counts, at the sandbox, what the provider really did: one ticket per key, one coupon, one
payment attempt, one email — never two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from connectors.email.connector import SmtpConnector
from connectors.email.sandbox import SmtpSandbox
from connectors.email.sandbox import start_sandbox as start_smtp
from connectors.email.settings import SmtpSettings
from connectors.stripe.connector import StripeConnector
from connectors.stripe.sandbox import StripeSandbox
from connectors.stripe.sandbox import start_sandbox as start_stripe
from connectors.stripe.settings import StripeSettings
from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.sandbox import ZendeskSandbox
from connectors.zendesk.sandbox import start_sandbox as start_zendesk
from connectors.zendesk.settings import ZendeskSettings
from hub import Connector, Record
from hub.models import Customer, CustomerLink, SentMessage, Suppression
from hub.outbox import (
    DEAD,
    FAILED,
    SKIPPED,
    SUCCEEDED,
    ActionRequest,
    Intent,
    OutboxPolicy,
    OutboxRunner,
    Planner,
    enqueue,
    list_actions,
)
from hub.plugins import build_registry, load_plugins, new_plugin_manager
from hub.store import write_records

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TYPES = {"helpdesk": "zendesk", "billing": "stripe", "mail": "smtp"}
POLICY = OutboxPolicy(max_attempts=3, lease=timedelta(minutes=5))
EMAIL_VARIABLES = {"product": {"name": "Acme Analytics"},
                   "links": {"app": "https://app.acme.example", "book_call": "https://cal.acme.example/sam",
                             "help": "https://help.acme.example", "billing": "https://app.acme.example/billing"}}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Crash(BaseException):
    """A simulated SIGKILL of the runner."""


def crash_at(step: str) -> Any:
    fired = [False]

    def checkpoint(name: str, actions: Sequence[Any]) -> None:
        if name == step and not fired[0]:
            fired[0] = True
            raise Crash(step)

    return checkpoint


def seed(engine: Engine) -> None:
    with engine.begin() as connection:
        write_records(connection, "helpdesk", [Record("account", "7", {"name": "Acme"})], now=T0)
        write_records(connection, "billing", [
            Record("account", "cus_acme", {"name": "Acme", "email": "ap@acme.example"}),
            Record("subscription", "sub_acme", {"account_id": "cus_acme", "status": "active", "mrr": 49900}),
        ], now=T0)
        write_records(connection, "crm", [
            Record("account", "001A", {"name": "Acme", "owner_id": "005U"}),
            Record("user", "005U", {"name": "Sam Ortega", "email": "sam@ourco.example"}),
            Record("contact", "003A", {"account_id": "001A", "name": "Dana Whitfield", "email": "dana@acme.example"}),
        ], now=T0)
        connection.execute(insert(Customer.__table__).values(id="c1", name="Acme", status="Active", mrr=49900))
        connection.execute(insert(CustomerLink.__table__), [
            {"customer_id": "c1", "connector": name, "kind": "account", "external_id": ext, "rule": "seed"}
            for name, ext in (("helpdesk", "7"), ("billing", "cus_acme"), ("crm", "001A"))])


def plan_and_enqueue(engine: Engine, requests: list[ActionRequest]) -> list[Intent]:
    manager = new_plugin_manager()
    actions = build_registry(manager, load_plugins(manager, allow=["actions.plugin"],
                                                   builtins=("actions.plugin",))).actions
    with engine.begin() as connection:
        intents = Planner(actions, {**TYPES, "crm": "salesforce"}).plan(connection, requests, now=T0)
        assert all(i.status != SKIPPED for i in intents), [i.error for i in intents]
        enqueue(connection, intents, now=T0)
    return intents


def crash_then_recover(engine: Engine, connectors: Callable[[str], Connector], step: str) -> list[dict[str, Any]]:
    clock = Clock()
    with pytest.raises(Crash):
        OutboxRunner(engine, connectors, worker="doomed", clock=clock, policy=POLICY,
                     checkpoint=crash_at(step)).execute_pending()
    clock.now += timedelta(minutes=6)
    OutboxRunner(engine, connectors, worker="heir", clock=clock, policy=POLICY).drain()
    with engine.connect() as connection:
        return list_actions(connection)


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    seed(engine)
    return engine


def factory(name: str, build: Callable[[], Connector]) -> Callable[[str], Connector]:
    """What `Hub.connector` is: a fresh connector per call (the runner closes what it opened)."""
    def connectors(wanted: str) -> Connector:
        if wanted != name:
            raise KeyError(wanted)
        return build()

    return connectors


@pytest.fixture
def zendesk() -> Iterator[tuple[ZendeskSandbox, Callable[[str], Connector]]]:
    sandbox = start_zendesk({"organizations": [{"id": 7, "name": "Acme", "tags": ["vip"]}]}, rate_limits=False)
    settings = ZendeskSettings(**sandbox.settings())
    yield sandbox, factory("helpdesk", lambda: ZendeskConnector(settings, sleep=lambda _: None))
    sandbox.stop()


STRIPE_DATASET = {
    "prices": [{"id": "price_growth", "unit_amount": 49900, "currency": "usd",
                "recurring": {"interval": "month", "interval_count": 1}}],
    "coupons": [{"id": "WINBACK20", "percent_off": 20, "duration": "once"}],
    "customers": [{"id": "cus_acme", "email": "ap@acme.example", "name": "Acme"}],
    "subscriptions": [{"id": "sub_acme", "customer": "cus_acme", "status": "active",
                       "items": [{"price": "price_growth", "quantity": 1}]}],
}


@pytest.fixture
def stripe() -> Iterator[tuple[StripeSandbox, Callable[[str], Connector]]]:
    sandbox = start_stripe(STRIPE_DATASET, rate_limit=None)
    settings = StripeSettings(**sandbox.settings())
    yield sandbox, factory("billing", lambda: StripeConnector(settings, sleep=lambda _: None))
    sandbox.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpSandbox, Callable[[str], Connector]]]:
    sandbox = start_smtp(reject_recipients=["gone@acme.example"])
    settings = SmtpSettings(**sandbox.settings())
    yield sandbox, factory("mail", lambda: SmtpConnector(settings, now=lambda: T0))
    sandbox.stop()


@pytest.mark.parametrize("step", ["claimed", "before_call", "after_call"])
def test_zendesk_ticket_and_tags_once_whatever_the_crash(seeded: Engine, zendesk: Any, step: str) -> None:
    sandbox, connector = zendesk
    intents = plan_and_enqueue(seeded, [
        ActionRequest("pb|tickets|c1|2026-03-02|0", "playbook:tickets", "create_helpdesk_ticket",
                      {"subject": "Check in with {{ customer.name }}", "body": "3 tickets in 7 days"}, "c1"),
        ActionRequest("pb|tickets|c1|2026-03-02|1", "playbook:tickets", "tag_helpdesk_org", {"tags": ["at-risk"]}, "c1"),
    ])
    rows = crash_then_recover(seeded, connector, step)
    assert {r["status"] for r in rows} == {SUCCEEDED}
    tickets = [t for t in sandbox.created_tickets() if t.get("external_id") == intents[0].key]
    assert len(tickets) == 1 and tickets[0]["subject"] == "Check in with Acme"
    assert sorted(sandbox.organization_tags(7)) == ["at-risk", "vip"]
    created = [entry for entry in sandbox.request_log if entry[0] == "POST" and entry[1].startswith("/api/v2/tickets")]
    assert len(created) == 1


@pytest.mark.parametrize("step", ["before_call", "after_call"])
def test_stripe_coupon_and_pause_act_once_whatever_the_crash(seeded: Engine, stripe: Any, step: str) -> None:
    sandbox, connector = stripe
    plan_and_enqueue(seeded, [
        ActionRequest("pb|winback|c1|0", "playbook:winback", "stripe_apply_coupon", {"coupon": "WINBACK20"}, "c1"),
        ActionRequest("pb|pause|c1|0", "playbook:pause", "stripe_pause_collection", {"behavior": "keep_as_draft"}, "c1"),
    ])
    rows = crash_then_recover(seeded, connector, step)
    assert {r["status"] for r in rows} == {SUCCEEDED}
    subscription = sandbox.get("sub_acme")
    assert subscription["pause_collection"]["behavior"] == "keep_as_draft"
    assert len(subscription["discounts"]) == 1
    posts = [r for r in sandbox.requests if r.method == "POST" and r.path == "/v1/subscriptions/sub_acme"]
    keys = {r.idempotency_key for r in posts}
    assert len(keys) == 2 and all(k and k.startswith("churnhub-") for k in keys)
    for key in keys:   # Stripe acted once per key; a repeat after the crash was answered from its cache
        assert sum(1 for r in posts if r.idempotency_key == key and not r.replayed) == 1
    assert any(r.replayed for r in posts) == (step == "after_call")


def test_stripe_decline_is_dead_with_the_decline_code(seeded: Engine, stripe: Any) -> None:
    sandbox, connector = stripe
    invoice = _open_invoice(sandbox)
    with seeded.begin() as connection:   # dunning enqueues operations directly
        enqueue(connection, [Intent("dunning|retry|1", "dunning", "retry_invoice", "c1", "billing", "retry_invoice",
                                    {"invoice_id": invoice})], now=T0)
    rows = crash_then_recover(seeded, connector, "after_call")
    [row] = rows
    assert row["status"] == DEAD and row["error_code"] == "insufficient_funds"
    assert row["error"] == "Your card has insufficient funds."     # Stripe's own words
    pays = [r for r in sandbox.requests if r.path == f"/v1/invoices/{invoice}/pay"]
    assert len(pays) == 2 and pays[1].replayed      # one payment attempt at Stripe, its answer replayed


def _open_invoice(sandbox: StripeSandbox) -> str:
    """A month passes with a declining card: the renewal invoice stays open."""
    sandbox.add_card("cus_acme", brand="visa", last4="4242", exp_month=12, exp_year=2030)
    sandbox.set_card_scenario("cus_acme", "insufficient_funds")
    sandbox.advance_clock(32 * 86400)
    [invoice] = [o for o in sandbox.store.objects.values() if o.get("object") == "invoice" and o["status"] == "open"]
    return str(invoice["id"])


@pytest.mark.parametrize("step", ["before_call", "after_call"])
def test_email_crash_is_never_a_second_message(seeded: Engine, smtp: Any, step: str) -> None:
    sandbox, connector = smtp
    plan_and_enqueue(seeded, [ActionRequest("pb|checkin|c1|0", "playbook:checkin", "send_email",
                                            {"template": "checkin"}, "c1", EMAIL_VARIABLES)])
    [row] = crash_then_recover(seeded, connector, step)
    assert len(sandbox.messages()) == (1 if step == "after_call" else 0)
    assert row["status"] == DEAD and row["error_code"] == "uncertain"
    with seeded.connect() as connection:
        assert connection.execute(select(SentMessage.message_id)).all() == []


def test_emails_are_sent_once_logged_by_message_id_and_bounces_suppressed(seeded: Engine, smtp: Any) -> None:
    sandbox, connector = smtp
    sandbox.fail_next_data(1)    # 451 for the first message: retried later
    plan_and_enqueue(seeded, [
        ActionRequest("e1", "playbook:checkin", "send_email", {"template": "checkin"}, "c1", EMAIL_VARIABLES),
        ActionRequest("e2", "playbook:checkin", "send_email", {"template": "checkin", "to": "owner"}, "c1",
                      EMAIL_VARIABLES),
        ActionRequest("e3", "playbook:checkin", "send_email", {"template": "checkin", "to": "gone@acme.example"},
                      "c1", EMAIL_VARIABLES),
    ])
    clock = Clock()
    runner = OutboxRunner(seeded, connector, clock=clock, policy=POLICY)
    runner.execute_pending()
    with seeded.connect() as connection:
        status = {r["key"]: (r["status"], r["error_code"]) for r in list_actions(connection)}
    assert status == {"e1": (FAILED, "smtp_4xx"), "e2": (SUCCEEDED, None), "e3": (DEAD, "hard_bounce")}
    clock.now += timedelta(minutes=1)
    runner.execute_pending()
    runner.execute_pending()
    messages = sandbox.messages()
    assert sorted(m.rcpt_tos[0] for m in messages) == ["dana@acme.example", "sam@ourco.example"]
    with seeded.connect() as connection:
        log = dict(connection.execute(select(SentMessage.recipient, SentMessage.message_id)).all())
        suppressed = connection.execute(select(Suppression.email, Suppression.reason)).all()
    assert log == {m.rcpt_tos[0]: m.message_id for m in messages}
    assert suppressed == [("gone@acme.example", "hard_bounce")]
    plan_and_enqueue(seeded, [ActionRequest("e4", "playbook:checkin", "send_email",
                                            {"template": "checkin", "to": "gone@acme.example"}, "c1", EMAIL_VARIABLES)])
    runner.execute_pending()
    with seeded.connect() as connection:
        assert {r["key"]: r["status"] for r in list_actions(connection)}["e4"] == SKIPPED
    assert len(sandbox.messages()) == 2
