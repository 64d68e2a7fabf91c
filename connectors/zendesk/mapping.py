"""Pure functions: Zendesk API JSON -> canonical `Record`s.

    organization -> account       user -> contact (end-user) or user (agent, admin)
    ticket       -> ticket        satisfaction rating -> satisfaction {type: csat, score: good|bad}
    an NPS field (settings `nps_field`) on any of them -> satisfaction {type: nps, score: 0..10}

Deletions: tickets with `status: "deleted"`, users with `active: false` (Zendesk deactivates
deleted users) and organizations with a `deleted_at` become `Record(deleted=True)`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hub import Kind, Record

from .settings import NpsField

_SF_ACCOUNT = re.compile(r"^001[a-zA-Z0-9]{12}(?:[A-Z0-5]{3})?$")
_SF_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_NPS_NUMBER = re.compile(r"(?:^|\D)(\d{1,2})$")  # "9", "nps_9" (a dropdown field's tag value)
# The form Zendesk sends, with only values valid in every month (a day above 28 takes the slow path,
# which also rejects 2023-02-30) and a four-digit year (strftime writes year 999 as "999").
_CANONICAL = re.compile(r"[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
                        r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z")
STAFF_ROLES = ("agent", "admin")


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def iso(value: Any) -> str | None:
    """Any Zendesk timestamp -> `2024-05-01T12:00:00Z` (None stays None)."""
    if type(value) is str and _CANONICAL.fullmatch(value):
        return value   # already canonical: parsing and formatting would give it back (0.5 us, not 3)
    moment = parse_time(value)
    # what datetime.strftime calls for a format without %z/%Z/%f, minus its format rewriting
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", moment.timetuple()) if moment else None


def unix(value: Any) -> int:
    moment = parse_time(value)
    return int(moment.timestamp()) if moment else 0


def text_id(value: Any) -> str | None:
    return None if value is None else str(value)


def salesforce_account_id(value: Any) -> str | None:
    """A Salesforce Account id (prefix 001, 15 or 18 characters, valid checksum) as 18 characters."""
    if not isinstance(value, str) or not _SF_ACCOUNT.match(value.strip()):
        return None
    value = value.strip()
    suffix = "".join(
        _SF_SUFFIX[sum(1 << i for i, char in enumerate(value[start:start + 5]) if "A" <= char <= "Z")]
        for start in (0, 5, 10)
    )
    if len(value) == 18 and value[15:] != suffix:
        return None
    return value[:15] + suffix


def nps_score(value: Any) -> int | None:
    """0..10 from a number or a numeric (dropdown) value; anything else is not a score."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _NPS_NUMBER.search(str(value).strip())
        if not match:
            return None
        number = float(match.group(1))
    return int(number) if number.is_integer() and 0 <= number <= 10 else None


def nps_value(obj: Mapping[str, Any], nps: NpsField) -> Any:
    if nps.object == "organization":
        return (obj.get("organization_fields") or {}).get(nps.field)
    if nps.object == "user":
        return (obj.get("user_fields") or {}).get(nps.field)
    for custom in obj.get("custom_fields") or ():
        if str(custom.get("id")) == nps.field:
            return custom.get("value")
    return None


def nps_record(obj: Mapping[str, Any], nps: NpsField, *, deleted: bool = False) -> Record | None:
    """The NPS response held in a field of `obj` (an object of the kind `nps.object` names)."""
    score = nps_score(nps_value(obj, nps))
    if score is None and not deleted:
        return None
    fields: dict[str, Any] = {
        "type": "nps",
        "score": score,
        "source": f"{nps.object}.{nps.field}",
        "created_at": iso(obj.get("updated_at")),
    }
    if nps.object == "organization":
        fields["account_id"] = text_id(obj.get("id"))
    elif nps.object == "user":
        fields.update(account_id=text_id(obj.get("organization_id")), requester_id=text_id(obj.get("id")))
    else:
        fields.update(account_id=text_id(obj.get("organization_id")), requester_id=text_id(obj.get("requester_id")),
                      ticket_id=text_id(obj.get("id")))
    return Record(Kind.SATISFACTION, f"nps:{nps.object}:{obj['id']}", fields, deleted=deleted,
                  updated_at=parse_time(obj.get("updated_at")))


def _with_nps(record: Record, obj: Mapping[str, Any], nps: NpsField | None, kind: str) -> list[Record]:
    extra = nps_record(obj, nps, deleted=record.deleted) if nps and nps.object == kind else None
    return [record, extra] if extra else [record]


