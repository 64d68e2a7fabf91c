"""The `type: usage` settings block.

    connectors:
      product:
        type: usage
        base_url: https://analytics.acme.example     # the product's usage export
        api_token: ${USAGE_API_TOKEN}
        key_features: [report_export, dashboard_share] # feature events counted as `events`
        page_size: 100
"""

from __future__ import annotations

from hub import ConnectorSettings
from pydantic import Field, SecretStr, field_validator


class UsageSettings(ConnectorSettings):
    base_url: str = Field(description="the usage export's base URL (a sandbox in tests and demos)")
    api_token: SecretStr = Field(description="sent as `Authorization: Bearer ...`")
    key_features: list[str] | None = Field(None, description="feature events that count; None: all of them")
    page_size: int = Field(100, ge=1, le=100, description="objects per list request")
    requests_per_second: float = Field(10, gt=0, description="client-side rate limit")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")
