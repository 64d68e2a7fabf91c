"""The sandbox behaves like Zendesk: auth, pagination, exports, limits, writes and error shapes."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx

from connectors.zendesk.sandbox import ADMIN, AGENT, ZendeskSandbox, start_sandbox
from connectors.zendesk.settings import ZendeskSettings


def http(sandbox: ZendeskSandbox, role: str = "admin", auth: str = "token") -> httpx.Client:
    settings = ZendeskSettings(**sandbox.settings(role, auth))
    return httpx.Client(base_url=sandbox.url, headers={"Authorization": settings.authorization()})


def test_auth_token_and_bearer_accepted_anything_else_401(sandboxes: Callable[..., ZendeskSandbox],
                                                          zd: SimpleNamespace) -> None:
    sandbox = sandboxes(zd.small_world())
    assert http(sandbox).get("/api/v2/users/me.json").json()["user"]["email"] == ADMIN.email
    assert http(sandbox, "agent", "oauth").get("/api/v2/users/me").json()["user"]["role"] == "agent"
    anonymous = httpx.get(f"{sandbox.url}/api/v2/users/me.json")
    assert (anonymous.status_code, anonymous.json()) == (401, {"error": "Couldn't authenticate you"})
    wrong = httpx.get(f"{sandbox.url}/api/v2/users/me.json", auth=(f"{ADMIN.email}/token", "nope"))
    assert wrong.status_code == 401
    password = httpx.get(f"{sandbox.url}/api/v2/users/me.json", auth=(ADMIN.email, ADMIN.api_token))
    assert password.status_code == 401  # the token form is "{email}/token:{token}"


def test_cursor_pagination_walks_everything_and_refuses_big_pages(sandboxes: Callable[..., ZendeskSandbox],
                                                                  zd: SimpleNamespace) -> None:
    sandbox = sandboxes({"organizations": [zd.org(i, zd.NOW - zd.DAY) for i in range(1, 251)]})
    client = http(sandbox)
    seen, url = [], "/api/v2/organizations.json?page[size]=100"
    while True:
        body = client.get(url).json()
        seen += [o["id"] for o in body["organizations"]]
        if not body["meta"]["has_more"]:
            break
        url = body["links"]["next"]
    assert seen == list(range(1, 251))
    previous = client.get(body["links"]["prev"]).json()
    assert [o["id"] for o in previous["organizations"]] == list(range(101, 201))
    too_big = client.get("/api/v2/organizations.json", params={"page[size]": 101})
    assert too_big.status_code == 400
    assert too_big.json()["errors"][0]["code"] == "InvalidPaginationParameter"


def test_offset_pagination_stops_at_ten_thousand_records(sandboxes: Callable[..., ZendeskSandbox],
                                                         zd: SimpleNamespace) -> None:
    sandbox = sandboxes({"organizations": [zd.org(i, zd.NOW - zd.DAY) for i in range(1, 10_102)]})
    client = http(sandbox)
    first = client.get("/api/v2/organizations.json").json()
    assert (len(first["organizations"]), first["count"]) == (100, 10_101)
    assert "page=2" in first["next_page"] and first["previous_page"] is None
    last_allowed = client.get("/api/v2/organizations.json", params={"page": 100, "per_page": 100})
    assert last_allowed.status_code == 200 and last_allowed.json()["organizations"][-1]["id"] == 10_000
    beyond = client.get("/api/v2/organizations.json", params={"page": 101, "per_page": 100})
    assert beyond.status_code == 400 and "10,000" in beyond.json()["errors"][0]["detail"]


def test_cursor_export_hides_the_last_minute_and_continues_from_its_cursor(
        sandboxes: Callable[..., ZendeskSandbox], zd: SimpleNamespace, clock: Any) -> None:
    sandbox = sandboxes({"tickets": [zd.ticket(i, zd.NOW - zd.DAY + i) for i in range(1, 6)]}, export_page_size=2)
    client = http(sandbox)
    pages, params = [], {"start_time": 0}
    while True:
        body = client.get("/api/v2/incremental/tickets/cursor.json", params=params).json()
        pages.append([t["id"] for t in body["tickets"]])
        assert body["after_url"].endswith(f"cursor={body['after_cursor']}")
        if body["end_of_stream"]:
            break
        params = {"cursor": body["after_cursor"]}
    assert pages == [[1, 2], [3, 4], [5]]
    sandbox.update_ticket(2, {"status": "pending"})  # now: inside the hidden last minute
    again = client.get("/api/v2/incremental/tickets/cursor.json", params={"cursor": body["after_cursor"]}).json()
    assert again["tickets"] == [] and again["end_of_stream"]
    assert again["after_cursor"] == body["after_cursor"]
    clock.advance(61)
    later = client.get("/api/v2/incremental/tickets/cursor.json", params={"cursor": body["after_cursor"]}).json()
    assert [(t["id"], t["status"], t["generated_timestamp"]) for t in later["tickets"]] == \
        [(2, "pending", zd.NOW)]


def test_export_refuses_recent_start_time_and_agents(sandboxes: Callable[..., ZendeskSandbox],
                                                     zd: SimpleNamespace) -> None:
    sandbox = sandboxes(zd.small_world())
    admin, agent = http(sandbox), http(sandbox, "agent")
    recent = admin.get("/api/v2/incremental/users/cursor.json", params={"start_time": zd.NOW - 30})
    assert recent.status_code == 400 and "start_time" in recent.json()["description"]
    assert admin.get("/api/v2/incremental/users/cursor.json", params={"start_time": zd.NOW - 60}).status_code == 200
    forbidden = agent.get("/api/v2/incremental/organizations.json", params={"start_time": 0})
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "Forbidden"
    assert agent.get("/api/v2/organizations.json").status_code == 200


def test_time_based_export_repeats_the_boundary_second_and_loops_a_naive_client(
        sandboxes: Callable[..., ZendeskSandbox], zd: SimpleNamespace) -> None:
    shared = zd.NOW - zd.DAY
    orgs = [zd.org(i, shared - 100 + i) for i in range(1, 4)] + [zd.org(i, shared) for i in range(4, 1504)]
    sandbox = sandboxes({"organizations": orgs})
    client = http(sandbox)
    first = client.get("/api/v2/incremental/organizations.json", params={"start_time": 0}).json()
    assert (first["count"], first["end_time"], first["end_of_stream"]) == (1000, shared, False)
    assert first["next_page"].endswith(f"start_time={shared}")
    second = client.get(first["next_page"]).json()
    third = client.get(second["next_page"]).json()
    # following next_page gets stuck on the second all 1,500 share: the same page for ever
    assert second["next_page"] == third["next_page"]
    assert [o["id"] for o in second["organizations"]] == [o["id"] for o in third["organizations"]]
    assert {o["id"] for o in first["organizations"]} & {o["id"] for o in second["organizations"]}


def test_deleted_ticket_is_exported_with_status_deleted_and_404_elsewhere(
        sandboxes: Callable[..., ZendeskSandbox], zd: SimpleNamespace, clock: Any) -> None:
    sandbox = sandboxes(zd.small_world())
    client = http(sandbox)
    sandbox.delete_ticket(101)
    clock.advance(61)
    assert client.get("/api/v2/tickets/101.json").status_code == 404
    assert client.get("/api/v2/tickets/101.json").json() == {"error": "RecordNotFound", "description": "Not found"}
    exported = client.get("/api/v2/incremental/tickets/cursor.json", params={"start_time": zd.NOW}).json()
    assert [(t["id"], t["status"]) for t in exported["tickets"]] == [(101, "deleted")]
    assert 101 not in [t["id"] for t in client.get("/api/v2/tickets.json").json()["tickets"]]


def test_system_updates_move_generated_timestamp_only(sandboxes: Callable[..., ZendeskSandbox],
                                                      zd: SimpleNamespace, clock: Any) -> None:
    sandbox = sandboxes(zd.small_world())
    before = dict(sandbox.world.ticket(102))
    clock.advance(5)
    sandbox.world.touch_ticket(102)
    after = sandbox.world.ticket(102)
    assert after["updated_at"] == before["updated_at"]
    assert after["generated_timestamp"] == zd.NOW + 5 != before["generated_timestamp"]


def test_export_limit_429_with_retry_after_until_the_minute_turns(
        sandboxes: Callable[..., ZendeskSandbox], zd: SimpleNamespace, clock: Any) -> None:
    clock.advance(-(zd.NOW % 60))  # start of a clock minute
    sandbox = sandboxes(zd.small_world(), plan_per_minute=12)
    client = http(sandbox)
    for _ in range(10):
        assert client.get("/api/v2/incremental/organizations.json", params={"start_time": 0}).status_code == 200
    limited = client.get("/api/v2/incremental/organizations.json", params={"start_time": 0})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "60"
    assert client.get("/api/v2/organizations.json").status_code == 200           # plan budget: 12th request
    plan = client.get("/api/v2/organizations.json")
    assert plan.status_code == 429 and plan.headers["content-type"].startswith("text/plain")
    clock.advance(45)
    assert client.get("/api/v2/organizations.json").headers["Retry-After"] == "15"
    clock.advance(15)
    ok = client.get("/api/v2/incremental/organizations.json", params={"start_time": 0})
    assert ok.status_code == 200 and ok.headers["X-Rate-Limit"] == "12"


def test_rate_limits_can_be_switched_off(sandboxes: Callable[..., ZendeskSandbox], zd: SimpleNamespace) -> None:
    sandbox = sandboxes(zd.small_world(), rate_limits=False)
    client = http(sandbox)
    statuses = {client.get("/api/v2/incremental/users/cursor.json", params={"start_time": 0}).status_code
                for _ in range(30)}
    assert statuses == {200}
    assert sandbox.settings()["export_requests_per_minute"] > 10_000


def test_writes_tags_and_tickets(sandboxes: Callable[..., ZendeskSandbox], zd: SimpleNamespace) -> None:
    sandbox = sandboxes(zd.small_world())
    client = http(sandbox)
    tags = "/api/v2/organizations/1/tags.json"
    assert client.put(tags, json={"tags": ["at_risk", "vip"]}).json() == {"tags": ["vip", "at_risk"]}
    assert client.request("DELETE", tags, json={"tags": ["vip"]}).json() == {"tags": ["at_risk"]}
    assert client.post(tags, json={"tags": ["only"]}).json() == {"tags": ["only"]}
    assert client.get(tags).json() == {"tags": ["only"]}
    created = client.post("/api/v2/tickets.json", json={"ticket": {
        "subject": "Renewal", "comment": {"body": "Call them", "public": False}, "requester_id": 11,
        "external_id": "key-1", "tags": ["churnhub"]}})
    assert created.status_code == 201
    ticket = created.json()["ticket"]
    assert created.headers["Location"] == f"{sandbox.url}/api/v2/tickets/{ticket['id']}.json"
    assert (ticket["organization_id"], ticket["status"], ticket["description"]) == (1, "new", "Call them")
    assert sandbox.comments(ticket["id"])[0]["public"] is False
    found = client.get("/api/v2/tickets.json", params={"external_id": "key-1"}).json()
    assert [t["id"] for t in found["tickets"]] == [ticket["id"]] and found["count"] == 1
    assert client.get("/api/v2/tickets.json", params={"external_id": "nope"}).json()["tickets"] == []
    blank = client.post("/api/v2/tickets.json", json={"ticket": {"subject": "x", "comment": {"body": " "}}})
    assert blank.status_code == 422 and blank.json()["error"] == "RecordInvalid"
    duplicate = client.put("/api/v2/organizations/2.json", json={"organization": {"name": "Org 1"}})
    assert duplicate.status_code == 422
    assert duplicate.json()["details"]["name"][0]["error"] == "DuplicateValue"


def test_satisfaction_ratings_filters(sandboxes: Callable[..., ZendeskSandbox], zd: SimpleNamespace) -> None:
    sandbox = sandboxes(zd.small_world())
    client = http(sandbox)

    def ids(**params: Any) -> list[int]:
        return [r["id"] for r in client.get("/api/v2/satisfaction_ratings.json", params=params).json()
                ["satisfaction_ratings"]]

    assert ids() == [501, 502]
    assert ids(score="received") == [501]
    assert ids(score="offered") == [502]
    assert ids(score="good_with_comment") == [501]
    assert ids(score="good_without_comment") == []
    cut = zd.NOW - 10 * zd.DAY + 50
    assert ids(start_time=cut) == [501]
    assert ids(end_time=cut) == [502]


def test_unknown_endpoint_is_json_404(sandboxes: Callable[..., ZendeskSandbox], zd: SimpleNamespace) -> None:
    sandbox = sandboxes(zd.small_world())
    response = http(sandbox).get("/api/v2/nothing.json")
    assert response.status_code == 404 and response.json()["error"] == "InvalidEndpoint"


def test_agent_and_admin_credentials_exist_as_users(sandboxes: Callable[..., ZendeskSandbox],
                                                    zd: SimpleNamespace) -> None:
    sandbox = sandboxes(zd.small_world())
    roles = {u["email"]: u["role"] for u in sandbox.world.users.objects.values()}
    assert roles[ADMIN.email] == "admin" and roles[AGENT.email] == "agent"


def test_serves_a_hundred_thousand_tickets_quickly(zd: SimpleNamespace, clock: Any) -> None:
    dataset = {"tickets": [zd.ticket(i, zd.NOW - zd.DAY - i, requester_id=1) for i in range(1, 100_001)]}
    started = time.perf_counter()
    sandbox = start_sandbox(dataset, clock=clock, rate_limits=False)
    try:
        client = http(sandbox)
        export = client.get("/api/v2/incremental/tickets/cursor.json", params={"start_time": 0}).json()
        listed = client.get("/api/v2/tickets.json", params={"page[size]": 100}).json()
        sandbox.world.update_ticket(50_000, {"priority": "urgent"})
        found = client.get("/api/v2/tickets/50000.json").json()
        elapsed = time.perf_counter() - started
    finally:
        sandbox.stop()
    assert len(export["tickets"]) == 1000 and export["tickets"][0]["id"] == 100_000
    assert len(listed["tickets"]) == 100
    assert found["ticket"]["priority"] == "urgent"
    assert elapsed < 10, f"100k tickets took {elapsed:.1f}s to seed and serve"
