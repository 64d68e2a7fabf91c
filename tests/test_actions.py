"""The built-in actions: customer contexts, planning (rendering, skipping), webhooks, the CLI.

The database holds one customer linked to a CRM account (with an owner and contacts), a helpdesk
organization and a billing customer with subscriptions, written through `hub.store` like a sync.
Operation params are validated against the real connectors' operation models where they exist.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from sqlalchemy import Engine, insert, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from hub import CheckResult, ConfigError, Connector, Operation, OperationResult, Record, serve_in_thread
from hub.commands import actions_cmd
from hub.commands.context import CliState
from hub.context import load_contexts
from hub.models import Customer, CustomerLink
from hub.outbox import (
    DEAD,
    FAILED,
    PENDING,
    SKIPPED,
    SUCCEEDED,
    ActionRequest,
    OutboxPolicy,
    OutboxRunner,
    Planner,
    enqueue,
    list_actions,
    template_errors,
    verify_signature,
)
from hub.plugins import build_registry, load_plugins, new_plugin_manager
from hub.store import write_records

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TYPES = {"crm": "salesforce", "helpdesk": "zendesk", "billing": "stripe", "mail": "smtp"}


def builtin_actions() -> dict[str, Any]:
    manager = new_plugin_manager()
    infos = load_plugins(manager, allow=["actions.plugin"], builtins=("actions.plugin",))
    return build_registry(manager, infos).actions


def operations_of(connector_type: str) -> Mapping[str, Operation]:
    """The real connector's operation models (Salesforce's connector is not written yet)."""
    if connector_type == "zendesk":
        from connectors.zendesk.connector import OPERATIONS
    elif connector_type == "stripe":
        from connectors.stripe.operations import OPERATIONS
    elif connector_type == "smtp":
        from connectors.email.connector import OPERATIONS
    else:
        return {}
    return OPERATIONS


def checked_operations(name: str) -> Mapping[str, Operation]:
    found = operations_of(TYPES[name])
    return found or {op: Operation(op, _Anything) for op in ("create_task", "update_account")}


class _Anything(BaseModel):
    model_config = {"extra": "allow"}


def seed(engine: Engine) -> None:
    """Customer c1 linked everywhere; c2 with only a CRM account and no contacts or owner."""
    with engine.begin() as connection:
        write_records(connection, "crm", [
            Record("account", "001A", {"name": "Acme", "owner_id": "005U", "domains": ["acme.example"]}),
            Record("account", "001B", {"name": "Bare Co", "owner_id": "005MISSING"}),
            Record("user", "005U", {"name": "Sam Ortega", "email": "sam@ourco.example"}),
            Record("contact", "003B", {"account_id": "001A", "name": "Bob Late", "email": "bob@acme.example",
                                       "created_at": "2024-05-01T00:00:00Z"}),
            Record("contact", "003A", {"account_id": "001A", "first_name": "Dana", "last_name": "Whitfield",
                                       "email": "dana@acme.example", "created_at": "2023-01-01T00:00:00Z"}),
            Record("contact", "003X", {"account_id": "001A", "name": "Gone", "email": "gone@acme.example"},
                   deleted=True),
        ], now=T0)
        write_records(connection, "helpdesk", [
            Record("account", "7", {"name": "Acme"}),
            Record("contact", "11", {"account_id": "7", "name": "Ann Helpdesk", "email": "ann@acme.example",
                                     "created_at": "2020-01-01T00:00:00Z"}),
        ], now=T0)
        write_records(connection, "billing", [
            Record("account", "cus_1", {"name": "Acme Inc", "email": "ap@acme.example"}),
            Record("subscription", "sub_small", {"account_id": "cus_1", "status": "active", "plan": "Starter",
                                                 "mrr": 1000, "currency": "usd"}),
            Record("subscription", "sub_big", {"account_id": "cus_1", "status": "active", "plan": "Growth",
                                               "mrr": 49900, "currency": "usd"}),
            Record("subscription", "sub_old", {"account_id": "cus_1", "status": "canceled", "plan": "Legacy",
                                               "mrr": 90000, "currency": "usd"}),
        ], now=T0)
        connection.execute(insert(Customer.__table__), [
            {"id": "c1", "name": "Acme", "domain": "acme.example", "status": "Active", "mrr": 50900, "currency": "usd"},
            {"id": "c2", "name": "Bare Co", "domain": None, "status": None, "mrr": 0, "currency": None},
        ])
        connection.execute(insert(CustomerLink.__table__), [
            {"customer_id": "c1", "connector": "crm", "kind": "account", "external_id": "001A", "rule": "seed"},
            {"customer_id": "c1", "connector": "helpdesk", "kind": "account", "external_id": "7", "rule": "seed"},
            {"customer_id": "c1", "connector": "billing", "kind": "account", "external_id": "cus_1", "rule": "seed"},
            {"customer_id": "c2", "connector": "crm", "kind": "account", "external_id": "001B", "rule": "seed"},
        ])


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    seed(engine)
    return engine


@pytest.fixture
def planner() -> Planner:
    return Planner(builtin_actions(), TYPES, operations=checked_operations)


def plan(engine: Engine, planner: Planner, action_type: str, params: dict[str, Any], customer_id: str = "c1",
         **variables: Any) -> Any:
    request = ActionRequest(f"k:{action_type}:{customer_id}", "playbook:test", action_type, params, customer_id,
                            variables)
    with engine.connect() as connection:
        [intent] = planner.plan(connection, [request], now=T0)
    return intent


def test_builtin_actions_are_registered_through_the_plugin() -> None:
    actions = builtin_actions()
    assert sorted(actions) == sorted([
        "send_email", "create_crm_task", "update_crm_fields", "tag_helpdesk_org", "create_helpdesk_ticket",
        "stripe_pause_collection", "stripe_apply_coupon", "webhook", "set_status"])
    assert {a.plugin for a in actions.values()} == {"actions.plugin"}
    assert actions["send_email"].at_most_once and not actions["create_crm_task"].at_most_once


def test_contexts_are_loaded_for_many_customers_at_once(seeded: Engine) -> None:
    with seeded.connect() as connection:
        contexts = load_contexts(connection, ["c1", "c2", "nobody"], TYPES)
    assert sorted(contexts) == ["c1", "c2"]
    acme = contexts["c1"]
    assert acme["customer"]["name"] == "Acme" and acme["customer"]["status"] == "Active"
    assert {name: a["id"] for name, a in acme["accounts"].items()} == {"crm": "001A", "helpdesk": "7", "billing": "cus_1"}
    # the CRM's earliest contact wins over the helpdesk's (older) one; deleted contacts never count
    assert acme["primary_contact"] == {"name": "Dana Whitfield", "email": "dana@acme.example", "connector": "crm",
                                       "id": "003A"}
    assert acme["owner"] == {"name": "Sam Ortega", "email": "sam@ourco.example", "connector": "crm", "id": "005U"}
    assert acme["billing_email"] == "ap@acme.example"
    assert [s["id"] for s in acme["subscriptions"]] == ["sub_old", "sub_big", "sub_small"]
    bare = contexts["c2"]
    assert bare["primary_contact"] is None and bare["owner"] is None and bare["billing_email"] is None


def test_send_email_plans_a_validated_smtp_send(seeded: Engine, planner: Planner) -> None:
    intent = plan(seeded, planner, "send_email", {
        "template": "reengagement", "to": "primary_contact",
        "variables": {"links": {"app": "https://app.example"}}}, product={"name": "Acme Analytics"},
        customer={"days_inactive": 21})
    assert (intent.status, intent.connector, intent.operation) == (PENDING, "mail", "send")
    assert intent.recipient == "dana@acme.example" and not intent.transactional and intent.at_most_once
    params = intent.params
    assert params["to"] == "dana@acme.example" and params["to_name"] == "Dana Whitfield"
    context = params["context"]
    assert context["contact"] == {"name": "Dana Whitfield", "first_name": "Dana", "email": "dana@acme.example"}
    assert context["owner"]["first_name"] == "Sam" and context["product"] == {"name": "Acme Analytics"}
    assert context["customer"]["plan"] == "Growth"          # the largest live subscription, not the canceled one
    assert context["customer"]["days_inactive"] == 21 and context["customer"]["name"] == "Acme"
    assert context["links"] == {"app": "https://app.example"}
    json.dumps(params)   # it goes into the outbox as JSON


@pytest.mark.parametrize("to, expected", [("owner", "sam@ourco.example"), ("billing_email", "ap@acme.example"),
                                          ("someone@else.example", "someone@else.example")])
def test_send_email_recipients(seeded: Engine, planner: Planner, to: str, expected: str) -> None:
    intent = plan(seeded, planner, "send_email", {"template": "checkin", "to": to, "transactional": True})
    assert intent.params["to"] == intent.recipient == expected and intent.transactional


def test_crm_actions_target_the_account(seeded: Engine, planner: Planner) -> None:
    task = plan(seeded, planner, "create_crm_task", {"subject": "Call {{ customer.name }} ({{ health.score }})",
                                                     "due_in_days": 2, "priority": "High"}, health={"score": 41})
    assert (task.connector, task.operation) == ("crm", "create_task")
    assert task.params == {"subject": "Call Acme (41)", "what_id": "001A", "priority": "High",
                           "status": "Not Started", "activity_date": "2026-03-04"}
    fields = plan(seeded, planner, "update_crm_fields", {"fields": {"Health_Score__c": "{{ health.score }}"}},
                  health={"score": 41})
    assert fields.params == {"account_id": "001A", "fields": {"Health_Score__c": "41"}}


def test_helpdesk_actions_target_the_organization(seeded: Engine, planner: Planner) -> None:
    tags = plan(seeded, planner, "tag_helpdesk_org", {"tags": ["at-risk", "health-{{ band }}", "at-risk"]}, band="red")
    assert (tags.connector, tags.operation, tags.params) == (
        "helpdesk", "add_organization_tags", {"organization_id": 7, "tags": ["at-risk", "health-red"]})
    ticket = plan(seeded, planner, "create_helpdesk_ticket", {"subject": "Check in with {{ customer.name }}",
                                                              "body": "3 tickets in 7 days", "priority": "high"})
    assert ticket.status == PENDING and ticket.operation == "create_ticket"
    assert ticket.params["organization_id"] == 7 and ticket.params["public"] is False
    assert ticket.params["requester"] == {"name": "Dana Whitfield", "email": "dana@acme.example"}


def test_billing_actions_pick_the_largest_live_subscription(seeded: Engine, planner: Planner) -> None:
    pause = plan(seeded, planner, "stripe_pause_collection", {"resume_after_days": 30})
    assert (pause.connector, pause.operation) == ("billing", "pause_collection")
    assert pause.params == {"subscription_id": "sub_big", "behavior": "void",
                            "resumes_at": (T0 + timedelta(days=30)).isoformat()}
    coupon = plan(seeded, planner, "stripe_apply_coupon", {"coupon": "WINBACK20", "subscription_id": "sub_small"})
    assert coupon.params == {"subscription_id": "sub_small", "coupon": "WINBACK20"}


def test_webhook_and_status_are_planned_for_the_hub(seeded: Engine, planner: Planner) -> None:
    slack = plan(seeded, planner, "webhook", {"url_env": "SLACK_URL", "format": "slack",
                                              "text": ":warning: {{ customer.name }} is at risk"})
    assert (slack.connector, slack.operation) == (None, "post_webhook")
    assert slack.params == {"url_env": "SLACK_URL", "body": {"text": ":warning: Acme is at risk"}, "headers": {}}
    status = plan(seeded, planner, "set_status", {"status": "At risk"})
    assert status.params == {"customer_id": "c1", "status": "At risk"} and status.connector is None


@pytest.mark.parametrize("action_type, params, customer, reason", [
    ("tag_helpdesk_org", {"tags": ["x"]}, "c2", "no helpdesk organization"),
    ("send_email", {"template": "checkin"}, "c2", "no primary contact with an email"),
    ("send_email", {"template": "checkin", "to": "owner"}, "c2", "no owner with an email"),
    ("stripe_apply_coupon", {"coupon": "X"}, "c2", "no live subscription"),
    ("create_crm_task", {"subject": "{{ health.score }}"}, "c1", "template error"),
    ("create_crm_task", {"subject": "x", "priority": "Urgent!"}, "c1", "invalid parameters: priority"),
    ("tag_helpdesk_org", {"tags": ["x"], "connector": "crm"}, "c1", "'crm' is a salesforce connector"),
    ("tag_helpdesk_org", {"tags": ["x"], "connector": "nope"}, "c1", "no connector named 'nope'"),
    ("set_status", {"status": "At risk"}, "ghost", "does not exist"),
])
def test_what_a_customer_lacks_is_a_skip_with_the_reason(seeded: Engine, planner: Planner, action_type: str,
                                                         params: dict[str, Any], customer: str, reason: str) -> None:
    intent = plan(seeded, planner, action_type, params, customer_id=customer)
    assert intent.status == SKIPPED and reason in intent.error


def test_operation_params_are_checked_against_the_connector(seeded: Engine) -> None:
    def strict(name: str) -> Mapping[str, Operation]:
        return {"add_organization_tags": Operation("add_organization_tags", _OnlyOrganization)}

    intent = plan(seeded, Planner(builtin_actions(), TYPES, operations=strict), "tag_helpdesk_org", {"tags": ["x"]})
    assert intent.status == SKIPPED and "invalid add_organization_tags parameters: tags" in intent.error


class _OnlyOrganization(BaseModel):
    model_config = {"extra": "forbid"}
    organization_id: int


def test_unknown_action_type_and_template_syntax_are_config_errors(seeded: Engine, planner: Planner) -> None:
    with pytest.raises(ConfigError, match="unknown action type 'send_fax'"):
        plan(seeded, planner, "send_fax", {})
    assert template_errors({"subject": "Hi {{ customer.name", "tags": ["{% if %}"]}) == [
        "params.subject: unexpected end of template, expected 'end of print statement'. (line 1)",
        "params.tags[0]: Expected an expression, got 'end of statement block' (line 1)"]


class Recorder(Connector):
    """Accepts every operation and remembers exactly what it was asked."""

    def __init__(self, operations: Mapping[str, Operation]) -> None:
        self.operations = operations
        self.received: list[tuple[str, dict[str, Any], str]] = []

    def check(self) -> CheckResult:
        return CheckResult(True, "ok")

    def read(self, stream: str, state: Any) -> Any:
        raise NotImplementedError

    def execute(self, operation: str, params: BaseModel, *, idempotency_key: str) -> OperationResult:
        self.received.append((operation, params.model_dump(mode="json", exclude_none=True), idempotency_key))
        return OperationResult(ok=True, external_id=f"x{len(self.received)}")


def test_run_executes_exactly_what_plan_showed(seeded: Engine, planner: Planner) -> None:
    requests = [
        ActionRequest("r1", "playbook:p", "tag_helpdesk_org", {"tags": ["at-risk"]}, "c1"),
        ActionRequest("r2", "playbook:p", "create_crm_task", {"subject": "Call {{ customer.name }}"}, "c1"),
        ActionRequest("r3", "playbook:p", "stripe_apply_coupon", {"coupon": "SAVE"}, "c1"),
        ActionRequest("r4", "playbook:p", "send_email", {"template": "checkin"}, "c1"),
        ActionRequest("r5", "playbook:p", "set_status", {"status": "At risk"}, "c1"),
        ActionRequest("r6", "playbook:p", "tag_helpdesk_org", {"tags": ["x"]}, "c2"),
    ]
    with seeded.connect() as connection:
        shown = planner.plan(connection, requests, now=T0)
    with seeded.begin() as connection:
        planned = planner.plan(connection, requests, now=T0)
        assert planned == shown
        enqueue(connection, planned, now=T0)
    recorders = {name: Recorder(checked_operations(name)) for name in TYPES}
    OutboxRunner(seeded, connectors=recorders.__getitem__, clock=lambda: T0).execute_pending()
    executed = {key: (name, op, params) for name, r in recorders.items() for op, params, key in r.received}
    expected = {i.key: (i.connector, i.operation, dict(i.params)) for i in shown if i.connector}
    # pydantic fills defaults the plan left out (e.g. Zendesk's `public`); everything planned arrives as planned
    assert executed.keys() == expected.keys()
    for key, (name, op, params) in expected.items():
        assert executed[key][:2] == (name, op) and params.items() <= executed[key][2].items()
    with seeded.connect() as connection:
        statuses = {row["key"]: row["status"] for row in list_actions(connection)}
        assert connection.execute(select(Customer.status).where(Customer.id == "c1")).scalar() == "At risk"
    assert statuses == {"r1": SUCCEEDED, "r2": SUCCEEDED, "r3": SUCCEEDED, "r4": SUCCEEDED, "r5": SUCCEEDED,
                        "r6": SKIPPED}


# -- webhooks against a real HTTP receiver ---------------------------------------------------------

SECRET = "whsec_test_0123456789"


class Receiver:
    """A tiny Starlette app that verifies signatures and can answer scripted statuses."""

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.deliveries.append({"headers": dict(request.headers), "body": body})
            status = self.statuses.pop(0) if self.statuses else 200
        if status != 200:
            return Response("bad things: field 'text' too long" if status == 400 else "oops", status_code=status)
        return JSONResponse({"ok": True})


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    app = Receiver()
    server = serve_in_thread(Starlette(routes=[Route("/hook", app.hook, methods=["POST"])]))
    yield app, f"{server.url}/hook"
    server.stop()


def run_webhooks(engine: Engine, planner: Planner, requests: Sequence[ActionRequest], clock: list[datetime]) -> None:
    with engine.begin() as connection:
        enqueue(connection, planner.plan(connection, requests, now=clock[0]), now=clock[0])
    OutboxRunner(engine, connectors={}.__getitem__, clock=lambda: clock[0],
                 environ={"HOOK_SECRET": SECRET}, policy=OutboxPolicy(max_attempts=2)).execute_pending()


def test_webhook_is_signed_and_carries_the_idempotency_key(seeded: Engine, planner: Planner,
                                                           receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    clock = [T0]
    run_webhooks(seeded, planner, [
        ActionRequest("team-alert-1", "playbook:p", "webhook", {"url": url, "secret_env": "HOOK_SECRET", "format": "slack",
                                                                "text": "{{ customer.name }}: 3 tickets in 7 days"}, "c1"),
        ActionRequest("json-1", "playbook:p", "webhook", {"url": url, "secret_env": "HOOK_SECRET",
                                                          "payload": {"score": "{{ health.score }}"}}, "c1",
                      {"health": {"score": 41}}),
    ], clock)
    assert len(app.deliveries) == 2
    by_key = {d["headers"]["idempotency-key"]: d for d in app.deliveries}
    slack = by_key["team-alert-1"]
    assert json.loads(slack["body"]) == {"text": "Acme: 3 tickets in 7 days"}
    assert slack["headers"]["content-type"] == "application/json"
    signature = slack["headers"]["x-churnhub-signature"]
    assert verify_signature(signature, slack["body"], SECRET, now=T0.timestamp())
    assert not verify_signature(signature, slack["body"], "another secret", now=T0.timestamp())
    assert not verify_signature(signature, slack["body"] + b" ", SECRET, now=T0.timestamp())
    assert not verify_signature(signature, slack["body"], SECRET, now=T0.timestamp() + 301)   # stale
    document = json.loads(by_key["json-1"]["body"])
    assert document["event"] == "churnhub.action" and document["customer"]["id"] == "c1"
    assert document["data"] == {"score": "41"}
    with seeded.connect() as connection:
        assert {row["status"] for row in list_actions(connection)} == {SUCCEEDED}


def test_webhook_retries_5xx_and_gives_up_on_4xx_with_the_receivers_words(seeded: Engine, planner: Planner,
                                                                           receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.statuses = [503, 400]
    clock = [T0]
    run_webhooks(seeded, planner, [ActionRequest("w1", "playbook:p", "webhook", {"url": url, "text": "hi"}, "c1")], clock)
    with seeded.connect() as connection:
        [row] = list_actions(connection)
    assert row["status"] == FAILED and "HTTP 503" in row["error"]
    clock[0] += timedelta(minutes=1)
    OutboxRunner(seeded, connectors={}.__getitem__, clock=lambda: clock[0]).execute_pending()
    with seeded.connect() as connection:
        [row] = list_actions(connection)
    assert row["status"] == DEAD and row["error"] == "webhook answered HTTP 400: bad things: field 'text' too long"
    assert [d["headers"]["idempotency-key"] for d in app.deliveries] == ["w1", "w1"]
    assert all("x-churnhub-signature" not in d["headers"] for d in app.deliveries)   # no secret_env: unsigned


def test_webhook_with_an_unset_secret_variable_is_dead_and_sends_nothing(seeded: Engine, planner: Planner,
                                                                          receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    run_webhooks(seeded, planner, [ActionRequest("w1", "playbook:p", "webhook",
                                                 {"url": url, "text": "x", "secret_env": "NOT_SET_ANYWHERE"}, "c1")], [T0])
    with seeded.connect() as connection:
        [row] = list_actions(connection)
    assert row["status"] == DEAD and "NOT_SET_ANYWHERE" in row["error"] and app.deliveries == []


# -- the CLI ------------------------------------------------------------------------------------------

def cli(config: Path, *args: str) -> Any:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = CliState(config=str(config))

    app.add_typer(actions_cmd.app, name="actions")
    return CliRunner().invoke(app, ["actions", *args])


def test_actions_command_lists_retries_and_runs(seeded: Engine, database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "churnhub.yaml"
    config.write_text(f"database: {database_url}\n")
    with seeded.begin() as connection:
        enqueue(connection, [
            *Planner(builtin_actions(), {}).plan(connection, [
                ActionRequest("s1", "playbook:p", "set_status", {"status": "At risk"}, "c1"),
                ActionRequest("s2", "playbook:p", "set_status", {"status": "At risk"}, "ghost")], now=T0)], now=T0)
    ran = cli(config, "run", "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["counts"] == {SUCCEEDED: 1}
    listed = cli(config, "--json")
    assert listed.exit_code == 0, listed.output
    rows = {row["key"]: row for row in json.loads(listed.output)}
    assert rows["s1"]["status"] == SUCCEEDED and rows["s2"]["status"] == SKIPPED
    assert "does not exist" in rows["s2"]["error"]
    table = cli(config, "--status", "skipped")
    assert table.exit_code == 0 and "does not exist" in table.output and "set_status" in table.output
    refused = cli(config, "retry", str(rows["s1"]["id"]))
    assert refused.exit_code != 0 and "only failed or dead actions can be retried" in str(refused.exception)
    bad = cli(config, "--status", "exploded")
    assert bad.exit_code != 0 and "unknown status" in str(bad.exception)
