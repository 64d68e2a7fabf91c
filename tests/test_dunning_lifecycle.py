"""Dunning end to end: the Stripe sandbox bills and signs webhooks, `churnhub serve`'s app stores
them, the hub opens/closes cases, plans steps into the outbox, and the SMTP sink gets the mail.

Time is the sandbox's (it moves only with `advance_clock`); `run_dunning(hub, now=...)` is given
the same moment, so a 21-day sequence runs in a fraction of a second.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import yaml
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from connectors.email.sandbox import SmtpSandbox
from connectors.email.sandbox import start_sandbox as start_smtp
from connectors.salesforce.sandbox import start_sandbox as start_salesforce
from connectors.stripe import signature
from connectors.stripe.sandbox import StripeSandbox
from connectors.stripe.sandbox import start_sandbox as start_stripe
from connectors.stripe.sandbox_billing import BillingPolicy
from hub import metrics as retention
from hub.app import Hub
from hub.churn import classify_table
from hub.commands import dunning_cmd
from hub.commands.context import CliState
from hub.dunning import list_cases, run_dunning
from hub.factsdb import load_facts
from hub.models import Action, Customer, CustomerLink, DunningCase, WebhookEvent
from hub.records import Record
from hub.sandbox import RunningServer, serve_in_thread
from hub.sections.churn import ChurnSettings
from hub.store import write_records
from hub.sync import SyncEngine
from hub.web import EventProcessor, create_app

DAY = 86400
SECRET = "whsec_dunning_test"
STREAMS = ("customers", "subscriptions", "invoices", "charges", "payment_methods")
# The sandbox's time starts at the next full hour: the connector reads events relative to the real
# clock (a margin before "now"), so sandbox time must not lag behind it.
T0 = (int(time.time()) // 3600 + 1) * 3600


def dataset() -> dict[str, Any]:
    return {
        "prices": [{"id": "price_growth", "unit_amount": 49900, "currency": "usd",
                    "recurring": {"interval": "month", "interval_count": 1}}],
        "customers": [{"id": "cus_acme", "email": "ap@acme.example", "name": "Acme",
                       "invoice_settings": {"default_payment_method": "pm_old"}}],
        "payment_methods": [{"id": "pm_old", "customer": "cus_acme",
                             "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2031}}],
        "subscriptions": [{"id": "sub_acme", "customer": "cus_acme", "status": "active", "created": T0 - 60 * DAY,
                           "billing_cycle_anchor": T0 + 3600,
                           "items": [{"price": "price_growth", "quantity": 1,
                                      "current_period_start": T0 - 30 * DAY + 3600,
                                      "current_period_end": T0 + 3600}]}],
    }


@dataclass
class World:
    hub: Hub
    stripe: StripeSandbox
    smtp: SmtpSandbox
    server: RunningServer
    processor: EventProcessor
    config: Path

    def at(self, day: float) -> datetime:
        return datetime.fromtimestamp(T0 + day * DAY, UTC)

    def advance_to(self, day: float) -> None:
        self.stripe.advance_clock(T0 + day * DAY - self.stripe.now())

    def deliver(self) -> int:
        """Wait for the sandbox's webhooks and process what the server stored."""
        assert self.stripe.wait_for_webhooks()
        return self.processor.run_once()

    def sync(self) -> None:
        engine = SyncEngine(self.hub.engine)
        with self.hub.connector("billing") as connector:
            for stream in STREAMS:
                assert engine.run_stream("billing", connector, stream).status == "succeeded"

    def case(self) -> dict[str, Any]:
        with self.hub.engine.connect() as connection:
            rows = connection.execute(select(DunningCase.__table__)).mappings().all()
        assert len(rows) == 1, "\n".join(f"{r['id']} {r['invoice_id']} {r['status']} {r['opened_at']} {r['details']}" for r in rows)
        return dict(rows[0])

    def emails(self) -> list[str]:
        return [m.subject for m in self.smtp.messages()]

    def retries(self) -> list[Any]:
        return [r for r in self.stripe.requests if r.method == "POST" and r.path.endswith("/pay")]


