"""The Stripe connector: five inbound streams, the dunning/retention operations and webhooks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx
from pydantic import BaseModel

from hub import (
    AuthError,
    CheckResult,
    Connector,
    ConnectorError,
    OperationResult,
    Page,
    Record,
    RetryPolicy,
    Stream,
    WebhookEvent,
)

from . import operations as ops
from . import signature
from .client import StripeClient
from .mapping import map_event_object
from .settings import StripeSettings
from .streams import STREAM_SPECS, StreamReader


class StripeConnector(Connector):
    """`clock` is wall-clock unix seconds (compared with Stripe's `created` for the event window);
    `sleep`/`monotonic` drive retries and the rate limit; `transport` replaces the network in tests."""

    streams = {name: Stream(name, (spec.kind,), spec.description) for name, spec in STREAM_SPECS.items()}
    operations = ops.OPERATIONS

    def __init__(self, settings: StripeSettings, *, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, retry: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.client = StripeClient(settings, transport=transport, sleep=sleep, clock=monotonic, retry=retry)

    def check(self) -> CheckResult:
        try:
            self.client.list_page("/v1/customers", limit=1)
        except AuthError as exc:
            return CheckResult(False, f"Stripe refused the API key: {exc}")
        except ConnectorError as exc:
            return CheckResult(False, str(exc))
        where = f" as {self.settings.account}" if self.settings.account else ""
        return CheckResult(True, f"API key accepted{where} (Stripe-Version {self.settings.api_version})")

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        spec = STREAM_SPECS.get(stream)
        if spec is None:
            raise ValueError(f"Stripe has no stream {stream!r} (streams: {', '.join(STREAM_SPECS)})")
        return StreamReader(self.client, spec, self.clock).read(state)

    def execute(self, operation: str, params: BaseModel, *, idempotency_key: str) -> OperationResult:
        return ops.execute(self.client, operation, params, idempotency_key)

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Check `Stripe-Signature` with `webhook_secret` (see `signature.verify_event`)."""
        if self.settings.webhook_secret is None:
            raise AuthError("this Stripe connector has no webhook_secret: set it (the endpoint's whsec_...) "
                            "in its settings to receive webhooks")
        return signature.verify_event(headers, body, self.settings.webhook_secret.get_secret_value(),
                                      tolerance=self.settings.webhook_tolerance, now=self.clock())

    def webhook_records(self, event: WebhookEvent) -> Sequence[Record]:
        """The event's object as a record, mapped like the streams map it (nothing for other events)."""
        record = map_event_object(event.payload)
        return () if record is None else (record,)

    @property
    def request_count(self) -> int:
        return self.client.request_count

    def close(self) -> None:
        self.client.close()
