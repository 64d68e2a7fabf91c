"""Reading Stripe's streams: a backfill from the lists, then the event log, page by page.

Stripe's lists cannot filter by "changed since", so every stream works in two phases:

1. **backfill** — before listing, remember the newest event of the stream's types; then walk the
   list (newest first, `starting_after=<last id>`). State: `{"phase": "backfill", "cursor": id, ...}`.
2. **events** — follow `/v1/events` forward from the remembered event (`ending_before=<id>` pages
   towards newer events), map each event's object and let the newest event per object win;
   `*.deleted` events become tombstones. State: `{"phase": "events", "events": {...}}`.

Stripe keeps events for 30 days. `events.seen_until` records up to when every event was seen; if
that is more than 30 days ago, changes may have been lost and the stream re-reads everything,
flagging the page `full_refresh` with a note. (Also when Stripe no longer knows the cursor event.)
A cursor event that is merely old is not a loss: when it has dropped out of the window the next
page is found with `created[gt]`. Every page carries the state that resumes right after it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hub import Kind, Page, PermanentError, Record
from hub.pagination import Ahead

from .client import StripeClient
from .mapping import (
    dig,
    iso,
    map_charge,
    map_customer,
    map_default_payment_method,
    map_event_object,
    map_invoice,
    map_subscription,
    moment,
    ref,
    tombstone,
)

EVENT_WINDOW = 30 * 86400   # Stripe lists events of the last 30 days only
CURSOR_SAFETY = 3600        # past this age, don't bet on the cursor event still being listable
CLOCK_MARGIN = 300          # when there is no event to anchor on, start a little before "now"
DEFAULT_PM = "invoice_settings.default_payment_method"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    kind: str
    object: str
    path: str
    params: Mapping[str, Any]
    event_filter: Mapping[str, Any]
    description: str


STREAM_SPECS = {spec.name: spec for spec in (
    StreamSpec("customers", Kind.ACCOUNT, "customer", "/v1/customers", {},
               {"types": ["customer.created", "customer.updated", "customer.deleted"]},
               "Customers as accounts (metadata links, email domain)."),
    StreamSpec("subscriptions", Kind.SUBSCRIPTION, "subscription", "/v1/subscriptions", {"status": "all"},
               {"type": "customer.subscription.*"},
               "Every subscription, canceled ones included, with MRR per month."),
    StreamSpec("invoices", Kind.INVOICE, "invoice", "/v1/invoices", {}, {"type": "invoice.*"},
               "Invoices with payment attempts and the next retry."),
    StreamSpec("charges", Kind.CHARGE, "charge", "/v1/charges", {}, {"type": "charge.*"},
               "Charges, failed ones with their decline code."),
    StreamSpec("payment_methods", Kind.PAYMENT_METHOD, "customer", "/v1/customers",
               {"expand": [f"data.{DEFAULT_PM}"]},
               {"types": ["customer.created", "customer.updated", "customer.deleted", "payment_method.attached",
                          "payment_method.detached", "payment_method.updated",
                          "payment_method.automatically_updated"]},
               "Each customer's default payment method (expanded on the customer list: Stripe "
               "cannot list cards across customers)."),
)}


@dataclass(frozen=True)
class EventsCursor:
    id: str | None        # newest event seen (None: there was none; `created` is a start time)
    created: int
    seen_until: int       # every event created before this was seen


@dataclass(frozen=True)
class StreamState:
    phase: str                               # "backfill" | "events"
    events: EventsCursor
    cursor: str | None = None                # backfill: id of the last object listed
    cursor_created: int | None = None
    version: int = field(default=1)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.phase == "events":
            del data["cursor"], data["cursor_created"]
        return data

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> StreamState:
        """Raises ValueError for a state this code did not write."""
        try:
            state = cls(phase=data["phase"], events=EventsCursor(**data["events"]), cursor=data.get("cursor"),
                        cursor_created=data.get("cursor_created"), version=data.get("version", 1))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a Stripe stream state: {exc}") from None
        if state.phase not in ("backfill", "events") or state.version != 1:
            raise ValueError(f"not a Stripe stream state: phase {state.phase!r}, version {state.version!r}")
        return state


class EventsLost(Exception):
    """Stripe no longer has the events after our cursor."""


def missing_resource(exc: PermanentError) -> bool:
    return exc.code == "resource_missing"


class StreamReader:
    """Reads one stream; `clock` is wall-clock unix seconds (Stripe's `created` timeline)."""

    def __init__(self, client: StripeClient, spec: StreamSpec, clock: Callable[[], float]) -> None:
        self.client, self.spec, self.clock = client, spec, clock

    def read(self, state: Mapping[str, Any] | None) -> Iterator[Page]:
        current: StreamState | None = None
        refresh_notes: tuple[str, ...] = ()
        try:
            current = StreamState.parse(state) if state else None
        except ValueError as exc:
            refresh_notes = (f"{self.spec.name}: the saved state was not understood ({exc}); "
                             "every object is read again",)
        if current is not None and current.events.seen_until < self.clock() - EVENT_WINDOW:
            refresh_notes = (self._lost_note(current.events.seen_until),)
            current = None
        while True:
            if current is None or current.phase == "backfill":
                current = yield from self._backfill(current, refresh_notes)
            try:
                yield from self._follow_events(current)
                return
            except EventsLost:
                refresh_notes = (self._lost_note(current.events.seen_until),)
                current = None

    def _lost_note(self, seen_until: int) -> str:
        return (f"{self.spec.name}: events are complete only up to {iso(seen_until)}, and Stripe keeps "
                "30 days of events: changes may have been missed, so every object is read again")

    # --- phase 1: the list ------------------------------------------------------------------

    def _backfill(self, state: StreamState | None, notes: tuple[str, ...]) -> Generator[Page, None, StreamState]:
        before = self.client.request_count
        refreshing = bool(notes)  # every page of a re-read says so; the note goes on the first
        if state is None:
            started = int(self.clock())
            newest = self.client.list_page("/v1/events", self.spec.event_filter, limit=1)["data"]
            anchor = (EventsCursor(newest[0]["id"], int(newest[0]["created"]), started) if newest
                      else EventsCursor(None, started - CLOCK_MARGIN, started))
            state = StreamState("backfill", anchor)
        with Ahead[dict[str, Any]]() as ahead:
            ahead.start(self._list_after, state)
            while True:
                body = ahead.result()
                items = body.get("data") or []
                done = not items or not body.get("has_more")
                if done:
                    state = StreamState("events", state.events)
                else:
                    state = replace(state, cursor=items[-1]["id"], cursor_created=int(items[-1]["created"]))
                    ahead.start(self._list_after, state)   # the next page is on its way while this one is mapped
                records = self._map_listed(items)
                yield Page(records, state.as_dict(), notes=notes, requests=self.client.request_count - before,
                           full_refresh=refreshing)
                before, notes = self.client.request_count, ()
                if done:
                    return state

    def _list_after(self, state: StreamState) -> dict[str, Any]:
        try:
            return self.client.list_page(self.spec.path, self.spec.params, starting_after=state.cursor)
        except PermanentError as exc:
            if not (state.cursor and missing_resource(exc)):
                raise
        # the cursor object was deleted meanwhile: continue by its creation time instead
        return self.client.list_page(self.spec.path, {**self.spec.params, "created": {"lte": state.cursor_created}})

    def _map_listed(self, items: list[dict[str, Any]]) -> list[Record]:
        if self.spec.kind == Kind.PAYMENT_METHOD:
            return [r for r in map(map_default_payment_method, items) if r is not None]
        if self.spec.kind == Kind.SUBSCRIPTION:
            return [map_subscription(s, self._all_items(s)) for s in items]
        mapper = {Kind.ACCOUNT: map_customer, Kind.INVOICE: map_invoice, Kind.CHARGE: map_charge}[self.spec.kind]
        return [mapper(item) for item in items]

    def _all_items(self, subscription: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The full item list when the embedded one is truncated (more than a page of items)."""
        if not dig(subscription, "items", "has_more"):
            return None
        items: list[dict[str, Any]] = []
        after = None
        while True:
            body = self.client.list_page("/v1/subscription_items", {"subscription": subscription["id"]},
                                         starting_after=after, limit=100)
            items.extend(body["data"])
            if not body.get("has_more") or not body["data"]:
                return items
            after = body["data"][-1]["id"]

    # --- phase 2: the event log -------------------------------------------------------------

    def _follow_events(self, state: StreamState) -> Iterator[Page]:
        cursor = state.events
        while True:
            before = self.client.request_count
            asked_at = int(self.clock())
            events, has_more = self._next_events(cursor, asked_at)
            records = self._map_events(events)
            if events:
                newest = events[-1]
                cursor = EventsCursor(newest["id"], int(newest["created"]),
                                      max(cursor.seen_until, int(newest["created"])))
            if not has_more:
                cursor = replace(cursor, seen_until=max(cursor.seen_until, asked_at))
            state = StreamState("events", cursor)
            yield Page(records, state.as_dict(), requests=self.client.request_count - before)
            if not has_more:
                return

    def _next_events(self, cursor: EventsCursor, now: int) -> tuple[list[dict[str, Any]], bool]:
        """The next events after the cursor, oldest first, and whether newer ones follow."""
        if cursor.id is not None and cursor.created > now - EVENT_WINDOW + CURSOR_SAFETY:
            try:
                body = self.client.list_page("/v1/events", self.spec.event_filter, ending_before=cursor.id)
            except PermanentError as exc:
                if missing_resource(exc):
                    raise EventsLost from exc
                raise
            return list(reversed(body["data"])), bool(body.get("has_more"))
        # No usable cursor event: list what came after its time. Lists run newest first, so walk
        # to the oldest page and go forward from there.
        bound = {"gt": cursor.created} if cursor.id else {"gte": cursor.created}
        params = {**self.spec.event_filter, "created": bound}
        body = self.client.list_page("/v1/events", params)
        pages = 1
        while body.get("has_more") and body["data"]:
            body = self.client.list_page("/v1/events", params, starting_after=body["data"][-1]["id"])
            pages += 1
        events = [e for e in reversed(body["data"]) if e["id"] != cursor.id]
        return events, pages > 1

    def _map_events(self, events: list[dict[str, Any]]) -> list[Record]:
        if self.spec.kind == Kind.PAYMENT_METHOD:
            return self._payment_methods_from_events(events)
        latest: dict[str, tuple[dict[str, Any], Record]] = {}
        for event in events:  # oldest first: the newest event per object wins
            obj = dig(event, "data", "object") or {}
            if obj.get("object") != self.spec.object:
                continue
            record = map_event_object(event)
            if record is not None:
                latest.pop(record.external_id, None)
                latest[record.external_id] = (obj, record)
        records = []
        for obj, record in latest.values():
            if record.kind == Kind.SUBSCRIPTION and not record.deleted and dig(obj, "items", "has_more"):
                record = map_subscription(obj, self._all_items(obj), updated_at=record.updated_at)
            records.append(record)
        return records

    def _payment_methods_from_events(self, events: list[dict[str, Any]]) -> list[Record]:
        """Which customers' default card may have changed; read those customers again.

        Event snapshots of customers carry only the card's id, so the affected customers are
        fetched with the card expanded (one request each, only when something changed).
        """
        gone: dict[str, Record] = {}
        affected: dict[str, None] = {}
        for event in events:
            obj, kind = dig(event, "data", "object") or {}, str(event.get("type"))
            previous = dig(event, "data", "previous_attributes") or {}
            when = moment(event.get("created"))
            if obj.get("object") == "customer":
                old_default = ref(dig(previous, "invoice_settings", "default_payment_method"))
                default = ref(dig(obj, "invoice_settings", "default_payment_method"))
                if kind == "customer.deleted":
                    affected.pop(obj["id"], None)
                    if default:
                        gone[default] = tombstone(Kind.PAYMENT_METHOD, default, when)
                    continue
                if old_default and old_default != default:
                    gone[old_default] = tombstone(Kind.PAYMENT_METHOD, old_default, when)
                if (kind == "customer.created" and default) or "invoice_settings" in previous:
                    affected[obj["id"]] = None
            elif obj.get("object") == "payment_method":
                customer = ref(obj.get("customer")) or ref(previous.get("customer"))
                if kind == "payment_method.detached":
                    gone[obj["id"]] = tombstone(Kind.PAYMENT_METHOD, obj["id"], when)
                if customer:
                    affected[customer] = None
        records = list(gone.values())
        for customer_id in affected:
            try:
                customer = self.client.get(f"/v1/customers/{customer_id}", {"expand": [DEFAULT_PM]})
            except PermanentError as exc:
                if exc.status == 404:
                    continue
                raise
            record = None if customer.get("deleted") else map_default_payment_method(customer)
            if record is not None:
                records.append(record)
        return records
