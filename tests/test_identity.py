"""Identity resolution: the pure matching rules, stable ids, and writing customers on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from hub.identity import Account, Resolution, customer_id_for, resolve
from hub.identity_store import resolve_identities
from hub.matching import RecordKey
from hub.models import Customer, CustomerLink
from hub.records import Record
from hub.sections.identity import IdentitySettings, ManualLink
from hub.store import write_records

TYPES = {"salesforce": ["crm"], "zendesk": ["helpdesk"], "stripe": ["billing"]}
SF_A, SF_B, SF_C = "001000000000001AAA", "001000000000002AAA", "001000000000003AAA"
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def sf(external_id: str, name: str, website: str | None = None, **more: Any) -> Account:
    return Account("crm", external_id, {"name": name, "website": website, "domains": [website] if website else [],
                                        **more})


def zd(external_id: str, name: str, *domains: str, salesforce_id: str | None = None) -> Account:
    links = {"salesforce_account_id": salesforce_id} if salesforce_id else {}
    return Account("helpdesk", external_id, {"name": name, "domains": list(domains), "links": links})


def stripe(external_id: str, email: str | None, name: str | None = None, **links: str) -> Account:
    domain = email.rpartition("@")[2] if email else None
    return Account("billing", external_id, {"name": name, "email": email, "domains": [domain] if domain else [],
                                            "links": links})


def run(accounts: list[Account], settings: IdentitySettings | None = None,
        existing: dict[tuple[str, str], str] | None = None) -> Resolution:
    return resolve(accounts, existing or {}, settings or IdentitySettings(), TYPES)


def groups(resolution: Resolution) -> set[frozenset[str]]:
    """The partition as sets of "connector:id", independent of ids."""
    return {frozenset(str(m.key) for m in c.members) for c in resolution.customers}


def customer_with(resolution: Resolution, key: str) -> Any:
    [found] = [c for c in resolution.customers if key in {str(m.key) for m in c.members}]
    return found


# -- the rules ------------------------------------------------------------------------------------


def test_www_and_upper_case_websites_match_helpdesk_domain_and_billing_email() -> None:
    result = run([sf(SF_A, "Acme Inc", "https://WWW.Acme.COM/about"), zd("9", "ACME", "acme.com"),
                  stripe("cus_1", "Billing@ACME.com.", "Acme billing")])
    assert groups(result) == {frozenset({f"crm:{SF_A}", "helpdesk:9", "billing:cus_1"})}
    [customer] = result.customers
    assert (customer.name, customer.domain) == ("Acme Inc", "acme.com")   # CRM name wins
    assert {m.rule for m in customer.members} == {"domain"}
    assert all("acme.com" in (m.evidence or "") for m in customer.members)
    assert not result.conflicts


def test_several_zendesk_domains_join_records_that_each_know_one() -> None:
    result = run([zd("9", "Acme", "acme.com", "acme.io", "acme-corp.de"), sf(SF_A, "Acme", "acme.io"),
                  stripe("cus_1", "ap@acme-corp.de")])
    assert groups(result) == {frozenset({"helpdesk:9", f"crm:{SF_A}", "billing:cus_1"})}
    assert result.customers[0].domain == "acme.io"   # the CRM's domain is preferred for the customer


def test_gmail_customers_stay_separate() -> None:
    result = run([stripe("cus_1", "jane@gmail.com", "Jane"), stripe("cus_2", "bob@gmail.com", "Bob"),
                  stripe("cus_3", "al@hotmail.co.uk"), zd("9", "Consumers", "gmail.com"),
                  sf(SF_A, "Someone", "http://www.gmail.com")])
    assert len(result.customers) == 5
    assert not result.conflicts
    assert all(c.domain is None for c in result.customers)
    assert all(m.rule == "single" for c in result.customers for m in c.members)


def test_extra_free_mail_domains_from_config() -> None:
    accounts = [stripe("cus_1", "a@isp.example-telecom.net"), zd("9", "Telecom users", "example-telecom.net")]
    assert len(run([stripe("cus_1", "a@example-telecom.net"), accounts[1]]).customers) == 1
    settings = IdentitySettings(extra_free_mail_domains=["example-telecom.net"])
    assert len(run(accounts, settings).customers) == 2   # the list covers subdomains too


def test_explicit_links_join_across_systems_and_beat_the_domain() -> None:
    result = run([sf(SF_A, "Acme", "acme.com"), sf(SF_B, "Beta", "beta.io"),
                  stripe("cus_1", "jane@acme.com", salesforce_account_id=SF_B),    # metadata says Beta
                  zd("9", "Beta support", salesforce_id=SF_B)])
    assert groups(result) == {frozenset({f"crm:{SF_A}"}), frozenset({f"crm:{SF_B}", "billing:cus_1", "helpdesk:9"})}
    beta = customer_with(result, "billing:cus_1")
    assert beta.name == "Beta" and beta.domain == "beta.io"
    assert {m.rule for m in beta.members} == {"explicit"}
    # acme.com now points at two customers that each hold a Salesforce account: reported, not used
    [conflict] = result.conflict_dicts()
    assert conflict["rule"] == "domain" and conflict["keys"] == ["acme.com"] and conflict["systems"] == ["crm"]
    assert {tuple(side["records"]) for side in conflict["candidates"]} == {
        (f"crm:{SF_A}",), ("billing:cus_1", f"crm:{SF_B}", "helpdesk:9")}


def test_explicit_links_can_be_switched_off() -> None:
    accounts = [sf(SF_B, "Beta", "beta.io"), stripe("cus_1", "jane@gmail.com", salesforce_account_id=SF_B)]
    assert len(run(accounts).customers) == 1
    assert len(run(accounts, IdentitySettings(explicit_links=False)).customers) == 2


def test_links_accept_the_15_character_salesforce_id_and_report_dangling_ones() -> None:
    result = run([sf(SF_A, "Acme"), stripe("cus_1", None, salesforce_account_id=SF_A[:15]),
                  stripe("cus_2", None, salesforce_account_id="001000000000099AAA"),
                  stripe("cus_3", None, hubspot_company_id="123")])   # a type nobody configured: ignored
    assert frozenset({f"crm:{SF_A}", "billing:cus_1"}) in groups(result)
    assert result.problems == ["billing:cus_2 salesforce_account_id=001000000000099AAA: no such salesforce account"]


def test_a_link_matching_records_in_two_connectors_of_its_type_is_not_used() -> None:
    types = {**TYPES, "zendesk": ["helpdesk", "support2"]}
    accounts = [zd("9", "Acme"), Account("support2", "9", {"name": "Other"}),
                stripe("cus_1", None, zendesk_organization_id="9")]
    result = resolve(accounts, {}, IdentitySettings(), types)
    assert len(result.customers) == 3
    assert result.problems == ["billing:cus_1 zendesk_organization_id=9: helpdesk:9, support2:9 (ambiguous: ignored)"]


def test_several_billing_accounts_linked_to_one_crm_account_are_one_customer() -> None:
    result = run([sf(SF_A, "Acme", "acme.com"), stripe("cus_1", "eu@acme.com", salesforce_account_id=SF_A),
                  stripe("cus_2", "us@acme.com", salesforce_account_id=SF_A)])
    assert len(result.customers) == 1 and not result.conflicts


def test_several_payers_at_one_domain_join_the_crm_account_that_owns_it() -> None:
    payers = [stripe("cus_1", "eu@acme.com"), stripe("cus_2", "us@acme.com", salesforce_account_id=SF_A)]
    result = run([sf(SF_A, "Acme", "acme.com"), zd("9", "Acme", "acme.com"), *payers])
    assert len(result.customers) == 1 and not result.conflicts
    # without a CRM or helpdesk record to say which company acme.com is, two payers are not merged
    alone = run([stripe("cus_1", "eu@acme.com"), stripe("cus_3", "us@acme.com")])
    assert len(alone.customers) == 2
    assert [c.systems for c in alone.conflicts] == [("billing",)]


def test_records_of_an_unlisted_connector_type_are_treated_like_crm_accounts() -> None:
    types = {**TYPES, "legacycrm": ["old"]}
    accounts = [Account("old", "1", {"name": "Acme", "domains": ["acme.com"]}),
                Account("old", "2", {"name": "Acme 2", "domains": ["acme.com"]}), stripe("cus_1", "ap@acme.com")]
    result = resolve(accounts, {}, IdentitySettings(), types)
    assert len(result.customers) == 3 and result.conflicts[0].systems == ("old",)


def test_two_crm_accounts_sharing_a_domain_is_a_conflict_not_a_guess() -> None:
    result = run([sf(SF_A, "Acme", "acme.com"), sf(SF_B, "Acme (duplicate)", "https://acme.com"),
                  zd("9", "Acme", "acme.com"), stripe("cus_1", "ap@acme.com")])
    assert len(result.customers) == 4     # nobody guessed which Acme the ticket org and the payer are
    [conflict] = result.conflict_dicts()
    assert conflict["rule"] == "domain" and conflict["keys"] == ["acme.com"] and conflict["systems"] == ["crm"]
    assert sorted(r for side in conflict["candidates"] for r in side["records"]) == [f"crm:{SF_A}", f"crm:{SF_B}"]
    assert sorted(r for side in conflict["unmatched"] for r in side["records"]) == ["billing:cus_1", "helpdesk:9"]
    assert "kept apart" in conflict["message"]


def test_a_record_bridging_two_crm_accounts_by_different_domains_stays_apart() -> None:
    # acme.com is account A's, acme.io account B's; the helpdesk org has both: it matches two customers
    result = run([sf(SF_A, "Acme US", "acme.com"), sf(SF_B, "Acme Europe", "acme.io"),
                  zd("9", "Acme", "acme.com", "acme.io"), stripe("cus_1", "ap@acme.io")])
    assert groups(result) == {frozenset({f"crm:{SF_A}"}), frozenset({f"crm:{SF_B}", "billing:cus_1"}),
                              frozenset({"helpdesk:9"})}   # the payer's only domain is B's: its strongest match
    [conflict] = result.conflict_dicts()
    assert conflict["keys"] == ["acme.com", "acme.io"]
    assert [side["records"] for side in conflict["unmatched"]] == [["helpdesk:9"]]


def test_contradicting_explicit_links_are_reported_and_each_record_keeps_its_direct_link() -> None:
    result = run([sf(SF_A, "Acme"), sf(SF_B, "Beta"), zd("9", "Beta", salesforce_id=SF_B),
                  stripe("cus_1", None, salesforce_account_id=SF_A, zendesk_organization_id="9")])
    assert groups(result) == {frozenset({f"crm:{SF_A}", "billing:cus_1"}), frozenset({f"crm:{SF_B}", "helpdesk:9"})}
    [conflict] = result.conflicts
    assert conflict.rule == "explicit" and conflict.systems == ("crm",)


def test_manual_links_override_everything() -> None:
    settings = IdentitySettings(manual_links=[
        ManualLink(connector="billing", external_id="cus_1", same_as=f"crm:{SF_A}"),
        ManualLink(connector="billing", external_id="cus_2", domain="https://www.acme.com"),
        ManualLink(connector="billing", external_id="cus_3", domain="newco.dev"),
        ManualLink(connector="billing", external_id="cus_404", same_as=f"crm:{SF_A}"),
    ])
    result = run([sf(SF_A, "Acme", "acme.com"), stripe("cus_1", "boss@gmail.com"),
                  stripe("cus_2", "cfo@beta.io", salesforce_account_id=SF_B), sf(SF_B, "Beta", "beta.io"),
                  stripe("cus_3", "x@yahoo.com")], settings)
    acme = customer_with(result, f"crm:{SF_A}")
    assert {str(m.key) for m in acme.members} == {f"crm:{SF_A}", "billing:cus_1", "billing:cus_2"}
    rules = {str(m.key): (m.rule, m.evidence) for m in acme.members}
    assert rules["billing:cus_1"] == ("manual", f"manual link in config: same as crm:{SF_A}")
    assert rules["billing:cus_2"] == ("manual", "manual link in config: domain acme.com")
    assert customer_with(result, "billing:cus_3").domain == "newco.dev"
    assert groups(result) >= {frozenset({f"crm:{SF_B}"})}   # cus_2's own metadata was overridden
    assert result.problems == ["manual link billing:cus_404: no such account record"]


def test_manual_link_to_a_domain_two_customers_hold_is_reported() -> None:
    settings = IdentitySettings(manual_links=[ManualLink(connector="billing", external_id="cus_1", domain="acme.com")])
    result = run([sf(SF_A, "Acme", "acme.com"), sf(SF_B, "Acme 2", "acme.com"), stripe("cus_1", "x@gmail.com")],
                 settings)
    assert len(result.customers) == 3
    manual = [c for c in result.conflict_dicts() if c["rule"] == "manual"]
    assert len(manual) == 1 and manual[0]["keys"] == ["acme.com"]
    assert [side["records"] for side in manual[0]["unmatched"]] == [["billing:cus_1"]]


def test_manual_link_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ManualLink(connector="billing", external_id="cus_1")
    with pytest.raises(ValueError, match="connector"):
        ManualLink(connector="billing", external_id="cus_1", same_as="no-colon")


def test_name_matching_is_off_by_default_and_joins_legal_name_variants_when_on() -> None:
    accounts = [sf(SF_A, "Acme, Inc."), stripe("cus_1", "founder@gmail.com", "ACME"), zd("9", "Zeta GmbH")]
    assert len(run(accounts).customers) == 3
    result = run(accounts, IdentitySettings(name_matching=True))
    assert frozenset({f"crm:{SF_A}", "billing:cus_1"}) in groups(result)
    assert customer_with(result, "billing:cus_1").members[0].rule == "name"


def test_name_matching_ignores_stand_in_names() -> None:
    # Stripe puts the email (or the id) where a customer has no name: never a company name
    result = run([stripe("cus_1", "jo@gmail.com", "jo@gmail.com"), zd("9", "jo@gmail.com"),
                  stripe("cus_2", None, "cus_2"), sf("cus_2", "cus_2")], IdentitySettings(name_matching=True))
    assert len(result.customers) == 4


def test_name_matching_never_joins_two_crm_accounts() -> None:
    result = run([sf(SF_A, "Acme Inc"), sf(SF_B, "ACME LLC"), stripe("cus_1", None, "Acme")],
                 IdentitySettings(name_matching=True))
    assert len(result.customers) == 3 and result.conflicts[0].rule == "name"


def test_connector_types_come_from_the_configured_instances(tmp_path: Any) -> None:
    from hub.config import ConnectorConfig, HubFile, Settings
    from hub.connector import ConnectorSettings
    from hub.identity_store import connector_types_of

    settings = Settings(tmp_path / "churnhub.yaml", "sqlite://", HubFile(), {
        name: ConnectorConfig(name, type_name, ConnectorSettings(), enabled=name != "old")
        for name, type_name in (("crm", "salesforce"), ("eu", "zendesk"), ("us", "zendesk"), ("old", "stripe"))})
    assert connector_types_of(settings) == {"salesforce": ["crm"], "stripe": ["old"], "zendesk": ["eu", "us"]}


# -- stable ids -----------------------------------------------------------------------------------


def world() -> list[Account]:
    return [sf(SF_A, "Acme", "acme.com"), zd("9", "Acme", "acme.com"), stripe("cus_1", "ap@acme.com"),
            sf(SF_B, "Beta", "beta.io"), stripe("cus_2", "x@gmail.com")]


def test_ids_are_deterministic_from_scratch_and_independent_of_input_order() -> None:
    first = run(world())
    shuffled = world()
    random.Random(7).shuffle(shuffled)
    assert [(c.id, c.members) for c in run(shuffled).customers] == [(c.id, c.members) for c in first.customers]
    acme = customer_with(first, f"crm:{SF_A}")
    assert acme.id == customer_id_for(RecordKey("crm", SF_A))   # anchored on the CRM record
    assert acme.id.startswith("cus_") and len(acme.id) == 16


def test_ids_survive_new_records_and_follow_the_majority() -> None:
    first = run(world())
    existing = {tuple(m.key): c.id for c in first.customers for m in c.members}
    acme_id = customer_with(first, f"crm:{SF_A}").id
    grown = run([*world(), stripe("cus_8", "ap@beta.io")], existing=existing)
    assert {c.id for c in grown.customers} == {c.id for c in first.customers}
    assert customer_with(grown, "billing:cus_8").id == customer_with(first, f"crm:{SF_B}").id
    # a new record that joins an existing customer takes its id, whatever the anchor would hash to
    renamed = {key: ("cus_legacy" if cid == acme_id else cid) for key, cid in existing.items()}
    again = run([*world(), stripe("cus_9", "it@acme.com", salesforce_account_id=SF_A)], existing=renamed)
    assert customer_with(again, "billing:cus_9").id == "cus_legacy"


def test_merging_two_customers_keeps_the_id_most_records_carry_and_splitting_reuses_none() -> None:
    existing = {("crm", SF_A): "cus_old", ("helpdesk", "9"): "cus_old", ("billing", "cus_1"): "cus_other"}
    merged = run([sf(SF_A, "Acme", "acme.com"), zd("9", "Acme", "acme.com"), stripe("cus_1", "ap@acme.com")],
                 existing=existing)
    assert [c.id for c in merged.customers] == ["cus_old"]
    # the helpdesk org changes domain: it leaves; the id stays with the CRM account's side
    split = run([sf(SF_A, "Acme", "acme.com"), zd("9", "Acme", "other.org"), stripe("cus_1", "ap@acme.com")],
                existing={k: "cus_old" for k in existing})
    assert customer_with(split, f"crm:{SF_A}").id == "cus_old"
    assert customer_with(split, "helpdesk:9").id == customer_id_for(RecordKey("helpdesk", "9"))


# -- the database ---------------------------------------------------------------------------------


def store(engine: Engine, connector: str, *records: Record) -> None:
    with engine.begin() as connection:
        write_records(connection, connector, list(records), now=NOW)


def account_record(account: Account, deleted: bool = False) -> Record:
    return Record("account", account.external_id, account.fields, deleted=deleted)


def seed(engine: Engine) -> None:
    for account in world():
        store(engine, account.connector, account_record(account))
    store(engine, "billing",
          Record("subscription", "sub_1", {"account_id": "cus_1", "status": "active", "mrr": 10_000, "currency": "usd"}),
          Record("subscription", "sub_2", {"account_id": "cus_1", "status": "past_due", "mrr": 2_500, "currency": "usd"}),
          Record("subscription", "sub_3", {"account_id": "cus_1", "status": "canceled", "mrr": 99_999, "currency": "usd"}),
          # a plugin may hand over a float: rounded, never a failed cast
          Record("subscription", "sub_4", {"account_id": "cus_2", "status": "trialing", "mrr": 500.4, "currency": "eur"}))


def tables(engine: Engine) -> tuple[list[Any], list[Any]]:
    with engine.connect() as connection:
        customers = connection.execute(select(Customer.__table__).order_by(Customer.id)).all()
        links = connection.execute(select(CustomerLink.__table__).order_by(CustomerLink.id)).all()
    return customers, links


def writes_during(engine: Engine, action: Any) -> list[str]:
    """Data-changing statements `action` sends (the SQLite write-lock no-op excluded)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE") \
                and "customers.id IS NULL" not in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_resolution_writes_customers_links_and_revenue(engine: Engine) -> None:
    seed(engine)
    report = resolve_identities(engine, IdentitySettings(), TYPES, now=NOW)
    assert (report.customers, report.created, report.links_added) == (3, 3, 5)
    customers, links = tables(engine)
    by_id = {c.id: c for c in customers}
    acme = by_id[customer_id_for(RecordKey("crm", SF_A))]
    assert (acme.name, acme.domain, acme.mrr, acme.currency, acme.status) == ("Acme", "acme.com", 12_500, "usd", None)
    gmail_payer = by_id[customer_id_for(RecordKey("billing", "cus_2"))]
    assert (gmail_payer.mrr, gmail_payer.currency, gmail_payer.domain) == (500, "eur", None)
    assert {(link.connector, link.external_id, link.rule) for link in links if link.customer_id == acme.id} == {
        ("crm", SF_A, "domain"), ("helpdesk", "9", "domain"), ("billing", "cus_1", "domain")}
    assert all(link.kind == "account" for link in links)


