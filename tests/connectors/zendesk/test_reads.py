"""Reading every stream from the sandbox over HTTP: full, incremental, resumable, never looping."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.sandbox import ZendeskSandbox
from hub import Page, Record

STREAMS = ("organizations", "users", "tickets", "satisfaction_ratings")
Start = Callable[..., ZendeskSandbox]
Connect = Callable[..., ZendeskConnector]


def ids(records: list[Record]) -> list[tuple[str, str]]:
    return [(r.kind, r.external_id) for r in records]


def test_full_read_maps_every_visible_object(sandboxes: Start, connect: Connect, zd: SimpleNamespace,
                                             clock: Any) -> None:
    sandbox = sandboxes(zd.small_world())
    clock.advance(61)  # the sandbox's own staff users were created "now": let them out of the hidden minute
    connector = connect(sandbox, nps_field={"object": "organization", "field": "nps_score"})
    world = sandbox.world
    orgs, _ = zd.read_all(connector, "organizations")
    assert Counter(ids(orgs)) == Counter([("account", "1"), ("account", "2"), ("account", "3"),
                                          ("satisfaction", "nps:organization:1")])
    by_id = {r.external_id: r for r in orgs}
    assert by_id["1"].fields["links"] == {"salesforce_account_id": "001D000000IqhSLIAZ"}
    assert by_id["1"].fields["nps"] == 9 and by_id["nps:organization:1"].fields["score"] == 9
    users, _ = zd.read_all(connector, "users")
    expected_users = {("user" if u["role"] in ("agent", "admin") else "contact", str(u["id"]))
                      for u in world.users.objects.values()}
    assert sorted(ids(users)) == sorted(expected_users) and len(expected_users) == 5
    tickets, _ = zd.read_all(connector, "tickets")
    assert sorted(ids(tickets)) == [("ticket", "101"), ("ticket", "102"), ("ticket", "103")]
    solved = next(r for r in tickets if r.external_id == "102")
    assert solved.fields["satisfaction"] == "good"
    assert solved.fields["solved_at"] == world.tickets.objects[102]["updated_at"]
    ratings, _ = zd.read_all(connector, "satisfaction_ratings")
    assert ids(ratings) == [("satisfaction", "501")]  # 502 is only offered


def test_the_sandbox_staff_exist_since_the_account_began_not_since_it_started(
        sandboxes: Start, connect: Connect, zd: SimpleNamespace, clock: Any) -> None:
    sandbox = sandboxes(zd.small_world())
    connector = connect(sandbox)
    users, pages = zd.read_all(connector, "users")          # right away: no hidden minute to wait out
    staff = {str(u["id"]) for u in sandbox.world.users.objects.values() if u["role"] in ("agent", "admin")}
    assert len(staff) == 3 and staff <= {r.external_id for r in users}   # the seeded agent and the two of the sandbox
    clock.advance(120)
    assert zd.read_all(connector, "users", pages[-1].state)[0] == []   # and they are not "new" next time


def _last_states(connector: ZendeskConnector, zd: SimpleNamespace) -> dict[str, Any]:
    return {stream: zd.read_all(connector, stream)[1][-1].state for stream in STREAMS}


def test_incremental_reads_return_exactly_what_changed(sandboxes: Start, connect: Connect, zd: SimpleNamespace,
                                                       clock: Any) -> None:
    sandbox = sandboxes(zd.small_world())
    clock.advance(61)  # past the creation of the sandbox's staff users
    connector = connect(sandbox)
    states = _last_states(connector, zd)
    clock.advance(10)
    world = sandbox.world
    world.change_organization_tags(2, ["at_risk"], "add")
    world.delete_organization(3)
    world.update_user(12, {"name": "Bea Renamed"})
    world.delete_user(11)
    world.update_ticket(102, {"status": "closed"})
    world.delete_ticket(103)
    new_rating = world.rate_ticket(101, "bad", "Too slow", "Took too long")
    clock.advance(61)

    changed = {}
    for stream in STREAMS:
        records, pages = zd.read_all(connector, stream, states[stream])
        changed[stream] = {r.external_id: r for r in records}
        states[stream] = pages[-1].state
    assert changed["organizations"].keys() == {"2", "3"}
    assert changed["organizations"]["2"].fields["tags"] == ["at_risk"]
    assert changed["organizations"]["3"].deleted and not changed["organizations"]["2"].deleted
    assert changed["users"].keys() == {"11", "12"}
    assert changed["users"]["11"].deleted and changed["users"]["12"].fields["name"] == "Bea Renamed"
    assert changed["tickets"].keys() == {"101", "102", "103"}
    assert changed["tickets"]["103"].deleted
    assert changed["tickets"]["102"].fields["status"] == "closed"
    assert changed["tickets"]["101"].fields["satisfaction"] == "bad"
    assert changed["satisfaction_ratings"].keys() == {str(new_rating["id"])}
    assert changed["satisfaction_ratings"][str(new_rating["id"])].fields["reason"] == "Took too long"

    clock.advance(300)
    for stream in STREAMS:  # nothing changed since: one request each, no records
        _, pages = zd.read_all(connector, stream, states[stream])
        assert [len(p.records) for p in pages] == [0], stream
        assert sum(p.requests for p in pages) == 1, stream


def test_changes_in_the_hidden_last_minute_are_not_skipped(sandboxes: Start, connect: Connect,
                                                           zd: SimpleNamespace, clock: Any) -> None:
    sandbox = sandboxes(zd.small_world())
    connector = connect(sandbox)
    states = _last_states(connector, zd)
    sandbox.update_organization(1, {"notes": "renewal at risk"})
    sandbox.update_ticket(101, {"priority": "urgent"})
    sandbox.rate_ticket(102, "bad")
    for stream in ("organizations", "tickets", "satisfaction_ratings"):
        records, pages = zd.read_all(connector, stream, states[stream])
        assert records == [], stream  # hidden for now ...
        states[stream] = pages[-1].state if pages else states[stream]
    clock.advance(61)
    expected = {"organizations": ["1"], "tickets": ["101", "102"], "satisfaction_ratings": ["501"]}
    for stream, external_ids in expected.items():  # (rating ticket 102 updated it too)
        records, _ = zd.read_all(connector, stream, states[stream])
        assert sorted(r.external_id for r in records) == external_ids, stream  # ... and not lost


def test_thousands_of_organizations_sharing_one_second_are_read_once_and_the_read_ends(
        sandboxes: Start, connect: Connect, zd: SimpleNamespace) -> None:
    shared = zd.NOW - zd.DAY
    orgs = ([zd.org(i, shared - 50 + i) for i in range(1, 6)] + [zd.org(i, shared) for i in range(6, 2506)]
            + [zd.org(i, shared + i) for i in range(2506, 2511)])
    sandbox = sandboxes({"organizations": orgs})
    connector = connect(sandbox)
    records, pages = zd.read_all(connector, "organizations", max_pages=100)
    assert Counter(r.external_id for r in records) == Counter(str(i) for i in range(1, 2511))
    assert any("share updated_at" in note for p in pages for note in p.notes)
    # two exports reach the crowded second, 26 list pages of 100 cover it, one export goes on after it
    assert sum(p.requests for p in pages) == 2 + 26 + 1
    _, again = zd.read_all(connector, "organizations", pages[-1].state)
    assert [len(p.records) for p in again] == [0] and sum(p.requests for p in again) == 1


def _resume_everywhere(connector: ZendeskConnector, stream: str, zd: SimpleNamespace) -> list[Page]:
    """Resuming from each page's state yields exactly the records after that page."""
    records, pages = zd.read_all(connector, stream)
    full = ids(records)
    assert len(full) == len(set(full)), f"{stream}: duplicates in a full read"
    for index, page in enumerate(pages):
        before = ids([r for p in pages[:index + 1] for r in p.records])
        after = ids(zd.read_all(connector, stream, page.state)[0])
        assert before + after == full, f"{stream}: resuming after page {index} ({page.state})"
    return pages


