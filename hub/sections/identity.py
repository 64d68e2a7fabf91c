"""`identity:` — how source records are matched into one customer.

    identity:
      explicit_links: true          # Stripe metadata.salesforce_account_id, Zendesk external_id, ...
      domain_matching: true         # website / domain names / email domain, never free-mail
      name_matching: false          # normalised company name ("Acme, Inc." == "ACME")
      extra_free_mail_domains: [mail.example.net]
      manual_links:
        - {connector: billing, external_id: cus_123, same_as: "crm:0015g00000AbCdEAAV"}
        - {connector: helpdesk, external_id: "9001", domain: acme.com}
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from hub.sections.common import Strict


class ManualLink(Strict):
    """Force a source record onto a customer identified by a domain or another record."""

    connector: str
    external_id: str
    kind: str = "account"
    domain: str | None = None
    same_as: str | None = Field(default=None, description="'<connector>:<external_id>' of another record")

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if self.kind != "account":
            raise ValueError("manual links apply to account records only (kind: account)")
        if (self.domain is None) == (self.same_as is None):
            raise ValueError("give exactly one of 'domain' or 'same_as'")
        if self.same_as is not None and ":" not in self.same_as:
            raise ValueError("same_as must be '<connector>:<external_id>'")
        return self

    @property
    def same_as_key(self) -> tuple[str, str] | None:
        if self.same_as is None:
            return None
        connector, _, external_id = self.same_as.partition(":")
        return connector, external_id


class IdentitySettings(Strict):
    explicit_links: bool = True
    domain_matching: bool = True
    name_matching: bool = False
    extra_free_mail_domains: list[str] = Field(default_factory=list)
    manual_links: list[ManualLink] = Field(default_factory=list)
