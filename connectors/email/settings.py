"""The `type: smtp` settings block.

    connectors:
      mail:
        type: smtp
        host: smtp.example.com
        security: starttls                 # starttls (port 587) | ssl (implicit TLS, 465) | none (25)
        # port: 587                        # defaults by security
        username: churnhub@example.com     # optional; give password with it
        password: ${SMTP_PASSWORD}
        from_address: "Acme Success <success@acme.example>"
        reply_to: success@acme.example
        messages_per_second: 10            # client-side limit
        unsubscribe_url: https://hub.acme.example/unsubscribe   # one-click base URL (+ /TOKEN)
        unsubscribe_secret: ${UNSUBSCRIBE_SECRET}
        # unsubscribe_mailto: unsubscribe@acme.example
        # templates_dir: ./emails          # overrides/adds email templates by name
        # ca_file: ./relay-ca.pem          # trust a private CA; verify_tls: false only for a lab relay

Plaintext (`security: none`) is only ever used when written down; certificates are verified.
"""

from __future__ import annotations

from email.headerregistry import Address
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from hub import ConnectorSettings

from .message import parse_mailbox

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class SmtpSettings(ConnectorSettings):
    host: str = Field(min_length=1)
    port: int | None = Field(None, gt=0, lt=65536, description="default: 587 starttls, 465 ssl, 25 none")
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_address: str
    reply_to: str | None = None
    messages_per_second: float = Field(10, gt=0)
    timeout: float = Field(30, gt=0, description="seconds for connecting and each SMTP command")
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    unsubscribe_secret: SecretStr | None = None
    templates_dir: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None
    message_id_domain: str | None = None

    @field_validator("from_address", "reply_to", "unsubscribe_mailto")
    @classmethod
    def _one_mailbox(cls, value: str | None) -> str | None:
        if value is not None:
            parse_mailbox(value)
        return value

    @field_validator("unsubscribe_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        # RFC 8058: the one-click URI is HTTPS; plain http only for a hub on this machine.
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS):
            raise ValueError("unsubscribe_url must be an https:// URL (RFC 8058), e.g. https://hub.example.com/unsubscribe")
        if not parts.hostname or any(ch in value for ch in " <>,\r\n"):
            raise ValueError(f"{value!r} is not a URL that can go in a List-Unsubscribe header")
        return value.rstrip("/")

    @field_validator("message_id_domain")
    @classmethod
    def _plain_domain(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(ch in value for ch in " <>@\r\n")):
            raise ValueError(f"{value!r} is not a domain name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SmtpSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("give username and password together (or neither, for a relay without AUTH)")
        if (self.unsubscribe_url is None) != (self.unsubscribe_secret is None):
            raise ValueError("give unsubscribe_url and unsubscribe_secret together: the link carries a signed token")
        if self.unsubscribe_secret is not None and len(self.unsubscribe_secret.get_secret_value()) < 16:
            raise ValueError("unsubscribe_secret must be at least 16 characters (it signs unsubscribe links)")
        return self

    @property
    def smtp_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    @property
    def sender(self) -> Address:
        return parse_mailbox(self.from_address)

    @property
    def domain(self) -> str:
        """The right-hand side of every Message-ID."""
        return self.message_id_domain or self.sender.domain

    def secrets(self) -> list[str]:
        """Strings that must never appear in an error message."""
        return [s.get_secret_value() for s in (self.password, self.unsubscribe_secret) if s is not None]
