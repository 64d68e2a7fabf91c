"""The sandbox org's objects: their fields and types, record ids, and the checks Salesforce makes on writes.

Five objects (Account, Contact, Opportunity, User, Task) with their standard fields; custom fields
(`Xxx__c`) are added from the dataset (type guessed from the values) and from `custom_fields`.
Errors are the per-record shape `{"statusCode", "message", "fields"}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
TEXT_TYPES = {"string", "textarea", "email", "url", "phone", "picklist"}
ID_TYPES = {"id", "reference"}
AUDIT_FIELDS = {"Id": "id", "SystemModstamp": "datetime", "CreatedDate": "datetime", "LastModifiedDate": "datetime",
                "CreatedById": "reference", "LastModifiedById": "reference"}
READ_ONLY = frozenset(AUDIT_FIELDS) | {"IsDeleted"}
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
PRIORITIES = ("High", "Normal", "Low")
MAX_LENGTH = {"string": 255, "email": 80, "url": 255, "phone": 40, "picklist": 255, "textarea": 32000}


def id_suffix(id15: str) -> str:
    """The 3 characters that make a 15-character id case-insensitively unique (18 characters)."""
    out = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, char in enumerate(id15[start:start + 5]) if "A" <= char <= "Z")
        out += SUFFIX[bits]
    return out


def make_id(prefix: str, number: int) -> str:
    """`001` + `SB` + base62 counter -> an 18-character id: 001SB000000001GAAQ-like."""
    digits = ""
    while True:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
        if number == 0:
            break
    id15 = prefix + "SB" + digits.rjust(10, "0")
    return id15 + id_suffix(id15)


def api_datetime(epoch: float) -> str:
    """REST's datetime shape: `2024-05-01T12:00:00.000+0000` (whole seconds: Salesforce keeps no more)."""
    return _api_datetime(int(epoch))


@lru_cache(maxsize=1 << 16)
def _api_datetime(seconds: int) -> str:   # records share stamps; strftime is the slow part of seeding
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


@lru_cache(maxsize=1 << 18)
def epoch_of(value: str) -> float | None:
    """Any ISO-8601 datetime text Salesforce or a dataset may hold -> epoch seconds."""
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def error(code: str, message: str, *fields: str) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": list(fields)}


@dataclass
class SObject:
    name: str
    prefix: str
    fields: dict[str, str]                               # API name -> type
    required: tuple[str, ...] = ()
    picklists: dict[str, tuple[str, ...]] = field(default_factory=dict)   # restricted picklists
    references: dict[str, tuple[str, ...]] = field(default_factory=dict)  # field -> target objects
    external_ids: set[str] = field(default_factory=set)
    soft_deletes: bool = True
    defaults: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fields = {**AUDIT_FIELDS, **({"IsDeleted": "boolean"} if self.soft_deletes else {}), **self.fields}
        self.lower = {name.lower(): name for name in self.fields}

    def resolve(self, name: str) -> str | None:
        """The API name of a field named in any case (SOQL names are case-insensitive)."""
        return self.lower.get(name.lower())

    def add_field(self, name: str, kind: str) -> None:
        if name.lower() not in self.lower:
            self.fields[name] = kind
            self.lower[name.lower()] = name


def standard_objects() -> dict[str, SObject]:
    owner = {"OwnerId": ("User",)}
    objects = [
        SObject("Account", "001", {"Name": "string", "Website": "url", "Industry": "picklist", "AnnualRevenue": "currency",
                                   "OwnerId": "reference", "Type": "picklist", "Phone": "phone",
                                   "BillingCountry": "string", "Description": "textarea"},
                required=("Name",), references=owner),
        SObject("Contact", "003", {"AccountId": "reference", "Email": "email", "FirstName": "string",
                                   "LastName": "string", "Title": "string", "Phone": "phone", "OwnerId": "reference"},
                required=("LastName",), references={**owner, "AccountId": ("Account",)}),
        SObject("Opportunity", "006", {"AccountId": "reference", "Name": "string", "Amount": "currency",
                                       "StageName": "picklist", "CloseDate": "date", "Type": "picklist",
                                       "IsClosed": "boolean", "IsWon": "boolean", "Probability": "double",
                                       "OwnerId": "reference"},
                required=("Name", "StageName", "CloseDate"), references={**owner, "AccountId": ("Account",)}),
        SObject("User", "005", {"Name": "string", "FirstName": "string", "LastName": "string", "Email": "email",
                                "Username": "string", "IsActive": "boolean"},
                required=("LastName", "Email", "Username"), soft_deletes=False, defaults={"IsActive": True}),
        SObject("Task", "00T", {"Subject": "string", "WhatId": "reference", "WhoId": "reference",
                                "OwnerId": "reference", "ActivityDate": "date", "Status": "picklist",
                                "Priority": "picklist", "Description": "textarea"},
                picklists={"Status": TASK_STATUSES, "Priority": PRIORITIES},
                references={**owner, "WhatId": ("Account", "Opportunity"), "WhoId": ("Contact",)},
                defaults={"Status": "Not Started", "Priority": "Normal"}),
    ]
    return {o.name: o for o in objects}


