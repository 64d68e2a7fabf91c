"""The Zendesk sandbox's HTTP API (Starlette), faithful to /work/shared/api/zendesk.md.

Auth (Basic `email/token:api_token` or Bearer) -> 401 `{"error": "Couldn't authenticate you"}`;
exports are for admins (403 for an agent); rate limits per clock minute (plan limit for every
request, 10/minute more for exports) -> 429 with `Retry-After`; lists page by cursor
(`page[size]` <= 100, `meta`, `links`) or by offset (`page`, `per_page`, 400 past 10,000 records).
Paths answer with and without `.json`.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from .sandbox_store import ApiProblem, dumps

Handler = Callable[[Request, "Credential"], Awaitable[Response]]


@dataclass(frozen=True)
class Credential:
    email: str
    api_token: str
    oauth_token: str
    role: str                      # "admin" or "agent"
    user_id: int = 0


@dataclass
class Limits:
    enabled: bool = True
    plan_per_minute: int = 200
    export_per_minute: int = 10
    export_page_size: int = 1000   # Zendesk's; smaller values make tests cheaper


@dataclass
class MinuteWindow:
    """A counter per clock minute, like Zendesk's `ratelimit-reset`."""

    limit: int
    clock: Callable[[], float]
    window: int = -1
    used: int = 0

    def take(self) -> tuple[bool, int, int]:
        """(allowed, remaining, seconds until the window resets)."""
        now = self.clock()
        window = int(now // 60)
        if window != self.window:
            self.window, self.used = window, 0
        reset = max(1, math.ceil((window + 1) * 60 - now))
        if self.used >= self.limit:
            return False, 0, reset
        self.used += 1
        return True, self.limit - self.used, reset


def new_error(status: int, code: str, title: str, detail: str) -> ApiProblem:
    """An error in Zendesk's newer shape."""
    return ApiProblem(status, {"errors": [{"code": code, "title": title, "detail": detail}]})


@dataclass
class ZendeskApi:
    world: Any                                  # ZendeskWorld
    credentials: Sequence[Credential]
    limits: Limits
    log: list[tuple[str, str, int]] = field(default_factory=list)   # (method, path?query, status)

    def __post_init__(self) -> None:
        self.plan_window = MinuteWindow(self.limits.plan_per_minute, self.world.clock)
        self.export_window = MinuteWindow(self.limits.export_per_minute, self.world.clock)

    def authenticate(self, request: Request) -> Credential | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return next((c for c in self.credentials if c.oauth_token == value), None)
        if scheme.lower() != "basic":
            return None
        try:
            user, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        email, marker, _ = user.partition("/token")
        return next((c for c in self.credentials if marker and c.email.lower() == email.lower()
                     and c.api_token == secret), None)

    def spend(self, export: bool) -> tuple[Response | None, dict[str, str]]:
        """Count the request; a 429 response when a budget is spent, plus rate-limit headers."""
        if not self.limits.enabled:
            return None, {}
        allowed, remaining, reset = self.plan_window.take()
        headers = {"X-Rate-Limit": str(self.limits.plan_per_minute), "X-Rate-Limit-Remaining": str(remaining),
                   "ratelimit-limit": str(self.limits.plan_per_minute), "ratelimit-remaining": str(remaining),
                   "ratelimit-reset": str(reset)}
        if not allowed:  # Zendesk answers the plan limit in plain text
            return PlainTextResponse("Too Many Requests", 429, headers={"Retry-After": str(reset)}), headers
        if export:
            allowed, remaining, reset = self.export_window.take()
            if not allowed:
                body = {"error": "APIRateLimitExceeded",
                        "description": f"Incremental exports are limited to {self.limits.export_per_minute} "
                                       "requests per minute"}
                return JSONResponse(body, 429, headers={"Retry-After": str(reset)}), headers
        return None, headers

    def endpoint(self, handler: Handler, *, export: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            credential = self.authenticate(request)
            headers: dict[str, str] = {}
            if credential is None:
                response: Response = JSONResponse({"error": "Couldn't authenticate you"}, 401)
            elif export and credential.role != "admin":
                response = JSONResponse({"error": "Forbidden", "description": "You do not have access to this "
                                         "page. Please contact the account owner of this help desk for further "
                                         "help."}, 403)
            else:
                limited, headers = self.spend(export)
                try:
                    response = limited or await handler(request, credential)
                except ApiProblem as problem:
                    response = JSONResponse(problem.body, problem.status)
            response.headers.update(headers)
            query = f"?{request.url.query}" if request.url.query else ""
            self.log.append((request.method, request.scope.get("zendesk.path", request.url.path) + query,
                             response.status_code))
            return response

        return run

    def link(self, request: Request, params: Mapping[str, Any]) -> str:
        """This endpoint's URL (as the client called it) with other query parameters."""
        base = str(request.base_url).rstrip("/")
        path = request.scope.get("zendesk.path", request.url.path)
        return f"{base}{path}?{urlencode(params, safe='[]')}"


def json_bytes(content: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(content, status, headers=dict(headers or {}), media_type="application/json; charset=utf-8")


def list_body(key: str, items: list[bytes], extra: Mapping[str, Any]) -> bytes:
    """`{"<key>": [<pre-encoded items>], ...extra}` without re-encoding the items."""
    rest = dumps(dict(extra))
    return b'{"' + key.encode() + b'":[' + b",".join(items) + b"]" + (b"," + rest[1:] if extra else b"}")


class StripJsonSuffix:
    """Serve `/api/v2/tickets/1.json` and `/api/v2/tickets/1` alike (the caller's form is kept)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            original = scope["path"]
            scope = {**scope, "zendesk.path": original}
            if original.endswith(".json"):
                scope["path"] = original[:-5]
                scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)
