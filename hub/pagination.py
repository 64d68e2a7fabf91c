"""Small paginator objects, in the spirit of dlt's rest_client.

A paginator is used once per walk. `first(params)` returns the first request's parameters;
`advance(response_json)` reads a page and remembers where the next one is; `has_next` says
whether there is one; `next_request()` returns `(url, params)` for it; `start()` returns the
first request (a paginator built from a saved state resumes where it left off). `state` is a
plain dict that resumes the walk (the connector stores it in its `Page.state`).
The paging loop lives once, in `paginate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from hub.errors import TransientError
from hub.http import ApiClient, redact

T = TypeVar("T")


class Ahead(Generic[T]):
    """One call run ahead on a thread of its own: `start(fetch, ...)` now, `result()` when needed.

    A cursor-paged list can ask for its next page as soon as it has parsed this one and map this
    one while the API answers; waiting on the socket releases the GIL, so the two overlap. The
    requests are the same, in the same order, one at a time. Use it in a `with` block: leaving
    it waits for a call still running, so none outlives the read that started it.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="churnhub-ahead")
        self._pending: Future[T] | None = None

    def start(self, call: Callable[..., T], *args: Any) -> None:
        assert self._pending is None, "one call ahead at a time"
        self._pending = self._pool.submit(call, *args)

    def result(self) -> T:
        """What the call returned (or raise what it raised)."""
        assert self._pending is not None, "nothing was started"
        pending, self._pending = self._pending, None
        return pending.result()

    def __enter__(self) -> Ahead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pending = None
        self._pool.shutdown(wait=True)


def json_path(body: Any, path: str) -> Any:
    """`"meta.after_cursor"` -> body["meta"]["after_cursor"] (None if any step is missing)."""
    value = body
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


class Paginator:
    has_next: bool = True

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return params

    def start(self, url: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The first request: `(url, first(params))`, or where a resumed walk left off."""
        return url, self.first(params)

    def advance(self, body: Any, items: list[Any]) -> None:
        raise NotImplementedError

    def next_request(self, url: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    @property
    def state(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class CursorFromLastItem(Paginator):
    """Stripe-style lists: `starting_after=<id of the last item>` while `has_more` is true.

        {"object": "list", "has_more": true, "data": [{"id": "cus_1"}, {"id": "cus_2"}]}
    """

    cursor_param: str = "starting_after"
    id_field: str = "id"
    has_more_path: str = "has_more"
    cursor: str | None = None
    has_next: bool = True

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, self.cursor_param: self.cursor} if self.cursor else params

    def advance(self, body: Any, items: list[Any]) -> None:
        if items:
            self.cursor = str(items[-1][self.id_field])
        self.has_next = bool(json_path(body, self.has_more_path)) and bool(items)

    def next_request(self, url: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return url, {**params, self.cursor_param: self.cursor}

    @property
    def state(self) -> dict[str, Any]:
        return {"cursor": self.cursor}


@dataclass
class NextUrl(Paginator):
    """Follow a next-page URL found in the body (Zendesk `links.next`, Salesforce `nextRecordsUrl`).

        {"tickets": [...], "links": {"next": "https://.../tickets?page[after]=xyz"}, "meta": {"has_more": true}}

    `done_path`, when given, names a boolean that is true on the last page (`end_of_stream`, `done`).
    """

    next_path: str = "links.next"
    done_path: str | None = None
    next_url: str | None = None
    has_next: bool = True

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return params

    def start(self, url: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        # a resumed walk continues at the saved next-page URL, which carries its own parameters
        return (self.next_url, {}) if self.next_url else (url, self.first(params))

    def advance(self, body: Any, items: list[Any]) -> None:
        self.next_url = json_path(body, self.next_path)
        done = bool(json_path(body, self.done_path)) if self.done_path else False
        self.has_next = bool(self.next_url) and not done

    def next_request(self, url: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        assert self.next_url is not None
        return self.next_url, {}

    @property
    def state(self) -> dict[str, Any]:
        return {"next_url": self.next_url}


@dataclass
class Offset(Paginator):
    """`offset`/`limit` or `page`/`per_page` numbering; stops on a short page or `total`.

        {"results": [...], "total": 2310}
    """

    limit: int = 100
    offset: int = 0
    offset_param: str = "offset"
    limit_param: str = "limit"
    total_path: str | None = None
    has_next: bool = True

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, self.offset_param: self.offset, self.limit_param: self.limit}

    def advance(self, body: Any, items: list[Any]) -> None:
        self.offset += len(items)
        total = json_path(body, self.total_path) if self.total_path else None
        self.has_next = len(items) >= self.limit and (total is None or self.offset < int(total))

    def next_request(self, url: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return url, {**params, self.offset_param: self.offset, self.limit_param: self.limit}

    @property
    def state(self) -> dict[str, Any]:
        return {"offset": self.offset}


@dataclass
class PageOfItems:
    items: list[Any]
    body: Any
    paginator_state: dict[str, Any] = field(default_factory=dict)


def paginate(client: ApiClient, url: str, paginator: Paginator, *,
             items: Callable[[Any], list[Any]], params: dict[str, Any] | None = None,
             method: str = "GET", **request_kwargs: Any) -> Iterator[PageOfItems]:
    """Walk every page; yield each page's items with the paginator state that follows it."""
    url, params = paginator.start(url, dict(params or {}))
    while True:
        # no `params={}`: httpx would then drop the query string of a next-page URL
        response = client.request(method, url, params=params or None, **request_kwargs)
        try:
            body = response.json()
        except ValueError:  # e.g. a proxy's HTML error page with status 200
            raise TransientError(f"{method} {response.request.url.path} returned a page that is not JSON: "
                                 f"{redact(response.text[:200], client.secrets)!r}") from None
        page_items = items(body)
        paginator.advance(body, page_items)
        yield PageOfItems(page_items, body, paginator.state)
        if not paginator.has_next:
            return
        url, params = paginator.next_request(url, params)
