"""Outbound operations: what dunning and playbooks ask Stripe to do.

Every operation is one POST carrying an `Idempotency-Key` derived from the hub's action key, so
an action retried by the outbox acts once at Stripe (and gets the first answer back). A card
decline (402) is an outcome, not a failure of the connector: `OperationResult(ok=False,
code=<decline code>, error=<Stripe's message>)`. Note that Stripe replays the first answer for
24 hours, so each new payment attempt needs a new action key.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub import Operation, OperationResult, PermanentError, RateLimitedError, TransientError

from .client import CardError, StripeClient
from .mapping import map_customer, map_invoice, map_subscription

MAX_KEY_LENGTH = 255
Feedback = Literal["too_expensive", "missing_features", "switched_service", "unused", "customer_service",
                   "too_complex", "low_quality", "other"]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def request(self) -> tuple[str, dict[str, Any]]:
        """The POST path and its (nested) form parameters."""
        raise NotImplementedError


class RetryInvoice(Params):
    """Attempt to pay an open invoice now (`POST /v1/invoices/{id}/pay`)."""

    invoice_id: str = Field(pattern=r"^in_")
    payment_method: str | None = Field(None, description="a card to use instead of the default")
    off_session: bool = True

    def request(self) -> tuple[str, dict[str, Any]]:
        data: dict[str, Any] = {"off_session": self.off_session}
        if self.payment_method:
            data["payment_method"] = self.payment_method
        return f"/v1/invoices/{self.invoice_id}/pay", data


class MarkUncollectible(Params):
    """Give up on an open invoice (`POST /v1/invoices/{id}/mark_uncollectible`)."""

    invoice_id: str = Field(pattern=r"^in_")

    def request(self) -> tuple[str, dict[str, Any]]:
        return f"/v1/invoices/{self.invoice_id}/mark_uncollectible", {}


class PauseCollection(Params):
    """Stop collecting payments; the subscription stays `active` and invoices are still made."""

    subscription_id: str = Field(pattern=r"^sub_")
    behavior: Literal["keep_as_draft", "mark_uncollectible", "void"] = "void"
    resumes_at: datetime | None = None

    def request(self) -> tuple[str, dict[str, Any]]:
        pause: dict[str, Any] = {"behavior": self.behavior}
        if self.resumes_at is not None:
            pause["resumes_at"] = int(self.resumes_at.timestamp())
        return f"/v1/subscriptions/{self.subscription_id}", {"pause_collection": pause}


class ResumeCollection(Params):
    """Collect payments again (clears `pause_collection`)."""

    subscription_id: str = Field(pattern=r"^sub_")

    def request(self) -> tuple[str, dict[str, Any]]:
        return f"/v1/subscriptions/{self.subscription_id}", {"pause_collection": None}


class ApplyCoupon(Params):
    """Put a coupon on a subscription (replaces its discounts)."""

    subscription_id: str = Field(pattern=r"^sub_")
    coupon: str = Field(min_length=1)

    def request(self) -> tuple[str, dict[str, Any]]:
        return f"/v1/subscriptions/{self.subscription_id}", {"discounts": [{"coupon": self.coupon}]}


class CancelAtPeriodEnd(Params):
    """Cancel when the current period ends (or undo that with `cancel_at_period_end: false`)."""

    subscription_id: str = Field(pattern=r"^sub_")
    cancel_at_period_end: bool = True
    feedback: Feedback | None = None
    comment: str | None = None

    def request(self) -> tuple[str, dict[str, Any]]:
        data: dict[str, Any] = {"cancel_at_period_end": self.cancel_at_period_end}
        details = {k: v for k, v in (("feedback", self.feedback), ("comment", self.comment)) if v is not None}
        if details:
            data["cancellation_details"] = details
        return f"/v1/subscriptions/{self.subscription_id}", data


class SetMetadata(Params):
    """Set metadata keys on a customer or subscription; a `null` value removes the key."""

    object: Literal["customer", "subscription"]
    id: str = Field(min_length=1)
    metadata: dict[str, str | None] = Field(min_length=1)

    def request(self) -> tuple[str, dict[str, Any]]:
        collection = "customers" if self.object == "customer" else "subscriptions"
        return f"/v1/{collection}/{self.id}", {"metadata": self.metadata}


OPERATIONS = {op.name: op for op in (
    Operation("retry_invoice", RetryInvoice, "Attempt payment of an open invoice now."),
    Operation("mark_uncollectible", MarkUncollectible, "Write off an open invoice."),
    Operation("pause_collection", PauseCollection, "Pause payment collection on a subscription."),
    Operation("resume_collection", ResumeCollection, "Resume payment collection on a subscription."),
    Operation("apply_coupon", ApplyCoupon, "Apply a coupon to a subscription."),
    Operation("cancel_at_period_end", CancelAtPeriodEnd, "Cancel a subscription when its period ends."),
    Operation("set_metadata", SetMetadata, "Set metadata on a customer or subscription."),
)}


def stripe_idempotency_key(operation: str, action_key: str) -> str:
    """The same hub action always sends the same key (at most 255 characters)."""
    key = f"churnhub-{operation}-{action_key}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return f"churnhub-{operation}-{hashlib.sha256(action_key.encode()).hexdigest()}"


def summary(body: dict[str, Any]) -> dict[str, Any]:
    """The canonical fields of the object Stripe returned."""
    mapper = {"invoice": map_invoice, "subscription": map_subscription, "customer": map_customer}.get(
        body.get("object", ""))
    return dict(mapper(body).fields) if mapper else {}


def execute(client: StripeClient, operation: str, params: BaseModel, idempotency_key: str) -> OperationResult:
    spec = OPERATIONS.get(operation)
    if spec is None:
        raise ValueError(f"unknown Stripe operation {operation!r} (known: {', '.join(OPERATIONS)})")
    if not isinstance(params, spec.params):
        params = spec.params.model_validate(params.model_dump() if isinstance(params, BaseModel) else params)
    path, data = params.request()
    try:
        body = client.post(path, data, idempotency_key=stripe_idempotency_key(operation, idempotency_key))
    except CardError as declined:
        return OperationResult(ok=False, error=declined.api_message, code=declined.decline_code or declined.code,
                               retryable=False, data={"charge": declined.charge, "advice_code": declined.advice_code,
                                                      "status": declined.status})
    except (TransientError, RateLimitedError) as exc:
        return OperationResult(ok=False, error=str(exc), code=exc.code, retryable=True, data={"status": exc.status})
    except PermanentError as exc:  # validation, unknown object, wrong state: the same every time
        return OperationResult(ok=False, error=str(exc), code=exc.code, retryable=False, data={"status": exc.status})
    return OperationResult(ok=True, external_id=body.get("id"), data=summary(body))

