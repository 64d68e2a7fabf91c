"""Mapping query records (as the REST API returns them) to canonical records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.salesforce import mapping
from hub import Kind

ACCOUNT = {
    "attributes": {"type": "Account", "url": "/services/data/v61.0/sobjects/Account/001Dn00000AbCdEIAV"},
    "Id": "001Dn00000AbCdEIAV", "IsDeleted": False, "SystemModstamp": "2024-05-01T12:00:00.000+0000",
    "Name": "Acme Corp", "Website": "www.acme.com", "Industry": "Technology", "AnnualRevenue": 1250000.555,
    "OwnerId": "005Dn000001XyZaIAK", "Type": "Customer - Direct", "CreatedDate": "2023-01-05T09:30:00.000+0000",
    "Last_Login__c": "2024-04-30T18:15:00.000+0000", "Active_Users__c": 42.0, "Onboarding_Stage__c": "Live",
    "NPS__c": 9, "Region__c": "EMEA",
}
FACTS = {"last_login": "Last_Login__c", "active_users": "Active_Users__c", "lifecycle_stage": "Onboarding_Stage__c",
         "nps": "NPS__c"}


def test_account_with_custom_fields_and_facts() -> None:
    extra = ["Region__c", *FACTS.values()]
    record = mapping.map_account(ACCOUNT, extra=extra, facts=FACTS)
    assert record.kind == Kind.ACCOUNT and record.external_id == "001Dn00000AbCdEIAV" and not record.deleted
    assert record.updated_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    fields = record.fields
    assert fields["name"] == "Acme Corp" and fields["domains"] == ["www.acme.com"]
    assert fields["annual_revenue"] == 125000056          # minor units, rounded half up
    assert fields["owner_id"] == "005Dn000001XyZaIAK"
    assert fields["created_at"] == "2023-01-05T09:30:00Z"
    assert fields["custom_fields"]["Region__c"] == "EMEA"
    assert fields["usage"] == {"last_login": "2024-04-30T18:15:00Z", "active_users": 42}
    assert fields["lifecycle_stage"] == "Live" and fields["nps"] == 9.0


def test_account_without_website_or_revenue() -> None:
    raw = {**ACCOUNT, "Website": None, "AnnualRevenue": None}
    fields = mapping.map_account(raw).fields
    assert fields["domains"] == [] and fields["annual_revenue"] is None
    assert "custom_fields" not in fields and "usage" not in fields


def test_soft_deleted_record_from_query_all_is_a_tombstone() -> None:
    record = mapping.map_contact({"attributes": {"type": "Contact"}, "Id": "003Dn00000XyZ12IAB", "IsDeleted": True,
                                  "SystemModstamp": "2024-05-02T00:00:00.000+0000", "AccountId": "001Dn00000AbCdEIAV",
                                  "Email": "jo@acme.com", "FirstName": None, "LastName": "Doe", "Title": None})
    assert record.deleted and record.kind == Kind.CONTACT
    assert record.fields["account_id"] == "001Dn00000AbCdEIAV" and record.fields["name"] == "Doe"


def test_contact() -> None:
    record = mapping.map_contact({"Id": "003Dn00000XyZ12IAB", "IsDeleted": False, "AccountId": "001Dn00000AbCdEIAV",
                                  "SystemModstamp": "2024-05-02T00:00:00.000+0000", "Email": "jo@acme.com",
                                  "FirstName": "Jo", "LastName": "Doe", "Title": "CTO",
                                  "CreatedDate": "2024-01-01T00:00:00.000+0000"})
    assert record.fields == {"account_id": "001Dn00000AbCdEIAV", "email": "jo@acme.com", "first_name": "Jo",
                             "last_name": "Doe", "name": "Jo Doe", "title": "CTO", "created_at": "2024-01-01T00:00:00Z"}


@pytest.mark.parametrize("label, kind", [("New Business", "new_business"), ("Renewal", "renewal"),
                                         ("Upsell", "upsell"), ("Existing Customer - Upgrade", "upsell"),
                                         ("Existing Customer - Downgrade", "downgrade"), (None, None),
                                         ("Partner Referral", "partner_referral")])
def test_opportunity_types(label: str | None, kind: str | None) -> None:
    raw = {"Id": "006Dn000004AbCdIAK", "IsDeleted": False, "SystemModstamp": "2024-05-03T10:00:00.000+0000",
           "AccountId": "001Dn00000AbCdEIAV", "Name": "Acme renewal", "Amount": 24000.1, "StageName": "Closed Won",
           "CloseDate": "2024-04-30", "Type": label, "IsClosed": True, "IsWon": True}
    fields = mapping.map_opportunity(raw).fields
    assert fields["type"] == kind and fields["type_label"] == label
    assert fields["amount"] == 2400010 and fields["close_date"] == "2024-04-30"
    assert fields["is_closed"] is True and fields["is_won"] is True and fields["stage"] == "Closed Won"


def test_user() -> None:
    record = mapping.map_user({"attributes": {"type": "User"}, "Id": "005Dn000001XyZaIAK", "Name": "Ann Owner",
                               "Email": "ann@corp.example", "IsActive": False,
                               "SystemModstamp": "2024-05-01T00:00:00.000+0000"})
    assert record.kind == Kind.USER and not record.deleted
    assert record.fields["name"] == "Ann Owner" and record.fields["active"] is False


@pytest.mark.parametrize("text, expected", [
    ("2024-05-01T12:00:00.000+0000", datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ("2024-05-01T14:00:00.000+0200", datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ("not a date", None), (None, None),
])
def test_parse_datetime(text: str | None, expected: datetime | None) -> None:
    assert mapping.parse_datetime(text) == expected


@pytest.mark.parametrize("value, minor", [(1250.5, 125050), (0.005, 1), ("19.99", 1999), (None, None),
                                          (True, None), ("n/a", None)])
def test_minor_units(value: object, minor: int | None) -> None:
    assert mapping.minor_units(value) == minor