def map_organization(org: Mapping[str, Any], nps: NpsField | None = None) -> list[Record]:
    external_id = org.get("external_id")
    salesforce_id = salesforce_account_id(external_id)
    fields: dict[str, Any] = {
        "name": org.get("name"),
        "domains": list(org.get("domain_names") or []),
        "links": {"salesforce_account_id": salesforce_id} if salesforce_id else {},
        "external_id": external_id,
        "tags": list(org.get("tags") or []),
        "organization_fields": dict(org.get("organization_fields") or {}),
        "details": org.get("details"),
        "notes": org.get("notes"),
        "group_id": text_id(org.get("group_id")),
        "created_at": iso(org.get("created_at")),
        "updated_at": iso(org.get("updated_at")),
    }
    if nps and nps.object == "organization":
        fields["nps"] = nps_score(nps_value(org, nps))
    record = Record(Kind.ACCOUNT, str(org["id"]), fields, deleted=bool(org.get("deleted_at")),
                    updated_at=parse_time(org.get("updated_at")))
    return _with_nps(record, org, nps, "organization")


def map_user(user: Mapping[str, Any], nps: NpsField | None = None) -> list[Record]:
    role = user.get("role") or "end-user"
    fields = {
        "name": user.get("name"),
        "email": user.get("email"),
        "role": role,
        "account_id": text_id(user.get("organization_id")),
        "phone": user.get("phone"),
        "external_id": user.get("external_id"),
        "tags": list(user.get("tags") or []),
        "user_fields": dict(user.get("user_fields") or {}),
        "suspended": bool(user.get("suspended")),
        "created_at": iso(user.get("created_at")),
        "updated_at": iso(user.get("updated_at")),
    }
    kind = Kind.USER if role in STAFF_ROLES else Kind.CONTACT
    record = Record(kind, str(user["id"]), fields, deleted=user.get("active") is False,
                    updated_at=parse_time(user.get("updated_at")))
    return _with_nps(record, user, nps, "user")


def solved_at(ticket: Mapping[str, Any]) -> str | None:
    """When a solved/closed ticket was solved.

    The ticket object has no solve time (ticket metrics do): use `solved_at` or a side-loaded
    `metric_set.solved_at` when present, else `updated_at`, exact unless the ticket was edited
    after solving (a closed ticket's `updated_at` is when it closed, usually days later).
    """
    if ticket.get("status") not in ("solved", "closed"):
        return None
    metric_set = ticket.get("metric_set") or {}
    return iso(ticket.get("solved_at") or metric_set.get("solved_at") or ticket.get("updated_at"))


def map_ticket(ticket: Mapping[str, Any], nps: NpsField | None = None) -> list[Record]:
    rating = ticket.get("satisfaction_rating")
    rating = rating if isinstance(rating, Mapping) else {}
    fields = {
        "account_id": text_id(ticket.get("organization_id")),
        "requester_id": text_id(ticket.get("requester_id")),
        "assignee_id": text_id(ticket.get("assignee_id")),
        "group_id": text_id(ticket.get("group_id")),
        "status": ticket.get("status"),
        "priority": ticket.get("priority"),
        "type": ticket.get("type"),
        "subject": ticket.get("subject") or "",
        "description": ticket.get("description") or "",
        "created_at": iso(ticket.get("created_at")),
        "updated_at": iso(ticket.get("updated_at")),
        "solved_at": solved_at(ticket),
        "due_at": iso(ticket.get("due_at")),
        "tags": list(ticket.get("tags") or []),
        "satisfaction": rating.get("score"),
        "satisfaction_comment": rating.get("comment"),
        "channel": (ticket.get("via") or {}).get("channel"),
        "external_id": ticket.get("external_id"),
        "custom_fields": {str(c.get("id")): c.get("value") for c in ticket.get("custom_fields") or ()},
    }
    record = Record(Kind.TICKET, str(ticket["id"]), fields, deleted=ticket.get("status") == "deleted",
                    updated_at=parse_time(ticket.get("updated_at")))
    return _with_nps(record, ticket, nps, "ticket")


def map_satisfaction_rating(rating: Mapping[str, Any]) -> Record | None:
    """A received CSAT rating; `offered`/`unoffered` are survey states, not answers (None)."""
    if rating.get("score") not in ("good", "bad"):
        return None
    fields = {
        "type": "csat",
        "score": rating["score"],
        "comment": rating.get("comment"),
        "reason": rating.get("reason"),
        "ticket_id": text_id(rating.get("ticket_id")),
        "requester_id": text_id(rating.get("requester_id")),
        "assignee_id": text_id(rating.get("assignee_id")),
        # the rating carries no organization; the hub can join on ticket_id when it is absent
        "account_id": text_id(rating.get("organization_id")),
        "created_at": iso(rating.get("created_at")),
        "updated_at": iso(rating.get("updated_at")),
    }
    return Record(Kind.SATISFACTION, str(rating["id"]), fields, updated_at=parse_time(rating.get("updated_at")))
