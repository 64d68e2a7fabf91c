"""The usage sandbox's state: change-ordered collections, in-app messages, and a demo data set.

A `ChangeLog` keeps objects with a growing `cursor`; every change appends an entry (the object's
older entries go stale), so "what changed after cursor C" is one binary search, at 100k+ rows too.
"""

from __future__ import annotations

import bisect
import random
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

FEATURES = ("report_export", "dashboard_share", "alert_created", "api_call")


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ChangeLog:
    """Objects by id, listable in change order after a cursor."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.cursors: list[str] = []
        self.owners: list[str] = []
        self.sequence = 0

    def put(self, obj: dict[str, Any], stamp: str) -> dict[str, Any]:
        self.sequence += 1
        obj["cursor"] = f"{self.sequence:012d}"
        obj["updated_at"] = stamp
        self.objects[obj["id"]] = obj
        self.cursors.append(obj["cursor"])
        self.owners.append(obj["id"])
        return obj

    def changed_after(self, after: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` objects changed after `after`, and whether more follow."""
        found: list[dict[str, Any]] = []
        for index in range(bisect.bisect_right(self.cursors, after), len(self.cursors)):
            obj = self.objects[self.owners[index]]
            if obj["cursor"] != self.cursors[index]:
                continue  # stale entry: the object changed again later
            if len(found) == limit:
                return found, True
            found.append(obj)
        return found, False


class UsageWorld:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.accounts = ChangeLog()
        self.usage = ChangeLog()
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.replies: dict[str, dict[str, Any]] = {}
        self.failures: list[int] = []
        self.requests = 0

    def put_account(self, seed: Mapping[str, Any]) -> dict[str, Any]:
        current = self.accounts.objects.get(str(seed["id"]), {})
        account = {"name": f"Account {seed['id']}", "domain": None, "plan": None, "created_at": iso(self.clock()),
                   "deleted": False, **current, **seed, "id": str(seed["id"])}
        return self.accounts.put(account, iso(self.clock()))

    def put_usage(self, seed: Mapping[str, Any]) -> dict[str, Any]:
        """A new (account, day) row, or a correction of one (late events arrive, counts change)."""
        row_id = f"{seed['account_id']}:{seed['day']}"
        current = self.usage.objects.get(row_id, {})
        row = {"active_users": 0, "logins": 0, "feature_events": {}, **current, **seed, "id": row_id,
               "account_id": str(seed["account_id"])}
        return self.usage.put(row, iso(self.clock()))

    def add_message(self, account_id: str, text: str) -> dict[str, Any]:
        messages = self.messages.setdefault(account_id, [])
        message = {"id": f"msg_{sum(map(len, self.messages.values())) + 1}", "account_id": account_id,
                   "text": text, "created_at": iso(self.clock())}
        messages.append(message)
        return message


def demo_dataset(accounts: int = 12, days: int = 30, *, today: date | None = None, seed: int = 7) -> dict[str, Any]:
    """Accounts with `days` of daily usage: most steady, every fourth fading away, then silent.

    The fading ones are the churn risks the health score's usage factors should find.
    """
    rng = random.Random(seed)
    today = today or datetime.now(UTC).date()
    data: dict[str, Any] = {"accounts": [], "usage": []}
    for number in range(accounts):
        account_id = f"acct_{number:04d}"
        seats = rng.randint(5, 60)
        fading = number % 4 == 3
        data["accounts"].append({"id": account_id, "name": f"Demo Account {number}",
                                 "domain": f"demo{number}.example", "plan": rng.choice(["starter", "growth", "pro"])})
        for back in range(days, 0, -1):
            day = today - timedelta(days=back)
            # a fading account dwindles over the first two thirds of the window, then goes silent
            share = max(0.0, 1 - (days - back) / (days * 2 / 3)) if fading else 1.0
            active = round(seats * rng.uniform(0.4, 0.8) * share)
            data["usage"].append({
                "account_id": account_id, "day": day.isoformat(), "active_users": active,
                "logins": round(active * rng.uniform(1.0, 2.5)),
                "feature_events": {f: round(active * rng.uniform(0, 1.5)) for f in FEATURES},
            })
    return data
