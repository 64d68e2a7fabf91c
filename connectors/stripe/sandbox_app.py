"""The sandbox's HTTP face: Stripe's endpoints as a Starlette app.

Each request is authenticated, rate limited, checked for its idempotency key and then handled in
a worker thread under the store's lock. Parameters come from the query string (GET, DELETE) or
the form body (POST), bracket keys and all. Answers are JSON in Stripe's shapes, with a
`Request-Id` header; errors are `{"error": {...}}`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import forms
from . import sandbox_objects as objects
from .sandbox_billing import Billing
from .sandbox_builders import build_coupon
from .sandbox_cards import SCENARIOS
from .sandbox_guard import Idempotency, RateLimit, TestHooks, check_api_key, fault_error
from .sandbox_store import API_VERSION, ListQuery, Store, StripeError, event_type_matches, missing
from .sandbox_webhooks import Webhooks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Raw:
    """A pre-serialised JSON body."""

    text: str


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any]
    path_params: dict[str, str]

    def id(self) -> str:
        return self.path_params["id"]


@dataclass
class LoggedRequest:
    method: str
    path: str
    status: int
    idempotency_key: str | None
    replayed: bool


@dataclass
class SandboxApi:
    store: Store
    billing: Billing
    webhooks: Webhooks
    api_key: str
    rate: RateLimit
    idempotency: Idempotency
    advance: Callable[[int], int]
    hooks: TestHooks = field(default_factory=TestHooks)
    log: list[LoggedRequest] = field(default_factory=list)

    # --- plumbing -------------------------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [Route(path, self._endpoint(handler), methods=[method]) for method, path, handler in self.routes()]
        return Starlette(routes=routes)

    def _endpoint(self, handler: Callable[[Call], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            status, text, headers = await anyio.to_thread.run_sync(
                self.handle, handler, request.method, request.url.path, request.url.query,
                dict(request.headers), body.decode(errors="replace"), dict(request.path_params))
            return Response(text, status_code=status, media_type="application/json", headers=headers)
        return endpoint

    def handle(self, handler: Callable[[Call], Any], method: str, path: str, query: str,
               headers: dict[str, str], body: str, path_params: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        request_id = self.store.new_id("req")
        out = {"Request-Id": request_id, "Stripe-Version": headers.get("stripe-version", API_VERSION)}
        key = headers.get("idempotency-key") if method == "POST" else None
        fingerprint, started, replayed = "", False, False
        status, text = 200, ""
        try:
            check_api_key(headers.get("authorization"), self.api_key)
            if not path.startswith("/_sandbox/"):
                self.rate.take()
            try:
                params = forms.parse(body if method == "POST" else query)
            except ValueError as exc:
                raise StripeError(400, f"Invalid request: {exc}") from None
            if key:
                # the same parameters in another order are the same request
                fingerprint = f"{method} {path} {sorted(forms.flatten(params))}"
                saved = self.idempotency.begin(key, fingerprint)
                if saved is not None:
                    replayed = True
                    status, text = saved.status, saved.body
                    out.update(saved.headers, **{"Idempotent-Replayed": "true", "Original-Request": saved.headers.get(
                        "Request-Id", request_id)})
                    return status, text, out
                out["Idempotency-Key"] = key
                started = True
            hold = self.hooks.take_hold(path)
            if hold is not None:
                hold.entered.set()
                hold.released.wait(timeout=30)
            fault = self.hooks.take_fault(path)
            if fault is not None:
                raise fault_error(fault)
            with self.store.lock:
                self.store.request_context.request_id = request_id
                self.store.request_context.idempotency_key = key
                try:
                    result = handler(Call(method, path, params, path_params))
                finally:
                    self.store.request_context.request_id = self.store.request_context.idempotency_key = None
            text = result.text if isinstance(result, Raw) else json.dumps(result, separators=(",", ":"))
        except StripeError as error:
            status, text = error.status, json.dumps(error.body())
            out.update(error.headers)
        except Exception as exc:  # a sandbox bug answers like Stripe's own 500s, and says where
            log.exception("stripe sandbox failed on %s %s", method, path)
            status = 500
            text = json.dumps(StripeError(500, f"Sandbox error: {type(exc).__name__}: {exc}", type="api_error").body())
        finally:
            if started:
                self.idempotency.finish(key or "", fingerprint, status, text, out)
            self.log.append(LoggedRequest(method, path, status, key, replayed))
        return status, text, out

    # --- shared helpers --------------------------------------------------------------------------

    def render(self, obj: dict[str, Any], params: dict[str, Any]) -> Any:
        expand = params.get("expand") or []
        return self.store.expanded(obj, expand) if expand else Raw(self.store.json_of(obj["id"]))

    def listing(self, kind: str, call: Call, *, index: tuple[str, str] | None = None,
                matches: Callable[[dict[str, Any]], bool] | None = None) -> Any:
        params = call.params
        limit = objects.integer(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise StripeError(400, "This value must be greater than or equal to 1 and less than or equal to 100.",
                              param="limit")
        if params.get("starting_after") and params.get("ending_before"):
            raise StripeError(400, "You may only specify one of these parameters: ending_before, starting_after.")
        query = ListQuery(limit=limit, matches=matches, created=created_filter(params.get("created")))
        if params.get("starting_after"):
            query.starting_after = self.store.key_of(params["starting_after"], kind, "starting_after")
        if params.get("ending_before"):
            query.ending_before = self.store.key_of(params["ending_before"], kind, "ending_before")
        ids, has_more = self.store.list(kind, query, index=index)
        expand = [p.removeprefix("data.") for p in params.get("expand") or [] if p.startswith("data.")]
        if expand:
            data = ",".join(json.dumps(self.store.expanded(self.store.objects[i], expand), separators=(",", ":"))
                            for i in ids)
        else:
            data = ",".join(self.store.json_of(i) for i in ids)
        url = json.dumps(call.path)
        return Raw(f'{{"object":"list","data":[{data}],"has_more":{json.dumps(has_more)},"url":{url}}}')

    def customer(self, call: Call) -> dict[str, Any]:
        return self.store.require(call.id(), "customer")

    # --- routes ---------------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Callable[[Call], Any]]]:
        return [
            ("GET", "/v1/balance", lambda c: BALANCE),
            ("GET", "/v1/customers", self.list_customers),
            ("POST", "/v1/customers", lambda c: self.render(objects.create_customer(self.store, _plain(c)), c.params)),
            ("GET", "/v1/customers/{id}", self.get_customer),
            ("POST", "/v1/customers/{id}", lambda c: self.render(
                objects.update_customer(self.store, self.customer(c), _plain(c)), c.params)),
            ("DELETE", "/v1/customers/{id}", lambda c: objects.delete_customer(self.store, self.customer(c))),
            ("GET", "/v1/customers/{id}/payment_methods", lambda c: self.listing(
                "payment_method", c, index=("customer", self.customer(c)["id"]))),
            ("GET", "/v1/payment_methods", self.list_payment_methods),
            ("GET", "/v1/payment_methods/{id}", lambda c: self.render(
                self.store.require(c.id(), "payment_method"), c.params)),
            ("POST", "/v1/payment_methods/{id}/attach", lambda c: self.render(objects.attach_payment_method(
                self.store, self.store.require(c.id(), "payment_method"),
                self.store.require(c.params.get("customer") or "", "customer", "customer")), c.params)),
            ("POST", "/v1/payment_methods/{id}/detach", lambda c: self.render(objects.detach_payment_method(
                self.store, self.store.require(c.id(), "payment_method")), c.params)),
            ("GET", "/v1/subscriptions", self.list_subscriptions),
            ("POST", "/v1/subscriptions", lambda c: self.render(self.billing.create_subscription(_plain(c)), c.params)),
            ("GET", "/v1/subscriptions/{id}", lambda c: self.render(
                self.store.require(c.id(), "subscription"), c.params)),
            ("POST", "/v1/subscriptions/{id}", lambda c: self.render(objects.update_subscription(
                self.store, self.store.require(c.id(), "subscription"), _plain(c)), c.params)),
            ("DELETE", "/v1/subscriptions/{id}", lambda c: self.render(objects.cancel_subscription(
                self.store, self.store.require(c.id(), "subscription"), _plain(c)), c.params)),
            ("GET", "/v1/subscription_items", self.list_subscription_items),
            ("GET", "/v1/invoices", self.list_invoices),
            ("GET", "/v1/invoices/{id}", lambda c: self.render(self.store.require(c.id(), "invoice"), c.params)),
            ("POST", "/v1/invoices/{id}/pay", lambda c: self.render(self.billing.pay(
                self.store.require(c.id(), "invoice"), _plain(c)), c.params)),
            ("POST", "/v1/invoices/{id}/finalize", self.finalize_invoice),
            ("POST", "/v1/invoices/{id}/mark_uncollectible", lambda c: self.render(self.billing.mark_uncollectible(
                self.store.require(c.id(), "invoice")), c.params)),
            ("POST", "/v1/invoices/{id}/void", lambda c: self.render(self.billing.void(
                self.store.require(c.id(), "invoice")), c.params)),
            ("GET", "/v1/charges", self.list_charges),
            ("GET", "/v1/charges/{id}", lambda c: self.render(self.store.require(c.id(), "charge"), c.params)),
            ("GET", "/v1/coupons", lambda c: self.listing("coupon", c)),
            ("GET", "/v1/coupons/{id}", lambda c: self.render(self.store.require(c.id(), "coupon"), c.params)),
            ("POST", "/v1/coupons", self.create_coupon),
            ("GET", "/v1/events", self.list_events),
            ("GET", "/v1/events/{id}", self.get_event),
            ("POST", "/v1/webhook_endpoints", lambda c: self.webhooks.add(
                c.params.get("url") or "", c.params.get("enabled_events") or ["*"])),
            ("POST", "/_sandbox/card_scenario", self.set_card_scenario),
            ("POST", "/_sandbox/advance_clock", lambda c: {
                "now": self.advance(objects.integer(c.params.get("seconds", 0), "seconds"))}),
        ]

    def get_customer(self, call: Call) -> Any:
        if call.id() in self.store.deleted:
            return self.store.deleted[call.id()]
        return self.render(self.customer(call), call.params)

    def list_customers(self, call: Call) -> Any:
        email = call.params.get("email")
        return self.listing("customer", call, matches=(lambda c: c.get("email") == email) if email else None)

    def list_payment_methods(self, call: Call) -> Any:
        customer = call.params.get("customer")
        if not customer:  # Stripe lists cards for payments only per customer
            raise StripeError(400, "Missing required param: customer.", param="customer")
        kind = call.params.get("type")
        return self.listing("payment_method", call, index=("customer", customer),
                            matches=(lambda m: m.get("type") == kind) if kind else None)

    def list_subscriptions(self, call: Call) -> Any:
        status, price = call.params.get("status"), call.params.get("price")

        def matches(sub: dict[str, Any]) -> bool:
            if status in (None, ""):
                ok = sub["status"] != "canceled"  # hidden unless asked for
            elif status == "all":
                ok = True
            elif status == "ended":
                ok = sub["status"] in ("canceled", "incomplete_expired")
            else:
                ok = sub["status"] == status
            return ok and (price is None or any(i["price"]["id"] == price for i in sub["items"]["data"]))

        customer = call.params.get("customer")
        return self.listing("subscription", call, index=("customer", customer) if customer else None, matches=matches)

    def list_subscription_items(self, call: Call) -> Any:
        subscription = self.store.require(call.params.get("subscription") or "", "subscription", "subscription")
        items = subscription["items"]["data"]
        limit = objects.integer(call.params.get("limit", 10), "limit")
        start = 0
        if call.params.get("starting_after"):
            ids = [i["id"] for i in items]
            if call.params["starting_after"] not in ids:
                raise missing("subscription item", call.params["starting_after"], "starting_after", 400)
            start = ids.index(call.params["starting_after"]) + 1
        page = items[start:start + limit]
        return {"object": "list", "data": page, "has_more": start + limit < len(items), "url": "/v1/subscription_items"}

    def list_invoices(self, call: Call) -> Any:
        status, method = call.params.get("status"), call.params.get("collection_method")
        index = next(((name, call.params[name]) for name in ("subscription", "customer") if call.params.get(name)), None)
        customer = call.params.get("customer")

        def matches(invoice: dict[str, Any]) -> bool:
            return ((status is None or invoice["status"] == status)
                    and (method is None or invoice.get("collection_method") == method)
                    and (customer is None or invoice.get("customer") == customer))
        return self.listing("invoice", call, index=index, matches=matches if status or method or customer else None)

    def finalize_invoice(self, call: Call) -> Any:
        invoice = self.store.require(call.id(), "invoice")
        if invoice["status"] != "draft":
            raise StripeError(400, "This invoice is already finalized, you can't re-finalize a non-draft invoice.")
        self.billing.finalize(invoice)
        return self.render(invoice, call.params)

    def list_charges(self, call: Call) -> Any:
        intent, customer = call.params.get("payment_intent"), call.params.get("customer")
        return self.listing("charge", call, index=("customer", customer) if customer else None,
                            matches=(lambda ch: ch.get("payment_intent") == intent) if intent else None)

    def create_coupon(self, call: Call) -> Any:
        params = _plain(call)
        objects.unknown(params, {"id", "percent_off", "amount_off", "currency", "duration", "duration_in_months",
                                 "name", "metadata", "max_redemptions", "redeem_by"})
        if not params.get("percent_off") and not params.get("amount_off"):
            raise StripeError(400, "Must specify either `percent_off` or `amount_off`.")
        if params.get("id") and self.store.get(params["id"]) is not None:
            raise StripeError(400, "Coupon already exists.", code="resource_already_exists", param="id")
        for key in ("amount_off", "duration_in_months", "max_redemptions", "redeem_by"):
            if params.get(key) not in (None, ""):
                params[key] = objects.integer(params[key], key)
        if params.get("percent_off") not in (None, ""):
            params["percent_off"] = float(params["percent_off"])
        return self.render(self.store.add(build_coupon(self.store, params)), call.params)

    def list_events(self, call: Call) -> Any:
        single, several = call.params.get("type"), call.params.get("types")
        if single and several:
            raise StripeError(400, "You may only specify one of these parameters: type, types.")
        if several is not None and (not isinstance(several, list) or len(several) > 20):
            raise StripeError(400, "types must be a list of at most 20 event types.", param="types")

        def matches(event: dict[str, Any]) -> bool:
            if single:
                return event_type_matches(single, event["type"])
            return any(event_type_matches(t, event["type"]) for t in several or ())
        return self.listing("event", call, matches=matches if single or several else None)

    def get_event(self, call: Call) -> Any:
        key = self.store.keys.get(call.id())
        event = self.store.get(call.id(), "event")
        if event is None or key is None or key[0] < self.store.now() - 30 * 86400:
            raise missing("event", call.id())
        return Raw(self.store.json_of(event["id"]))

    def set_card_scenario(self, call: Call) -> Any:
        customer = self.store.require(call.params.get("customer") or "", "customer", "customer")
        scenario = call.params.get("scenario") or ""
        if scenario not in SCENARIOS:
            raise StripeError(400, f"Unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}", param="scenario")
        self.store.card_scenarios[customer["id"]] = scenario
        return {"customer": customer["id"], "scenario": scenario}


BALANCE = {"object": "balance", "livemode": False,
           "available": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
           "pending": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}]}


def created_filter(value: Any) -> dict[str, int]:
    if value in (None, ""):
        return {}
    if isinstance(value, dict):
        unknown = set(value) - {"gt", "gte", "lt", "lte"}
        if unknown:
            raise StripeError(400, f"Received unknown parameter: created[{sorted(unknown)[0]}]", param="created")
        return {k: objects.integer(v, f"created[{k}]") for k, v in value.items()}
    return {"eq": objects.integer(value, "created")}


def _plain(call: Call) -> dict[str, Any]:
    """The call's parameters without `expand` (which every endpoint accepts)."""
    return {k: v for k, v in call.params.items() if k != "expand"}
