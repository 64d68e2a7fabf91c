"""HTTP access to the product-usage export: bearer auth, retries, rate limit, errors in the hub's tree."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from hub import (
    ApiClient,
    ConnectorError,
    RateLimiter,
    RetryPolicy,
    TransientError,
    default_error_message,
    error_for_status,
)

from .settings import UsageSettings


def map_error(response: httpx.Response) -> ConnectorError:
    """`{"error": {"code": ..., "message": ...}}` -> AuthError / NotFoundError / PermanentError / ..."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code") if isinstance(error, dict) else None
    return error_for_status(response, default_error_message(response), code=code)


class UsageClient:
    def __init__(self, settings: UsageSettings, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 retry: RetryPolicy | None = None) -> None:
        token = settings.api_token.get_secret_value()
        self.api = ApiClient(base_url=settings.base_url, headers={"Authorization": f"Bearer {token}"},
                             retry=retry, sleep=sleep, clock=clock, transport=transport, error_mapper=map_error,
                             limiters=[RateLimiter(settings.requests_per_second, clock=clock, sleep=sleep)],
                             secrets=[token])

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._json(self.api.request("GET", path, params=dict(params or {})))

    def post(self, path: str, body: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        # The key makes a retried POST safe: the API answers a replay with the first response.
        return self._json(self.api.request("POST", path, json=dict(body),
                                           headers={"Idempotency-Key": idempotency_key}))

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise TransientError(f"{response.request.url.path} answered something that is not JSON") from None
        if not isinstance(body, dict):
            raise TransientError(f"{response.request.url.path} answered {type(body).__name__}, not an object")
        return body

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def close(self) -> None:
        self.api.close()
