"""The sandbox over plain HTTP: the shapes, codes and limits of salesforce.md."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.salesforce.sandbox import SalesforceSandbox
from connectors.salesforce.sandbox_auth import ConnectedApp

from .conftest import NOW, FakeClock, account, contact, sf_id, small_org

V = "/services/data/v61.0"


def login(sandbox: SalesforceSandbox, **form: str) -> httpx.Response:
    app = ConnectedApp()
    data = {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret,
            **form}
    return httpx.post(f"{sandbox.url}/services/oauth2/token", data=data)


class Api:
    def __init__(self, sandbox: SalesforceSandbox) -> None:
        body = login(sandbox).json()
        self.http = httpx.Client(base_url=body["instance_url"],
                                 headers={"Authorization": f"Bearer {body['access_token']}"})

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path if path.startswith("/services") else V + path, **kwargs)


@pytest.fixture
def api(sandbox: SalesforceSandbox) -> Iterator[Api]:
    client = Api(sandbox)
    yield client
    client.http.close()


def test_token_response_points_at_the_instance(shared_sandbox: SalesforceSandbox) -> None:
    body = login(shared_sandbox).json()
    assert body["instance_url"] == shared_sandbox.url and body["token_type"] == "Bearer"
    assert {"access_token", "id", "issued_at", "signature"} <= set(body)
    assert "refresh_token" not in body


@pytest.mark.parametrize("form, error", [({"client_secret": "wrong"}, "invalid_client"),
                                         ({"client_id": "nope"}, "invalid_client_id"),
                                         ({"grant_type": "password"}, "unsupported_grant_type"),
                                         ({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                           "assertion": "not.a.jwt"}, "invalid_grant")])
def test_refused_logins(shared_sandbox: SalesforceSandbox, form: dict[str, str], error: str) -> None:
    response = login(shared_sandbox, **form)
    assert response.status_code == 400 and response.json()["error"] == error


def test_jwt_assertions_are_checked_like_salesforce_does(sandbox_factory: Callable[..., SalesforceSandbox],
                                                         clock: FakeClock) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    sandbox = sandbox_factory(small_org(), public_key=public)
    app = ConnectedApp()
    good = {"iss": app.client_id, "sub": app.username, "aud": "https://login.salesforce.com", "exp": clock() + 170}

    def grant(claims: dict[str, Any], algorithm: str = "RS256") -> httpx.Response:
        signing_key: Any = key if algorithm == "RS256" else "shared-secret-of-32-bytes-or-more!!"
        assertion = jwt.encode(claims, signing_key, algorithm=algorithm)
        return httpx.post(f"{sandbox.url}/services/oauth2/token",
                          data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})

    accepted = grant(good)
    assert accepted.status_code == 200 and accepted.json()["instance_url"] == sandbox.url
    assert grant({**good, "aud": sandbox.url}).status_code == 200       # its own URL, like a community's
    for claims, words in [({**good, "aud": "https://evil.example"}, "audience is invalid"),
                          ({**good, "exp": clock() + 3600}, "more than 3 minutes"),
                          ({**good, "exp": clock() - 1}, "expired"),
                          ({**good, "sub": "someone@else.example"}, "hasn't approved"),
                          ({**good, "iss": "other-app"}, "client identifier invalid")]:
        refused = grant(claims)
        assert refused.status_code == 400 and words in refused.json()["error_description"], claims
    assert grant(good, "HS256").json()["error"] == "invalid_grant"


def test_calls_without_a_live_session_get_401(sandbox: SalesforceSandbox, clock: FakeClock, api: Api) -> None:
    response = httpx.get(f"{sandbox.url}{V}/limits", headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert api("GET", "/limits").status_code == 200
    clock.advance(7200)                                 # the default session lifetime
    assert api("GET", "/limits").status_code == 401


def test_every_api_response_carries_the_usage_and_the_budget_runs_out(
        sandbox_factory: Callable[..., SalesforceSandbox], clock: FakeClock) -> None:
    sandbox = sandbox_factory(small_org(), daily_api_limit=3)
    api = Api(sandbox)
    headers = [api("GET", "/limits").headers["Sforce-Limit-Info"] for _ in range(3)]
    assert headers == ["api-usage=1/3", "api-usage=2/3", "api-usage=3/3"]
    refused = api("GET", "/query", params={"q": "SELECT Id FROM Account"})
    assert refused.status_code == 403 and refused.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=3/3"
    clock.advance(86_400)                               # a new day on the sandbox clock
    assert Api(sandbox)("GET", "/limits").json()["DailyApiRequests"] == {"Max": 3, "Remaining": 2}


def test_query_batches_follow_next_records_url(sandbox_factory: Callable[..., SalesforceSandbox]) -> None:
    sandbox = sandbox_factory({"Account": [account(n, NOW - 1000 + n) for n in range(1, 451)]})
    api = Api(sandbox)
    first = api("GET", "/query", params={"q": "SELECT Id, Name FROM Account ORDER BY SystemModstamp, Id"},
                headers={"Sforce-Query-Options": "batchSize=200"}).json()
    assert first["totalSize"] == 450 and first["done"] is False and len(first["records"]) == 200
    assert first["nextRecordsUrl"].startswith(f"{V}/query/01g") and first["nextRecordsUrl"].endswith("-200")
    assert first["records"][0] == {"attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{sf_id('001', 1)}"},
                                   "Id": sf_id("001", 1), "Name": "Account 1"}
    ids = [r["Id"] for r in first["records"]]
    body = first
    while not body["done"]:
        body = api("GET", body["nextRecordsUrl"], headers={"Sforce-Query-Options": "batchSize=200"}).json()
        ids += [r["Id"] for r in body["records"]]
    assert ids == [sf_id("001", n) for n in range(1, 451)] and "nextRecordsUrl" not in body
    again = api("GET", first["nextRecordsUrl"])        # a finished locator is gone
    assert again.status_code == 400 and again.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    default = api("GET", "/query", params={"q": "SELECT Id FROM Account"}).json()
    assert default["done"] is True and len(default["records"]) == 450   # batches of up to 2,000


def test_query_all_returns_soft_deleted_records(sandbox: SalesforceSandbox, api: Api) -> None:
    gone = sf_id("003", 2)
    sandbox.delete("Contact", gone)
    soql = "SELECT Id, IsDeleted FROM Contact"
    live = api("GET", "/query", params={"q": soql}).json()["records"]
    everything = api("GET", "/queryAll", params={"q": soql}).json()["records"]
    assert gone not in [r["Id"] for r in live] and len(live) == 3
    assert {r["Id"]: r["IsDeleted"] for r in everything}[gone] is True
    sandbox.purge("Contact", gone)
    assert len(api("GET", "/queryAll", params={"q": soql}).json()["records"]) == 3


@pytest.mark.parametrize("soql, code", [("SELECT Id FROM Account WHERE Name LIKE 'A%'", "MALFORMED_QUERY"),
                                        ("SELECT Id FROM Account WHERE Name = 'unterminated", "MALFORMED_QUERY"),
                                        ("SELECT Id FROM Account WHERE SystemModstamp > '2024-01-01'",
                                         "MALFORMED_QUERY"),
                                        ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
                                        ("SELECT Id FROM Nothing", "INVALID_TYPE")])
def test_bad_queries(shared_sandbox: SalesforceSandbox, soql: str, code: str) -> None:
    response = Api(shared_sandbox)("GET", "/query", params={"q": soql})
    assert response.status_code == 400 and response.json()[0]["errorCode"] == code


def test_create_update_upsert_delete(sandbox_factory: Callable[..., SalesforceSandbox], clock: FakeClock) -> None:
    sandbox = sandbox_factory(small_org(), external_ids={"Account": ["Ext_Key__c"]})
    api = Api(sandbox)
    created = api("POST", "/sobjects/Account/", json={"Name": "New Co", "Ext_Key__c": "k1"})
    assert created.status_code == 201
    new_id = created.json()["id"]
    assert created.json() == {"id": new_id, "success": True, "errors": []}
    missing = api("POST", "/sobjects/Account/", json={"Website": "x.example"})
    assert missing.status_code == 400 and missing.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"

    clock.advance(5)
    updated = api("PATCH", f"/sobjects/Account/{new_id}", json={"Industry": "Retail"})
    assert updated.status_code == 204 and updated.content == b""
    stored = sandbox.get("Account", new_id)
    assert stored is not None and stored["Industry"] == "Retail" and stored["SystemModstamp"].startswith("2024-06-01T00:00:05")

    upsert_new = api("PATCH", "/sobjects/Account/Ext_Key__c/k2", json={"Name": "Upserted"})
    assert upsert_new.status_code == 201 and upsert_new.json()["created"] is True
    upsert_old = api("PATCH", "/sobjects/Account/Ext_Key__c/k1", json={"Type": "Prospect"})
    assert upsert_old.status_code == 200 and upsert_old.json() == {"id": new_id, "success": True, "errors": [],
                                                                   "created": False}
    old_version = api("PATCH", "/services/data/v45.0/sobjects/Account/Ext_Key__c/k1", json={"Type": "Customer"})
    assert old_version.status_code == 204
    sandbox.update("Account", upsert_new.json()["id"], {"Ext_Key__c": "k1"})
    duplicate = api("PATCH", "/sobjects/Account/Ext_Key__c/k1", json={"Type": "Prospect"})
    assert duplicate.status_code == 300 and len(duplicate.json()) == 2
    not_external = api("PATCH", "/sobjects/Account/Name/x", json={})
    assert not_external.status_code == 404 and not_external.json()[0]["errorCode"] == "NOT_FOUND"

    assert api("DELETE", f"/sobjects/Account/{new_id}").status_code == 204
    again = api("DELETE", f"/sobjects/Account/{new_id}")
    assert again.status_code == 404 and again.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert api("PATCH", f"/sobjects/Account/{sf_id('001', 999)}", json={"Name": "x"}).status_code == 404
    assert api("PUT", f"/sobjects/Account/{new_id}", json={}).status_code == 405


def test_collections_report_per_record_and_all_or_none_rolls_back(sandbox: SalesforceSandbox, api: Api) -> None:
    records = [{"attributes": {"type": "Account"}, "id": sf_id("001", 1), "Industry": "Retail"},
               {"attributes": {"type": "Account"}, "id": sf_id("001", 2), "AnnualRevenue": "lots"},
               {"attributes": {"type": "Account"}, "id": sf_id("001", 3), "Industry": "Energy"}]
    partial = api("PATCH", "/composite/sobjects", json={"allOrNone": False, "records": records})
    assert partial.status_code == 200
    assert [r["success"] for r in partial.json()] == [True, False, True]
    assert partial.json()[1]["errors"][0]["statusCode"] == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    assert sandbox.get("Account", sf_id("001", 3))["Industry"] == "Energy"   # type: ignore[index]

    before = sandbox.get("Account", sf_id("001", 1))
    records[0]["Industry"], records[2]["Industry"] = "Mining", "Mining"
    tasks_before = len(sandbox.records("Task"))
    atomic = api("PATCH", "/composite/sobjects", json={"allOrNone": True, "records": records}).json()
    assert [r["success"] for r in atomic] == [False, False, False]
    assert atomic[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sandbox.get("Account", sf_id("001", 1)) == before
    created = api("POST", "/composite/sobjects", json={"allOrNone": True, "records": [
        {"attributes": {"type": "Task"}, "Subject": "Call", "WhatId": sf_id("001", 1)},
        {"attributes": {"type": "Task"}, "Subject": "Call", "WhatId": sf_id("001", 999)}]}).json()
    assert [r["success"] for r in created] == [False, False]
    assert created[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert len(sandbox.records("Task")) == tasks_before and sandbox.created("Task") == []

    too_many = api("POST", "/composite/sobjects", json={"records": [{"attributes": {"type": "Task"}}] * 201})
    assert too_many.status_code == 400 and too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_collection_upsert_says_created(sandbox: SalesforceSandbox, api: Api) -> None:
    task = {"attributes": {"type": "Task"}, "Subject": "Check in", "WhatId": sf_id("001", 1), "Churnhub_Key__c": "a"}
    first = api("PATCH", "/composite/sobjects/Task/Churnhub_Key__c", json={"records": [task]}).json()
    second = api("PATCH", "/composite/sobjects/Task/Churnhub_Key__c",
                 json={"records": [{**task, "Status": "Completed"}]}).json()
    assert first[0]["created"] is True and second[0] == {"id": first[0]["id"], "success": True, "errors": [],
                                                         "created": False}
    assert [t["Status"] for t in sandbox.created("Task")] == ["Completed"]


def test_seeding_many_records_and_a_keyset_query_reads_only_the_tail(
        sandbox_factory: Callable[..., SalesforceSandbox]) -> None:
    count = 20_000
    rows = [account(n, NOW - count + n // 3) for n in range(count)]   # three records per second
    contacts = [contact(n, n, NOW - 5) for n in range(10)]
    sandbox = sandbox_factory({"Account": rows, "Contact": contacts})
    api = Api(sandbox)
    last = rows[-4]
    stamp = last["SystemModstamp"].replace(".000+0000", "Z")
    soql = (f"SELECT Id FROM Account WHERE (SystemModstamp > {stamp}) OR (SystemModstamp = {stamp} AND "
            f"Id > '{last['Id']}') ORDER BY SystemModstamp ASC, Id ASC")
    tail = api("GET", "/queryAll", params={"q": soql}).json()
    assert [r["Id"] for r in tail["records"]] == [r["Id"] for r in rows[-3:]]
    assert api("GET", "/query", params={"q": "SELECT Id FROM Account"}).json()["totalSize"] == count


def test_get_one_record_and_delete_a_collection(sandbox: SalesforceSandbox, api: Api) -> None:
    found = api("GET", f"/sobjects/Contact/{sf_id('003', 1)[:15]}")          # a 15-character id works too
    assert found.status_code == 200 and found.json()["Id"] == sf_id("003", 1)
    assert found.json()["attributes"]["type"] == "Contact"
    ids = [sf_id("003", 1), sf_id("003", 2), sf_id("003", 999)]
    atomic = api("DELETE", "/composite/sobjects", params={"ids": ",".join(ids), "allOrNone": "true"}).json()
    assert [r["success"] for r in atomic] == [False, False, False] and len(sandbox.records("Contact")) == 4
    deleted = api("DELETE", "/composite/sobjects", params={"ids": ",".join(ids)}).json()
    assert [r["success"] for r in deleted] == [True, True, False]
    assert deleted[2]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert len(sandbox.records("Contact")) == 2 and len(sandbox.records("Contact", include_deleted=True)) == 4
    assert api("GET", f"/sobjects/Contact/{sf_id('003', 1)}").status_code == 404
