"""Pure functions: Salesforce query records (REST JSON) -> canonical `Record`s.

    {"attributes": {"type": "Account", "url": "/services/data/v61.0/sobjects/Account/001..."},
     "Id": "001...", "IsDeleted": false, "SystemModstamp": "2024-05-01T12:00:00.000+0000",
     "Name": "Acme", "Website": "www.acme.com", "AnnualRevenue": 1250000.0, "NPS__c": 9, ...}

Every record's `external_id` is its 18-character `Id`, `updated_at` its `SystemModstamp`, and
`IsDeleted = true` (from `queryAll`) makes it a tombstone. Money (Amount, AnnualRevenue: decimals in
the org's currency) becomes integer minor units; datetimes become ISO-8601 UTC strings. Fields read
beyond the standard ones are kept raw under `custom_fields`; on accounts, the `facts` mapping turns
some of them into canonical facts (`usage.last_login`, `usage.active_users`, `lifecycle_stage`, `nps`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from hub import Kind, Record

# Standard fields each stream reads (User has no IsDeleted: users are deactivated, never deleted).
ACCOUNT_FIELDS = ("Id", "IsDeleted", "SystemModstamp", "Name", "Website", "Industry", "AnnualRevenue",
                  "OwnerId", "Type", "CreatedDate")
CONTACT_FIELDS = ("Id", "IsDeleted", "SystemModstamp", "AccountId", "Email", "FirstName", "LastName", "Title",
                  "CreatedDate")
OPPORTUNITY_FIELDS = ("Id", "IsDeleted", "SystemModstamp", "AccountId", "Name", "Amount", "StageName",
                      "CloseDate", "Type", "IsClosed", "IsWon", "CreatedDate")
USER_FIELDS = ("Id", "SystemModstamp", "Name", "Email", "IsActive", "CreatedDate")

USAGE_FACTS = ("last_login", "active_users", "last_activity")   # -> fields["usage"][fact]
TIME_FACTS = ("last_login", "last_activity")


def parse_datetime(value: Any) -> datetime | None:
    """`2024-05-01T12:00:00.000+0000` (REST), `...Z` or `...+00:00` -> aware UTC datetime."""
    if not value or not isinstance(value, str):
        return None
    return _parse_text(value)


@lru_cache(maxsize=1 << 12)   # records share timestamps, and a read parses each one several times
def _parse_text(value: str) -> datetime | None:
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():   # +0000 -> +00:00
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


@lru_cache(maxsize=1 << 12)
def iso_utc(moment: datetime | None) -> str | None:
    """`2024-05-01T12:00:00Z` (milliseconds only when there are some)."""
    if moment is None:
        return None
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def timestamp(value: Any) -> str | None:
    """A Salesforce datetime as an ISO-8601 UTC string; a date (`2024-05-01`) stays a date."""
    moment = parse_datetime(value)
    if moment is not None and isinstance(value, str) and "T" in value:
        return iso_utc(moment)
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            return None
    return None


def minor_units(value: Any) -> int | None:
    """A currency amount (1250.5) -> minor units (125050), rounded half up; None stays None."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        return int((Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError):
        return None


def number(value: Any) -> int | float | None:
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return int(result) if result.is_integer() and abs(result) < 2**53 else result


def opportunity_type(label: Any) -> str | None:
    """`New Business` / `Renewal` / `Upsell` (and the older `New Customer`, `Existing Customer -
    Upgrade`...) -> `new_business` / `renewal` / `upsell` / `downgrade`; others lower_snake_cased."""
    if not isinstance(label, str) or not label.strip():
        return None
    text = label.strip().lower()
    if "renew" in text or "replacement" in text:
        return "renewal"
    if any(word in text for word in ("upsell", "upgrade", "expansion", "cross-sell", "cross sell", "add-on")):
        return "upsell"
    if "downgrade" in text:
        return "downgrade"
    if text.startswith("new"):
        return "new_business"
    return "_".join(text.replace("-", " ").split())


