"""A local, stateful emulator of a product-usage export API for tests and demos (127.0.0.1 only).

    sandbox = start_sandbox()                   # 12 demo accounts with 30 days of usage
    sandbox.settings()                          # {"base_url": "http://127.0.0.1:PORT", "api_token": ...}
    sandbox.record_usage("acct_0001", "2026-06-01", logins=3, active_users=2)   # new row or correction
    sandbox.stop()

API:
    GET  /api/v1/me                               -> {"workspace": "sandbox"}
    GET  /api/v1/accounts?after=C&limit=N         -> {"data": [account, ...], "next": C | null}
    GET  /api/v1/usage/daily?after=C&limit=N      -> {"data": [row, ...], "next": C | null}
         objects in change order, each with a `cursor`; `after` is the cursor of the last one seen
    POST /api/v1/accounts/{id}/messages           -> 201 {"id", "account_id", "text"}
         an in-app message; a repeated `Idempotency-Key` answers the first response, adds nothing
Every request needs `Authorization: Bearer <api_token>` (401 otherwise). Errors are
`{"error": {"code": ..., "message": ...}}`; `fail_next(n, status)` makes the next n requests fail.

Dataset (a dict or a JSON file; None: `sandbox_world.demo_dataset()`):

    {"accounts": [{"id": "acct_1", "name": "Acme", "domain": "acme.example", "plan": "pro",
                   "created_at": "2026-01-05T09:00:00Z", "deleted": false,
                   "crm_id": "001..."}],      # crm_id optional: the Salesforce account id (explicit link)
     "usage":    [{"account_id": "acct_1", "day": "2026-06-01", "active_users": 14, "logins": 31,
                   "feature_events": {"report_export": 4, "dashboard_share": 1}}]}
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hub import RunningServer, serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .sandbox_world import ChangeLog, UsageWorld, demo_dataset

MAX_LIMIT = 100


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def build_app(world: UsageWorld, token: str) -> Starlette:
    def guard(request: Request) -> JSONResponse | None:
        with world.lock:
            world.requests += 1
            if world.failures:
                status = world.failures.pop(0)
                return error(status, "sandbox_fault", f"injected HTTP {status}")
        if request.headers.get("authorization") != f"Bearer {token}":
            return error(401, "invalid_token", "The API token is missing or not valid.")
        return None

    async def me(request: Request) -> JSONResponse:
        return guard(request) or JSONResponse({"workspace": "sandbox"})

    def lister(log: Callable[[], ChangeLog]) -> Callable[[Request], Any]:
        async def list_changes(request: Request) -> JSONResponse:
            refused = guard(request)
            if refused:
                return refused
            try:
                limit = int(request.query_params.get("limit", MAX_LIMIT))
            except ValueError:
                return error(422, "invalid_limit", "limit must be an integer")
            if not 1 <= limit <= MAX_LIMIT:
                return error(422, "invalid_limit", f"limit must be between 1 and {MAX_LIMIT}")
            with world.lock:
                found, more = log().changed_after(request.query_params.get("after", ""), limit)
                data = [json.loads(json.dumps(obj)) for obj in found]
            return JSONResponse({"data": data, "next": data[-1]["cursor"] if more else None})

        return list_changes

    async def send_message(request: Request) -> JSONResponse:
        refused = guard(request)
        if refused:
            return refused
        key = request.headers.get("idempotency-key")
        account_id = request.path_params["account_id"]
        try:
            body = await request.json()
        except ValueError:
            return error(422, "invalid_json", "the body must be JSON")
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
            return error(422, "invalid_message", "a message needs a non-empty `text`")
        with world.lock:
            if key and key in world.replies:
                return JSONResponse(world.replies[key], status_code=201)
            account = world.accounts.objects.get(account_id)
            if account is None or account.get("deleted"):
                return error(404, "not_found", f"No account {account_id!r}.")
            message = world.add_message(account_id, body["text"])
            if key:
                world.replies[key] = message
        return JSONResponse(message, status_code=201)

    return Starlette(routes=[
        Route("/api/v1/me", me),
        Route("/api/v1/accounts", lister(lambda: world.accounts)),
        Route("/api/v1/usage/daily", lister(lambda: world.usage)),
        Route("/api/v1/accounts/{account_id}/messages", send_message, methods=["POST"]),
    ])


class UsageSandbox:
    def __init__(self, world: UsageWorld, token: str, server: RunningServer) -> None:
        self.world, self.token, self.server = world, token, server
        self.url = server.url

    def settings(self) -> dict[str, Any]:
        """The connector settings (minus `type`) that point at this sandbox."""
        return {"base_url": self.url, "api_token": self.token, "requests_per_second": 1000}

    def stop(self) -> None:
        self.server.stop()

    # --- for tests and demos --------------------------------------------------------------------

    def account_ids(self) -> set[str]:
        with self.world.lock:
            return set(self.world.accounts.objects)

    def usage_ids(self) -> set[str]:
        with self.world.lock:
            return set(self.world.usage.objects)

    def add_account(self, account_id: str, **fields: Any) -> dict[str, Any]:
        with self.world.lock:
            return dict(self.world.put_account({"id": account_id, **fields}))

    def delete_account(self, account_id: str) -> None:
        with self.world.lock:
            self.world.put_account({"id": account_id, "deleted": True})

    def record_usage(self, account_id: str, day: str, **values: Any) -> dict[str, Any]:
        with self.world.lock:
            return dict(self.world.put_usage({"account_id": account_id, "day": day, **values}))

    def messages(self, account_id: str) -> list[dict[str, Any]]:
        with self.world.lock:
            return list(self.world.messages.get(account_id, []))

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        with self.world.lock:
            self.world.failures.extend([status] * count)

    @property
    def request_count(self) -> int:
        with self.world.lock:
            return self.world.requests


def load_dataset(dataset: Mapping[str, Any] | str | Path | None) -> Mapping[str, Any]:
    if dataset is None:
        return demo_dataset()
    if isinstance(dataset, str | Path):
        return json.loads(Path(dataset).read_text(encoding="utf-8"))
    return dataset


def start_sandbox(dataset: Mapping[str, Any] | str | Path | None = None, *, api_token: str | None = None,
                  clock: Callable[[], float] = time.time) -> UsageSandbox:
    """Seed the sandbox from `dataset` (see the module docstring) and serve it on 127.0.0.1."""
    world = UsageWorld(clock)
    data = load_dataset(dataset)
    for account in data.get("accounts", []):
        world.put_account(account)
    for row in data.get("usage", []):
        world.put_usage(row)
    token = api_token or f"sandbox-{secrets.token_hex(12)}"
    server = serve_in_thread(build_app(world, token), name="usage")
    return UsageSandbox(world, token, server)
