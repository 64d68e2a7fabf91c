"""Talking to Stripe: bearer auth, a pinned `Stripe-Version`, form bodies, error mapping, retries.

Stripe answers every error in one shape, mapped with the API's own words:

    {"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
               "message": "Your card has insufficient funds.", "param": null, "charge": "ch_..."}}

A 402 (card declined) becomes `CardError` carrying the decline code, the charge and Stripe's
advice. Retries follow Stripe's own client: the `Stripe-Should-Retry` header decides when present;
without it 409 (a concurrent request with the same idempotency key), 429 and 5xx are retried with
backoff `min(0.5 * 2^(n-1), 5)` s and jitter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from hub import (
    ApiClient,
    ConnectorError,
    PermanentError,
    RateLimiter,
    RetryPolicy,
    default_error_message,
    error_for_status,
)

from . import forms
from .settings import StripeSettings

STRIPE_RETRY = RetryPolicy(max_attempts=5, max_elapsed=60.0, base_delay=0.5, max_delay=5.0)


class CardError(PermanentError):
    """A 402: the card was declined (the request itself was fine; retrying it as is won't help)."""

    def __init__(self, message: str, *, api_message: str, decline_code: str | None, charge: str | None,
                 advice_code: str | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.api_message = api_message  # Stripe's words alone ("Your card has insufficient funds.")
        self.decline_code, self.charge, self.advice_code = decline_code, charge, advice_code


def error_body(response: httpx.Response) -> dict[str, Any]:
    """The `error` object of a Stripe error response ({} when the body is something else)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def map_error(response: httpx.Response) -> ConnectorError:
    error = error_body(response)
    api_message = error.get("message") or default_error_message(response)
    message = f"{api_message} (param: {error['param']})" if error.get("param") else api_message
    code = error.get("code")
    mapped = error_for_status(response, message, code)
    if response.status_code == 402 or error.get("type") == "card_error":
        return CardError(str(mapped), api_message=api_message, status=mapped.status,
                         code=error.get("decline_code") or code,
                         request_id=mapped.request_id, decline_code=error.get("decline_code"),
                         charge=error.get("charge"), advice_code=error.get("advice_code"))
    return mapped


def retry_decision(response: httpx.Response) -> bool | None:
    hint = response.headers.get("Stripe-Should-Retry", "").strip().lower()
    if hint in ("true", "false"):
        return hint == "true"
    return True if response.status_code == 409 else None


class StripeClient:
    """One Stripe account (or connected account) at one pinned API version."""

    def __init__(self, settings: StripeSettings, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 retry: RetryPolicy | None = None) -> None:
        key = settings.api_key.get_secret_value()
        headers = {"Authorization": f"Bearer {key}", "Stripe-Version": settings.api_version}
        if settings.account:
            headers["Stripe-Account"] = settings.account
        self.page_size = settings.page_size
        self.api = ApiClient(
            base_url=settings.base_url, headers=headers, retry=retry or STRIPE_RETRY,
            limiters=[RateLimiter(settings.requests_per_second, 1.0, clock=clock, sleep=sleep)],
            sleep=sleep, clock=clock, transport=transport, error_mapper=map_error,
            should_retry=retry_decision, secrets=[key],
        )

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def close(self) -> None:
        self.api.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = self.api.request("GET", path, params=forms.flatten(params or {}))
        return response.json()

    def list_page(self, path: str, params: Mapping[str, Any] | None = None, *, starting_after: str | None = None,
                  ending_before: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """One page of a list: `{"object": "list", "data": [...], "has_more": bool, "url": ...}`."""
        query = {**(params or {}), "limit": limit or self.page_size}
        if starting_after:
            query["starting_after"] = starting_after
        if ending_before:
            query["ending_before"] = ending_before
        return self.get(path, query)

    def post(self, path: str, data: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        response = self.api.request(
            "POST", path, content=forms.encode(data),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Idempotency-Key": idempotency_key},
        )
        return response.json()
