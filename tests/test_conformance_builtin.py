"""Every built-in connector passes the plugin conformance suite (`hub.testing`) against its sandbox.

Each class gives the suite a sandbox with a small world (several pages per stream), a connector on
fake time (retries never wait) and one sample per operation with a way to see what it did.
Salesforce runs once `connectors/salesforce/sandbox.py` exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub import FaultProfile, PermanentError, RateLimitedError, RetryPolicy, TransientError
from hub.plugins import build_registry, load_plugins, new_plugin_manager
from hub.testing import ConnectorConformance, ErrorSample, FakeTime, OperationSample, StreamSample

ROOT = Path(__file__).resolve().parents[1]
FAST_RETRY = RetryPolicy(max_attempts=4, max_elapsed=600, base_delay=0.5, max_delay=5, jitter=0)
DAY = 86_400


def builtin_type(name: str):
    module = f"connectors.{name}.plugin"
    manager = new_plugin_manager()
    infos = load_plugins(manager, allow=[module], builtins=[module])
    registry = build_registry(manager, infos)
    return next(iter(registry.connector_types.values()))


# --- Stripe ----------------------------------------------------------------------------------------

STRIPE_START = 1_780_000_000


def stripe_ids(kind: str):
    return lambda sandbox: set(sandbox.store.orders[kind].ids)


def stripe_default_cards(sandbox: Any) -> set[str]:
    store = sandbox.store
    return {store.objects[c]["invoice_settings"]["default_payment_method"] for c in store.orders["customer"].ids}


def stripe_events(sandbox: Any) -> int:
    """Every change at Stripe records an event; a replayed idempotent request records none."""
    return len(sandbox.events())


class TestStripeConformance(ConnectorConformance):
    connector_type = builtin_type("stripe")
    plugin_module = "connectors.stripe.plugin"
    sandbox_options = {"api_key": "sk_test_conformance_0123456789", "clock": lambda: STRIPE_START,
                       "rate_limit": None}
    settings_overrides = {"page_size": 4}
    stream_samples = {
        "customers": StreamSample(expected=stripe_ids("customer"), unchanged_requests=1),
        "subscriptions": StreamSample(expected=stripe_ids("subscription"), unchanged_requests=1),
        "invoices": StreamSample(expected=stripe_ids("invoice"), unchanged_requests=1),
        "charges": StreamSample(expected=stripe_ids("charge"), unchanged_requests=1),
        "payment_methods": StreamSample(expected=stripe_default_cards, unchanged_requests=1),
    }
    operation_samples = (
        OperationSample("retry_invoice", {"invoice_id": "in_demo0000005"}, stripe_events,
                        prepare=lambda sandbox: sandbox.set_card_scenario("cus_demo0000005", "ok")),
        OperationSample("mark_uncollectible", {"invoice_id": "in_demo0000005"}, stripe_events),
        OperationSample("pause_collection", {"subscription_id": "sub_demo0000002", "behavior": "keep_as_draft"},
                        stripe_events),
        OperationSample("resume_collection", {"subscription_id": "sub_demo0000002"}, stripe_events,
                        prepare=lambda sandbox: sandbox.update_subscription(
                            "sub_demo0000002", pause_collection={"behavior": "void"})),
        OperationSample("apply_coupon", {"subscription_id": "sub_demo0000002", "coupon": "WINBACK20"},
                        stripe_events),
        OperationSample("cancel_at_period_end", {"subscription_id": "sub_demo0000003", "feedback": "too_expensive"},
                        stripe_events),
        OperationSample("set_metadata", {"object": "customer", "id": "cus_demo0000001",
                                         "metadata": {"health": "red"}}, stripe_events),
    )
    error_samples = (
        ErrorSample("5xx on every attempt", lambda sandbox: sandbox.fail_next(10), TransientError,
                    stream="customers"),
        ErrorSample("429 on every attempt", lambda sandbox: sandbox.fail_next(10, status=429), RateLimitedError,
                    stream="invoices"),
        ErrorSample("an invoice Stripe does not have", lambda sandbox: None, PermanentError,
                    operation=OperationSample("retry_invoice", {"invoice_id": "in_missing"}, stripe_events)),
    )

    def start_sandbox(self):
        from connectors.stripe.sandbox_dataset import demo_dataset

        return self.connector_type.start_sandbox(demo_dataset(12, now=STRIPE_START), **self.sandbox_options)

    def connect(self, settings: Mapping[str, Any], sandbox: Any):
        fake = FakeTime()
        return self.connector_type.factory(self.connector_type.settings(**settings), clock=sandbox.clock,
                                           sleep=fake.sleep, monotonic=fake.clock, retry=FAST_RETRY)


# --- Zendesk ---------------------------------------------------------------------------------------

ZENDESK_NOW = 1_700_000_000


class ZendeskClock(FakeTime):
    """The sandbox's and the connector's unix time: it moves only when the connector sleeps."""


def iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def zendesk_world() -> dict[str, Any]:
    """Seven of everything, each updated at its own second, all older than a day."""
    base = ZENDESK_NOW - 10 * DAY
    return {
        "organizations": [{"id": i, "name": f"Org {i}", "domain_names": [f"org{i}.example"],
                           "tags": ["vip"] if i == 1 else [], "organization_fields": {"nps_score": i},
                           "created_at": iso(base), "updated_at": iso(base + 60 * i)} for i in range(1, 8)],
        "users": [{"id": 10 + i, "name": f"User {i}", "email": f"user{i}@org{i}.example", "role": "end-user",
                   "organization_id": i, "created_at": iso(base), "updated_at": iso(base + 60 * i)}
                  for i in range(1, 8)],
        "tickets": [{"id": 100 + i, "subject": f"Ticket {i}", "description": f"Help with {i}", "status": "open",
                     "priority": "normal", "requester_id": 10 + i, "organization_id": i,
                     "created_at": iso(base), "updated_at": iso(base + 60 * i)} for i in range(1, 8)],
        "satisfaction_ratings": [{"id": 1000 + i, "ticket_id": 100 + i, "score": "good" if i % 2 else "bad",
                                  "requester_id": 10 + i, "created_at": iso(base + 60 * i),
                                  "updated_at": iso(base + 60 * i)} for i in range(1, 8)],
    }


def zendesk_organization(org_id: int):
    return lambda sandbox: dict(sandbox.world.organizations.objects[org_id])


class TestZendeskConformance(ConnectorConformance):
    connector_type = builtin_type("zendesk")
    plugin_module = "connectors.zendesk.plugin"
    stream_samples = {
        "organizations": StreamSample(expected=lambda sandbox: {str(i) for i in range(1, 8)}),
        "users": StreamSample(),
        "tickets": StreamSample(expected=lambda sandbox: {str(100 + i) for i in range(1, 8)}),
        "satisfaction_ratings": StreamSample(min_pages=1),  # the ratings list pages by 100: one page here
    }
    operation_samples = (
        OperationSample("create_ticket", {"subject": "Renewal check-in", "body": "Call them", "organization_id": 2,
                                          "requester_id": 12}, lambda sandbox: len(sandbox.created_tickets()),
                        repeatable=True),
        OperationSample("add_ticket_note", {"ticket_id": 101, "body": "Health dropped to 38"},
                        lambda sandbox: len(sandbox.comments(101)), repeatable=True),
        OperationSample("add_organization_tags", {"organization_id": 2, "tags": ["churn_risk"]},
                        lambda sandbox: sandbox.organization_tags(2)),
        OperationSample("remove_organization_tags", {"organization_id": 1, "tags": ["vip"]},
                        lambda sandbox: sandbox.organization_tags(1)),
        OperationSample("set_organization_fields", {"organization_id": 3, "fields": {"nps_score": 1}},
                        zendesk_organization(3)),
    )
    error_samples = (
        ErrorSample("a ticket Zendesk does not have", lambda sandbox: None, PermanentError,
                    operation=OperationSample("add_ticket_note", {"ticket_id": 99999, "body": "x"},
                                              lambda sandbox: None)),
    )

    def start_sandbox(self):
        self.clock = ZendeskClock(ZENDESK_NOW)
        return self.connector_type.start_sandbox(zendesk_world(), clock=self.clock, rate_limits=False,
                                                 export_page_size=2)

    def connect(self, settings: Mapping[str, Any], sandbox: Any):
        return self.connector_type.factory(self.connector_type.settings(**settings), sleep=self.clock.sleep,
                                           clock=self.clock.clock, now=self.clock, retry=FAST_RETRY)


# --- SMTP ------------------------------------------------------------------------------------------

def mail_send_sample() -> OperationSample:
    from hub.templating import sample_context

    return OperationSample("send", {"template": "checkin", "to": "dana@northwind.example", "context": sample_context()},
                           lambda sandbox: len(sandbox.messages()), provider_idempotent=False, repeatable=True)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # a loopback sink
class TestSmtpConformance(ConnectorConformance):
    connector_type = builtin_type("email")
    plugin_module = "connectors.email.plugin"
    sandbox_options = {"auth": ("sink-user", "sink-password-0123")}
    operation_samples = (mail_send_sample(),)
    error_samples = (
        ErrorSample("the server answers 451 to DATA", lambda sandbox: sandbox.fail_next_data(1), TransientError,
                    operation=mail_send_sample()),
        ErrorSample("the recipient bounces", lambda sandbox: sandbox.reject_recipient("dana@northwind.example"),
                    PermanentError, operation=mail_send_sample()),
    )

    def connect(self, settings: Mapping[str, Any], sandbox: Any):
        fake = FakeTime()
        return self.connector_type.factory(self.connector_type.settings(**settings), sleep=fake.sleep, clock=fake.clock,
                                           now=lambda: datetime(2025, 3, 4, 9, 30, tzinfo=UTC))


# --- Salesforce ------------------------------------------------------------------------------------

SALESFORCE_SANDBOX = ROOT / "connectors" / "salesforce" / "sandbox.py"
SF_NOW = 1_750_000_000


def salesforce_world() -> dict[str, Any]:
    base = SF_NOW - 10 * DAY

    def stamp(i: int) -> str:
        return datetime.fromtimestamp(base + 60 * i, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    owner = "005SB0000000001AAA"
    return {
        "User": [{"Id": owner, "FirstName": "Ann", "LastName": "Owner", "Email": "ann@corp.example",
                  "Username": "ann@corp.example", "IsActive": True, "SystemModstamp": stamp(0)},
                 *({"FirstName": f"Rep{i}", "LastName": "Seller", "Email": f"rep{i}@corp.example",
                    "Username": f"rep{i}@corp.example", "IsActive": True, "SystemModstamp": stamp(i)}
                   for i in range(1, 5))],
        "Account": [{"Id": f"001SB00000000{i:02d}AAA", "Name": f"Account {i}", "Website": f"acct{i}.example",
                     "OwnerId": owner, "SystemModstamp": stamp(i)} for i in range(1, 8)],
        "Contact": [{"AccountId": f"001SB00000000{i:02d}AAA", "Email": f"jo{i}@acct{i}.example", "FirstName": "Jo",
                     "LastName": f"Doe{i}", "SystemModstamp": stamp(i)} for i in range(1, 8)],
        "Opportunity": [{"AccountId": f"001SB00000000{i:02d}AAA", "Name": f"Renewal {i}", "Amount": 1000.0 * i,
                         "StageName": "Prospecting", "CloseDate": "2026-01-31", "SystemModstamp": stamp(i)}
                        for i in range(1, 8)],
    }


def salesforce_ids(sobject: str):
    return lambda sandbox: {r["Id"] for r in sandbox.records(sobject)}


class SalesforceClock(FakeTime):
    pass


@pytest.mark.skipif(not SALESFORCE_SANDBOX.exists(),
                    reason="connectors/salesforce/sandbox.py is not written yet: Salesforce joins the suite then")
class TestSalesforceConformance(ConnectorConformance):
    connector_type = builtin_type("salesforce")
    plugin_module = "connectors.salesforce.plugin"
    stream_samples = {
        "accounts": StreamSample(expected=salesforce_ids("Account")),
        "contacts": StreamSample(expected=salesforce_ids("Contact")),
        "opportunities": StreamSample(expected=salesforce_ids("Opportunity")),
        "users": StreamSample(),
    }
    operation_samples = (
        OperationSample("create_task", {"subject": "Call about renewal", "what_id": "001SB0000000001AAA"},
                        lambda sandbox: len(sandbox.created("Task")), repeatable=True),
        OperationSample("update_account", {"account_id": "001SB0000000002AAA", "fields": {"Website": "new.example"}},
                        lambda sandbox: sandbox.get("Account", "001SB0000000002AAA")["Website"]),
        OperationSample("upsert", {"sobject": "Task", "external_id_field": "Churnhub_Key__c", "external_id": "k-1",
                                   "fields": {"Subject": "Upserted", "WhatId": "001SB0000000003AAA"}},
                        lambda sandbox: len(sandbox.records("Task"))),
    )
    error_samples = (
        ErrorSample("5xx on every attempt", lambda sandbox: None, TransientError, stream="accounts"),
    )

    def start_sandbox(self):
        self.clock = SalesforceClock(SF_NOW)
        faults = None
        if "5xx" in getattr(self, "_error_case", ""):
            faults = FaultProfile(error_rate=1.0, path_prefix="/services/data")
        return self.connector_type.start_sandbox(salesforce_world(), clock=self.clock, max_batch_size=2,
                                                 faults=faults)

    def connect(self, settings: Mapping[str, Any], sandbox: Any):
        return self.connector_type.factory(self.connector_type.settings(**settings), sleep=self.clock.sleep,
                                           clock=self.clock.clock, now=self.clock, retry=FAST_RETRY)

    @pytest.fixture(autouse=True)
    def _note_error_case(self, request: pytest.FixtureRequest) -> None:
        sample = request.node.callspec.params.get("error_sample") if hasattr(request.node, "callspec") else None
        self._error_case = sample.name if sample is not None else ""
