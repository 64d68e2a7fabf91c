"""Paginators and the one paging loop, against fake APIs on `httpx.MockTransport`."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from hub import ApiClient, CursorFromLastItem, NextUrl, Offset, RetryPolicy, TransientError, paginate
from hub.pagination import Ahead

OBJECTS = [{"id": f"obj_{n:02d}"} for n in range(7)]


def api(handler) -> ApiClient:
    return ApiClient(base_url="https://api.example.test", transport=httpx.MockTransport(handler),
                     retry=RetryPolicy(max_attempts=1), sleep=lambda s: None)


def stripe_like(request: httpx.Request) -> httpx.Response:
    """Newest first, `limit`, `starting_after`, `has_more`."""
    params = request.url.params
    limit = int(params.get("limit", 10))
    start = 0
    if "starting_after" in params:
        start = [o["id"] for o in OBJECTS].index(params["starting_after"]) + 1
    page = OBJECTS[start:start + limit]
    return httpx.Response(200, json={"object": "list", "data": page, "has_more": start + limit < len(OBJECTS)})


def ids(pages) -> list[str]:
    return [item["id"] for page in pages for item in page.items]


def test_cursor_from_last_item_walks_every_page_with_resumable_state():
    pages = list(paginate(api(stripe_like), "/v1/things", CursorFromLastItem(), items=lambda b: b["data"],
                          params={"limit": 3}))
    assert [len(p.items) for p in pages] == [3, 3, 1]
    assert ids(pages) == [o["id"] for o in OBJECTS]
    assert [p.paginator_state for p in pages] == [{"cursor": "obj_02"}, {"cursor": "obj_05"}, {"cursor": "obj_06"}]

    resumed = paginate(api(stripe_like), "/v1/things", CursorFromLastItem(cursor="obj_02"),
                       items=lambda b: b["data"], params={"limit": 3})
    assert ids(resumed) == [o["id"] for o in OBJECTS[3:]]


def test_cursor_stops_on_an_empty_page_even_if_has_more_lies():
    def handler(request):
        return httpx.Response(200, json={"data": [], "has_more": True})

    pages = list(paginate(api(handler), "/v1/things", CursorFromLastItem(), items=lambda b: b["data"]))
    assert len(pages) == 1


def next_url_api(request: httpx.Request) -> httpx.Response:
    page = int(request.url.params.get("page", 1))
    chunk = OBJECTS[(page - 1) * 3: page * 3]
    nxt = f"https://api.example.test/items?page={page + 1}" if page * 3 < len(OBJECTS) else None
    return httpx.Response(200, json={"items": chunk, "links": {"next": nxt}})


def test_next_url_follows_links_until_there_is_none():
    pages = list(paginate(api(next_url_api), "/items", NextUrl(), items=lambda b: b["items"]))
    assert ids(pages) == [o["id"] for o in OBJECTS]
    assert pages[0].paginator_state == {"next_url": "https://api.example.test/items?page=2"}
    assert pages[-1].paginator_state == {"next_url": None}


def test_next_url_resumes_at_the_saved_url():
    seen = []

    def handler(request):
        seen.append(str(request.url))
        return next_url_api(request)

    resumed = list(paginate(api(handler), "/items", NextUrl(next_url="https://api.example.test/items?page=2"),
                            items=lambda b: b["items"]))
    assert ids(resumed) == [o["id"] for o in OBJECTS[3:]]
    assert seen[0] == "https://api.example.test/items?page=2"


def test_next_url_honours_a_done_flag():
    def handler(request):
        return httpx.Response(200, json={"items": OBJECTS[:2], "links": {"next": "https://x/again"}, "done": True})

    pages = list(paginate(api(handler), "/items", NextUrl(done_path="done"), items=lambda b: b["items"]))
    assert len(pages) == 1


def offset_api(request: httpx.Request) -> httpx.Response:
    offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
    return httpx.Response(200, json={"results": OBJECTS[offset:offset + limit], "total": len(OBJECTS)})


@pytest.mark.parametrize("total_path", [None, "total"])
def test_offset_stops_on_a_short_page_or_the_total(total_path):
    pages = list(paginate(api(offset_api), "/r", Offset(limit=3, total_path=total_path), items=lambda b: b["results"]))
    assert ids(pages) == [o["id"] for o in OBJECTS]
    assert pages[-1].paginator_state == {"offset": 7}
    resumed = list(paginate(api(offset_api), "/r", Offset(limit=3, offset=6), items=lambda b: b["results"]))
    assert ids(resumed) == ["obj_06"]


def test_offset_with_total_does_not_ask_for_an_empty_page():
    seen = []

    def handler(request):
        seen.append(request)
        offset = int(request.url.params["offset"])
        return httpx.Response(200, json={"results": OBJECTS[offset:offset + 7], "total": 7})

    list(paginate(api(handler), "/r", Offset(limit=7, total_path="total"), items=lambda b: b["results"]))
    assert len(seen) == 1


def test_a_page_that_is_not_json_is_a_transient_error_without_secrets():
    def handler(request):
        return httpx.Response(200, text="<html>proxy error for token sk_secret_value</html>")

    client = ApiClient(base_url="https://api.example.test", transport=httpx.MockTransport(handler),
                       secrets=["sk_secret_value"])
    with pytest.raises(TransientError, match="not JSON") as caught:
        list(paginate(client, "/v1/things", CursorFromLastItem(), items=lambda b: b["data"]))
    assert "sk_secret_value" not in str(caught.value)


def test_ahead_runs_the_next_call_while_the_caller_works_and_hands_back_its_error() -> None:
    answered = threading.Event()

    def fetch(number: int) -> int:
        if number == 3:
            raise TransientError("upstream 503")
        answered.set()
        return number

    with Ahead[int]() as ahead:
        ahead.start(fetch, 1)
        assert answered.wait(2.0)   # running before anyone asked for it
        assert ahead.result() == 1
        ahead.start(fetch, 3)
        time.sleep(0.01)
        with pytest.raises(TransientError, match="upstream 503"):
            ahead.result()


def test_leaving_ahead_waits_for_the_call_still_running() -> None:
    finished = []
    with Ahead[None]() as ahead:
        ahead.start(lambda: (time.sleep(0.2), finished.append(True)) and None)
    assert finished == [True]