def write_config(path: Path, database_url: str, stripe: StripeSandbox, smtp: SmtpSandbox,
                 dunning: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    config = {"database": database_url,
              "connectors": {"billing": {"type": "stripe", **stripe.settings(), "webhook_secret": SECRET},
                             "mail": {"type": "smtp", **smtp.settings()}, **(extra or {})},
              "dunning": dunning}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def start_server(config: Path) -> tuple[Hub, EventProcessor, RunningServer]:
    hub = Hub.from_config(config)
    processor = EventProcessor(hub)   # not started: the test processes stored events itself
    return hub, processor, serve_in_thread(create_app(hub, processor), name="churnhub-serve")


def link_customer(hub: Hub) -> None:
    with hub.engine.begin() as connection:
        connection.execute(insert(Customer.__table__).values(id="c1", name="Acme", status="Active", mrr=49900))
        connection.execute(insert(CustomerLink.__table__).values(
            customer_id="c1", connector="billing", kind="account", external_id="cus_acme", rule="test"))


DUNNING = {"retries": [1, 3, 5, 7], "variables": {"product": {"name": "Acme Analytics"}},
           "high_value": None, "final_action": {"after_days": 21, "action": "cancel_at_period_end"}}


def make_world(tmp_path: Path, database_url: str, *,
               policy: BillingPolicy | None = None, dunning: dict[str, Any] | None = None,
               extra: dict[str, Any] | None = None) -> Iterator[World]:
    stripe = start_stripe(dataset(), clock=lambda: float(T0), rate_limit=None,
                          policy=policy or BillingPolicy(automatic_retries=False))
    smtp = start_smtp()
    config = write_config(tmp_path / "churnhub.yaml", database_url, stripe, smtp, dunning or DUNNING, extra)
    hub, processor, server = start_server(config)
    stripe.add_webhook_endpoint(f"{server.url}/webhooks/stripe/billing", secret=SECRET)
    world = World(hub, stripe, smtp, server, processor, config)
    world.sync()
    link_customer(hub)
    try:
        yield world
    finally:
        server.stop()
        stripe.stop()
        smtp.stop()
        hub.close()


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, database_url)


def fail_renewal(world: World, scenario: str) -> None:
    world.stripe.set_card_scenario("cus_acme", scenario)
    world.advance_to(0.1)     # the period ends at +1 h: renewal, invoice, declined attempt
    world.deliver()


def test_soft_decline_is_recovered_by_the_retry_on_day_3(world: World) -> None:
    fail_renewal(world, "insufficient_funds")
    case = world.case()   # opened in real time by the webhook
    assert (case["status"], case["customer_id"], case["decline_code"]) == ("open", "c1", "insufficient_funds")
    assert case["amount_due"] == 49900

    run_dunning(world.hub, now=world.at(0.2))
    assert world.emails() == ["We couldn't process your Acme Analytics payment"]
    assert world.smtp.messages()[0].rcpt_tos == ("ap@acme.example",)

    world.advance_to(1.2)
    run_dunning(world.hub, now=world.at(1.2))          # day 1: the retry is declined again
    world.deliver()
    assert len(world.retries()) == 1 and world.case()["status"] == "open"
    assert world.case()["details"]["attempts"] == 2

    world.stripe.set_card_scenario("cus_acme", "ok")   # the customer's account has funds again
    world.advance_to(3.2)
    report = run_dunning(world.hub, now=world.at(3.2))  # day 3: the retry pays, the day-3 email is not sent
    world.deliver()
    case = world.case()
    assert (case["status"], case["recovered_by"]) == ("recovered", "retry")
    assert len(world.retries()) == 2 and report.closed == 1
    assert world.stripe.get(case["invoice_id"])["status"] == "paid"

    for day in (7.2, 14.2, 21.2):                     # nothing after the recovery
        world.advance_to(day)
        run_dunning(world.hub, now=world.at(day))
    assert len(world.emails()) == 1 and len(world.retries()) == 2
    assert list_cases(world.hub, now=world.at(22)) == []
    metrics = httpx.get(f"{world.server.url}/metrics").text
    assert 'churnhub_dunning_cases{status="recovered"} 1' in metrics
    assert 'churnhub_dunning_recovered{recovered_by="retry"} 1' in metrics
    assert world.stripe.get("sub_acme")["cancel_at_period_end"] is False


