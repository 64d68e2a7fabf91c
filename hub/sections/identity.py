"""`identity:` — how source records are matched into one customer."""

from __future__ import annotations

from pydantic import Field

from hub.sections.common import Strict


class ManualLink(Strict):
    """Force a source record onto a customer identified by a domain or another record."""

    connector: str
    external_id: str
    kind: str = "account"
    domain: str | None = None
    same_as: str | None = Field(default=None, description="'<connector>:<external_id>' of another record")


class IdentitySettings(Strict):
    explicit_links: bool = True
    domain_matching: bool = True
    name_matching: bool = False
    extra_free_mail_domains: list[str] = Field(default_factory=list)
    manual_links: list[ManualLink] = Field(default_factory=list)
