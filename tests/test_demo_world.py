"""The demo world generator: deterministic per seed, consistent across systems, true to its own story."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from hub.demo.salesforce_data import CUSTOM_FIELDS, iter_salesforce, salesforce_dataset
from hub.demo.sandboxes import bounced_addresses
from hub.demo.stripe_data import stripe_dataset
from hub.demo.truth import ground_truth
from hub.demo.world import Fate, generate_world
from hub.demo.zendesk_data import zendesk_dataset

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def world():
    return generate_world(120, seed=11, now=NOW)


@pytest.fixture(scope="module")
def datasets(world):
    return {"salesforce": salesforce_dataset(world), "zendesk": zendesk_dataset(world),
            "stripe": stripe_dataset(world)}


def _dump(world) -> str:
    return json.dumps([salesforce_dataset(world), zendesk_dataset(world), stripe_dataset(world)], sort_keys=True)


def test_same_seed_same_world_and_datasets():
    first, second = generate_world(30, seed=3, now=NOW), generate_world(30, seed=3, now=NOW)
    assert [c.__repr__() for c in first.companies] == [c.__repr__() for c in second.companies]
    assert _dump(first) == _dump(second)
    assert _dump(generate_world(30, seed=4, now=NOW)) != _dump(first)


def test_a_company_does_not_depend_on_the_world_size():
    small, large = generate_world(20, seed=5, now=NOW), generate_world(60, seed=5, now=NOW)
    assert small.companies[0].name == large.companies[0].name
    assert small.companies[0].sf_id == large.companies[0].sf_id


def test_ids_are_unique_per_object(datasets):
    for system, data in datasets.items():
        for name, rows in data.items():
            if isinstance(rows, list) and rows and isinstance(rows[0], dict) and ("id" in rows[0] or "Id" in rows[0]):
                ids = [row.get("id", row.get("Id")) for row in rows]
                assert len(ids) == len(set(ids)), f"{system}.{name} has duplicate ids"


def test_salesforce_references_point_at_existing_records(datasets):
    sf = datasets["salesforce"]
    accounts = {a["Id"] for a in sf["Account"]}
    users = {u["Id"] for u in sf["User"]}
    assert all(len(i) == 18 for i in accounts)
    assert {a["OwnerId"] for a in sf["Account"]} <= users
    for sobject in ("Contact", "Opportunity"):
        assert {r["AccountId"] for r in sf[sobject]} <= accounts
        assert {r["OwnerId"] for r in sf[sobject]} <= users


def test_explicit_links_point_at_existing_accounts(world, datasets):
    accounts15 = {a["Id"][:15] for a in datasets["salesforce"]["Account"]}
    stripe_links = [v for c in datasets["stripe"]["customers"] for v in c["metadata"].values()]
    zendesk_links = [o["external_id"] for o in datasets["zendesk"]["organizations"] if o["external_id"]]
    assert stripe_links and zendesk_links
    assert {link[:15] for link in stripe_links + zendesk_links} <= accounts15
    assert any(len(link) == 15 for link in stripe_links + zendesk_links) or len(world) < 50


def test_zendesk_and_stripe_references_point_at_existing_records(datasets):
    zd, st = datasets["zendesk"], datasets["stripe"]
    orgs, users = {o["id"] for o in zd["organizations"]}, {u["id"] for u in zd["users"]}
    tickets = {t["id"] for t in zd["tickets"]}
    assert {u["organization_id"] for u in zd["users"]} - {None} <= orgs
    assert {t["organization_id"] for t in zd["tickets"]} <= orgs
    assert {t["requester_id"] for t in zd["tickets"]} <= users
    assert {r["ticket_id"] for r in zd["satisfaction_ratings"]} <= tickets
    customers = {c["id"] for c in st["customers"]}
    subscriptions = {s["id"] for s in st["subscriptions"]}
    invoices = {i["id"] for i in st["invoices"]}
    prices = {p["id"] for p in st["prices"]}
    assert {s["customer"] for s in st["subscriptions"]} <= customers
    assert {item["price"] for s in st["subscriptions"] for item in s["items"]} <= prices
    assert {i["parent"]["subscription_details"]["subscription"] for i in st["invoices"]} <= subscriptions
    assert {c["invoice"] for c in st["charges"]} <= invoices
    assert {p["customer"] for p in st["payment_methods"]} <= customers
    assert set(st["card_scenarios"]) <= customers


def test_nothing_happens_after_now(world, datasets):
    now = world.now
    assert max(t["generated_timestamp"] for t in datasets["zendesk"]["tickets"]) <= now
    assert max(i["created"] for i in datasets["stripe"]["invoices"]) <= now
    assert max(c["created"] for c in datasets["stripe"]["charges"]) <= now
    modstamps = [r["SystemModstamp"] for rows in datasets["salesforce"].values() for r in rows]
    assert max(modstamps) <= world.now_datetime.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def test_identity_is_messy_as_promised():
    world = generate_world(400, seed=7, now=NOW)
    websites = [c.website for c in world.companies]
    assert any(w is None for w in websites)
    assert any(w and w.startswith("WWW.") for w in websites)
    assert any(len(c.zendesk_domains) == 2 for c in world.companies)
    assert any(c.free_mail_payer for c in world.companies)
    assert any(c.stripe_link and len(c.stripe_link) == 15 for c in world.companies)
    sisters = [c for c in world.companies if c.sister_of is not None]
    assert sisters and all(world.companies[c.sister_of].domain == c.domain for c in sisters)


def test_ground_truth_counts_the_stripe_dataset(world, datasets):
    truth = ground_truth(world)
    invoices = datasets["stripe"]["invoices"]
    assert truth.invoices == len(invoices)
    assert truth.failed_invoices == sum(i["status"] == "open" and i["attempt_count"] > 0 for i in invoices)
    canceled = [s["cancellation_details"]["reason"] for s in datasets["stripe"]["subscriptions"]
                if s["status"] == "canceled"]
    assert truth.churned_by_type["involuntary"] == canceled.count("payment_failed")
    assert truth.churned_by_type["voluntary"] == canceled.count("cancellation_requested")
    assert truth.churned_now == sum(c.fate in (Fate.VOLUNTARY, Fate.INVOLUNTARY) for c in world.companies)
    assert truth.expected_customers == len(world) + truth.unlinkable_payers


def test_churners_show_warning_signs_first():
    """Tickets burst and CSAT turns bad in the warning window more than for those who stay."""
    world = generate_world(600, seed=2, now=NOW)
    zd = zendesk_dataset(world)
    bad_by_org: dict[int, int] = {}
    tickets_by_org: dict[int, int] = {}
    ticket_org = {t["id"]: t["organization_id"] for t in zd["tickets"]}
    for ticket in zd["tickets"]:
        tickets_by_org[ticket["organization_id"]] = tickets_by_org.get(ticket["organization_id"], 0) + 1
    for rating in zd["satisfaction_ratings"]:
        if rating["score"] == "bad":
            org = ticket_org[rating["ticket_id"]]
            bad_by_org[org] = bad_by_org.get(org, 0) + 1
    orgs = {o["id"]: o for o in zd["organizations"]}

    def share_bad(fates: set[Fate]) -> float:
        ids = [360_000_000_000 + c.index for c in world.companies if c.fate in fates and c.zendesk]
        return sum(bad_by_org.get(i, 0) for i in ids) / max(1, sum(tickets_by_org.get(i, 0) for i in ids))

    assert orgs
    assert share_bad({Fate.VOLUNTARY, Fate.CONTRACTION}) > 1.5 * share_bad({Fate.RETAINED})


def test_ticket_rate_bursts_from_the_first_day_of_the_warning_window():
    """The gap drawn before a warning window must not jump over it: per day, customers heading out
    file far more tickets in their window than before it (the burst is 3x), also in its first weeks."""
    from hub.demo.activity import TICKET_BURST, support_tickets

    world = generate_world(600, seed=2, now=NOW)
    heading_out = [c for c in world.companies if c.fate is Fate.RETAINED and c.warning_from is not None]
    before = inside = early = 0
    days_before = days_inside = days_early = 0.0
    for company in heading_out:
        start = max(company.created, world.start)
        if start >= company.warning_from:
            continue
        created = [t.created for t in support_tickets(world, company) if "churn_risk" not in t.tags
                   and "billing" not in t.tags]
        before += sum(start <= t < company.warning_from for t in created)
        inside += sum(t >= company.warning_from for t in created)
        early += sum(company.warning_from <= t < company.warning_from + 21 * 86_400 for t in created)
        days_before += (company.warning_from - start) / 86_400
        days_inside += (world.now - company.warning_from) / 86_400
        days_early += min(21, (world.now - company.warning_from) / 86_400)
    assert len(heading_out) > 20
    base, burst = before / days_before, inside / days_inside
    assert burst > 0.6 * TICKET_BURST[Fate.RETAINED] * base
    assert early / days_early > 0.6 * TICKET_BURST[Fate.RETAINED] * base


def test_salesforce_dataset_seeds_the_sandbox_store(world):
    from connectors.salesforce.sandbox_store import OrgStore

    store = OrgStore(lambda: float(world.now), custom_fields=CUSTOM_FIELDS)
    store.seed(salesforce_dataset(world))
    assert len(store.table("Account").records) == len(world)
    assert store.table("Account").find(world.companies[0].sf_id[:15])["Name"] == world.companies[0].name
    assert sum(1 for _ in iter_salesforce(world)) == sum(len(t.records) for t in store.tables.values())


def test_bounced_addresses_are_real_contacts(world, datasets):
    emails = {c["Email"] for c in datasets["salesforce"]["Contact"]}
    assert bounced_addresses(world) and set(bounced_addresses(world)) <= emails


def test_streaming_exports_yield_the_same_objects_as_the_datasets(world, datasets):
    from hub.demo.stripe_data import iter_stripe
    from hub.demo.zendesk_data import iter_zendesk

    streamed: dict[str, list] = {}
    for collection, obj in iter_zendesk(world):
        streamed.setdefault(collection, []).append(obj)
    assert streamed == datasets["zendesk"]
    stripe = [obj for collection, obj in iter_stripe(world) if collection == "invoices"]
    assert stripe == datasets["stripe"]["invoices"]


def test_some_live_customers_are_heading_out_with_signs_showing(world):
    truth = ground_truth(world)
    heading_out = [c for c in world.companies if c.at_risk]
    assert truth.at_risk_now == len(heading_out) > 0
    assert all(not c.churned for c in heading_out)
    assert sum(c.propensity for c in heading_out) / len(heading_out) > \
        sum(c.propensity for c in world.companies) / len(world)


def test_usage_dataset_links_accounts_by_domain_and_follows_the_usage_series(world):
    from hub.demo.activity import usage_series
    from hub.demo.usage_data import USAGE_DAYS, usage_dataset

    data = usage_dataset(world)
    accounts = {account["id"]: account for account in data["accounts"]}
    assert [account["domain"] for account in data["accounts"]] == [company.domain for company in world.companies]
    assert [account["crm_id"] for account in data["accounts"]] == [company.sf_id for company in world.companies]
    assert all(row["account_id"] in accounts for row in data["usage"])
    days = {row["day"] for row in data["usage"]}
    first = datetime.fromtimestamp((world.now // 86400 - USAGE_DAYS) * 86400, UTC).date().isoformat()
    assert min(days) >= first
    company = world.companies[0]
    series = usage_series(world, company)
    mine = [row for row in data["usage"] if row["account_id"] == data["accounts"][0]["id"]]
    recent = series.days >= world.now // 86400 - USAGE_DAYS
    assert [row["active_users"] for row in mine] == series.active_users[recent].tolist()
    assert [row["logins"] for row in mine] == series.logins[recent].tolist()
    json.dumps(data)      # a JSON-serialisable sandbox dataset