def test_hard_decline_asks_for_a_new_card_and_stops_when_the_customer_pays(world: World) -> None:
    fail_renewal(world, "expired_card")
    assert world.case()["decline_code"] == "expired_card"
    run_dunning(world.hub, now=world.at(0.2))
    for day in (1.2, 3.2):                             # hard decline: no blind retries
        world.advance_to(day)
        run_dunning(world.hub, now=world.at(day), execute=False)
    assert world.retries() == []
    with world.hub.engine.connect() as connection:
        pending = connection.execute(select(Action.idempotency_key).where(Action.status == "pending")).scalars().all()
    assert [k.rsplit("|", 1)[1] for k in pending] == ["email-1"]   # the day-3 email waits in the outbox

    # the customer follows the link: a new card, and pays the invoice on the hosted page
    world.stripe.add_card("cus_acme", brand="mastercard", last4="4444", exp_month=1, exp_year=2033)
    world.stripe.set_card_scenario("cus_acme", "ok")
    world.stripe.pay_invoice(world.case()["invoice_id"])
    world.deliver()
    case = world.case()
    assert (case["status"], case["recovered_by"]) == ("recovered", "email")

    run_dunning(world.hub, now=world.at(3.3))          # the waiting email is skipped, never sent
    assert world.emails() == ["We couldn't process your Acme Analytics payment"]
    with world.hub.engine.connect() as connection:
        status = connection.execute(select(Action.status, Action.error).where(
            Action.idempotency_key.endswith("email-1"))).one()
    assert status[0] == "skipped" and "closed" in status[1]
    for day in (7.2, 14.2):
        world.advance_to(day)
        run_dunning(world.hub, now=world.at(day))
    assert len(world.emails()) == 1 and world.retries() == []


def test_nothing_recovered_ends_with_the_final_action_and_closes_at_the_ending(world: World) -> None:
    fail_renewal(world, "lost_card")
    for day in (0.2, 3.2, 7.2, 14.2):
        world.advance_to(day)
        run_dunning(world.hub, now=world.at(day))
    number = world.stripe.get(world.case()["invoice_id"])["number"]
    assert world.emails() == ["We couldn't process your Acme Analytics payment",
                              f"Reminder: invoice {number} is still unpaid",
                              "Action needed: your Acme Analytics account is at risk",
                              "Final notice: Acme Analytics subscription for Acme"]
    world.advance_to(21.2)
    run_dunning(world.hub, now=world.at(21.2))
    subscription = world.stripe.get("sub_acme")
    assert subscription["cancel_at_period_end"] is True
    case = world.case()
    assert case["status"] == "exhausted" and case["closed_at"] is None
    assert case["details"]["final_action"]["action"] == "cancel_at_period_end"
    assert len(world.emails()) == 4 and world.retries() == []

    world.advance_to(33)                               # the period ends: the subscription is canceled
    world.deliver()
    case = world.case()
    ended = world.stripe.get("sub_acme")["ended_at"]
    assert case["status"] == "exhausted"
    assert case["closed_at"].replace(tzinfo=UTC).timestamp() == ended
    run_dunning(world.hub, now=world.at(33))
    assert len(world.emails()) == 4

    # Stripe calls it `cancellation_requested` (the hub asked), but the unpaid invoice ended it
    assert world.stripe.get("sub_acme")["cancellation_details"]["reason"] == "cancellation_requested"
    world.sync()
    with world.hub.engine.connect() as connection:
        table = load_facts(connection, now=world.at(34))
    events = classify_table(table, ChurnSettings(), world.at(34)).events
    assert [(e.customer_id, e.type, e.reason) for e in events] == [("c1", "involuntary", "lost_card")]


def signed_post(url: str, event: dict[str, Any], *, secret: str = SECRET, at: float | None = None) -> httpx.Response:
    body = json.dumps(event).encode()
    header = signature.sign(body, secret, int(time.time() if at is None else at))
    return httpx.post(url, content=body, headers={"Stripe-Signature": header, "Content-Type": "application/json"})


