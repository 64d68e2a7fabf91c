"""Talking to Zendesk: auth, the two rate budgets, error mapping and the cursor paging loop.

Zendesk answers errors in two shapes, both mapped with the API's own words:

    {"errors": [{"code": "InvalidPaginationParameter", "title": "...", "detail": "..."}]}
    {"error": "RecordInvalid", "description": "Record validation errors",
     "details": {"name": [{"description": "Name: has already been taken", "error": "DuplicateValue"}]}}

and 429 bodies are sometimes `text/plain`; `Retry-After` (seconds) is honoured by `ApiClient`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from hub import ApiClient, ConnectorError, RetryPolicy, WindowLimiter, error_for_status

from .settings import ZendeskSettings

EXPORT_ADMIN_ONLY = ("incremental exports are available to admins only: use an admin's API token "
                     "(or an OAuth token of an admin); agent credentials get 403 here")


def error_message(response: httpx.Response) -> tuple[str, str | None]:
    """The API's own words and error code from either Zendesk error shape (or a text body)."""
    try:
        body = response.json()
    except ValueError:
        return (response.text.strip()[:300] or response.reason_phrase), None
    if not isinstance(body, dict):
        return str(body)[:300], None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
        parts = [": ".join(str(e[k]) for k in ("title", "detail") if e.get(k)) or str(e.get("code")) for e in errors]
        return "; ".join(parts), errors[0].get("code")
    error, code = body.get("error"), None
    if isinstance(error, dict):  # {"error": {"title": "Forbidden", "message": "..."}}
        code = error.get("title")
        message = error.get("message") or code or ""
    else:
        code = error if isinstance(error, str) else None
        message = body.get("description") or code or str(body)[:300]
    details = body.get("details")
    if isinstance(details, dict):
        notes = [d.get("description") or d.get("error") for items in details.values() if isinstance(items, list)
                 for d in items if isinstance(d, dict)]
        if notes:
            message = f"{message} ({'; '.join(str(n) for n in notes if n)})"
    return str(message), code


def map_error(response: httpx.Response) -> ConnectorError:
    message, code = error_message(response)
    if response.status_code == 403 and "/incremental/" in response.request.url.path:
        message = f"{message} -- {EXPORT_ADMIN_ONLY}"
    return error_for_status(response, message, code)


def retry_decision(response: httpx.Response) -> bool | None:
    # 409: two writers updated one ticket at once; Zendesk asks to try again
    return True if response.status_code == 409 else None


class ZendeskClient:
    """One Zendesk account. Every request spends the plan budget; exports also spend theirs."""

    def __init__(self, settings: ZendeskSettings, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 retry: RetryPolicy | None = None) -> None:
        self.base_url = settings.url
        # Zendesk counts per minute: no 60-second window may see more than the budget, and a
        # short sync should not wait at all
        self.plan_limiter = WindowLimiter(settings.requests_per_minute, 60, clock=clock, sleep=sleep)
        self.export_limiter = WindowLimiter(settings.export_requests_per_minute, 60, clock=clock, sleep=sleep)
        self.api = ApiClient(
            base_url=settings.url,
            headers={"Authorization": settings.authorization(), "Accept": "application/json"},
            limiters=[self.plan_limiter],
            retry=retry,
            sleep=sleep,
            clock=clock,
            transport=transport,
            error_mapper=map_error,
            should_retry=retry_decision,
            secrets=settings.secrets(),
        )

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def close(self) -> None:
        self.api.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.api.request("GET", path, params=params).json()

    def export(self, path: str, params: dict[str, Any]) -> Any:
        """GET an incremental export (admins only, 10 requests a minute on top of the plan limit)."""
        return self.api.request("GET", path, params=params, limiters=[self.export_limiter]).json()

    def send(self, method: str, path: str, body: dict[str, Any], *, retry: bool = True) -> Any:
        """A write. `retry=False` for writes that must not be repeated blindly (creating a ticket,
        adding a comment): a lost response then surfaces, and the operation's own check-first
        path decides on the next attempt."""
        response = self.api.request(method, path, json=body, retry=retry)
        return response.json() if response.content else {}

    def cursor_pages(self, path: str, params: dict[str, Any] | None = None, *,
                     after: str | None = None, size: int = 100) -> Iterator[tuple[Any, str | None]]:
        """Walk a cursor-paginated list; yield each body with the cursor that resumes after it.

            {"tickets": [...], "meta": {"has_more": true, "after_cursor": "xxx"}, "links": {"next": "..."}}
        """
        while True:
            query = {**(params or {}), "page[size]": size, **({"page[after]": after} if after else {})}
            body = self.get(path, query)
            meta = body.get("meta") or {}
            after = meta.get("after_cursor") or after
            more = bool(meta.get("has_more"))
            yield body, (after if more else None)
            if not more:
                return
