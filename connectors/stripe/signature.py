"""Webhook signatures: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`.

The signature is the hex HMAC-SHA256 of `"{t}.{raw body}"` with the endpoint's secret; a
payload is genuine if any `v1` matches (compared in constant time) and `t` is within the
tolerance (300 s) of now. Several `v1` values appear while an endpoint's secret is being rolled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from hub import AuthError, PermanentError, WebhookEvent

DEFAULT_TOLERANCE = 300
HEADER = "stripe-signature"


def compute(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header value for `payload`."""
    return f"t={timestamp},v1={compute(payload, secret, timestamp)}"


def parse_header(header: str) -> tuple[int | None, list[str]]:
    """`t=..,v1=..,v1=..` -> (timestamp, v1 candidates); other schemes (`v0`) are ignored."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    return timestamp, candidates


def verify(payload: bytes, header: str | None, secret: str, *, tolerance: int = DEFAULT_TOLERANCE,
           now: float | None = None) -> bool:
    """True if `header` signs `payload` with `secret` and is fresh enough."""
    if not header:
        return False
    timestamp, candidates = parse_header(header)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if tolerance and abs(current - timestamp) > tolerance:
        return False
    expected = compute(payload, secret, timestamp)
    return any(_same(expected, candidate) for candidate in candidates)


def verify_event(headers: Mapping[str, str], body: bytes, secret: str, *,
                 tolerance: int = DEFAULT_TOLERANCE, now: float | None = None) -> WebhookEvent:
    """Check a delivery's `Stripe-Signature` and parse its event.

    Missing or forged (no `v1` matches) -> AuthError (401); stale, malformed header or a body
    that is not a Stripe event -> PermanentError (400). The signature is checked before the
    timestamp so that an unsigned caller learns nothing about the tolerance.
    """
    header = next((value for name, value in headers.items() if name.lower() == HEADER), None)
    if not header:
        raise AuthError("missing Stripe-Signature header")
    timestamp, candidates = parse_header(header)
    if timestamp is None or not candidates:
        raise PermanentError("malformed Stripe-Signature header (expected t=<unix>,v1=<hex>)")
    expected = compute(body, secret, timestamp)
    # no short-circuit: every candidate is compared, each in constant time
    if not [candidate for candidate in candidates if _same(expected, candidate)]:
        raise AuthError("the Stripe-Signature does not match this endpoint's webhook_secret")
    current = time.time() if now is None else now
    if tolerance and abs(current - timestamp) > tolerance:
        raise PermanentError(f"stale delivery: signed {int(current - timestamp)} s ago (tolerance {tolerance} s)")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise PermanentError(f"the body is not JSON: {exc}") from None
    if not isinstance(payload, dict) or not payload.get("id") or not payload.get("type"):
        raise PermanentError("the body is not a Stripe event (no id or type)")
    return WebhookEvent(str(payload["id"]), str(payload["type"]), payload)


def _same(expected: str, candidate: str) -> bool:
    """Constant-time comparison that also takes what an attacker sends (non-ASCII text included):
    `hmac.compare_digest` refuses non-ASCII str, so both sides are compared as bytes."""
    return hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "surrogateescape"))