def stored_events(hub: Hub) -> int:
    with hub.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(WebhookEvent.__table__)).scalar_one())


def test_duplicate_and_shuffled_deliveries_end_in_the_same_state(tmp_path: Path, database_url: str) -> None:
    for world in make_world(tmp_path, database_url):
        world.stripe.webhooks.endpoints.clear()       # the test delivers the events itself
        world.stripe.set_card_scenario("cus_acme", "insufficient_funds")
        world.advance_to(0.1)
        world.stripe.set_card_scenario("cus_acme", "ok")
        world.stripe.pay_invoice(world.stripe.get("sub_acme")["latest_invoice"])
        events = [e for e in world.stripe.events() if e["type"].startswith(("invoice.", "charge."))]
        deliveries = events * 3
        random.Random(7).shuffle(deliveries)
        url = f"{world.server.url}/webhooks/stripe/billing"
        answers = [signed_post(url, e) for e in deliveries]
        assert all(a.status_code == 200 for a in answers)
        assert sum(a.json()["duplicate"] for a in answers) == len(deliveries) - len(events)
        assert stored_events(world.hub) == len(events)
        world.processor.run_once()
        case = world.case()
        assert case["status"] == "recovered" and case["decline_code"] == "insufficient_funds"
        run_dunning(world.hub, now=world.at(1))
        assert world.emails() == []                  # it was paid before the hub ever emailed


def test_forged_and_stale_signatures_are_rejected_and_not_stored(world: World) -> None:
    url = f"{world.server.url}/webhooks/stripe/billing"
    event = {"id": "evt_forged", "object": "event", "type": "invoice.paid", "created": T0,
             "data": {"object": {"id": "in_x", "object": "invoice", "status": "paid"}}}
    before = stored_events(world.hub)
    assert signed_post(url, event, secret="whsec_someone_else").status_code == 401
    assert signed_post(url, event, at=time.time() - 600).status_code == 400
    assert httpx.post(url, content=json.dumps(event)).status_code == 401     # no signature at all
    body = json.dumps(event).encode()
    header = signature.sign(body, SECRET, int(time.time()))
    assert httpx.post(url, content=body + b" ", headers={"Stripe-Signature": header}).status_code == 401
    assert stored_events(world.hub) == before
    assert signed_post(url, event).status_code == 200 and stored_events(world.hub) == before + 1


def test_a_restart_between_receiving_and_processing_loses_nothing(world: World) -> None:
    world.stripe.set_card_scenario("cus_acme", "insufficient_funds")
    world.advance_to(0.1)
    assert world.stripe.wait_for_webhooks()
    with world.hub.engine.connect() as connection:
        pending = connection.execute(select(func.count()).select_from(WebhookEvent.__table__)
                                     .where(WebhookEvent.status == "pending")).scalar_one()
    assert pending > 0
    world.server.stop()                                # the server dies before processing anything
    world.hub.close()
    hub, processor, server = start_server(world.config)  # ... and comes back
    try:
        assert processor.run_once() == pending
        world.hub = hub
        assert world.case()["status"] == "open"
        with hub.engine.connect() as connection:
            left = connection.execute(select(func.count()).select_from(WebhookEvent.__table__)
                                      .where(WebhookEvent.status != "processed")).scalar_one()
        assert left == 0
    finally:
        server.stop()


def cli() -> typer.Typer:
    """The command as the lead mounts it: `app.add_typer(dunning_cmd.app, name="dunning")`."""
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context, config: str = typer.Option(..., "--config", "-c")) -> None:
        ctx.obj = CliState(config=config)

    app.add_typer(dunning_cmd.app, name="dunning")
    return app


