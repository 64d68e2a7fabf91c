"""The Salesforce connector: four incremental streams in, three batched operations out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx
from pydantic import BaseModel

from hub import (
    CheckResult,
    Connector,
    ConnectorError,
    Kind,
    Operation,
    OperationResult,
    Page,
    RetryPolicy,
    Stream,
)

from . import mapping
from .client import SalesforceClient
from .operations import CreateTask, UpdateAccount, Upsert, execute_batch
from .settings import SalesforceSettings
from .streams import StreamReader, StreamSpec

SPECS = {
    "accounts": StreamSpec("Account", mapping.ACCOUNT_FIELDS, mapping.map_account),
    "contacts": StreamSpec("Contact", mapping.CONTACT_FIELDS, mapping.map_contact),
    "opportunities": StreamSpec("Opportunity", mapping.OPPORTUNITY_FIELDS, mapping.map_opportunity),
    "users": StreamSpec("User", mapping.USER_FIELDS, mapping.map_user, soft_deletes=False),
}
STREAMS = {
    "accounts": Stream("accounts", (Kind.ACCOUNT,), "Accounts with website, owner, custom fields and mapped facts"),
    "contacts": Stream("contacts", (Kind.CONTACT,), "Contacts of accounts"),
    "opportunities": Stream("opportunities", (Kind.OPPORTUNITY,),
                            "Opportunities: amount, stage, close date, new business/renewal/upsell"),
    "users": Stream("users", (Kind.USER,), "Users (account and task owners)"),
}
OPERATIONS = {
    "create_task": Operation("create_task", CreateTask,
                             "a Task on an account (for its owner by default), once per idempotency key"),
    "update_account": Operation("update_account", UpdateAccount, "set fields on an Account"),
    "upsert": Operation("upsert", Upsert, "create or update any record by an external id field"),
}


class SalesforceConnector(Connector):
    streams = STREAMS
    operations = OPERATIONS

    def __init__(self, settings: SalesforceSettings, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], float] = time.time, retry: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.client = SalesforceClient(settings, transport=transport, sleep=sleep, clock=clock, now=now, retry=retry)
        self.reader = StreamReader(self.client, now, settings.lookback_seconds)

    def check(self) -> CheckResult:
        """One login and one `GET /limits`: proves the credentials and shows the day's API use."""
        try:
            limits = self.client.limits()
        except ConnectorError as error:
            return CheckResult(ok=False, detail=str(error))
        daily = limits.get("DailyApiRequests") or {}
        used = f"{daily['Max'] - daily['Remaining']}/{daily['Max']}" if {"Max", "Remaining"} <= set(daily) else "?"
        return CheckResult(ok=True, detail=f"logged in ({self.settings.auth.grant}) to {self.client.auth.instance_url}, "
                                           f"API v{self.settings.api_version}; daily API requests used {used}")

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        if stream not in SPECS:
            raise ValueError(f"salesforce has no stream {stream!r}; it has {', '.join(SPECS)}")
        spec = SPECS[stream]
        options = {"facts": self.settings.facts} if stream == "accounts" else {}
        return self.reader.read(spec, state, extra=self.settings.extra_fields(spec.sobject), map_options=options)

    def execute(self, operation: str, params: BaseModel, *, idempotency_key: str) -> OperationResult:
        return self.execute_many(operation, [(params, idempotency_key)])[0]

    def execute_many(self, operation: str, items: Sequence[tuple[BaseModel, str]]) -> list[OperationResult]:
        if operation not in OPERATIONS:
            raise ValueError(f"salesforce has no operation {operation!r}; it has {', '.join(OPERATIONS)}")
        model = OPERATIONS[operation].params
        typed = [(p if isinstance(p, model) else model.model_validate(p.model_dump() if isinstance(p, BaseModel) else p),
                  key) for p, key in items]
        return execute_batch(self.client, self.settings, operation, typed)

    @property
    def request_count(self) -> int:
        return self.client.request_count

    def close(self) -> None:
        self.client.close()
