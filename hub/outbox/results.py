"""What a connector's answer means for an outbox action: `OperationResult`s and exceptions -> `Attempt`s.

    ok                                   -> succeeded, with `external_id` and the data as the result
    ok=False, retryable                  -> failed, tried again after a backoff
    ok=False, not retryable              -> dead, with the provider's own words and code
    raised PermanentError                -> dead (the same request would be refused again)
    raised other ConnectorError          -> failed (transient, rate limit, auth, quota), Retry-After kept
    raised anything else                 -> failed (a bug or an outage we do not know), logged
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from hub.connector import OperationResult
from hub.errors import (
    AuthError,
    ConnectorError,
    PermanentError,
    QuotaExhaustedError,
    RateLimitedError,
    TransientError,
)
from hub.outbox.state import UNCERTAIN, Attempt, ClaimedAction

log = logging.getLogger("hub.outbox")

# Raised by an at-most-once connector when nothing was handed to the provider (see execute.py).
NOT_DELIVERED = (TransientError, RateLimitedError, AuthError, QuotaExhaustedError)


def json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def attempt_from_result(result: OperationResult) -> Attempt:
    if result.ok:
        return Attempt(ok=True, result=json_safe({"external_id": result.external_id, **dict(result.data)}))
    return Attempt(ok=False, retryable=result.retryable, error=result.error or "refused by the provider",
                   code=result.code, result=json_safe(dict(result.data)) if result.data else None)


def attempt_from_error(exc: Exception) -> Attempt:
    """Exceptions raised by a connector: permanent ones are final, the rest are retried later."""
    if isinstance(exc, PermanentError):
        code = exc.code or (str(exc.status) if exc.status else None)
        return Attempt(ok=False, retryable=False, error=str(exc), code=code)
    if isinstance(exc, ConnectorError):
        return Attempt(ok=False, retryable=True, error=str(exc), code=exc.code, retry_after=exc.retry_after)
    log.error("outbox call failed unexpectedly", exc_info=exc)
    return Attempt(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}", code="exception")


def attempt_at_most_once(exc: Exception) -> Attempt:
    """An exception from a call without provider idempotency: retried only when surely not delivered."""
    if isinstance(exc, NOT_DELIVERED | PermanentError):
        return attempt_from_error(exc)
    log.error("at-most-once call ended unexpectedly", exc_info=exc)
    return Attempt(ok=False, retryable=False, code="uncertain", error=f"{UNCERTAIN} ({type(exc).__name__}: {exc})")


def message_id_of(action: ClaimedAction, attempt: Attempt) -> str:
    """The Message-ID the connector reported (a stable stand-in derived from the key otherwise)."""
    result = attempt.result or {}
    found = result.get("message_id") or result.get("external_id")
    if found:
        return str(found)
    return f"<{hashlib.sha256(action.key.encode()).hexdigest()[:32]}@churnhub.invalid>"
