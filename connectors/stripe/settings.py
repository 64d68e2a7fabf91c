"""The `type: stripe` settings block.

    connectors:
      billing:
        type: stripe
        api_key: ${STRIPE_API_KEY}        # a secret or restricted key (read customers, subscriptions,
                                          # invoices, charges, events; write invoices, subscriptions)
        api_version: 2026-06-24.dahlia    # pinned: sent as Stripe-Version on every request
        account: acct_1Nv0FGQ9RKHgCVdK    # optional: act on a connected account (Stripe-Account)
        requests_per_second: 20           # stay under Stripe's limit (100/s live, 25/s test mode)
        page_size: 100                    # list page size, 1-100
        webhook_secret: ${STRIPE_WEBHOOK_SECRET}  # the endpoint's signing secret (whsec_...): needed
                                          # by `churnhub serve` to accept POST /webhooks/stripe/billing
        webhook_tolerance: 300            # seconds a signed delivery stays acceptable (replay window)
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from hub import ConnectorSettings

DEFAULT_API_VERSION = "2026-06-24.dahlia"


class StripeSettings(ConnectorSettings):
    api_key: SecretStr = Field(description="secret (sk_...) or restricted (rk_...) API key")
    base_url: str = Field("https://api.stripe.com", description="the API host (a sandbox in tests and demos)")
    api_version: str = Field(DEFAULT_API_VERSION, min_length=1, description="sent as Stripe-Version")
    account: str | None = Field(None, description="connected account id, sent as Stripe-Account")
    requests_per_second: float = Field(20, gt=0, description="client-side rate limit")
    page_size: int = Field(100, ge=1, le=100, description="objects per list request")
    webhook_secret: SecretStr | None = Field(None, description="the webhook endpoint's signing secret (whsec_...)")
    webhook_tolerance: int = Field(300, gt=0, description="seconds a signed webhook delivery stays acceptable")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("account")
    @classmethod
    def _account_id(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("acct_"):
            raise ValueError(f"{value!r} is not a connected account id (acct_...)")
        return value
