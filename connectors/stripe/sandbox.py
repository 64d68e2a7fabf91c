"""A faithful local Stripe: the API a churn hub uses, on 127.0.0.1, seeded from a dataset.

    sandbox = start_sandbox(dataset)            # or start_sandbox() for a small demo account
    sandbox.settings()  # {"api_key": "sk_test_...", "base_url": "http://127.0.0.1:PORT", ...}
    sandbox.set_card_scenario("cus_A", "insufficient_funds")
    sandbox.advance_clock(31 * 86400)           # renewals, retries, trial ends happen, with events
    sandbox.stop()

What it does like Stripe (see /work/shared/api/stripe.md): bearer (or basic) auth with 401 errors
in Stripe's shape; form bodies with bracket keys; lists newest first (`limit` 1-100, default 10,
`starting_after`/`ending_before`, `has_more`, `url`, `created[gt|gte|lt|lte]`; subscriptions hide
canceled ones unless `status=all|canceled|ended`); `expand[]`; prefixed ids; an event for every
change (`customer.*`, `customer.subscription.*`, `invoice.*`, `charge.*`, `payment_method.*`), with
only the last 30 days listable (an older cursor is a 400 `resource_missing`); `DELETE` of a customer
leaves a `{"deleted": true}` tombstone and a `customer.deleted` event (and cancels its
subscriptions); invoice payments that succeed or decline per the customer's card scenario (see
`sandbox_cards`) with renewals, automatic retries and trial ends as the clock moves (see
`sandbox_billing`; `policy=BillingPolicy(automatic_retries=False)` leaves retrying to the hub's
dunning); idempotency keys (replay, 400 mismatch, 409 concurrent — see `sandbox_guard`); 429 +
`Stripe-Should-Retry: true` above `rate_limit` requests/s (25 like test mode; `None` turns it off,
for benchmarks); signed webhooks (see `sandbox_webhooks`). It always answers in the
`2026-06-24.dahlia` shape, whatever `Stripe-Version` asks for, and ignores `Stripe-Account`.

**Dataset** (a dict, or a path to a JSON file; every list optional, objects API-shaped, missing
fields filled with defaults; `created` in unix seconds). `dataset=None` seeds a small demo account
(`sandbox_dataset.demo_dataset`: 12 customers with cards and subscriptions, two of them in dunning).

    prices           [{id, unit_amount, currency, recurring{interval, interval_count}, ...}]
    coupons          [{id, percent_off | amount_off, duration, duration_in_months, ...}]
    customers        [{id, email, name, created, metadata, invoice_settings{default_payment_method}}]
    payment_methods  [{id, customer, card{brand, last4, exp_month, exp_year}}]
    discounts        [{id, source{coupon}, subscription, customer, start, end}]
    subscriptions    [{id, customer, status, created, items: [{price: id | {...}, quantity,
                       current_period_start?, current_period_end?}], discounts: [di_...], ...}]
                     (missing item periods are the billing cycle around "now")
    invoices         [{id, customer, status, amount_due, attempt_count, next_payment_attempt,
                       parent{subscription_details{subscription}}, ...}]
    charges          [{id, customer, status, amount, failure_code, outcome{...}, ...}]
    events           [{id, type, created, data{object}}]   optional history
    card_scenarios   {customer id: "ok" | "insufficient_funds" | "expired_card" | "lost_card" |
                      "stolen_card" | "fraudulent" | "do_not_honor" | "generic_decline" | ...}

**Test and demo controls.** Python: `advance_clock`, `set_card_scenario`, `create_customer`,
`update_customer`, `delete_customer`, `add_card`, `create_subscription`, `update_subscription`,
`cancel_subscription`, `pay_invoice`, `get`, `events` (also those past the 30-day window),
`fail_next` (the next request(s) answer 500), `hold_next` (park a request, to provoke a 409),
`add_webhook_endpoint`, `wait_for_webhooks`, `requests` (the request log). HTTP, with the same
API key: `POST /_sandbox/card_scenario` (`customer`, `scenario`) and `POST /_sandbox/advance_clock`
(`seconds`); `POST /v1/webhook_endpoints` (`url`, `enabled_events[]`) answers the signing secret.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hub import FaultProfile, RunningServer, serve_in_thread

from . import sandbox_dataset
from . import sandbox_objects as objects
from .sandbox_app import LoggedRequest, SandboxApi
from .sandbox_billing import Billing, BillingPolicy
from .sandbox_builders import build_payment_method
from .sandbox_cards import SCENARIOS
from .sandbox_guard import Fault, Hold, Idempotency, RateLimit
from .sandbox_store import Store, StripeError
from .sandbox_webhooks import Webhooks


class SandboxClock:
    """The account's time: a base clock plus an offset that only grows (`advance`, `set`)."""

    def __init__(self, base: Callable[[], float] = time.time, start: float | None = None) -> None:
        self.base = base
        self.offset = 0.0 if start is None else start - base()

    def __call__(self) -> float:
        return self.base() + self.offset

    def set(self, moment: float) -> None:
        self.offset = max(self.offset, moment - self.base())


