"""A local, stateful emulator of one Salesforce org's REST API, for tests and the demo.

    sandbox = start_sandbox(dataset, clock=fake_clock)         # serves on 127.0.0.1
    connector = SalesforceConnector(SalesforceSettings(**sandbox.settings()), now=fake_clock)
    sandbox.update("Account", "001SB0000000001AAA", {"NPS__c": 3})   # bumps SystemModstamp
    sandbox.delete("Contact", contact_id)                      # soft delete: queryAll shows it
    sandbox.advance_clock(7200)                                # only with a clock that can advance
    sandbox.stop()

Dataset (a dict, or the path of a JSON file holding one): lists of records shaped like the REST
API's, keyed by object, every list optional (`attributes` is ignored if present):

    {"User":        [{"Id": "005...", "Name": "Ann Owner", "Email": "ann@corp.example", "IsActive": true,
                      "FirstName": "Ann", "LastName": "Owner", "Username": "ann@corp.example"}],
     "Account":     [{"Id": "001...", "Name": "Acme", "Website": "acme.com", "Industry": "Technology",
                      "AnnualRevenue": 1250000.0, "OwnerId": "005...", "Type": "Customer",
                      "CreatedDate": "2024-01-05T09:00:00.000+0000", "SystemModstamp": "2024-05-01T12:00:00.000+0000",
                      "IsDeleted": false, "NPS__c": 9, "Last_Login__c": "2024-05-01T08:00:00.000+0000"}],
     "Contact":     [{"Id": "003...", "AccountId": "001...", "Email": "jo@acme.com", "FirstName": "Jo",
                      "LastName": "Doe", "Title": "CTO", "SystemModstamp": "..."}],
     "Opportunity": [{"Id": "006...", "AccountId": "001...", "Name": "Acme renewal 2024", "Amount": 24000.0,
                      "StageName": "Closed Won", "CloseDate": "2024-04-30", "Type": "Renewal", "SystemModstamp": "..."}]}

- `Id`: 18 characters (15 gets its checksum suffix); missing ones are made up (`001SB...`).
- Datetimes in any ISO-8601 form (`...Z`, `...+0000`); they are kept to the whole second, as
  Salesforce does. `SystemModstamp` defaults to `LastModifiedDate`, then `CreatedDate`, then now.
- `IsDeleted: true` seeds a soft-deleted record (only `queryAll` returns it). An Opportunity's
  `IsClosed`/`IsWon` follow its `StageName` unless given; a User's `Name` its first and last names.
- Fields outside the standard ones (custom `Xxx__c` ones included) are added to the object, their
  type guessed from the values. References are not checked when seeding.

Credentials: `sandbox.settings()` uses the client credentials grant of the connected app the
sandbox was started with (`client_id`, `client_secret`); `sandbox.settings(grant="jwt",
private_key_file=...)` uses the JWT bearer grant, which works when the sandbox holds the matching
`public_key`. Tokens expire after `session_seconds` on the sandbox clock; the daily API budget is
`daily_api_limit` calls (starting at `api_usage`). Task has the External ID field `Churnhub_Key__c`
(the connector's default `task_idempotency_field`); `external_ids` adds more.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub import AdjustableClock, FaultProfile, RunningServer, serve_in_thread

from .sandbox_app import DailyBudget, SalesforceApi, build_app
from .sandbox_auth import ConnectedApp, Sessions
from .sandbox_query import Cursors
from .sandbox_store import OrgStore

API_VERSION = "61.0"
TASK_KEY_FIELD = "Churnhub_Key__c"


@dataclass
class SalesforceSandbox:
    store: OrgStore
    api: SalesforceApi
    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.url

    def settings(self, grant: str = "client_credentials", *, private_key_file: str | Path | None = None,
                 **overrides: Any) -> dict[str, Any]:
        """The connector settings (minus `type`) that point at this sandbox with credentials it accepts.
        The sandbox does not throttle per second, so neither does the connector."""
        app = self.api.sessions.app
        if grant == "jwt":
            if private_key_file is None:
                raise ValueError("the JWT grant needs the private_key_file matching the sandbox's public_key")
            auth: dict[str, Any] = {"grant": "jwt", "client_id": app.client_id, "username": app.username,
                                    "private_key_file": str(private_key_file)}
        else:
            auth = {"grant": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret}
        return {"login_url": self.url, "api_version": API_VERSION, "auth": auth, "requests_per_second": 1000,
                **overrides}

    def stop(self) -> None:
        self.server.stop()

    # -- for tests and the demo: changes stamp SystemModstamp like Salesforce -------------------

    @property
    def clock(self) -> Callable[[], float]:
        return self.store.clock

    def advance_clock(self, seconds: float) -> None:
        advance = getattr(self.store.clock, "advance", None)
        if advance is None:
            raise TypeError("this sandbox's clock cannot be advanced; pass a clock with .advance()")
        advance(seconds)

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        with self.store.lock:
            found = self.store.table(sobject).find(record_id)
            return dict(found) if found is not None else None

    def records(self, sobject: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every record of `sobject` in (SystemModstamp, Id) order."""
        with self.store.lock:
            table = self.store.table(sobject)
            found = (table.records[record_id] for _, record_id in table.order)
            return [dict(r) for r in found if include_deleted or not r.get("IsDeleted")]

    def created(self, sobject: str) -> list[dict[str, Any]]:
        """Records created through the API, oldest first."""
        with self.store.lock:
            return [dict(r) for i in self.store.created[sobject] if (r := self.store.table(sobject).find(i))]

    def create(self, sobject: str, values: Mapping[str, Any]) -> str:
        with self.store.lock:
            record_id, errors = self.store.create(sobject, values)
        if errors or record_id is None:
            raise ValueError(f"cannot create {sobject}: {errors}")
        return record_id

    def update(self, sobject: str, record_id: str, values: Mapping[str, Any], *,
               modstamp: float | None = None) -> dict[str, Any]:
        """Change a record as a user would (SystemModstamp = now, or `modstamp`)."""
        with self.store.lock:
            errors = self.store.update(sobject, record_id, values, modstamp=modstamp,
                                       allow=frozenset({"IsClosed", "IsWon"}))
            if errors:
                raise ValueError(f"cannot update {sobject} {record_id}: {errors}")
            return dict(self.store.table(sobject).find(record_id) or {})

    def delete(self, sobject: str, record_id: str) -> None:
        """Soft delete: into the recycle bin, visible to queryAll with IsDeleted = true."""
        with self.store.lock:
            self.store.soft_delete(sobject, record_id)

    def purge(self, sobject: str, record_id: str) -> None:
        """Hard delete: the record vanishes from query and queryAll alike."""
        with self.store.lock:
            self.store.purge(sobject, record_id)

    def expire_sessions(self) -> None:
        with self.store.lock:
            self.api.sessions.expire_all()

    def expire_query_locators(self) -> None:
        with self.store.lock:
            self.api.cursors.expire_all()

    @property
    def api_usage(self) -> tuple[int, int]:
        budget = self.api.budget
        budget.roll()
        return budget.used, budget.limit

    def set_api_usage(self, used: int, limit: int | None = None) -> None:
        with self.store.lock:
            self.api.budget.used = used
            if limit is not None:
                self.api.budget.limit = limit

    @property
    def tokens_issued(self) -> int:
        return self.api.sessions.issued

    @property
    def request_log(self) -> deque[tuple[str, str, int]]:
        """(method, path?query, status) of the requests served (the latest 100,000), oldest first."""
        return self.api.log