def test_cases_from_sync_alone_and_the_cli(world: World) -> None:
    world.stripe.webhooks.endpoints.clear()            # no webhooks: the synced invoice and charge suffice
    world.stripe.set_card_scenario("cus_acme", "do_not_honor")
    world.advance_to(0.1)
    world.sync()
    runner = CliRunner()
    now = ["--now", world.at(0.2).isoformat()]
    shown = runner.invoke(cli(), ["-c", str(world.config), "dunning", "--json", *now])
    assert shown.exit_code == 0, shown.output
    [case] = json.loads(shown.output)
    assert (case["status"], case["decline_code"], case["attempts"]) == ("open", "do_not_honor", 1)
    assert case["next_step"]["step"] == "email-0" and case["customer_id"] == "c1"

    ran = runner.invoke(cli(), ["-c", str(world.config), "dunning", "run", "--json", *now])
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.output)
    assert report["enqueued"] == 1 and report["executed"] == {"succeeded": 1}
    assert world.emails() == ["We couldn't process your Acme Analytics payment"]
    again = runner.invoke(cli(), ["-c", str(world.config), "dunning", "run", "--json", *now])
    assert json.loads(again.output)["enqueued"] == 0 and len(world.emails()) == 1   # the same step, once
    table = runner.invoke(cli(), ["-c", str(world.config), "dunning", *now])
    assert table.exit_code == 0 and "open" in table.output


def test_retries_stripe_leaves_retrying_to_stripe_and_the_ending_is_involuntary_churn(
        tmp_path: Path, database_url: str) -> None:
    stripe_retries = BillingPolicy(automatic_retries=True, retry_schedule_days=(3, 5, 7), after_retries="cancel")
    settings = {**DUNNING, "retries": "stripe", "final_action": {"after_days": 30, "action": "none"}}
    for world in make_world(tmp_path, database_url, policy=stripe_retries, dunning=settings):
        fail_renewal(world, "insufficient_funds")
        for day in (0.2, 3.2, 8.2, 15.2, 16):
            world.advance_to(day)
            world.deliver()
            run_dunning(world.hub, now=world.at(day))
        assert world.retries() == []                     # the hub never retried: Stripe did, three times
        assert world.stripe.get(world.case()["invoice_id"])["attempt_count"] == 4
        subscription = world.stripe.get("sub_acme")
        assert subscription["status"] == "canceled"
        assert subscription["cancellation_details"]["reason"] == "payment_failed"
        case = world.case()
        assert case["status"] == "failed" and case["closed_at"] is not None
        assert len(world.emails()) == 3                  # Stripe canceled on day 15: no day-14+ mail after that

        world.sync()
        with world.hub.engine.connect() as connection:
            table = load_facts(connection, now=world.at(16))
        events = classify_table(table, ChurnSettings(), world.at(16)).events
        assert [(e.customer_id, e.type) for e in events] == [("c1", "involuntary")]
        result = retention.compute(table, ChurnSettings(), start=world.at(-1), end=world.at(17), period="month",
                                   now=world.at(17), events=events)
        dunning = [p["dunning"] for p in result["periods"] if p["dunning"]["failed"]]
        assert dunning and dunning[0]["recovery_rate"] == 0.0 and dunning[0]["lost_amount"] == 49900


def test_card_expiry_notice_before_the_renewal_when_enabled(tmp_path: Path, database_url: str) -> None:
    start = datetime.fromtimestamp(T0, UTC)
    settings = {**DUNNING, "card_expiry_notice": {"enabled": True, "days_before": 45},
                "variables": {"product": {"name": "Acme Analytics"},
                              "links": {"billing": "https://app.acme.example/billing"}}}
    for world in make_world(tmp_path, database_url, dunning=settings):
        # a card that works through the end of this month
        world.stripe.add_card("cus_acme", brand="visa", last4="1881", exp_month=start.month, exp_year=start.year)
        world.sync()
        run_dunning(world.hub, now=world.at(0))
        assert world.emails() == []                    # the renewal in an hour is still paid with it
        world.advance_to(0.1)                          # renewed: the next renewal is after the card expires
        world.sync()
        run_dunning(world.hub, now=world.at(0.1))
        assert world.emails() == ["Your visa card ending in 1881 expires soon"]
        assert "https://app.acme.example/billing" in (world.smtp.messages()[0].body("plain") or "")
        run_dunning(world.hub, now=world.at(1))
        assert len(world.emails()) == 1                # once per card and expiry


