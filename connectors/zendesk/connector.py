"""The Zendesk connector: four inbound streams and five outbound operations."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
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
    PermanentError,
    RetryPolicy,
    Stream,
)

from . import operations as ops
from .client import EXPORT_ADMIN_ONLY, ZendeskClient
from .mapping import map_ticket, map_user
from .settings import ZendeskSettings
from .streams import StreamContext, read_cursor_export, read_organizations, read_satisfaction_ratings

STREAMS = {
    "organizations": Stream("organizations", (Kind.ACCOUNT, Kind.SATISFACTION),
                            "organizations (time-based incremental export); NPS when nps_field names one"),
    "users": Stream("users", (Kind.CONTACT, Kind.USER, Kind.SATISFACTION),
                    "end-users as contacts, agents and admins as users (cursor incremental export)"),
    "tickets": Stream("tickets", (Kind.TICKET, Kind.SATISFACTION), "tickets (cursor incremental export)"),
    "satisfaction_ratings": Stream("satisfaction_ratings", (Kind.SATISFACTION,), "received CSAT ratings"),
}

_OPERATIONS: dict[str, tuple[type[BaseModel], Callable[..., OperationResult], str]] = {
    "add_organization_tags": (ops.AddOrganizationTags, ops.add_organization_tags, "add tags, keep the others"),
    "remove_organization_tags": (ops.RemoveOrganizationTags, ops.remove_organization_tags,
                                 "remove tags, keep the others"),
    "set_organization_fields": (ops.SetOrganizationFields, ops.set_organization_fields,
                                "set some organization_fields"),
    "create_ticket": (ops.CreateTicket, ops.create_ticket, "create a ticket once per idempotency key"),
    "add_ticket_note": (ops.AddTicketNote, ops.add_ticket_note, "add an internal note once per idempotency key"),
}
OPERATIONS = {name: Operation(name, model, text) for name, (model, _, text) in _OPERATIONS.items()}


class ZendeskConnector(Connector):
    streams = STREAMS
    operations = OPERATIONS

    def __init__(self, settings: ZendeskSettings, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], float] = time.time, retry: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.client = ZendeskClient(settings, transport=transport, sleep=sleep, clock=clock, retry=retry)
        self.context = StreamContext(self.client, now, settings.nps_field)

    def check(self) -> CheckResult:
        try:
            user = self.client.get("/api/v2/users/me.json").get("user") or {}
        except ConnectorError as error:
            return CheckResult(ok=False, detail=str(error))
        if user.get("id") is None:  # Zendesk answers unknown callers with an anonymous user
            return CheckResult(ok=False, detail=f"{self.client.base_url} did not recognise these credentials")
        who = f"{user.get('name')} <{user.get('email')}> ({user.get('role')})"
        if user.get("role") != "admin":
            return CheckResult(ok=False, detail=f"authenticated as {who}, but {EXPORT_ADMIN_ONLY}")
        return CheckResult(ok=True, detail=f"authenticated as {who} at {self.client.base_url}")

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        if stream == "organizations":
            return read_organizations(self.context, state)
        if stream == "users":
            return read_cursor_export(self.context, "users", state, map_user)
        if stream == "tickets":
            return read_cursor_export(self.context, "tickets", state, map_ticket)
        if stream == "satisfaction_ratings":
            return read_satisfaction_ratings(self.context, state)
        raise ValueError(f"zendesk has no stream {stream!r}; it has {', '.join(STREAMS)}")

    def execute(self, operation: str, params: BaseModel, *, idempotency_key: str) -> OperationResult:
        if operation not in _OPERATIONS:
            raise ValueError(f"zendesk has no operation {operation!r}; it has {', '.join(_OPERATIONS)}")
        model, run, _ = _OPERATIONS[operation]
        if not isinstance(params, model):
            params = model.model_validate(params.model_dump() if isinstance(params, BaseModel) else params)
        try:
            return run(self.client, params, idempotency_key)
        except PermanentError as refusal:  # 404, 422: the same request would be refused again
            return OperationResult(ok=False, error=str(refusal), code=refusal.code, retryable=False)

    @property
    def request_count(self) -> int:
        return self.client.request_count

    def close(self) -> None:
        self.client.close()
