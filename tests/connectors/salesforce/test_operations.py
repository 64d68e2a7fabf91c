"""Outbound operations through sObject Collections against the sandbox, with per-record results."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.operations import CreateTask, UpdateAccount, Upsert
from connectors.salesforce.sandbox import SalesforceSandbox

from .conftest import DAY, NOW, account, sf_id, small_org, user

Start = Callable[..., SalesforceSandbox]
Connect = Callable[..., SalesforceConnector]


def collection_calls(sandbox: SalesforceSandbox) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _ in sandbox.request_log if "/composite/sobjects" in path]


def test_create_task_batch_with_a_partial_failure(sandbox_factory: Start, connect: Connect) -> None:
    dataset = small_org()
    dataset["User"].append(user(3, NOW - DAY, IsActive=False))
    sandbox = sandbox_factory(dataset)
    connector = connect(sandbox)
    items = [
        (CreateTask(subject="Renewal check-in", what_id=sf_id("001", 1), activity_date=date(2024, 6, 7),
                    priority="High", description="Usage dropped 40%"), "action-1"),
        (CreateTask(subject="Ghost", what_id=sf_id("001", 999)), "action-2"),          # no such account
        (CreateTask(subject="Call", what_id=sf_id("001", 2), owner_id=sf_id("005", 3)), "action-3"),  # inactive
        (CreateTask(subject="Deal review", what_id=sf_id("006", 2)), "action-4"),     # about an opportunity
    ]
    results = connector.execute_many("create_task", items)
    assert [r.ok for r in results] == [True, False, False, True]
    assert results[1].code == "INVALID_CROSS_REFERENCE_KEY" and not results[1].retryable
    assert "WhatId" in (results[1].error or "")
    assert results[2].code == "INACTIVE_OWNER_OR_USER"
    assert results[0].data == {"created": True}
    tasks = {t["Churnhub_Key__c"]: t for t in sandbox.created("Task")}
    assert set(tasks) == {"action-1", "action-4"}
    first = tasks["action-1"]
    assert first["Id"] == results[0].external_id and first["OwnerId"] == sf_id("005", 2)   # the account's owner
    assert (first["Subject"], first["Priority"], first["ActivityDate"], first["Status"]) == \
        ("Renewal check-in", "High", "2024-06-07", "Not Started")
    assert tasks["action-4"]["WhatId"] == sf_id("006", 2)
    assert collection_calls(sandbox) == [("PATCH", "/services/data/v61.0/composite/sobjects/Task/Churnhub_Key__c")]

    again = connector.execute_many("create_task", items[:1])    # the same action, retried
    assert again[0].ok and again[0].external_id == results[0].external_id and again[0].data == {"created": False}
    assert len(sandbox.created("Task")) == 2


def test_create_task_without_an_idempotency_field_is_sent_once_by_post(sandbox: SalesforceSandbox,
                                                                       connect: Connect) -> None:
    connector = connect(sandbox, task_idempotency_field=None)
    result = connector.execute("create_task", CreateTask(subject="Hello", what_id=sf_id("001", 3),
                                                         owner_id=sf_id("005", 1)), idempotency_key="k")
    assert result.ok and [t["Subject"] for t in sandbox.created("Task")] == ["Hello"]
    assert collection_calls(sandbox) == [("POST", "/services/data/v61.0/composite/sobjects")]


def test_many_tasks_go_in_collections_of_200(sandbox: SalesforceSandbox, connect: Connect) -> None:
    connector = connect(sandbox)
    items = [(CreateTask(subject=f"Task {n}", what_id=sf_id("001", 1 + n % 3)), f"key-{n}") for n in range(450)]
    results = connector.execute_many("create_task", items)
    assert all(r.ok for r in results) and len({r.external_id for r in results}) == 450
    assert len(collection_calls(sandbox)) == 3
    owner_queries = [p for _, p, _ in sandbox.request_log if "/query?" in p]
    assert len(owner_queries) == 1                       # 3 distinct accounts: one owner lookup


def test_update_account_reports_each_record(sandbox: SalesforceSandbox, connect: Connect) -> None:
    connector = connect(sandbox)
    results = connector.execute_many("update_account", [
        (UpdateAccount(account_id=sf_id("001", 1), fields={"Industry": "Retail", "Description": "at risk"}), "u1"),
        (UpdateAccount(account_id=sf_id("001", 2), fields={"AnnualRevenue": "lots"}), "u2"),
        (UpdateAccount(account_id=sf_id("001", 999), fields={"Industry": "Retail"}), "u3"),
        (UpdateAccount(account_id=sf_id("001", 3)[:15], fields={"Type": "Prospect"}), "u4"),   # a 15-char id
    ])
    assert [r.ok for r in results] == [True, False, False, True]
    assert results[1].code == "INVALID_TYPE_ON_FIELD_IN_RECORD" and "AnnualRevenue" in (results[1].error or "")
    assert results[2].code == "INVALID_CROSS_REFERENCE_KEY"
    assert sandbox.get("Account", sf_id("001", 1))["Industry"] == "Retail"   # type: ignore[index]
    assert sandbox.get("Account", sf_id("001", 2))["AnnualRevenue"] == 2000.0   # type: ignore[index]
    assert sandbox.get("Account", sf_id("001", 3))["Type"] == "Prospect"   # type: ignore[index]
    assert collection_calls(sandbox) == [("PATCH", "/services/data/v61.0/composite/sobjects")]


def test_upsert_by_external_id(sandbox_factory: Start, connect: Connect) -> None:
    sandbox = sandbox_factory({"Account": [account(1, NOW - DAY, Ext_Key__c="dup"), account(2, NOW - DAY,
                                                                                            Ext_Key__c="dup")]},
                              external_ids={"Account": ["Ext_Key__c"]})
    connector = connect(sandbox)
    results = connector.execute_many("upsert", [
        (Upsert(sobject="Account", external_id_field="Ext_Key__c", external_id="new-1", fields={"Name": "Fresh"}),
         "x1"),
        (Upsert(sobject="Account", external_id_field="Ext_Key__c", external_id="dup", fields={"Type": "Other"}),
         "x2"),
        (Upsert(sobject="Account", external_id_field="Ext_Key__c", external_id="new-2", fields={}), "x3"),
    ])
    assert [r.ok for r in results] == [True, False, False]
    assert results[0].data == {"created": True}
    assert results[1].code == "DUPLICATE_EXTERNAL_ID"
    assert results[2].code == "REQUIRED_FIELD_MISSING"
    created = sandbox.get("Account", results[0].external_id or "")
    assert created is not None and created["Name"] == "Fresh" and created["Ext_Key__c"] == "new-1"

    again = connector.execute("upsert", Upsert(sobject="Account", external_id_field="Ext_Key__c",
                                               external_id="new-1", fields={"Industry": "Energy"}),
                              idempotency_key="x4")
    assert again.ok and again.data == {"created": False} and again.external_id == results[0].external_id
    assert collection_calls(sandbox)[0] == ("PATCH", "/services/data/v61.0/composite/sobjects/Account/Ext_Key__c")


def test_a_spent_daily_quota_fails_the_batch_as_retryable(sandbox_factory: Start, connect: Connect) -> None:
    sandbox = sandbox_factory(small_org(), daily_api_limit=1, api_usage=1)
    results = connect(sandbox).execute_many("update_account", [
        (UpdateAccount(account_id=sf_id("001", 1), fields={"Industry": "Retail"}), "u1")])
    assert not results[0].ok and results[0].retryable and results[0].code == "REQUEST_LIMIT_EXCEEDED"