CUSTOM_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*__c$")


def guess_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "double"
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return "date"
    if isinstance(value, str) and re.match(r"\d{4}-\d{2}-\d{2}T", value) and epoch_of(value) is not None:
        return "datetime"
    return "string"


def derived_fields(sobject: SObject, values: dict[str, Any]) -> None:
    """Fields Salesforce computes: an Opportunity's IsClosed/IsWon follow its stage; a User's Name."""
    if sobject.name == "Opportunity" and "StageName" in values:
        stage = str(values.get("StageName") or "")
        values["IsClosed"] = stage.startswith("Closed")
        values["IsWon"] = stage == "Closed Won"
    if sobject.name == "User" and ("FirstName" in values or "LastName" in values) and "Name" not in values:
        values["Name"] = " ".join(str(p) for p in (values.get("FirstName"), values.get("LastName")) if p)


def check_value(sobject: SObject, name: str, value: Any) -> tuple[Any, dict[str, Any] | None]:
    """A written value as stored, or an error (wrong type, too long, not in a restricted picklist)."""
    kind = sobject.fields[name]
    if value is None:
        return None, None
    if kind in TEXT_TYPES and type(value) is str and len(value) <= MAX_LENGTH[kind] and name not in sobject.picklists:
        return value, None   # the common case, fast: seeding 100k records checks a million values
    stored = converted(kind, value)
    if stored is None:
        return None, error("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{name}: value not of required type: {value!r}", name)
    if kind not in TEXT_TYPES and kind not in ID_TYPES:
        return stored, None
    limit = MAX_LENGTH.get(kind)
    if limit and len(value) > limit:
        return None, error("STRING_TOO_LONG", f"{name}: data value too large: {value[:40]}... (max length={limit})",
                           name)
    allowed = sobject.picklists.get(name)
    if allowed and value not in allowed:
        return None, error("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                           f"{name}: bad value for restricted picklist field: {value}", name)
    return value, None


def converted(kind: str, value: Any) -> Any:
    """`value` as a field of `kind` stores it, or None when it is not of that type."""
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind in ("double", "currency", "int"):
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind == "date":
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            return None
    if kind == "datetime":
        epoch = epoch_of(str(value))
        return api_datetime(epoch) if epoch is not None else None
    return value if isinstance(value, str) else None


def check_write(sobject: SObject, values: Mapping[str, Any], *, creating: bool,
                allow: frozenset[str] = frozenset()) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Field names resolved and values checked: (clean values, errors). References are checked
    by the store, which knows the records."""
    clean: dict[str, Any] = {}
    for given, value in values.items():
        if given == "attributes":
            continue
        name = sobject.resolve(given)
        if name is None:
            return {}, [error("INVALID_FIELD", f"No such column '{given}' on sobject of type {sobject.name}", given)]
        if (name in READ_ONLY or name in ("IsClosed", "IsWon")) and name not in allow:
            return {}, [error("INVALID_FIELD_FOR_INSERT_UPDATE",
                              f"Unable to create/update fields: {name}. Please check the security settings of this "
                              "field and verify that it is read/write for your profile or permission set.", name)]
        stored, problem = check_value(sobject, name, value)
        if problem:
            return {}, [problem]
        clean[name] = stored
    if creating:
        missing = [name for name in sobject.required if clean.get(name) in (None, "")]
        if missing:
            return {}, [error("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                              *missing)]
    return clean, []
