"""The `type: zendesk` settings block.

    connectors:
      helpdesk:
        type: zendesk
        subdomain: acme                  # or base_url: http://127.0.0.1:8123 (a sandbox, a proxy)
        email: ops@acme.com              # API token auth: Basic base64("{email}/token:{api_token}")
        api_token: ${ZENDESK_API_TOKEN}
        # oauth_token: ${ZENDESK_OAUTH}  # ... or an OAuth access token (Bearer), not both
        requests_per_minute: 200         # your plan's limit (Team 200, Growth 400, Enterprise 700)
        nps_field: {object: organization, field: nps_score}
"""

from __future__ import annotations

import base64
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hub import ConnectorSettings

_SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class NpsField(BaseModel):
    """Where an NPS survey score (0-10) lives in Zendesk.

    `object: organization` or `user` -> `field` is a key of `organization_fields` / `user_fields`;
    `object: ticket` -> `field` is the id of a ticket custom field (`custom_fields[{id, value}]`).
    """

    model_config = ConfigDict(extra="forbid")

    object: Literal["organization", "user", "ticket"]
    field: str = Field(min_length=1)

    @field_validator("field", mode="before")
    @classmethod
    def _ids_as_text(cls, value: object) -> object:
        # ticket custom field ids are integers in YAML; keep one type
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ZendeskSettings(ConnectorSettings):
    subdomain: str | None = None
    base_url: str | None = None
    email: str | None = None
    api_token: SecretStr | None = None
    oauth_token: SecretStr | None = None
    requests_per_minute: int = Field(200, gt=0, description="the plan's API limit per minute")
    export_requests_per_minute: int = Field(10, gt=0, description="incremental exports have their own budget")
    nps_field: NpsField | None = None

    @field_validator("subdomain")
    @classmethod
    def _plain_subdomain(cls, value: str | None) -> str | None:
        if value is not None and not _SUBDOMAIN.match(value):
            raise ValueError(f"{value!r} is not a subdomain: give the 'acme' of acme.zendesk.com "
                             "(or base_url for anything else)")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            if not value.startswith(("http://", "https://")):
                raise ValueError("base_url must start with http:// or https://")
            value = value.rstrip("/")
        return value

    @model_validator(mode="after")
    def _one_host_one_scheme(self) -> ZendeskSettings:
        if (self.subdomain is None) == (self.base_url is None):
            raise ValueError("give exactly one of subdomain (acme for acme.zendesk.com) or base_url (a sandbox)")
        token_auth = self.email is not None or self.api_token is not None
        if self.oauth_token is not None and token_auth:
            raise ValueError("give either email + api_token or oauth_token, not both")
        if self.oauth_token is None:
            if self.email is None or self.api_token is None:
                raise ValueError("authentication needs email + api_token, or oauth_token")
        return self

    @property
    def url(self) -> str:
        return self.base_url or f"https://{self.subdomain}.zendesk.com"

    def authorization(self) -> str:
        """The `Authorization` header value for the configured scheme."""
        if self.oauth_token is not None:
            return f"Bearer {self.oauth_token.get_secret_value()}"
        assert self.email is not None and self.api_token is not None
        pair = f"{self.email}/token:{self.api_token.get_secret_value()}".encode()
        return f"Basic {base64.b64encode(pair).decode()}"

    def secrets(self) -> list[str]:
        """Strings that must never appear in an error message."""
        values = [s.get_secret_value() for s in (self.api_token, self.oauth_token) if s is not None]
        return [*values, self.authorization().split(" ", 1)[1]]