def test_resume_from_every_page_state_loses_and_repeats_nothing(sandboxes: Start, connect: Connect,
                                                                zd: SimpleNamespace) -> None:
    base = zd.NOW - 3 * zd.DAY
    # organizations: seconds shared by 3, 12 (more than a page of 5) and 4 records, plus singles
    seconds = [base] * 3 + [base + 1] * 12 + [base + 2] + [base + 3] * 4 + [base + i for i in range(4, 12)]
    dataset = {
        "organizations": [zd.org(i + 1, second) for i, second in enumerate(seconds)],
        "users": [zd.user(100 + i, base + i // 3) for i in range(17)],
        "tickets": [zd.ticket(200 + i, base + i // 4, requester_id=100) for i in range(23)],
        "satisfaction_ratings": [zd.rating(1000 + i, 200 + i % 23, "good" if i % 3 else "bad", base + i)
                                 for i in range(230)],
    }
    sandbox = sandboxes(dataset, export_page_size=5, rate_limits=False)
    connector = connect(sandbox)
    pages = {stream: _resume_everywhere(connector, stream, zd) for stream in STREAMS}
    assert any("fallback" in (p.state or {}) for p in pages["organizations"])  # the crowded second was listed
    assert len({r.external_id for p in pages["organizations"] for r in p.records}) == len(seconds)
    assert (len(pages["tickets"]), len(pages["users"]), len(pages["satisfaction_ratings"])) == (5, 4, 3)
