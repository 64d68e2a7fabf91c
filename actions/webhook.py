"""`webhook`: a signed JSON POST, or a Slack-compatible team alert.

    - webhook:
        url_env: SLACK_ALERTS_URL          # or url: https://hooks.example.com/churn
        secret_env: ALERTS_SIGNING_SECRET  # HMAC-SHA256 key for the X-Churnhub-Signature header
        format: slack                      # {"text": ...} for Slack incoming webhooks; json (default)
        text: ":warning: {{ customer.name }} opened 3 tickets in 7 days"

URLs and secrets can be named by environment variable (`url_env`, `secret_env`) so they never sit
in the outbox or `churnhub actions --json`; a Slack webhook URL is itself a secret. The `json`
format posts `{"event": "churnhub.action", "customer": {...}, "text": ..., "data": payload}`.
The hub delivers it (`hub.outbox.webhook`), with the action's key as `Idempotency-Key`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from hub import ActionType

from .common import ActionParams

CUSTOMER_FIELDS = ("id", "name", "domain", "status", "mrr", "currency", "churn_state")


class Webhook(ActionParams):
    url: str | None = None
    url_env: str | None = None
    secret_env: str | None = None
    format: Literal["json", "slack"] = "json"
    text: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Webhook:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        if self.url is not None and not self.url.startswith(("https://", "http://")):
            raise ValueError(f"url must start with https:// (got {self.url!r})")
        if self.format == "slack" and not self.text:
            raise ValueError("a slack webhook needs text")
        if any(ch in value for item in self.headers.items() for value in item for ch in "\r\n"):
            raise ValueError("header names and values cannot contain line breaks")
        return self


def plan(params: Webhook, context: dict[str, Any]) -> dict[str, Any]:
    if params.format == "slack":
        body: dict[str, Any] = {"text": params.text}
    else:
        customer = context.get("customer") or {}
        body = {"event": "churnhub.action", "customer": {k: customer.get(k) for k in CUSTOMER_FIELDS},
                "text": params.text, "data": params.payload}
    operation = {"body": body, "headers": params.headers}
    operation.update({k: v for k, v in (("url", params.url), ("url_env", params.url_env),
                                        ("secret_env", params.secret_env)) if v})
    target = params.url_env and f"${params.url_env}" or params.url
    return {"operation": "post_webhook", "params": operation, "summary": f"{params.format} webhook to {target}"}


WEBHOOK = ActionType(name="webhook", params=Webhook, plan=plan,
                     description="POST signed JSON (or a Slack-compatible {'text'} alert) to a URL.")