def custom_fields(raw: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {name: raw.get(name) for name in names}


def _record(kind: str, raw: Mapping[str, Any], fields: dict[str, Any]) -> Record:
    return Record(kind=kind, external_id=str(raw["Id"]), fields=fields, deleted=raw.get("IsDeleted") is True,
                  updated_at=parse_datetime(raw.get("SystemModstamp")))


def account_facts(raw: Mapping[str, Any], facts: Mapping[str, str]) -> dict[str, Any]:
    """Canonical facts from the Account fields `facts` names: usage facts under `usage`."""
    out: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    for fact, field in facts.items():
        value = raw.get(field)
        if fact in TIME_FACTS:
            value = timestamp(value)
        elif fact in ("active_users", "nps"):
            value = number(value)
            value = float(value) if fact == "nps" and value is not None else value
        elif value is not None:
            value = str(value)
        if fact in USAGE_FACTS:
            usage[fact] = value
        else:
            out[fact] = value
    if usage:
        out["usage"] = usage
    return out


def map_account(raw: Mapping[str, Any], *, extra: Sequence[str] = (),
                facts: Mapping[str, str] | None = None) -> Record:
    website = raw.get("Website")
    fields: dict[str, Any] = {
        "name": raw.get("Name"),
        "website": website,
        "domains": [website] if website else [],
        "industry": raw.get("Industry"),
        "annual_revenue": minor_units(raw.get("AnnualRevenue")),
        "owner_id": raw.get("OwnerId"),
        "type": raw.get("Type"),
        "created_at": timestamp(raw.get("CreatedDate")),
    }
    if raw.get("CurrencyIsoCode"):
        fields["currency"] = str(raw["CurrencyIsoCode"]).lower()
    if extra:
        fields["custom_fields"] = custom_fields(raw, extra)
    fields.update(account_facts(raw, facts or {}))
    return _record(Kind.ACCOUNT, raw, fields)


def map_contact(raw: Mapping[str, Any], *, extra: Sequence[str] = ()) -> Record:
    first, last = raw.get("FirstName"), raw.get("LastName")
    fields: dict[str, Any] = {
        "account_id": raw.get("AccountId"),
        "email": raw.get("Email"),
        "first_name": first,
        "last_name": last,
        "name": " ".join(str(part) for part in (first, last) if part) or None,
        "title": raw.get("Title"),
        "created_at": timestamp(raw.get("CreatedDate")),
    }
    if extra:
        fields["custom_fields"] = custom_fields(raw, extra)
    return _record(Kind.CONTACT, raw, fields)


def map_opportunity(raw: Mapping[str, Any], *, extra: Sequence[str] = ()) -> Record:
    fields: dict[str, Any] = {
        "account_id": raw.get("AccountId"),
        "name": raw.get("Name"),
        "amount": minor_units(raw.get("Amount")),
        "stage": raw.get("StageName"),
        "close_date": timestamp(raw.get("CloseDate")),
        "type": opportunity_type(raw.get("Type")),
        "type_label": raw.get("Type"),
        "is_closed": raw.get("IsClosed") is True,
        "is_won": raw.get("IsWon") is True,
        "created_at": timestamp(raw.get("CreatedDate")),
    }
    if raw.get("CurrencyIsoCode"):
        fields["currency"] = str(raw["CurrencyIsoCode"]).lower()
    if extra:
        fields["custom_fields"] = custom_fields(raw, extra)
    return _record(Kind.OPPORTUNITY, raw, fields)


def map_user(raw: Mapping[str, Any], *, extra: Sequence[str] = ()) -> Record:
    fields: dict[str, Any] = {
        "name": raw.get("Name"),
        "email": raw.get("Email"),
        "active": raw.get("IsActive") is True,
        "created_at": timestamp(raw.get("CreatedDate")),
    }
    if extra:
        fields["custom_fields"] = custom_fields(raw, extra)
    return _record(Kind.USER, raw, fields)


Mapper = Callable[..., Record]
