"""The usage connector: accounts and daily usage in (incremental), in-app messages out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
from hub import (
    CheckResult,
    Connector,
    ConnectorError,
    Kind,
    Operation,
    OperationResult,
    Page,
    PermanentError,
    Record,
    RetryPolicy,
    Stream,
)
from pydantic import BaseModel, ConfigDict, Field

from .client import UsageClient
from .mapping import map_account, map_daily_usage
from .settings import UsageSettings


class SendInAppMessage(BaseModel):
    """Parameters of `send_in_app_message`: a banner every user of the account sees on next login."""

    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1)
    text: str = Field(min_length=1, max_length=500)


STREAMS = {
    "accounts": Stream("accounts", (Kind.ACCOUNT,), "product accounts in change order (incremental)"),
    "daily_usage": Stream("daily_usage", (Kind.USAGE,),
                          "per account and day: active users, logins, key feature events (late corrections too)"),
}
OPERATIONS = {"send_in_app_message": Operation("send_in_app_message", SendInAppMessage,
                                               "show a message to an account's users, once per idempotency key")}
PATHS = {"accounts": "/api/v1/accounts", "daily_usage": "/api/v1/usage/daily"}


class UsageConnector(Connector):
    streams = STREAMS
    operations = OPERATIONS

    def __init__(self, settings: UsageSettings, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 retry: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.client = UsageClient(settings, transport=transport, sleep=sleep, clock=clock, retry=retry)

    def check(self) -> CheckResult:
        try:
            me = self.client.get("/api/v1/me")
        except ConnectorError as exc:
            return CheckResult(ok=False, detail=str(exc))
        return CheckResult(ok=True, detail=f"token accepted for workspace {me.get('workspace')!r} "
                                           f"at {self.settings.base_url}")

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        if stream not in STREAMS:
            raise ValueError(f"usage has no stream {stream!r} (streams: {', '.join(STREAMS)})")
        return self._read_changes(stream, str((state or {}).get("after", "")))

    def _map(self, stream: str, item: dict[str, Any]) -> Record:
        if stream == "accounts":
            return map_account(item)
        return map_daily_usage(item, self.settings.key_features)

    def _read_changes(self, stream: str, after: str) -> Iterator[Page]:
        """Pages in change order; the state is the cursor of the last object seen."""
        while True:
            body = self.client.get(PATHS[stream], {"after": after, "limit": self.settings.page_size})
            items = body.get("data") or []
            if items:
                after = items[-1]["cursor"]
            yield Page(records=[self._map(stream, item) for item in items], state={"after": after})
            if not body.get("next"):
                return

    def execute(self, operation: str, params: BaseModel, *, idempotency_key: str) -> OperationResult:
        if operation not in OPERATIONS:
            raise ValueError(f"usage has no operation {operation!r} (operations: {', '.join(OPERATIONS)})")
        message = params if isinstance(params, SendInAppMessage) else SendInAppMessage.model_validate(
            params.model_dump())
        try:
            body = self.client.post(f"/api/v1/accounts/{message.account_id}/messages", {"text": message.text},
                                    idempotency_key=idempotency_key)
        except PermanentError as refusal:  # 404, 422: the same request would be refused again
            return OperationResult(ok=False, error=str(refusal), code=refusal.code, retryable=False)
        return OperationResult(ok=True, external_id=str(body["id"]), data=body)

    @property
    def request_count(self) -> int:
        return self.client.request_count

    def close(self) -> None:
        self.client.close()
