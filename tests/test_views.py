"""Customer views and the identity/customers commands, end to end on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from hub.commands import customers_cmd, identity_cmd
from hub.commands.context import CliState
from hub.identity import customer_id_for
from hub.identity_store import resolve_identities
from hub.matching import RecordKey
from hub.models import HealthScore
from hub.records import Record
from hub.sections.identity import IdentitySettings
from hub.store import write_records
from hub.views import CustomerNotFound, customer_360, customer_list, find_customer, payment_state

TYPES = {"salesforce": ["crm"], "zendesk": ["helpdesk", "support2"], "stripe": ["billing"]}
SF_A, SF_B = "001000000000001AAA", "001000000000002AAA"
ACME, BETA = customer_id_for(RecordKey("crm", SF_A)), customer_id_for(RecordKey("crm", SF_B))
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def seed(engine: Engine) -> None:
    data: dict[str, list[Record]] = {
        "crm": [Record("account", SF_A, {"name": "Acme", "website": "https://www.acme.com", "domains": ["acme.com"]}),
                Record("account", SF_B, {"name": "Beta", "website": "beta.io", "domains": ["beta.io"]})],
        "helpdesk": [
            Record("account", "9", {"name": "Acme Support", "domains": ["acme.com"], "links": {}}),
            Record("ticket", "t1", {"account_id": "9", "status": "open", "subject": "Login broken",
                                    "priority": "high", "created_at": "2024-05-20T10:00:00Z"}),
            Record("ticket", "t2", {"account_id": "9", "status": "pending", "subject": "Export",
                                    "created_at": "2024-05-21T10:00:00Z"}),
            Record("ticket", "t3", {"account_id": "9", "status": "solved", "subject": "Old",
                                    "created_at": "2024-01-01T10:00:00Z"}),
        ],
        "support2": [Record("account", "9", {"name": "Beta (EU desk)", "domains": ["beta.io"]})],
        "billing": [
            Record("account", "cus_1", {"name": "ACME billing", "email": "ap@acme.com", "domains": ["acme.com"]}),
            Record("subscription", "sub_1", {"account_id": "cus_1", "status": "active", "plan": "pro",
                                             "mrr": 10_000, "currency": "usd"}),
            Record("subscription", "sub_2", {"account_id": "cus_1", "status": "canceled", "plan": "basic",
                                             "mrr": 2_000, "currency": "usd"}),
            Record("invoice", "in_1", {"account_id": "cus_1", "status": "paid", "amount_due": 10_000,
                                       "amount_paid": 10_000, "currency": "usd", "created_at": "2024-04-01T00:00:00Z"}),
            Record("invoice", "in_2", {"account_id": "cus_1", "status": "open", "amount_due": 10_000,
                                       "amount_paid": 0, "currency": "usd", "attempt_count": 1,
                                       "created_at": "2024-05-01T00:00:00Z"}),
        ],
    }
    with engine.begin() as connection:
        for connector, records in data.items():
            write_records(connection, connector, records, now=NOW)


def score(engine: Engine, customer_id: str, band: str, value: float, day: int) -> None:
    with engine.begin() as connection:
        connection.execute(HealthScore.__table__.insert(), {
            "customer_id": customer_id, "scored_at": datetime(2024, 5, day, tzinfo=UTC), "score": value,
            "band": band, "model": "default", "factors": {"tickets": -10}})


@pytest.fixture
def world(engine: Engine) -> Engine:
    seed(engine)
    resolve_identities(engine, IdentitySettings(), TYPES, now=NOW)
    score(engine, ACME, "red", 20, 1)
    score(engine, ACME, "green", 85, 20)   # the latest one counts
    score(engine, BETA, "yellow", 55, 10)
    return engine


def test_customer_list_with_links_mrr_and_latest_health(world: Engine) -> None:
    with world.connect() as connection:
        rows = customer_list(connection)
        green = customer_list(connection, band="green")
        yellow = customer_list(connection, band="YELLOW")
    assert [row["id"] for row in rows] == [ACME, BETA]     # biggest MRR first
    acme = rows[0]
    assert (acme["name"], acme["domain"], acme["mrr"], acme["currency"]) == ("Acme", "acme.com", 10_000, "usd")
    assert acme["links"] == [{"connector": "billing", "object": "account", "external_id": "cus_1"},
                             {"connector": "crm", "object": "account", "external_id": SF_A},
                             {"connector": "helpdesk", "object": "account", "external_id": "9"}]
    assert acme["health"]["band"] == "green" and acme["health"]["score"] == 85
    assert [row["id"] for row in green] == [ACME] and [row["id"] for row in yellow] == [BETA]


@pytest.mark.parametrize("ref, expected", [
    (ACME, ACME), ("acme.com", ACME), ("https://www.Acme.com/", ACME), ("someone@beta.io", BETA),
    (f"crm:{SF_A}", ACME), (SF_B, BETA), ("cus_1", ACME), ("billing:cus_1", ACME), ("support2:9", BETA),
    ("helpdesk:9", ACME), ("in_2", ACME), ("helpdesk:t1", ACME), ("sub_2", ACME),
])
def test_find_customer_by_any_reference(world: Engine, ref: str, expected: str) -> None:
    with world.connect() as connection:
        assert find_customer(connection, ref) == expected


def test_ambiguous_or_unknown_references_are_clear_errors(world: Engine) -> None:
    with world.connect() as connection:
        with pytest.raises(CustomerNotFound, match=r"'9' matches 2 customers .*helpdesk:9.*support2:9"):
            find_customer(connection, "9")
        with pytest.raises(CustomerNotFound, match="no customer matches 'nope.example.org'"):
            find_customer(connection, "nope.example.org")


def test_customer_360(world: Engine) -> None:
    with world.connect() as connection:
        view = customer_360(connection, ACME)
    assert (view["id"], view["name"], view["domain"], view["mrr"], view["currency"]) == (
        ACME, "Acme", "acme.com", 10_000, "usd")
    assert view["plan"] == "pro"
    assert [s["external_id"] for s in view["subscriptions"]] == ["sub_1", "sub_2"]   # live first
    assert view["open_tickets"]["count"] == 2
    assert [t["external_id"] for t in view["open_tickets"]["recent"]] == ["t2", "t1"]  # newest first
    assert [i["external_id"] for i in view["invoices"]] == ["in_2", "in_1"]
    assert view["payment_state"] == "failing"
    assert view["health"]["band"] == "green" and view["health"]["factors"] == {"tickets": -10}
    assert set(view["systems"]) == {"crm", "helpdesk", "billing"}
    assert view["systems"]["helpdesk"]["records"] == {"ticket": 3}
    assert view["systems"]["billing"]["records"] == {"subscription": 2, "invoice": 2}
    assert {(link["connector"], link["object"], link["external_id"]) for link in view["links"]} == {
        ("crm", "account", SF_A), ("helpdesk", "account", "9"), ("billing", "account", "cus_1")}


@pytest.mark.parametrize("subscriptions, invoices, expected", [
    ([], [], None),
    ([{"status": "past_due"}], [{"status": "paid", "attempt_count": 0}], "past_due"),
    ([{"status": "active"}], [{"status": "open", "attempt_count": 2}, {"status": "paid", "attempt_count": 1}], "failing"),
    ([{"status": "active"}], [{"status": "paid", "attempt_count": 1}, {"status": "open", "attempt_count": 0}], "paid"),
    ([{"status": "active"}], [{"status": "open", "attempt_count": 0}], "open"),
])
def test_payment_state(subscriptions: list[dict], invoices: list[dict], expected: str | None) -> None:
    assert payment_state(subscriptions, invoices) == expected


# -- the commands, as `hub.cli` mounts them ----------------------------------------------------------


def cli_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context, config: Annotated[str | None, typer.Option("--config", "-c")] = None) -> None:
        ctx.obj = CliState(config=config)

    app.add_typer(identity_cmd.app, name="identity")
    app.command("customers")(customers_cmd.customers)
    app.command("customer")(customers_cmd.customer)
    return app


@pytest.fixture
def invoke(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CHURNHUB_PLUGINS", "none")
    config = tmp_path / "churnhub.yaml"
    config.write_text(f"database: {database_url}\nconnectors: {{}}\n")
    app, runner = cli_app(), CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, ["--config", str(config), *args])

    return run


def test_commands_end_to_end(engine: Engine, invoke: Any) -> None:
    seed(engine)
    with engine.begin() as connection:   # two CRM accounts at one domain: a conflict for the report
        write_records(connection, "crm", [Record("account", "001000000000009AAA",
                                                 {"name": "Beta duplicate", "domains": ["beta.io"]})], now=NOW)
    pending = invoke("identity", "report", "--json")
    assert pending.exit_code == 0, pending.output
    report = json.loads(pending.stdout)
    assert report["summary"]["up_to_date"] is False and report["summary"]["created"] == report["summary"]["customers"]

    resolved = invoke("identity", "resolve", "--json")
    assert resolved.exit_code == 0, resolved.output
    assert json.loads(resolved.stdout)["created"] == report["summary"]["created"]
    again = json.loads(invoke("identity", "resolve", "--json").stdout)
    assert again["created"] == again["updated"] == again["links_added"] == again["links_changed"] == 0

    report = json.loads(invoke("identity", "report", "--json").stdout)
    assert report["summary"]["up_to_date"] is True
    [conflict] = report["conflicts"]
    assert conflict["keys"] == ["beta.io"] and conflict["systems"] == ["crm"]
    assert [side["records"] for side in conflict["unmatched"]] == [["support2:9"]]
    unmatched = {r["connector"] + ":" + r["external_id"] for item in report["unmatched"] for r in item["records"]}
    assert unmatched == {f"crm:{SF_B}", "crm:001000000000009AAA", "support2:9"}
    text = invoke("identity", "report")
    assert text.exit_code == 0 and "conflict" in text.stdout and "beta.io" in text.stdout

    listed = json.loads(invoke("customers", "--json").stdout)
    # no connector types configured here, so no system is preferred for names: the first by connector name
    assert {row["name"] for row in listed} == {"ACME billing", "Beta", "Beta duplicate", "Beta (EU desk)"}
    assert listed[0]["name"] == "ACME billing" and listed[0]["mrr"] == 10_000
    assert json.loads(invoke("customers", "--band", "green", "--json").stdout) == []   # no health yet
    table = invoke("customers")
    assert table.exit_code == 0 and listed[0]["id"] in table.stdout and "100.00 USD" in table.stdout

    view = json.loads(invoke("customer", "acme.com", "--json").stdout)
    assert {k: view[k] for k in ("name", "domain", "mrr", "currency")} == {
        "name": "ACME billing", "domain": "acme.com", "mrr": 10_000, "currency": "usd"}
    assert {"connector": "billing", "object": "account", "external_id": "cus_1"} in [
        {k: link[k] for k in ("connector", "object", "external_id")} for link in view["links"]]
    shown = invoke("customer", "billing:cus_1")
    assert shown.exit_code == 0 and "open tickets: 2" in shown.stdout and "Login broken" in shown.stdout
    missing = invoke("customer", "nope.example.org")
    assert missing.exit_code == 1 and isinstance(missing.exception, CustomerNotFound)
