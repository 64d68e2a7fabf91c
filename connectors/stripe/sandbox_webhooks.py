"""Webhook delivery: every event POSTed, signed, to each configured endpoint, from a background thread.

Off until an endpoint is added (`start_sandbox(webhook_url=...)`, `sandbox.add_webhook_endpoint(url)`
or `POST /v1/webhook_endpoints`). Each delivery is the event's JSON with
`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{body}" with the endpoint secret>`;
`t` is real wall-clock time (the receiver checks it against its own clock). A delivery that
fails (connection error or non-2xx) is retried a few times; `flush()` waits for the queue.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from . import signature
from .sandbox_store import API_VERSION, Store, StripeError, event_type_matches

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


@dataclass
class Endpoint:
    id: str
    url: str
    secret: str
    enabled_events: list[str]
    created: int

    def wants(self, event_type: str) -> bool:
        return any(event_type_matches(pattern, event_type) for pattern in self.enabled_events)

    def as_api(self) -> dict[str, Any]:
        return {"id": self.id, "object": "webhook_endpoint", "api_version": API_VERSION, "created": self.created,
                "enabled_events": self.enabled_events, "livemode": False, "metadata": {}, "secret": self.secret,
                "status": "enabled", "url": self.url}


@dataclass
class Delivery:
    event_id: str
    event_type: str
    url: str
    status: int | None
    attempts: int
    error: str | None = None


@dataclass
class Webhooks:
    store: Store
    max_attempts: int = 3
    retry_delay: float = 0.2
    signing_clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    endpoints: list[Endpoint] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    _queue: queue.Queue[tuple[Endpoint, dict[str, Any]] | None] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None

    def add(self, url: str, enabled_events: list[str] | None = None, secret: str | None = None) -> dict[str, Any]:
        if not url.startswith(("http://", "https://")):
            raise StripeError(400, "Invalid URL: must start with http:// or https://", param="url")
        endpoint = Endpoint(self.store.new_id("we"), url, secret or f"whsec_{secrets.token_hex(16)}",
                            list(enabled_events or ["*"]), self.store.now())
        self.endpoints.append(endpoint)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="stripe-sandbox-webhooks", daemon=True)
            self._thread.start()
        return endpoint.as_api()

    def on_event(self, event: dict[str, Any]) -> None:
        """Store listener: queue the event for every endpoint that wants it."""
        targets = [e for e in self.endpoints if e.wants(event["type"])]
        event["pending_webhooks"] = len(targets)
        for endpoint in targets:
            self._queue.put((endpoint, event))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery was tried; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as http:
            while True:
                item = self._queue.get()
                try:
                    if item is None:
                        return
                    self._deliver(http, *item)
                finally:
                    self._queue.task_done()

    def _deliver(self, http: httpx.Client, endpoint: Endpoint, event: dict[str, Any]) -> None:
        with self.store.lock:
            payload = self.store.json_of(event["id"]).encode() if event["id"] in self.store.objects \
                else json.dumps(event).encode()
        delivery = Delivery(event["id"], event["type"], endpoint.url, None, 0)
        self.deliveries.append(delivery)
        while delivery.attempts < self.max_attempts:
            delivery.attempts += 1
            header = signature.sign(payload, endpoint.secret, int(self.signing_clock()))
            try:
                response = http.post(endpoint.url, content=payload, headers={
                    "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": header,
                    "User-Agent": USER_AGENT})
                delivery.status, delivery.error = response.status_code, None
                if response.is_success:
                    return
            except httpx.HTTPError as exc:
                delivery.error = f"{type(exc).__name__}: {exc}"
            if delivery.attempts < self.max_attempts:
                self.sleep(self.retry_delay * delivery.attempts)