def load_dataset(dataset: Mapping[str, Any] | str | Path | None) -> Mapping[str, Any]:
    if dataset is None:
        return {}
    if isinstance(dataset, str | Path):
        return json.loads(Path(dataset).read_text(encoding="utf-8"))
    return dataset


def start_sandbox(dataset: Mapping[str, Any] | str | Path | None = None, *,
                  clock: Callable[[], float] | None = None,
                  client_id: str = ConnectedApp.client_id, client_secret: str = ConnectedApp.client_secret,
                  username: str = ConnectedApp.username, public_key: str | bytes | None = None,
                  session_seconds: float = 7200, daily_api_limit: int = 100_000, api_usage: int = 0,
                  max_batch_size: int = 2000, locator_ttl: float = 900,
                  custom_fields: Mapping[str, Mapping[str, str]] | None = None,
                  external_ids: Mapping[str, Iterable[str]] | None = None,
                  faults: FaultProfile | None = None) -> SalesforceSandbox:
    """Seed an org from `dataset` and serve it on 127.0.0.1 (see the module docstring)."""
    clock = clock or AdjustableClock()
    ids = {name: list(fields) for name, fields in (external_ids or {}).items()}
    ids.setdefault("Task", [])
    if TASK_KEY_FIELD not in ids["Task"]:
        ids["Task"].append(TASK_KEY_FIELD)
    store = OrgStore(clock, custom_fields=custom_fields, external_ids=ids)
    store.seed(load_dataset(dataset))
    app = ConnectedApp(client_id=client_id, client_secret=client_secret, username=username, public_key=public_key)
    sessions = Sessions(app, clock, store.running_user, session_seconds=session_seconds)
    api = SalesforceApi(store, sessions, Cursors(clock, ttl=locator_ttl), DailyBudget(daily_api_limit, clock, api_usage),
                        max_batch_size=max_batch_size)
    server = serve_in_thread(build_app(api), name="salesforce", faults=faults)
    api.url = sessions.login_url = server.url
    return SalesforceSandbox(store, api, server)
