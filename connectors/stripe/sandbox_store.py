"""The sandbox's memory: Stripe objects by id, kept in creation order per type, and the event log.

Lists are served from per-type arrays sorted by `(created, sequence)`, oldest first, searched
with `bisect` — a page costs O(log n + page), never a sort — and read back to front (Stripe lists
newest first). Filters on a customer or subscription use a per-value index of the same shape.
Each object's JSON is cached until it changes. One re-entrant lock guards everything.
"""

from __future__ import annotations

import copy
import json
import random
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "2026-06-24.dahlia"
EVENT_WINDOW = 30 * 86400
ITEMS_INLINE = 10           # subscription items embedded in a subscription before `has_more`
ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIXES = {"cus": "customer", "sub": "subscription", "in": "invoice", "ch": "charge", "pm": "payment_method",
            "evt": "event", "di": "discount", "si": "subscription_item", "price": "price", "prod": "product",
            "pi": "payment_intent", "we": "webhook_endpoint"}
# types listed by the API, with the fields that have a lookup index
LISTED = {"customer": (), "subscription": ("customer",), "invoice": ("customer", "subscription"),
          "charge": ("customer",), "payment_method": ("customer",), "coupon": (), "event": ()}


class StripeError(Exception):
    """An error answer in Stripe's shape: `{"error": {"type", "code", "message", "param", ...}}`."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = dict(headers or {})
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        return {"error": {**error, **self.extra}}


def missing(kind: str, object_id: str, param: str | None = None, status: int = 404) -> StripeError:
    return StripeError(status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


@dataclass
class SortedIds:
    """Ids ordered by `(created, sequence)`, oldest first."""

    keys: list[tuple[int, int]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def insert(self, key: tuple[int, int], object_id: str) -> None:
        position = bisect_right(self.keys, key)
        self.keys.insert(position, key)
        self.ids.insert(position, object_id)

    def remove(self, key: tuple[int, int]) -> None:
        position = bisect_left(self.keys, key)
        if position < len(self.keys) and self.keys[position] == key:
            del self.keys[position], self.ids[position]


@dataclass
class ListQuery:
    limit: int = 10
    starting_after: tuple[int, int] | None = None   # keys of the cursor objects
    ending_before: tuple[int, int] | None = None
    created: Mapping[str, int] = field(default_factory=dict)   # gt, gte, lt, lte, eq
    matches: Callable[[dict[str, Any]], bool] | None = None


def page_of(order: SortedIds, objects: Mapping[str, dict[str, Any]], query: ListQuery) -> tuple[list[str], bool]:
    """One page, newest first, and whether more follow in the direction of travel."""
    keys = order.keys
    low, high = 0, len(keys)
    bounds = query.created
    if "eq" in bounds:
        low, high = bisect_left(keys, (bounds["eq"], -1)), bisect_left(keys, (bounds["eq"] + 1, -1))
    if "gte" in bounds:
        low = max(low, bisect_left(keys, (bounds["gte"], -1)))
    if "gt" in bounds:
        low = max(low, bisect_left(keys, (bounds["gt"] + 1, -1)))
    if "lte" in bounds:
        high = min(high, bisect_left(keys, (bounds["lte"] + 1, -1)))
    if "lt" in bounds:
        high = min(high, bisect_left(keys, (bounds["lt"], -1)))
    if query.starting_after is not None:
        high = min(high, bisect_left(keys, query.starting_after))
    if query.ending_before is not None:
        low = max(low, bisect_right(keys, query.ending_before))
    forward = query.ending_before is not None  # towards newer objects
    indexes = range(low, high) if forward else range(high - 1, low - 1, -1)
    found: list[str] = []
    for index in indexes:
        object_id = order.ids[index]
        if query.matches is None or query.matches(objects[object_id]):
            if len(found) == query.limit:
                return (found[::-1] if forward else found), True
            found.append(object_id)
    return (found[::-1] if forward else found), False


class Store:
    """Every object of one sandbox account. `clock()` is the account's unix time."""

    def __init__(self, clock: Callable[[], float], *, seed: int = 0) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.random = random.Random(seed)
        self.objects: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, dict[str, Any]] = {}         # id -> {"id", "object", "deleted": True}
        self.orders = {kind: SortedIds() for kind in LISTED}
        self.indexes: dict[tuple[str, str], dict[str, SortedIds]] = {
            (kind, name): {} for kind, names in LISTED.items() for name in names}
        self.keys: dict[str, tuple[int, int]] = {}
        self.sequence = 0
        self._json: dict[str, str] = {}
        self.listeners: list[Callable[[dict[str, Any]], None]] = []   # called with every new event
        self.watchers: list[Callable[[dict[str, Any]], None]] = []    # called with every changed object
        self.card_scenarios: dict[str, str] = {}                      # customer id -> scenario name
        self.request_context = threading.local()              # request id and idempotency key

    def now(self) -> int:
        return int(self.clock())

    def new_id(self, prefix: str) -> str:
        while True:
            number, digits = self.random.getrandbits(84), []
            for _ in range(14):
                number, digit = divmod(number, 62)
                digits.append(ID_ALPHABET[digit])
            candidate = f"{prefix}_{''.join(digits)}"
            if candidate not in self.objects and candidate not in self.deleted:
                return candidate

    # --- objects ----------------------------------------------------------------------------

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object (its `id`, `object` and `created` set)."""
        kind, object_id = obj["object"], obj["id"]
        obj.setdefault("created", self.now())
        self.objects[object_id] = obj
        if kind in self.orders:
            self.sequence += 1
            key = (int(obj["created"]), self.sequence)
            self.keys[object_id] = key
            self.orders[kind].insert(key, object_id)
            for name in LISTED[kind]:
                value = ref(obj.get(name))
                if value:
                    self.indexes[(kind, name)].setdefault(value, SortedIds()).insert(key, object_id)
        for watcher in self.watchers:
            watcher(obj)
        return obj

    def add_sorted(self, objects: Iterable[dict[str, Any]]) -> None:
        """Bulk load (seeding): sort once by creation, then append."""
        for obj in sorted(objects, key=lambda o: int(o.get("created") or 0)):
            self.add(obj)

    def get(self, object_id: str, kind: str | None = None) -> dict[str, Any] | None:
        obj = self.objects.get(object_id)
        if obj is None or (kind is not None and obj.get("object") != kind):
            return None
        return obj

    def require(self, object_id: str, kind: str, param: str | None = None) -> dict[str, Any]:
        obj = self.get(object_id, kind)
        if obj is None:
            raise missing(kind.replace("_", " "), object_id, param, 400 if param else 404)
        return obj

    def changed(self, obj: dict[str, Any]) -> None:
        self._json.pop(obj["id"], None)
        for watcher in self.watchers:
            watcher(obj)

    def delete(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Remove an object from lists and lookups; it reads back as `{"deleted": true}`."""
        kind, object_id = obj["object"], obj["id"]
        key = self.keys.pop(object_id, None)
        if key is not None:
            self.orders[kind].remove(key)
            for name in LISTED[kind]:
                value = ref(obj.get(name))
                if value and value in self.indexes[(kind, name)]:
                    self.indexes[(kind, name)][value].remove(key)
        self.objects.pop(object_id, None)
        self._json.pop(object_id, None)
        self.deleted[object_id] = {"id": object_id, "object": kind, "deleted": True}
        return self.deleted[object_id]

    # --- rendering ------------------------------------------------------------------------

    def view(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """What the API shows: subscription items are truncated like Stripe's nested lists."""
        if obj.get("object") != "subscription":
            return dict(obj)
        items = obj["items"]["data"]
        shown = dict(obj)
        shown["items"] = {"object": "list", "data": items[:ITEMS_INLINE], "has_more": len(items) > ITEMS_INLINE,
                          "total_count": len(items), "url": f"/v1/subscription_items?subscription={obj['id']}"}
        return shown

    def json_of(self, object_id: str) -> str:
        cached = self._json.get(object_id)
        if cached is None:
            cached = self._json[object_id] = json.dumps(self.view(self.objects[object_id]), separators=(",", ":"))
        return cached

    def expanded(self, obj: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
        """A copy of the view with `expand[]` paths (`customer`, `invoice_settings.default_payment_method`)."""
        shown = copy.deepcopy(self.view(obj))
        for path in paths:
            if path.count(".") > 3:
                raise StripeError(400, f"You cannot expand more than 4 levels of a property. Property: {path}",
                                  param="expand")
            self._expand(shown, path.split("."), path)
        return shown

    def _expand(self, node: Any, parts: list[str], path: str) -> None:
        if not isinstance(node, dict) or not parts:
            return
        head, rest = parts[0], parts[1:]
        value = node.get(head)
        if isinstance(value, list):
            for index, element in enumerate(value):
                if rest:
                    self._expand(element, rest, path)
                elif isinstance(element, str):
                    value[index] = self._resolve(element, path)
            return
        if rest:
            if isinstance(value, str):
                value = node[head] = self._resolve(value, path)
            self._expand(value, rest, path)
        elif isinstance(value, str):
            node[head] = self._resolve(value, path)
        elif value is not None and not isinstance(value, dict):
            raise StripeError(400, f"This property cannot be expanded ({path}).", param="expand")

    def _resolve(self, object_id: str, path: str) -> Any:
        obj = self.objects.get(object_id) or self.deleted.get(object_id)
        if obj is None:
            raise StripeError(400, f"This property cannot be expanded ({path}).", param="expand")
        return copy.deepcopy(self.view(obj))

    # --- lists ----------------------------------------------------------------------------

    def key_of(self, object_id: str, kind: str, param: str) -> tuple[int, int]:
        key = self.keys.get(object_id)
        if key is None or self.objects[object_id]["object"] != kind:
            raise missing(kind.replace("_", " "), object_id, param, 400)
        if kind == "event" and key[0] < self.now() - EVENT_WINDOW:  # no longer kept
            raise missing("event", object_id, param, 400)
        return key

    def list(self, kind: str, query: ListQuery, *, index: tuple[str, str] | None = None) -> tuple[list[str], bool]:
        """Ids of one page, newest first; `index` = (field, value) narrows to e.g. one customer."""
        if index is not None:
            order = self.indexes[(kind, index[0])].get(index[1]) or SortedIds()
        else:
            order = self.orders[kind]
        if kind == "event":  # only the last 30 days are listable
            floor = self.now() - EVENT_WINDOW
            query.created = {**query.created, "gte": max(query.created.get("gte", floor), floor)}
        return page_of(order, self.objects, query)

    # --- events ---------------------------------------------------------------------------

    def emit(self, type: str, obj: Mapping[str, Any], previous: Mapping[str, Any] | None = None,
             *, at: int | None = None) -> dict[str, Any]:
        """Record an event whose `data.object` is a snapshot of `obj` as the API shows it now."""
        context = self.request_context
        event: dict[str, Any] = {
            "id": self.new_id("evt"), "object": "event", "api_version": API_VERSION,
            "created": self.now() if at is None else at,
            "data": {"object": json.loads(json.dumps(self.view(obj)))},
            "livemode": False, "pending_webhooks": 0,
            "request": {"id": getattr(context, "request_id", None),
                        "idempotency_key": getattr(context, "idempotency_key", None)},
            "type": type,
        }
        if previous is not None:
            event["data"]["previous_attributes"] = json.loads(json.dumps(previous))
        self.add(event)
        for listener in self.listeners:
            listener(event)
        return event


def ref(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return value.get("id")
    return value if isinstance(value, str) and value else None


def previous_attributes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level attributes that changed, with their old values (Stripe's `previous_attributes`)."""
    return {key: before.get(key) for key in set(before) | set(after)
            if before.get(key) != after.get(key)}


def event_type_matches(pattern: str, event_type: str) -> bool:
    """`invoice.*` matches `invoice.paid`; without `*` the type must be equal."""
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type
