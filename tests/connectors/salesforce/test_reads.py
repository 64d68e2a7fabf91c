"""The connector reading the sandbox over real HTTP: full and incremental reads, ties, deletes, resumes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.sandbox import SalesforceSandbox
from connectors.salesforce.streams import RECENT_LIMIT
from hub import AuthError, Kind, QuotaExhaustedError

from .conftest import DAY, NOW, FakeClock, account, contact, ids_of, read_pages, records_of, sf_id, small_org

Start = Callable[..., SalesforceSandbox]
Connect = Callable[..., SalesforceConnector]


def queries(sandbox: SalesforceSandbox) -> list[str]:
    return [parse_qs(urlsplit(path).query)["q"][0] for _, path, _ in sandbox.request_log if "q=" in path]


def test_full_read_of_every_stream(sandbox: SalesforceSandbox, connect: Connect) -> None:
    connector = connect(sandbox, fields={"Contact": ["Phone"]})
    expected = {"accounts": (Kind.ACCOUNT, 3), "contacts": (Kind.CONTACT, 4), "opportunities": (Kind.OPPORTUNITY, 2),
                "users": (Kind.USER, 2)}
    for stream, (kind, count) in expected.items():
        pages = read_pages(connector, stream)
        records = records_of(pages)
        assert len(records) == count and {r.kind for r in records} == {kind}
        assert all(page.full_refresh for page in pages)
        assert [r.updated_at for r in records] == sorted(r.updated_at for r in records)   # type: ignore[type-var]
    accounts = {r.external_id: r for r in records_of(read_pages(connector, "accounts"))}
    acme = accounts[sf_id("001", 1)].fields
    assert acme["name"] == "Account 1" and acme["owner_id"] == sf_id("005", 2) and acme["annual_revenue"] == 100000
    deals = {r.external_id: r.fields for r in records_of(read_pages(connector, "opportunities"))}
    assert deals[sf_id("006", 1)]["type"] == "new_business" and deals[sf_id("006", 1)]["is_closed"] is False
    assert deals[sf_id("006", 2)]["amount"] == 120050 and deals[sf_id("006", 2)]["is_won"] is True
    contacts = records_of(read_pages(connector, "contacts"))
    assert contacts[0].fields["custom_fields"] == {"Phone": None}
    sent = queries(sandbox)
    assert any(q.startswith("SELECT Id, IsDeleted, SystemModstamp, AccountId") and "Phone" in q for q in sent)
    assert not any("User" in q and "IsDeleted" in q for q in sent)   # User has no IsDeleted: plain query
    assert [p for m, p, _ in sandbox.request_log if "FROM+User" in p or "FROM%20User" in p][0].startswith(
        "/services/data/v61.0/query?")


def test_account_facts_from_custom_fields(sandbox_factory: Start, connect: Connect) -> None:
    sandbox = sandbox_factory({"Account": [account(1, NOW - 60, NPS__c=3, Active_Users__c=12.0,
                                                   Last_Login__c="2024-05-30T10:00:00.000+0000")]})
    connector = connect(sandbox, facts={"nps": "NPS__c", "active_users": "Active_Users__c",
                                        "last_login": "Last_Login__c"})
    [record] = records_of(read_pages(connector, "accounts"))
    assert record.fields["nps"] == 3.0
    assert record.fields["usage"] == {"active_users": 12, "last_login": "2024-05-30T10:00:00Z"}


def test_incremental_read_yields_only_changes_and_nothing_when_nothing_changed(
        sandbox: SalesforceSandbox, connect: Connect, clock: FakeClock) -> None:
    connector = connect(sandbox)
    first = read_pages(connector, "accounts")
    state = first[-1].state
    before = connector.request_count
    unchanged = read_pages(connector, "accounts", state)
    assert ids_of(unchanged) == [] and connector.request_count - before == 1   # one query, no login
    assert not any(page.full_refresh for page in unchanged)

    clock.advance(120)
    sandbox.update("Account", sf_id("001", 2), {"Industry": "Retail"})
    created = sandbox.create("Account", {"Name": "Brand New"})
    clock.advance(120)                                  # both settle
    changed = read_pages(connector, "accounts", unchanged[-1].state)
    assert ids_of(changed) == [sf_id("001", 2), created]
    assert records_of(changed)[0].fields["industry"] == "Retail"
    again = read_pages(connector, "accounts", changed[-1].state)
    assert ids_of(again) == []
    assert "SystemModstamp >= " in queries(sandbox)[-1]      # the lookback window, not a full scan


def test_a_late_commit_behind_the_position_is_caught_by_the_lookback(
        sandbox_factory: Start, connect: Connect, clock: FakeClock) -> None:
    sandbox = sandbox_factory({"Account": [account(n, NOW - 200 + n) for n in range(1, 6)]})   # a busy org
    connector = connect(sandbox)
    clock.advance(100)
    state = read_pages(connector, "accounts")[-1].state
    # A transaction that started 5 minutes before the read commits only after it.
    sandbox.update("Account", sf_id("001", 1), {"Name": "Late"}, modstamp=clock() - 400)
    clock.advance(100)
    assert ids_of(read_pages(connector, "accounts", state)) == [sf_id("001", 1)]
    assert ids_of(read_pages(connector, "accounts", state)) == [sf_id("001", 1)]   # the state was kept


def test_a_quiet_org_with_many_records_per_second_costs_one_small_request(
        sandbox_factory: Start, connect: Connect) -> None:
    rows = [account(n, NOW - DAY + n // 500) for n in range(3000)]        # a data load: 500 per second
    sandbox = sandbox_factory({"Account": rows})
    connector = connect(sandbox)
    state = read_pages(connector, "accounts")[-1].state
    before = connector.request_count
    assert ids_of(read_pages(connector, "accounts", state)) == []
    assert connector.request_count - before == 1
    # a day after the position: strictly after it, not the 500 records of its second again
    assert "WHERE (SystemModstamp > 2024-05-31T00:00:05Z) OR (SystemModstamp = 2024-05-31T00:00:05Z AND Id > " \
        in queries(sandbox)[-1]


def test_a_bulk_load_inside_the_lookback_is_re_read_until_the_org_is_quiet(
        sandbox_factory: Start, connect: Connect, clock: FakeClock) -> None:
    rows = [account(n, NOW - 300 + n // 500) for n in range(3000)]        # loaded minutes before the read
    sandbox = sandbox_factory({"Account": rows})
    connector = connect(sandbox)
    state = read_pages(connector, "accounts")[-1].state
    clock.advance(120)                                   # inside the lookback: the window is read again
    busy = read_pages(connector, "accounts", state)
    assert "WHERE SystemModstamp >= " in queries(sandbox)[-1]
    assert len(ids_of(busy)) == len(rows) - RECENT_LIMIT   # only the ids beyond what the state remembers
    clock.advance(600)   # the scan above ran inside the lookback too: a late commit could still be behind it
    last_busy = read_pages(connector, "accounts", busy[-1].state)
    assert len(ids_of(last_busy)) == len(rows) - RECENT_LIMIT
    before = connector.request_count                     # quiet now: strictly after the position, one request
    assert ids_of(read_pages(connector, "accounts", last_busy[-1].state)) == []
    assert connector.request_count - before == 1 and "AND Id > " in queries(sandbox)[-1]


def test_records_sharing_one_modstamp_across_page_boundaries_are_read_once(
        sandbox_factory: Start, connect: Connect, clock: FakeClock) -> None:
    tied = [account(n, NOW - DAY) for n in range(1, 13)]                # 12 records, one second
    sandbox = sandbox_factory({"Account": [account(0, NOW - DAY - 5), *tied, account(20, NOW - DAY + 5)]},
                              max_batch_size=5)
    connector = connect(sandbox)
    pages = read_pages(connector, "accounts")
    assert [len(p.records) for p in pages] == [5, 5, 4]
    assert ids_of(pages) == [sf_id("001", n) for n in [0, *range(1, 13), 20]]

    # The locators expire between pages: the keyset condition resumes right after the position.
    reader = connector.read("accounts", None)
    head = next(reader)
    sandbox.expire_query_locators()
    rest = list(connector.read("accounts", head.state))
    assert ids_of([head, *rest]) == ids_of(pages)
    assert any("locator is no longer valid" in note for page in rest for note in page.notes)
    assert "AND Id > " in queries(sandbox)[-1]


def test_resuming_from_every_pages_state_misses_and_repeats_nothing(
        sandbox_factory: Start, connect: Connect, clock: FakeClock) -> None:
    rows = [account(n, NOW - DAY + n // 4) for n in range(1, 33)]        # ties everywhere
    sandbox = sandbox_factory({"Account": rows}, max_batch_size=5)
    connector = connect(sandbox)
    pages = read_pages(connector, "accounts")
    expected = [r["Id"] for r in rows]
    assert ids_of(pages) == expected and len(pages) == 7
    for index in range(len(pages) - 1):
        for expire in (False, True):   # resumed at its nextRecordsUrl, or by keyset once the locator is gone
            reader = connector.read("accounts", None)
            head = [next(reader) for _ in range(index + 1)]
            if expire:
                sandbox.expire_query_locators()
            rest = read_pages(connector, "accounts", head[-1].state)
            assert ids_of(head) + ids_of(rest) == expected, (index, expire)
            assert any("locator" in note for page in rest for note in page.notes) == expire
    assert read_pages(connector, "accounts", pages[-1].state)[0].records == []


def test_soft_deletes_arrive_as_deleted_records(sandbox: SalesforceSandbox, connect: Connect,
                                                clock: FakeClock) -> None:
    connector = connect(sandbox)
    state = read_pages(connector, "contacts")[-1].state
    clock.advance(60)
    sandbox.delete("Contact", sf_id("003", 3))
    clock.advance(120)
    [tombstone] = records_of(read_pages(connector, "contacts", state))
    assert tombstone.external_id == sf_id("003", 3) and tombstone.deleted
    assert "/queryAll?" in [p for _, p, _ in sandbox.request_log][-1]


def test_an_expired_session_mid_sync_logs_in_again_and_retries_once(
        sandbox_factory: Start, connect: Connect, clock: FakeClock) -> None:
    sandbox = sandbox_factory({"Account": [account(n, NOW - DAY + n) for n in range(12)]},
                              max_batch_size=5, session_seconds=600)
    connector = connect(sandbox)
    reader = connector.read("accounts", None)
    first = next(reader)
    clock.advance(601)                                  # the token dies between two batches
    rest = list(reader)
    assert len(ids_of([first, *rest])) == 12
    assert sandbox.tokens_issued == 2 and connector.client.auth.session_retries == 1
    statuses = [status for _, path, status in sandbox.request_log if path.startswith("/services/data")]
    assert statuses.count(401) == 1
    assert rest[0].requests == 3                        # the 401, the login, the retry


def test_a_session_refused_twice_is_an_auth_error(sandbox_factory: Start, connect: Connect) -> None:
    sandbox = sandbox_factory(small_org(), session_seconds=0)   # every token is dead on arrival
    with pytest.raises(AuthError) as refused:
        read_pages(connect(sandbox), "users")
    assert "INVALID_SESSION_ID" in str(refused.value)
    assert sandbox.tokens_issued == 2                   # one renewal, not a loop


def test_jwt_bearer_grant_with_a_key_the_test_generates(sandbox_factory: Start, connect: Connect,
                                                        tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def key_pair() -> tuple[bytes, bytes]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        return private, public

    private, public = key_pair()
    other, _ = key_pair()
    good, bad = tmp_path / "sf.key", tmp_path / "other.key"
    good.write_bytes(private)
    bad.write_bytes(other)
    sandbox = sandbox_factory(small_org(), public_key=public)
    assert len(ids_of(read_pages(connect(sandbox, "jwt", private_key_file=good), "users"))) == 2
    with pytest.raises(AuthError, match="invalid_grant"):
        read_pages(connect(sandbox, "jwt", private_key_file=bad), "users")


def test_api_usage_limit_stops_cleanly_and_resumes_later(sandbox_factory: Start, connect: Connect,
                                                         clock: FakeClock) -> None:
    rows = [account(n, NOW - DAY + n) for n in range(1, 21)]
    sandbox = sandbox_factory({"Account": rows}, max_batch_size=5, daily_api_limit=100, api_usage=48)
    connector = connect(sandbox, api_usage_limit_percent=50)
    pages = []
    with pytest.raises(QuotaExhaustedError) as stopped:
        for page in connector.read("accounts", None):
            pages.append(page)
    assert "api_usage_limit_percent" in str(stopped.value)
    assert sandbox.api_usage == (51, 100) and len(pages) == 3   # stopped on its own past 50/100
    clock.advance(DAY)                                  # the next day: the budget is fresh
    rest = read_pages(connect(sandbox, api_usage_limit_percent=50), "accounts", pages[-1].state)
    assert ids_of(pages) + ids_of(rest) == [r["Id"] for r in rows]


def test_request_limit_exceeded_stops_without_losing_state(sandbox_factory: Start, connect: Connect,
                                                           clock: FakeClock) -> None:
    rows = [account(n, NOW - DAY + n) for n in range(1, 21)]
    sandbox = sandbox_factory({"Account": rows}, max_batch_size=5, daily_api_limit=2)
    connector = connect(sandbox, api_usage_limit_percent=100)
    pages = []
    with pytest.raises(QuotaExhaustedError) as stopped:
        for page in connector.read("accounts", None):
            pages.append(page)
    assert stopped.value.code == "REQUEST_LIMIT_EXCEEDED" and stopped.value.status == 403
    assert len(pages) == 2
    refused = [entry for entry in sandbox.request_log if entry[2] == 403]
    assert len(refused) == 1                            # not retried
    sandbox.set_api_usage(0, 1000)
    rest = read_pages(connector, "accounts", pages[-1].state)
    assert ids_of(pages) + ids_of(rest) == [r["Id"] for r in rows]


def test_check_reports_the_daily_api_use(sandbox: SalesforceSandbox, connect: Connect) -> None:
    result = connect(sandbox).check()
    assert result.ok and "1/100000" in result.detail and sandbox.url in result.detail
    bad = connect(sandbox, auth={"grant": "client_credentials", "client_id": "nope", "client_secret": "x"}).check()
    assert not bad.ok and "invalid_client_id" in bad.detail


def test_contacts_of_a_purged_account_keep_reading(sandbox_factory: Start, connect: Connect) -> None:
    sandbox = sandbox_factory({"Account": [account(1, NOW - DAY)],
                               "Contact": [contact(n, 1, NOW - DAY + n) for n in range(3)]})
    connector = connect(sandbox)
    sandbox.purge("Contact", sf_id("003", 1))
    assert ids_of(read_pages(connector, "contacts")) == [sf_id("003", 0), sf_id("003", 2)]
