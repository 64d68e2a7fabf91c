"""The sandbox org's HTTP face (Starlette): OAuth, the daily API budget, queries, and the write resources.

    POST /services/oauth2/token                       see sandbox_auth
    GET  /services/data                               the API versions
    GET  /services/data/vXX.X/limits                  DailyApiRequests {Max, Remaining}
    GET  /services/data/vXX.X/query?q=SOQL            first batch (queryAll: soft-deleted records too)
    GET  /services/data/vXX.X/query/{locator}-{n}     the batch starting at record n
    ...  /services/data/vXX.X/sobjects/..., /composite/sobjects...   see sandbox_writes

Every `/services/data` response carries `Sforce-Limit-Info: api-usage=N/M`. Each authenticated
call counts against the daily budget (reset at midnight UTC on the sandbox clock); once it is
spent, calls get `403 REQUEST_LIMIT_EXCEEDED`. Query batches hold at most `Sforce-Query-Options:
batchSize` (200-2000, default 2000) records, and never more than the sandbox's `max_batch_size`.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .sandbox_auth import OAuthError, Sessions
from .sandbox_query import Cursor, Cursors, QueryError, batch, run
from .sandbox_soql import SoqlError, parse
from .sandbox_store import OrgStore
from .sandbox_writes import (
    ApiFailure,
    Result,
    collection_delete,
    collection_write,
    create_one,
    delete_one,
    get_one,
    update_one,
    upsert_one,
)

VERSION = re.compile(r"^v(\d{2})\.0$")
OLDEST_VERSION, NEWEST_VERSION = 31, 66
DEFAULT_BATCH, MIN_BATCH, MAX_BATCH = 2000, 200, 2000
BATCH_OPTION = re.compile(r"batchSize\s*=\s*(\d+)")
DAY = 86_400
JSON_TYPE = "application/json;charset=UTF-8"
LOG_SIZE = 100_000                     # requests remembered (a demo sandbox may run for days)


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class DailyBudget:
    """API calls per UTC day on the sandbox clock: `api-usage=used/limit`."""

    limit: int
    clock: Callable[[], float]
    used: int = 0
    day: int = -1

    def __post_init__(self) -> None:
        self.day = int(self.clock() // DAY)

    def roll(self) -> None:
        today = int(self.clock() // DAY)
        if today != self.day:
            self.day, self.used = today, 0

    def take(self) -> bool:
        """Count one call; False (and nothing counted) when the day's budget is spent."""
        self.roll()
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def header(self) -> str:
        return f"api-usage={self.used}/{self.limit}"