def test_rerun_without_changes_writes_nothing(engine: Engine) -> None:
    seed(engine)
    resolve_identities(engine, IdentitySettings(), TYPES, now=NOW)
    before = tables(engine)
    results = []
    assert writes_during(engine, lambda: results.append(resolve_identities(engine, IdentitySettings(), TYPES))) == []
    assert not results[0].changed
    assert tables(engine) == before


def test_ids_are_stable_across_runs_and_after_adding_a_record(engine: Engine) -> None:
    seed(engine)
    resolve_identities(engine, IdentitySettings(), TYPES, now=NOW)
    ids_before = {(link.connector, link.external_id): link.customer_id for link in tables(engine)[1]}
    store(engine, "helpdesk", account_record(zd("10", "Beta support", "beta.io")))
    store(engine, "billing", Record("subscription", "sub_5",
                                    {"account_id": "cus_1", "status": "active", "mrr": 1, "currency": "usd"}))
    report = resolve_identities(engine, IdentitySettings(), TYPES)
    # the new org joins Beta (whose CRM link now says "domain"), Acme's MRR grows: nothing else moves
    assert (report.created, report.links_added, report.links_changed, report.updated) == (0, 1, 1, 1)
    ids_after = {(link.connector, link.external_id): link.customer_id for link in tables(engine)[1]}
    assert {k: v for k, v in ids_after.items() if k in ids_before} == ids_before
    assert ids_after[("helpdesk", "10")] == ids_before[("crm", SF_B)]


