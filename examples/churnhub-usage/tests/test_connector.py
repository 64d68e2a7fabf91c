"""What the conformance suite cannot know: how usage maps, and how corrections arrive."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hub import Kind

from churnhub_usage.mapping import map_account, map_daily_usage
from churnhub_usage.plugin import CONNECTOR_TYPE
from churnhub_usage.sandbox_world import demo_dataset

# Fixtures from churnhub's pytest plugin (automatic once churnhub's `pytest11` entry point is
# installed; naming the module here also works without it).
pytest_plugins = ["hub.testing.fixtures"]

ROW = {"id": "acct_1:2026-06-01", "account_id": "acct_1", "day": "2026-06-01", "active_users": 14, "logins": 31,
       "feature_events": {"report_export": 4, "dashboard_share": 1, "api_call": 50},
       "updated_at": "2026-06-02T01:00:00Z", "cursor": "000000000042"}


def test_a_usage_row_maps_to_the_fields_the_health_factors_read():
    record = map_daily_usage(ROW)
    assert (record.kind, record.external_id) == (Kind.USAGE, "acct_1:2026-06-01")
    assert {k: record.fields[k] for k in ("account_id", "day", "active_users", "logins", "events")} == {
        "account_id": "acct_1", "day": "2026-06-01", "active_users": 14, "logins": 31, "events": 55}
    assert record.updated_at == datetime(2026, 6, 2, 1, tzinfo=UTC)


def test_only_key_features_count_as_events_when_named():
    assert map_daily_usage(ROW, ["report_export", "dashboard_share"]).fields["events"] == 5
    assert map_daily_usage(ROW, ["not_tracked"]).fields["events"] == 0


def test_an_account_carries_its_domain_for_identity_matching():
    record = map_account({"id": "acct_1", "name": "Acme", "domain": "acme.example"})
    assert record.kind == Kind.ACCOUNT and record.fields["domains"] == ["acme.example"]
    assert map_account({"id": "acct_1", "deleted": True}).deleted


def test_late_corrections_and_new_days_come_in_the_next_incremental_read(start_connector_sandbox,
                                                                         connect_to_sandbox):
    sandbox = start_connector_sandbox(CONNECTOR_TYPE, demo_dataset(accounts=2, days=3, today=date(2026, 6, 4)))
    connector = connect_to_sandbox(CONNECTOR_TYPE, sandbox, page_size=4, key_features=["report_export"])
    state = list(connector.read("daily_usage", None))[-1].state
    sandbox.record_usage("acct_0000", "2026-06-01", logins=99)                 # a correction
    sandbox.record_usage("acct_0001", "2026-06-04", logins=2, active_users=1,  # a new day
                         feature_events={"report_export": 3})
    records = [r for page in connector.read("daily_usage", state) for r in page.records]
    assert [(r.external_id, r.fields["logins"]) for r in records] == [("acct_0000:2026-06-01", 99),
                                                                      ("acct_0001:2026-06-04", 2)]
    assert records[1].fields["events"] == 3


def test_the_demo_world_has_accounts_whose_usage_fades():
    data = demo_dataset(accounts=4, days=28, today=date(2026, 6, 1))
    logins = [row["logins"] for row in data["usage"] if row["account_id"] == "acct_0003"]
    steady = [row["logins"] for row in data["usage"] if row["account_id"] == "acct_0000"]
    assert sum(logins[-7:]) < sum(logins[:7]) / 3   # the last week well under the first
    assert sum(steady[-7:]) > sum(steady[:7]) / 2
