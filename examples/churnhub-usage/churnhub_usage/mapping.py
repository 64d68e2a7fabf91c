"""Pure functions: usage-export JSON -> churnhub records.

An account becomes an `account` record (its domain lets identity match it to CRM and billing);
a daily usage row becomes a `usage` record with the canonical fields the health factors read:
`account_id`, `day`, `active_users`, `logins` and `events` (the key feature events of that day).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from hub import Kind, Record


def parse_time(value: str | None) -> datetime | None:
    """ISO-8601 with `Z` or an offset -> an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def map_account(account: dict[str, Any]) -> Record:
    """One account object as a canonical `account` record (a tombstone when deleted)."""
    domain = account.get("domain")
    crm_id = account.get("crm_id")      # optional: the CRM account id, an explicit identity link
    return Record(
        kind=Kind.ACCOUNT,
        external_id=str(account["id"]),
        fields={"name": account.get("name") or "", "domains": [domain] if domain else [],
                "plan": account.get("plan"), "created_at": account.get("created_at"),
                **({"links": {"salesforce_account_id": str(crm_id)}} if crm_id else {})},
        deleted=bool(account.get("deleted")),
        updated_at=parse_time(account.get("updated_at")),
    )


def key_feature_events(feature_events: dict[str, int], key_features: Iterable[str] | None) -> int:
    """The day's count of key feature events (every feature when `key_features` is None)."""
    if key_features is None:
        return sum(feature_events.values())
    return sum(feature_events.get(name, 0) for name in key_features)


def map_daily_usage(row: dict[str, Any], key_features: Iterable[str] | None = None) -> Record:
    """One (account, day) usage row as a canonical `usage` record."""
    features = {str(k): int(v) for k, v in (row.get("feature_events") or {}).items()}
    return Record(
        kind=Kind.USAGE,
        external_id=f"{row['account_id']}:{row['day']}",
        fields={"account_id": str(row["account_id"]), "day": row["day"],
                "active_users": int(row.get("active_users") or 0), "logins": int(row.get("logins") or 0),
                "events": key_feature_events(features, key_features), "feature_events": features},
        updated_at=parse_time(row.get("updated_at")),
    )
