"""Outgoing webhooks: a JSON POST signed with HMAC-SHA256, executed by the hub itself.

Each delivery carries

    Content-Type: application/json
    Idempotency-Key: <the action's idempotency key>      (the same on every retry: dedupe on it)
    X-Churnhub-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">

The signature is made with the secret in the environment variable the action names
(`secret_env`), so the secret never sits in the outbox. A receiver recomputes the HMAC over the
raw body, compares in constant time and refuses timestamps older than its tolerance (see
`verify_signature`). Slack incoming webhooks ignore the extra headers and read `{"text": ...}`.

Answers: 2xx succeeded; 408, 425, 429 and 5xx or a network error are retried later (honouring
Retry-After); any other status is final, with the status and the start of the receiver's body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

from hub.connector import OperationResult
from hub.errors import TransientError
from hub.http import USER_AGENT, parse_retry_after

SIGNATURE_HEADER = "X-Churnhub-Signature"
RETRYABLE_STATUSES = frozenset({408, 425, 429})


def body_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode("utf-8")


def signature(body: bytes, secret: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(header: str | None, body: bytes, secret: str, *, now: float, tolerance: float = 300) -> bool:
    """True when `header` signs `body` with `secret` and is at most `tolerance` seconds old."""
    if not header:
        return False
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    timestamps = [v for k, v in parts if k.strip() == "t"]
    if len(timestamps) != 1 or not timestamps[0].strip().isdigit():
        return False
    timestamp = int(timestamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(body, secret, timestamp).split("v1=", 1)[1]
    # bytes: compare_digest refuses non-ASCII str, and a forged header may carry any text
    return any(hmac.compare_digest(expected.encode(), v.strip().encode("utf-8", "surrogateescape"))
               for k, v in parts if k.strip() == "v1")


class WebhookConfigError(ValueError):
    """The action names an environment variable that is not set."""


def _from_environment(params: Mapping[str, Any], name: str, environ: Mapping[str, str]) -> str | None:
    variable = params.get(f"{name}_env")
    if not variable:
        return params.get(name)
    value = environ.get(variable)
    if not value:
        raise WebhookConfigError(f"environment variable {variable} ({name} of this webhook) is not set")
    return value


def post_webhook(client: httpx.Client, params: Mapping[str, Any], *, key: str, environ: Mapping[str, str],
                 now: float) -> OperationResult:
    """Deliver one webhook. Raises TransientError when it is worth trying again later."""
    try:
        url = _from_environment(params, "url", environ)
        secret = _from_environment(params, "secret", environ)
    except WebhookConfigError as exc:
        return OperationResult(ok=False, error=str(exc), code="config", retryable=False)
    if not url or not url.startswith(("https://", "http://")):
        return OperationResult(ok=False, error=f"not an http(s) URL: {url!r}", code="config")
    body = body_bytes(params.get("body", {}))
    headers = {"Content-Type": "application/json", "Idempotency-Key": key, "User-Agent": USER_AGENT,
               **{str(k): str(v) for k, v in (params.get("headers") or {}).items()}}
    if secret:
        headers[SIGNATURE_HEADER] = signature(body, secret, int(now))
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.TransportError as exc:
        raise TransientError(f"webhook POST failed: {type(exc).__name__}: {exc}") from None
    host = httpx.URL(url).host
    if response.is_success:
        return OperationResult(ok=True, data={"status": response.status_code, "host": host})
    text = response.text[:500].strip()
    message = f"webhook answered HTTP {response.status_code}" + (f": {text}" if text else "")
    if response.status_code in RETRYABLE_STATUSES or response.status_code >= 500:
        raise TransientError(message, status=response.status_code,
                             retry_after=parse_retry_after(response.headers.get("Retry-After")))
    return OperationResult(ok=False, error=message, code=str(response.status_code), retryable=False)
