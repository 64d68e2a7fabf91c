"""Webhook signatures: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`.

The signature is the hex HMAC-SHA256 of `"{t}.{raw body}"` with the endpoint's secret; a
payload is genuine if any `v1` matches (compared in constant time) and `t` is within the
tolerance (300 s) of now.
"""

from __future__ import annotations

import hashlib
import hmac
import time

DEFAULT_TOLERANCE = 300


def compute(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header value for `payload`."""
    return f"t={timestamp},v1={compute(payload, secret, timestamp)}"


def verify(payload: bytes, header: str | None, secret: str, *, tolerance: int = DEFAULT_TOLERANCE,
           now: float | None = None) -> bool:
    """True if `header` signs `payload` with `secret` and is fresh enough."""
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if tolerance and abs(current - timestamp) > tolerance:
        return False
    expected = compute(payload, secret, timestamp)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