class StripeSandbox:
    def __init__(self, *, api_key: str, store: Store, clock: SandboxClock, billing: Billing, webhooks: Webhooks,
                 rate_limit: float | None, rate_clock: Callable[[], float]) -> None:
        self.api_key, self.store, self.clock, self.billing, self.webhooks = api_key, store, clock, billing, webhooks
        self.rate_limit = rate_limit
        self.api = SandboxApi(store, billing, webhooks, api_key, RateLimit(rate_limit, rate_clock),
                              Idempotency(clock), self._advance_seconds)
        self.server: RunningServer | None = None
        self.url = ""

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, faults: FaultProfile | None = None) -> StripeSandbox:
        self.server = serve_in_thread(self.api.app(), name="stripe", faults=faults)
        self.url = self.server.url
        return self

    def settings(self) -> dict[str, Any]:
        """The connector settings (minus `type`) that point at this sandbox."""
        rate = max(1.0, self.rate_limit * 0.8) if self.rate_limit else 1000.0
        return {"api_key": self.api_key, "base_url": self.url, "requests_per_second": rate}

    def stop(self) -> None:
        self.webhooks.stop()
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> StripeSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- time and cards -------------------------------------------------------------------------

    def now(self) -> int:
        return int(self.clock())

    def advance_clock(self, seconds: float) -> list[dict[str, Any]]:
        """Move time forward, running what fell due; returns the events that happened."""
        with self.store.lock:
            before = self.now()
            self._advance_seconds(int(seconds))
            return self.events(created_since=before)

    def _advance_seconds(self, seconds: int) -> int:
        with self.store.lock:
            self.billing.run_until(self.now() + max(0, seconds))
            return self.now()

    def set_card_scenario(self, customer_id: str, scenario: str) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown card scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
        with self.store.lock:
            self.store.require(customer_id, "customer")
            self.store.card_scenarios[customer_id] = scenario

    # --- objects (each change records its event, as over HTTP) ----------------------------------

    def get(self, object_id: str) -> dict[str, Any] | None:
        with self.store.lock:
            obj = self.store.get(object_id) or self.store.deleted.get(object_id)
            return copy.deepcopy(self.store.view(obj)) if obj else None

    def create_customer(self, **params: Any) -> dict[str, Any]:
        with self.store.lock:
            return copy.deepcopy(objects.create_customer(self.store, params))

    def update_customer(self, customer_id: str, **params: Any) -> dict[str, Any]:
        with self.store.lock:
            return copy.deepcopy(objects.update_customer(self.store, self.store.require(customer_id, "customer"), params))

    def delete_customer(self, customer_id: str) -> dict[str, Any]:
        with self.store.lock:
            return objects.delete_customer(self.store, self.store.require(customer_id, "customer"))

    def add_card(self, customer_id: str, *, default: bool = True, **card: Any) -> dict[str, Any]:
        """Attach a new card (`brand`, `last4`, `exp_month`, `exp_year`) and make it the default."""
        with self.store.lock:
            customer = self.store.require(customer_id, "customer")
            method = self.store.add(build_payment_method(self.store, {"card": card}))
            objects.attach_payment_method(self.store, method, customer)
            if default:
                objects.update_customer(self.store, customer, {"invoice_settings": {"default_payment_method": method["id"]}})
            return copy.deepcopy(method)

    def create_subscription(self, customer_id: str, price: str, quantity: int = 1, **params: Any) -> dict[str, Any]:
        with self.store.lock:
            return copy.deepcopy(self.store.view(self.billing.create_subscription(
                {"customer": customer_id, "items": [{"price": price, "quantity": quantity}], **params})))

    def update_subscription(self, subscription_id: str, **params: Any) -> dict[str, Any]:
        with self.store.lock:
            subscription = self.store.require(subscription_id, "subscription")
            return copy.deepcopy(self.store.view(objects.update_subscription(self.store, subscription, params)))

    def cancel_subscription(self, subscription_id: str, *, feedback: str | None = None,
                            comment: str | None = None) -> dict[str, Any]:
        details = {k: v for k, v in (("feedback", feedback), ("comment", comment)) if v}
        with self.store.lock:
            subscription = self.store.require(subscription_id, "subscription")
            params = {"cancellation_details": details} if details else {}
            return copy.deepcopy(self.store.view(objects.cancel_subscription(self.store, subscription, params)))

    def pay_invoice(self, invoice_id: str) -> dict[str, Any]:
        """Attempt payment now, as `POST /v1/invoices/{id}/pay` (a decline raises `StripeError` 402)."""
        with self.store.lock:
            return copy.deepcopy(self.billing.pay(self.store.require(invoice_id, "invoice"), {}))

    def events(self, type: str | None = None, *, created_since: int | None = None) -> list[dict[str, Any]]:
        """Every event (newest first), also those older than the API's 30-day window."""
        with self.store.lock:
            ids = reversed(self.store.orders["event"].ids)
            found = [self.store.objects[i] for i in ids]
            return [copy.deepcopy(e) for e in found
                    if (type is None or e["type"] == type) and (created_since is None or e["created"] >= created_since)]

    # --- test hooks -----------------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, status: int = 500, path: str | None = None) -> None:
        """The next `count` requests (to paths starting with `path`) answer `status` with an api_error."""
        for _ in range(count):
            self.api.hooks.faults.append(Fault(status, path))

    def hold_next(self, path: str | None = None) -> Hold:
        """Park the next request (to `path...`) after its idempotency key is taken, until released."""
        hold = Hold(path)
        self.api.hooks.holds.append(hold)
        return hold

    @property
    def requests(self) -> list[LoggedRequest]:
        return list(self.api.log)

    def add_webhook_endpoint(self, url: str, *, secret: str | None = None,
                             enabled_events: list[str] | None = None) -> dict[str, Any]:
        return self.webhooks.add(url, enabled_events, secret)

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        return self.webhooks.flush(timeout)


