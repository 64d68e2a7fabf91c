"""Reading Zendesk's streams page by page, each page with the state that resumes right after it.

Zendesk's incremental exports hide the last minute and refuse a `start_time` less than 60 s old;
every reader here stays on the safe side of that line instead of skipping past it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hub import Page, Record

from .client import ZendeskClient
from .mapping import map_organization, map_satisfaction_rating, unix
from .settings import NpsField

EXPORT_LAG = 60  # seconds: the exports' excluded last minute
ORGANIZATIONS_EXPORT = "/api/v2/incremental/organizations.json"


@dataclass
class StreamContext:
    client: ZendeskClient
    now: Callable[[], float]          # wall-clock unix seconds
    nps: NpsField | None = None

    def visible_until(self) -> int:
        """The newest unix second the exports show and accept as `start_time`."""
        return int(self.now()) - EXPORT_LAG

    def page(self, records: list[Record], state: dict[str, Any], requests_before: int,
             notes: tuple[str, ...] = ()) -> Page:
        return Page(records, state, notes=notes, requests=self.client.request_count - requests_before)


def read_cursor_export(ctx: StreamContext, resource: str, state: Mapping[str, Any] | None,
                       mapper: Callable[..., list[Record]]) -> Iterator[Page]:
    """Tickets or users from the cursor-based incremental export.

        {"tickets": [...], "after_cursor": "MTU3", "after_url": "...", "end_of_stream": true}

    State is `{"cursor": after_cursor}`. The last page's cursor keeps working, so the next run
    asks once and gets only what changed since; the cursor never passes the hidden last minute.
    """
    path = f"/api/v2/incremental/{resource}/cursor.json"
    cursor = (state or {}).get("cursor")
    start_time = int((state or {}).get("start_time", 0))
    while True:
        params = {"cursor": cursor} if cursor else {"start_time": min(start_time, ctx.visible_until())}
        before = ctx.client.request_count
        body = ctx.client.export(path, params)
        items = body.get(resource) or []
        previous, cursor = cursor, body.get("after_cursor") or cursor
        records = [record for item in items for record in mapper(item, ctx.nps)]
        yield ctx.page(records, {"cursor": cursor} if cursor else {"start_time": start_time}, before)
        if body.get("end_of_stream") or (not items and cursor == previous):
            return


def read_organizations(ctx: StreamContext, state: Mapping[str, Any] | None) -> Iterator[Page]:
    """Organizations from the time-based export, de-duplicated, never looping.

        {"organizations": [...], "count": 1000, "end_time": 1715000000,
         "next_page": "...organizations.json?start_time=1715000000", "end_of_stream": false}

    `next_page` restarts at the last record's second, so that second's records come again
    (duplicates), and when more than a page of records share one second the very same page comes
    back forever. State is `{"start_time": T, "seen_ids": [ids of second T already emitted]}`, so
    a page drops what was already emitted. When a page does not get past T (the next request
    would be this one again), the rest of second T is taken from the organization list (cursor
    pagination, kept if `updated_at == T`) and the export resumes at T+1: T came from records at
    least a minute old, so nothing new can still appear at T.
    """
    state = state or {}
    start, seen = int(state.get("start_time", 0)), set(state.get("seen_ids", ()))
    fallback = state.get("fallback")
    while True:
        if fallback is not None:
            yield from _rest_of_second(ctx, start, seen, fallback.get("cursor"))
            start, seen, fallback = start + 1, set(), None
        if start > ctx.visible_until():  # nothing that new is visible yet; asking would be refused
            return
        before = ctx.client.request_count
        body = ctx.client.export(ORGANIZATIONS_EXPORT, {"start_time": start})
        items = body.get("organizations") or []
        fresh = {org["id"]: org for org in items if not (unix(org.get("updated_at")) == start and org["id"] in seen)}
        newest = max([start, *(unix(org.get("updated_at")) for org in items)])
        if newest != start:
            seen = set()
        seen |= {org["id"] for org in items if unix(org.get("updated_at")) == newest}
        stuck = bool(items) and not body.get("end_of_stream") and newest == start
        page_state: dict[str, Any] = {"start_time": newest, "seen_ids": sorted(seen)}
        notes: tuple[str, ...] = ()
        if stuck:
            fallback = page_state["fallback"] = {"cursor": None}
            notes = (f"more than a page of organizations share updated_at {start}; listing that second",)
        records = [record for org in fresh.values() for record in map_organization(org, ctx.nps)]
        yield ctx.page(records, page_state, before, notes)
        if not stuck and (body.get("end_of_stream") or not items):
            return
        start = newest


def _rest_of_second(ctx: StreamContext, second: int, seen: set[int], cursor: str | None) -> Iterator[Page]:
    """The organizations updated at `second` that the export could not page past.

    This walks the whole organization list (100 a request), so it is costly on large accounts,
    and the list omits deleted organizations: a deletion inside such a crowded second and past
    the export's first page is not seen. Both are rare; looping forever is not an option.
    """
    pages = ctx.client.cursor_pages("/api/v2/organizations", after=cursor)
    while True:
        before = ctx.client.request_count
        try:
            body, after = next(pages)
        except StopIteration:
            return
        orgs = [org for org in body.get("organizations") or ()
                if unix(org.get("updated_at")) == second and org["id"] not in seen]
        if after:
            state = {"start_time": second, "seen_ids": sorted(seen), "fallback": {"cursor": after}}
        else:
            state = {"start_time": second + 1, "seen_ids": []}
        yield ctx.page([record for org in orgs for record in map_organization(org, ctx.nps)], state, before)


def read_satisfaction_ratings(ctx: StreamContext, state: Mapping[str, Any] | None) -> Iterator[Page]:
    """CSAT ratings updated in a closed time window, walked with cursor pagination.

    Each run fixes its window `[start_time, end_time]` with `end_time` a minute in the past, so a
    rating updated during the walk falls in the next window rather than being skipped; the next
    run starts at `end_time + 1`. Mid-walk state keeps the window and the cursor.
    """
    state = state or {}
    start, end, cursor = int(state.get("start_time", 0)), state.get("end_time"), state.get("cursor")
    if end is None:
        end, cursor = ctx.visible_until(), None
        if end < start:
            return
    pages = ctx.client.cursor_pages("/api/v2/satisfaction_ratings", {"start_time": start, "end_time": end},
                                    after=cursor)
    while True:
        before = ctx.client.request_count
        try:
            body, after = next(pages)
        except StopIteration:
            return
        records = [r for r in map(map_satisfaction_rating, body.get("satisfaction_ratings") or ()) if r]
        page_state = {"start_time": start, "end_time": end, "cursor": after} if after else {"start_time": end + 1}
        yield ctx.page(records, page_state, before)