def test_card_expiry_notice_is_off_by_default(world: World) -> None:
    start = datetime.fromtimestamp(T0, UTC)
    world.stripe.add_card("cus_acme", brand="visa", last4="1881", exp_month=start.month, exp_year=start.year)
    world.advance_to(0.1)
    world.sync()
    run_dunning(world.hub, now=world.at(0.1))
    assert world.emails() == []


def test_a_high_value_account_also_gets_a_crm_task_and_the_recovery_is_the_csms(
        tmp_path: Path, database_url: str) -> None:
    crm = start_salesforce({"User": [{"Id": "005SB0000000001AAA", "FirstName": "Sam", "LastName": "Ortega",
                                      "Email": "sam@ourco.example", "IsActive": True}],
                            "Account": [{"Id": "001SB0000000001AAA", "Name": "Acme", "OwnerId": "005SB0000000001AAA"}]})
    settings = {**DUNNING, "high_value": {"mrr_at_least": 40000}}
    try:
        for world in make_world(tmp_path, database_url, dunning=settings,
                                extra={"crm": {"type": "salesforce", **crm.settings()}}):
            with world.hub.engine.begin() as connection:
                write_records(connection, "crm", [Record("account", "001SB0000000001AAA",
                                                         {"name": "Acme", "owner_id": "005SB0000000001AAA"})],
                              now=world.at(0))
                connection.execute(insert(CustomerLink.__table__).values(
                    customer_id="c1", connector="crm", kind="account", external_id="001SB0000000001AAA", rule="test"))
            fail_renewal(world, "insufficient_funds")
            run_dunning(world.hub, now=world.at(0.2))
            [task] = [t for t in crm.records("Task") if t.get("Churnhub_Key__c", "").endswith("csm-task")]
            assert task["WhatId"] == "001SB0000000001AAA" and task["Priority"] == "High"
            assert task["Subject"] == "Failed payment: Acme ($499.00)"
            run_dunning(world.hub, now=world.at(0.3))
            assert len([t for t in crm.records("Task") if t.get("Churnhub_Key__c")]) == 1   # once
            world.stripe.set_card_scenario("cus_acme", "ok")
            world.stripe.pay_invoice(world.case()["invoice_id"])   # after the owner's call
            world.deliver()
            assert (world.case()["status"], world.case()["recovered_by"]) == ("recovered", "csm")
    finally:
        crm.stop()


def test_a_recovered_customer_who_was_emailed_gets_one_thank_you_when_enabled(
        tmp_path: Path, database_url: str) -> None:
    for world in make_world(tmp_path, database_url,
                            dunning={**DUNNING, "recovered_email": "payment_recovered"}):
        fail_renewal(world, "expired_card")
        run_dunning(world.hub, now=world.at(0.2))
        world.stripe.add_card("cus_acme", brand="visa", last4="5556", exp_month=3, exp_year=2034)
        world.stripe.set_card_scenario("cus_acme", "ok")
        world.stripe.pay_invoice(world.case()["invoice_id"])
        world.deliver()
        for day in (0.3, 0.4, 3.2):
            world.advance_to(day)
            run_dunning(world.hub, now=world.at(day))
        assert world.emails() == ["We couldn't process your Acme Analytics payment", "Payment received, thank you"]


@pytest.mark.parametrize("action", ["mark_uncollectible", "pause_collection"])
def test_other_final_actions(tmp_path: Path, database_url: str, action: str) -> None:
    settings = {**DUNNING, "emails": [{"day": 0, "template": "payment_failed_1"}],
                "final_action": {"after_days": 7, "action": action}}
    for world in make_world(tmp_path, database_url, dunning=settings):
        fail_renewal(world, "stolen_card")
        for day in (0.2, 7.2):
            world.advance_to(day)
            run_dunning(world.hub, now=world.at(day))
        world.deliver()
        case = world.case()
        invoice = world.stripe.get(case["invoice_id"])
        assert case["status"] == "exhausted" and len(world.emails()) == 1
        if action == "mark_uncollectible":   # written off: the case is over
            assert invoice["status"] == "uncollectible" and case["closed_at"] is not None
        else:                                # collection paused until someone resumes it
            assert world.stripe.get("sub_acme")["pause_collection"]["behavior"] == "void"
            assert case["closed_at"] is None
