"""Talking to Salesforce's REST API: auth, the daily API budget, error mapping, queries, collections.

Errors come as a JSON array, the OAuth endpoint's as an object:

    [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    {"error": "invalid_grant", "error_description": "authentication failure"}

`403 REQUEST_LIMIT_EXCEEDED` (the org's daily API quota is spent) becomes `QuotaExhaustedError`:
the stream stops, its state kept. Every response carries `Sforce-Limit-Info: api-usage=18/5000`;
the client remembers the latest figures so a stream can stop on its own before the org runs dry
(`api_usage_limit_percent`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from hub import (
    ApiClient,
    ConnectorError,
    QuotaExhaustedError,
    RateLimiter,
    RetryPolicy,
    error_for_status,
)

from .auth import SalesforceAuth
from .settings import SalesforceSettings

_USAGE = re.compile(r"(?<![\w-])api-usage=(\d+)/(\d+)")   # not per-app-api-usage=...


def error_parts(response: httpx.Response) -> tuple[str, str | None]:
    """The API's own words and error code from either error shape (or a text body)."""
    try:
        body = response.json()
    except ValueError:
        return (response.text.strip()[:300] or response.reason_phrase), None
    if isinstance(body, list) and body and all(isinstance(e, dict) for e in body):
        words = "; ".join(f"{e.get('errorCode')}: {e.get('message')}" + (f" ({', '.join(e['fields'])})"
                          if e.get("fields") else "") for e in body)
        return words, body[0].get("errorCode")
    if isinstance(body, dict) and (body.get("error") or body.get("error_description")):
        return str(body.get("error_description") or body["error"]), body.get("error")
    return str(body)[:300], None


def parse_api_usage(header: str | None) -> tuple[int, int] | None:
    """`api-usage=18/5000` (possibly among other entries) -> (18, 5000)."""
    found = _USAGE.search(header or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


class SalesforceClient:
    """One org: every call is authenticated by `SalesforceAuth` and counted against the budget."""

    def __init__(self, settings: SalesforceSettings, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], float] = time.time, retry: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.auth = SalesforceAuth(settings, now=now)
        self.api_usage: tuple[int, int] | None = None
        self.api = ApiClient(
            base_url=settings.login_url,          # the auth flow sends API calls to the token's instance
            headers={"Accept": "application/json"},
            auth=self.auth,
            limiters=[RateLimiter(settings.requests_per_second, 1.0, clock=clock, sleep=sleep)],
            retry=retry,
            sleep=sleep,
            clock=clock,
            transport=transport,
            error_mapper=self.map_error,
            secrets=settings.secrets(),
        )

    @property
    def request_count(self) -> int:
        """Every HTTP request, logins and the one retry after a 401 included."""
        return self.api.request_count + self.auth.logins + self.auth.session_retries

    def close(self) -> None:
        self.api.close()

    # -- errors and budget ------------------------------------------------------------------

    def map_error(self, response: httpx.Response) -> ConnectorError:
        self.note_usage(response)
        words, code = error_parts(response)
        if code == "REQUEST_LIMIT_EXCEEDED":
            return QuotaExhaustedError(
                f"HTTP {response.status_code} from {response.request.method} {response.request.url.path}: "
                f"{words} (the org's daily API quota is spent; reading resumes where it stopped)",
                status=response.status_code, code=code)
        return error_for_status(response, words, code)

    def note_usage(self, response: httpx.Response) -> None:
        usage = parse_api_usage(response.headers.get("Sforce-Limit-Info"))
        if usage:
            self.api_usage = usage

    def over_budget(self) -> bool:
        """True once the org's daily API use is beyond `api_usage_limit_percent` of its quota."""
        if self.api_usage is None or self.api_usage[1] <= 0:
            return False
        used, limit = self.api_usage
        return used * 100 > limit * self.settings.api_usage_limit_percent

    def ensure_read_budget(self) -> None:
        if self.over_budget():
            assert self.api_usage is not None
            used, limit = self.api_usage
            raise QuotaExhaustedError(
                f"Salesforce daily API use is {used}/{limit}, beyond api_usage_limit_percent="
                f"{self.settings.api_usage_limit_percent:g}: stopping here; the next run resumes",
                code="API_USAGE_LIMIT")

    # -- calls ------------------------------------------------------------------------------

    def path(self, resource: str) -> str:
        return f"/services/data/v{self.settings.api_version}{resource}"

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self.api.request(method, url, **kwargs)
        self.note_usage(response)
        return response

    def query(self, soql: str, *, include_deleted: bool = False) -> dict[str, Any]:
        """The first batch of a query (`queryAll` also returns soft-deleted records)."""
        resource = "/queryAll" if include_deleted else "/query"
        return self.request("GET", self.path(resource), params={"q": soql}, headers=self._batch_header()).json()

    def query_more(self, next_records_url: str) -> dict[str, Any]:
        """The batch a `nextRecordsUrl` (a path on the instance) points at."""
        return self.request("GET", next_records_url, headers=self._batch_header()).json()

    def query_records(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record of a (small) query, following `nextRecordsUrl`."""
        body = self.query(soql)
        while True:
            yield from body.get("records") or []
            if body.get("done", True) or not body.get("nextRecordsUrl"):
                return
            body = self.query_more(body["nextRecordsUrl"])

    def limits(self) -> dict[str, Any]:
        return self.request("GET", self.path("/limits")).json()

    def collection(self, method: str, resource: str, records: Sequence[dict[str, Any]], *,
                   retry: bool = True) -> list[dict[str, Any]]:
        """An sObject Collections call (<= 200 records, `allOrNone: false`): one result per record,
        in order: `{"id", "success", "errors": [{"statusCode", "message", "fields"}], "created"?}`."""
        response = self.request(method, self.path(resource), json={"allOrNone": False, "records": list(records)},
                                retry=retry)
        results = response.json()
        if not isinstance(results, list) or len(results) != len(records):
            raise ConnectorError(f"{method} {resource} answered {len(results) if isinstance(results, list) else 0} "
                                 f"results for {len(records)} records")
        return results

    def _batch_header(self) -> dict[str, str]:
        return {"Sforce-Query-Options": f"batchSize={self.settings.batch_size}"}