def test_deleted_account_loses_its_link_and_an_empty_customer_is_kept_unlinked(engine: Engine) -> None:
    seed(engine)
    resolve_identities(engine, IdentitySettings(), TYPES, now=NOW)
    beta_id = customer_id_for(RecordKey("crm", SF_B))
    store(engine, "crm", account_record(sf(SF_B, "Beta", "beta.io"), deleted=True))
    store(engine, "helpdesk", Record("account", "9", {}, deleted=True))   # a bare tombstone
    report = resolve_identities(engine, IdentitySettings(), TYPES)
    assert (report.links_removed, report.unlinked) == (2, 1)
    customers, links = tables(engine)
    assert ("crm", SF_B) not in {(link.connector, link.external_id) for link in links}
    assert ("helpdesk", "9") not in {(link.connector, link.external_id) for link in links}
    beta = next(c for c in customers if c.id == beta_id)
    assert (beta.status, beta.mrr, beta.name) == ("unlinked", 0, "Beta")
    # the account comes back: so does its customer id
    store(engine, "crm", account_record(sf(SF_B, "Beta", "beta.io")))
    resolve_identities(engine, IdentitySettings(), TYPES)
    customers, links = tables(engine)
    assert next(c for c in customers if c.id == beta_id).status is None
    assert ("crm", SF_B, beta_id) in {(link.connector, link.external_id, link.customer_id) for link in links}


def test_revenue_stops_when_the_subscription_is_canceled(engine: Engine) -> None:
    seed(engine)
    resolve_identities(engine, IdentitySettings(), TYPES, now=NOW)
    store(engine, "billing", Record("subscription", "sub_4",
                                    {"account_id": "cus_2", "status": "canceled", "mrr": 500, "currency": "eur"}))
    resolve_identities(engine, IdentitySettings(), TYPES)
    payer = next(c for c in tables(engine)[0] if c.id == customer_id_for(RecordKey("billing", "cus_2")))
    assert (payer.mrr, payer.currency) == (0, "eur")
