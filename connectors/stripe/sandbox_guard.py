"""What stands in front of the sandbox's endpoints: API keys, the rate limit, idempotency keys,
and the test hooks that make a request fail (`faults`) or wait (`holds`).

Idempotency follows Stripe: a POST's `Idempotency-Key` (<= 255 characters) replays the first
answer for 24 hours — including 500s and card declines, but not validation errors (4xx other
than 402), which are not saved; the same key with other parameters is a 400 `idempotency_error`;
a request arriving while the first is still running is a 409.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .sandbox_store import StripeError

IDEMPOTENCY_TTL = 24 * 3600
SAVED_STATUSES = (200, 402)


def masked(key: str) -> str:
    return f"{key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}" if len(key) > 12 else "****"


def check_api_key(authorization: str | None, expected: str) -> None:
    if not authorization:
        raise StripeError(401, "You did not provide an API key. You need to provide your API key in the "
                          "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
    scheme, _, credentials = authorization.partition(" ")
    key = credentials.strip()
    if scheme.lower() == "basic":  # `curl -u sk_test_...:` sends the key as the user name
        try:
            key = base64.b64decode(key).decode().split(":", 1)[0]
        except (ValueError, binascii.Error):
            key = ""
    elif scheme.lower() != "bearer":
        key = ""
    if key != expected:
        raise StripeError(401, f"Invalid API Key provided: {masked(key)}")


class RateLimit:
    """A token bucket over `clock` (real monotonic time unless a test injects one)."""

    def __init__(self, per_second: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second, self.clock = per_second, clock
        self.tokens = per_second or 0.0
        self.last = clock()
        self.lock = threading.Lock()

    def take(self) -> None:
        if not self.per_second:
            return
        with self.lock:
            now = self.clock()
            self.tokens = min(self.per_second, self.tokens + (now - self.last) * self.per_second)
            self.last = now
            if self.tokens < 1:
                raise StripeError(429, "Request rate limit exceeded. Learn more about rate limits here "
                                  "https://stripe.com/docs/rate-limits.", code="rate_limit",
                                  headers={"Stripe-Should-Retry": "true"})
            self.tokens -= 1


@dataclass
class Saved:
    fingerprint: str
    status: int
    body: str
    headers: dict[str, str]
    created: float


@dataclass
class Idempotency:
    clock: Callable[[], float]
    saved: dict[str, Saved] = field(default_factory=dict)
    running: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, key: str, fingerprint: str) -> Saved | None:
        """The saved answer to replay, None to go ahead; raises on misuse."""
        if len(key) > 255:
            raise StripeError(400, "Idempotency-Key must be at most 255 characters long.", type="idempotency_error")
        with self.lock:
            saved = self.saved.get(key)
            if saved is not None and saved.created < self.clock() - IDEMPOTENCY_TTL:
                del self.saved[key]  # expired: the key may be used afresh
                saved = None
            if saved is not None:
                if saved.fingerprint != fingerprint:
                    raise StripeError(400, "Keys for idempotent requests can only be used with the same parameters "
                                      "they were first used with. Try using a key other than "
                                      f"'{key}' if you meant to execute a different request.",
                                      type="idempotency_error")
                return saved
            if key in self.running:
                raise StripeError(409, "There is currently another in-progress request using this Stripe API key "
                                  f"(that also used the idempotency key '{key}'). Try the request again later.",
                                  type="idempotency_error", code="idempotency_key_in_use")
            self.running[key] = fingerprint
            return None

    def finish(self, key: str, fingerprint: str, status: int, body: str, headers: dict[str, str]) -> None:
        with self.lock:
            self.running.pop(key, None)
            if status in SAVED_STATUSES or status >= 500:
                self.saved[key] = Saved(fingerprint, status, body, dict(headers), self.clock())


@dataclass
class Fault:
    status: int
    path: str | None            # a path prefix, or None for any request


@dataclass
class Hold:
    """Parks the next matching request until `release()`; `entered` is set once it is parked."""

    path: str | None
    entered: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class TestHooks:
    faults: deque[Fault] = field(default_factory=deque)
    holds: deque[Hold] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path is None or path.startswith(fault.path):
                    self.faults.remove(fault)
                    return fault
        return None

    def take_hold(self, path: str) -> Hold | None:
        with self.lock:
            for hold in self.holds:
                if hold.path is None or path.startswith(hold.path):
                    self.holds.remove(hold)
                    return hold
        return None


def fault_error(fault: Fault) -> StripeError:
    return StripeError(fault.status, "An unknown error occurred (injected by the sandbox).", type="api_error")

