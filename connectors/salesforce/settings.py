"""The `type: salesforce` settings block.

    connectors:
      crm:
        type: salesforce
        login_url: https://login.salesforce.com    # or https://test.salesforce.com, a My Domain, a sandbox
        api_version: "61.0"
        auth:                                      # one of two OAuth grants, told apart by `grant`
          grant: client_credentials
          client_id: ${SF_CLIENT_ID}
          client_secret: ${SF_CLIENT_SECRET}
        # auth: {grant: jwt, client_id: ..., username: integration@acme.com, private_key_file: sf.key}
        fields:                                    # extra fields to read, per object
          Account: [Last_Login__c, Active_Users__c, Onboarding_Stage__c, NPS__c]
        facts:                                     # canonical facts -> the Account fields holding them
          last_login: Last_Login__c
          active_users: Active_Users__c
          lifecycle_stage: Onboarding_Stage__c
          nps: NPS__c
        api_usage_limit_percent: 50                # stop reading once the org's daily API use passes this
        lookback_seconds: 600
        requests_per_second: 10
        batch_size: 2000                           # query batch size (Salesforce: 200-2000)
        task_idempotency_field: Churnhub_Key__c    # a Text(255) External ID field on Task
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hub import ConnectorSettings

FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
API_VERSION = re.compile(r"^\d{2,3}\.0$")
SObjectName = Literal["Account", "Contact", "Opportunity", "User"]
# Canonical account facts a customer may keep in Account fields (see hub/factsdb.py ACCOUNT_KEYS).
FactName = Literal["last_login", "active_users", "last_activity", "lifecycle_stage", "nps"]


def field_name(value: str) -> str:
    """An API field name (`Name`, `NPS__c`): it is written into SOQL, so nothing else gets through."""
    if not isinstance(value, str) or not FIELD_NAME.match(value):
        raise ValueError(f"{value!r} is not a Salesforce field name (letters, digits and _, e.g. NPS__c)")
    return value


FieldName = Annotated[str, Field(min_length=1, max_length=80)]


class ClientCredentials(BaseModel):
    """OAuth client credentials flow of a connected app (it runs as the app's configured user)."""

    model_config = ConfigDict(extra="forbid")

    grant: Literal["client_credentials"]
    client_id: str = Field(min_length=1)
    client_secret: SecretStr


class JwtBearer(BaseModel):
    """OAuth JWT bearer flow: an RS256 assertion signed with the connected app's certificate key."""

    model_config = ConfigDict(extra="forbid")

    grant: Literal["jwt"]
    client_id: str = Field(min_length=1, description="the connected app's consumer key (`iss`)")
    username: str = Field(min_length=1, description="the user to act as (`sub`)")
    private_key_file: Path = Field(description="PEM file of the private key (read at login)")
    audience: str | None = Field(None, description="`aud`; default: https://login.salesforce.com, or "
                                 "https://test.salesforce.com for a sandbox login_url (see jwt_audience)")


Auth = Annotated[ClientCredentials | JwtBearer, Field(discriminator="grant")]


def jwt_audience(login_url: str) -> str:
    """The JWT `aud` Salesforce expects when logging in at `login_url`: the authorization server,
    not a My Domain (`https://test.salesforce.com` for sandboxes, `https://login.salesforce.com`
    for production); any other host (an Experience Cloud site, a local sandbox) is its own."""
    host = urlsplit(login_url).hostname or ""
    if host == "test.salesforce.com" or host.endswith(".sandbox.my.salesforce.com") or \
            (host.endswith(".my.salesforce.com") and "--" in host):
        return "https://test.salesforce.com"
    if host == "login.salesforce.com" or host.endswith(".my.salesforce.com"):
        return "https://login.salesforce.com"
    return login_url


class SalesforceSettings(ConnectorSettings):
    login_url: str = "https://login.salesforce.com"
    api_version: str = "61.0"
    auth: Auth
    fields: dict[SObjectName, list[FieldName]] = Field(default_factory=dict)
    facts: dict[FactName, FieldName] = Field(default_factory=dict)
    api_usage_limit_percent: float = Field(50, gt=0, le=100)
    lookback_seconds: int = Field(600, ge=0)
    requests_per_second: float = Field(10, gt=0)
    batch_size: int = Field(2000, ge=200, le=2000)
    task_idempotency_field: FieldName | None = "Churnhub_Key__c"

    @field_validator("login_url")
    @classmethod
    def _origin(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("login_url must be an http(s) URL such as https://login.salesforce.com")
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("api_version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = f"{float(value):.1f}"
        if isinstance(value, str):
            value = value.strip().removeprefix("v")
            if not API_VERSION.match(value):
                raise ValueError(f"{value!r} is not an API version like 61.0")
        return value

    @field_validator("fields")
    @classmethod
    def _field_lists(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {sobject: [field_name(name) for name in names] for sobject, names in value.items()}

    @field_validator("facts")
    @classmethod
    def _fact_fields(cls, value: dict[str, str]) -> dict[str, str]:
        return {fact: field_name(name) for fact, name in value.items()}

    @field_validator("task_idempotency_field")
    @classmethod
    def _key_field(cls, value: str | None) -> str | None:
        return field_name(value) if value is not None else None

    @model_validator(mode="after")
    def _jwt_audience(self) -> SalesforceSettings:
        if isinstance(self.auth, JwtBearer) and self.auth.audience is None:
            self.auth.audience = jwt_audience(self.login_url)
        return self

    def extra_fields(self, sobject: str) -> list[str]:
        """Fields to read on `sobject` beyond the standard ones: `fields[sobject]` plus, on
        Account, every field a fact is mapped from (in a stable order, no repeats)."""
        wanted = list(self.fields.get(sobject, []))  # type: ignore[call-overload]
        if sobject == "Account":
            wanted += list(self.facts.values())
        return list(dict.fromkeys(wanted))

    def secrets(self) -> list[str]:
        """Strings that must never appear in an error message."""
        return [self.auth.client_secret.get_secret_value()] if isinstance(self.auth, ClientCredentials) else []