@dataclass
class SalesforceApi:
    store: OrgStore
    sessions: Sessions
    cursors: Cursors
    budget: DailyBudget
    max_batch_size: int = MAX_BATCH
    url: str = ""                                  # set once the server runs: the instance_url
    log: deque[tuple[str, str, int]] = field(default_factory=lambda: deque(maxlen=LOG_SIZE))   # (method, path?query, status)

    # -- HTTP plumbing ----------------------------------------------------------------------

    def respond(self, request: Request, status: int, body: Any = None, *, limit_header: bool = True) -> Response:
        headers = {"Sforce-Limit-Info": self.budget.header()} if limit_header else {}
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        self.log.append((request.method, target, status))
        content = b"" if body is None else dumps(body)
        return Response(content, status_code=status, headers=headers,
                        media_type=JSON_TYPE if body is not None else None)

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        try:
            with self.store.lock:
                body = self.sessions.grant(form, self.url)
        except OAuthError as refused:
            return self.respond(request, refused.status, refused.body(), limit_header=False)
        return self.respond(request, 200, body, limit_header=False)

    async def data(self, request: Request) -> Response:
        parts = [p for p in request.path_params.get("rest", "").split("/") if p]
        if not parts:
            return self.respond(request, 200, [{"label": f"v{v}.0", "url": f"/services/data/v{v}.0",
                                                "version": f"{v}.0"} for v in range(OLDEST_VERSION, NEWEST_VERSION + 1)])
        found = VERSION.match(parts[0])
        if not found or not OLDEST_VERSION <= int(found.group(1)) <= NEWEST_VERSION:
            return self.respond(request, 404, [{"errorCode": "NOT_FOUND",
                                                "message": "The requested resource does not exist"}])
        if self.sessions.session_of(request.headers.get("authorization")) is None:
            return self.respond(request, 401, [{"message": "Session expired or invalid",
                                                "errorCode": "INVALID_SESSION_ID"}])
        if not self.budget.take():
            return self.respond(request, 403, [{"message": "TotalRequests Limit exceeded.",
                                                "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
        version = parts[0][1:]
        try:
            body = await self.json_body(request)
            with self.store.lock:
                status, answer = self.dispatch(request, version, parts[1:], body)
        except ApiFailure as failure:
            return self.respond(request, failure.status, failure.body)
        return self.respond(request, status, answer)

    async def json_body(self, request: Request) -> Any:
        if request.method not in ("POST", "PATCH", "PUT"):
            return None
        raw = await request.body()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiFailure(400, "JSON_PARSER_ERROR", f"Unexpected character in the request body: {exc}") from None

    def dispatch(self, request: Request, version: str, parts: list[str], body: Any) -> Result:
        method = request.method
        head, rest = (parts[0], parts[1:]) if parts else ("", [])
        if head == "limits" and not rest:
            allow(method, "GET")
            return 200, self.limits()
        if head in ("query", "queryAll"):
            allow(method, "GET")
            if not rest:
                return self.query(request, version, head)
            if len(rest) == 1:
                return self.query_more(request, version, head, rest[0])
        if head == "sobjects" and len(rest) == 1:
            allow(method, "POST")
            return create_one(self.store, rest[0], body)
        if head == "sobjects" and len(rest) == 2:
            allow(method, "GET", "PATCH", "DELETE")
            if method == "GET":
                return get_one(self.store, rest[0], rest[1], version)
            if method == "PATCH":
                return update_one(self.store, rest[0], rest[1], body)
            return delete_one(self.store, rest[0], rest[1])
        if head == "sobjects" and len(rest) == 3:
            allow(method, "PATCH")
            return upsert_one(self.store, rest[0], rest[1], rest[2], body, version)
        if head == "composite" and rest[:1] == ["sobjects"]:
            if len(rest) == 1:
                allow(method, "POST", "PATCH", "DELETE")
                if method == "DELETE":
                    ids = [i for i in request.query_params.get("ids", "").split(",") if i]
                    return collection_delete(self.store, ids, request.query_params.get("allOrNone") == "true")
                return collection_write(self.store, method, body)
            if len(rest) == 3:
                allow(method, "PATCH")
                return collection_write(self.store, method, body, upsert_on=(rest[1], rest[2]))
        raise ApiFailure(404, "NOT_FOUND", "The requested resource does not exist")

    # -- resources -----------------------------------------------------------------------------

    def limits(self) -> dict[str, Any]:
        self.budget.roll()
        return {"DailyApiRequests": {"Max": self.budget.limit, "Remaining": self.budget.limit - self.budget.used}}

    def batch_size(self, request: Request) -> int:
        found = BATCH_OPTION.search(request.headers.get("sforce-query-options", ""))
        wanted = int(found.group(1)) if found else DEFAULT_BATCH
        return min(max(MIN_BATCH, min(wanted, MAX_BATCH)), self.max_batch_size)

    def query(self, request: Request, version: str, resource: str) -> Result:
        soql = request.query_params.get("q")
        if not soql:
            raise ApiFailure(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            sobject, fields, records = run(self.store, parse(soql), include_deleted=resource == "queryAll")
        except SoqlError as exc:
            raise ApiFailure(400, "MALFORMED_QUERY", f"{soql}\nERROR: {exc}") from None
        except QueryError as exc:
            raise ApiFailure(400, exc.code, f"{soql}\nERROR: {exc}") from None
        cursor = Cursor(sobject, fields, records, self.cursors.clock())
        return 200, batch(self.cursors, cursor, None, 0, self.batch_size(request), version, resource)

    def query_more(self, request: Request, version: str, resource: str, locator_text: str) -> Result:
        locator, _, offset = locator_text.rpartition("-")
        cursor = self.cursors.get(locator) if locator and offset.isdigit() else None
        if cursor is None:
            raise ApiFailure(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return 200, batch(self.cursors, cursor, locator, int(offset), self.batch_size(request), version, resource)


def allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiFailure(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are "
                         f"{','.join(allowed)}")


def build_app(api: SalesforceApi) -> Starlette:
    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    return Starlette(routes=[
        Route("/services/oauth2/token", api.token, methods=["POST"]),
        Route("/services/data", api.data, methods=methods),
        Route("/services/data/{rest:path}", api.data, methods=methods),
    ])