def start_sandbox(dataset: Mapping[str, Any] | str | Path | None = None, *, api_key: str | None = None,
                  clock: Callable[[], float] = time.time, start_time: float | None = None,
                  rate_limit: float | None = 25.0, rate_clock: Callable[[], float] = time.monotonic,
                  policy: BillingPolicy | None = None, webhook_url: str | None = None,
                  webhook_secret: str | None = None, seed: int = 0, serve: bool = True,
                  faults: FaultProfile | None = None) -> StripeSandbox:
    """Start a sandbox on 127.0.0.1 (`serve=False`: build it without a server, for in-process use).

    `dataset=None` seeds a small demo account; `{}` starts empty. `clock`/`start_time` set the
    account's time; `rate_clock` drives the rate limit (tests inject one). `faults` injects the
    failures of `hub.FaultProfile` (5xx, 429, drops, broken bodies) in front of the API.
    """
    sandbox_clock = SandboxClock(clock, start_time)
    store = Store(sandbox_clock, seed=seed)
    billing = Billing(store, policy or BillingPolicy(), sandbox_clock.set)
    webhooks = Webhooks(store)
    store.listeners.append(webhooks.on_event)
    data = sandbox_dataset.load(dataset if dataset is not None else sandbox_dataset.demo_dataset(
        now=int(sandbox_clock())))
    try:
        sandbox_dataset.seed(store, data)
    except (KeyError, TypeError, StripeError) as exc:
        raise ValueError(f"the Stripe sandbox dataset is not valid: {exc}") from exc
    sandbox = StripeSandbox(api_key=api_key or f"sk_test_sandbox_{secrets.token_hex(12)}", store=store,
                            clock=sandbox_clock, billing=billing, webhooks=webhooks, rate_limit=rate_limit,
                            rate_clock=rate_clock)
    if webhook_url:
        sandbox.add_webhook_endpoint(webhook_url, secret=webhook_secret)
    return sandbox.start(faults) if serve else sandbox
