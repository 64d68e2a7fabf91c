"""The demo world as a product-usage export (the `usage` connector type's sandbox dataset).

    usage_dataset(world) ->
    {"accounts": [{"id": "acct_00001", "name": "Acme", "domain": "acme.example", "plan": "pro",
                   "created_at": "2026-01-05T09:00:00Z", "deleted": false, "crm_id": "001..."}],
     "usage":    [{"account_id": "acct_00001", "day": "2026-06-01", "active_users": 14, "logins": 31,
                   "feature_events": {"events": 412}}]}

The format is the one documented in examples/churnhub-usage/churnhub_usage/sandbox.py. Accounts
carry the company's primary domain and its Salesforce account id (`crm_id`, an explicit link, so
companies sharing a domain still resolve to the right customer); usage rows come from `activity.usage_series`, the last USAGE_DAYS days only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub.demo.activity import usage_series
from hub.demo.world import DAY, World

USAGE_DAYS = 120        # enough history for the usage factor's trend windows, small enough to stay fast


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def account_id(index: int) -> str:
    return f"acct_{index:05d}"


def usage_dataset(world: World, days: int = USAGE_DAYS) -> dict[str, Any]:
    """Accounts and daily usage rows for every company in the world."""
    first_day = world.now // DAY - days
    accounts: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for company in world.companies:
        ident = account_id(company.index)
        accounts.append({"id": ident, "name": company.name, "domain": company.domain, "plan": company.plan,
                         "crm_id": company.sf_id, "created_at": iso(company.created), "deleted": False})
        series = usage_series(world, company)
        for day, active, logins, events in zip(series.days.tolist(), series.active_users.tolist(),
                                               series.logins.tolist(), series.events.tolist(), strict=True):
            if day < first_day:
                continue
            rows.append({"account_id": ident, "day": datetime.fromtimestamp(day * DAY, UTC).date().isoformat(),
                         "active_users": int(active), "logins": int(logins),
                         "feature_events": {"events": int(events)}})
    return {"accounts": accounts, "usage": rows}
