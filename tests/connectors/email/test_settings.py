"""The `type: smtp` settings block: defaults by security, pairs that go together, safe URLs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from connectors.email.settings import SmtpSettings

BASE: dict[str, Any] = {"host": "smtp.acme.example", "from_address": "Acme Success <success@acme.example>"}


@pytest.mark.parametrize(("security", "port"), [(None, 587), ("starttls", 587), ("ssl", 465), ("none", 25)])
def test_port_and_security_defaults(security: str | None, port: int) -> None:
    settings = SmtpSettings(**BASE, **({"security": security} if security else {}))
    assert settings.smtp_port == port
    assert settings.security == (security or "starttls")
    assert settings.verify_tls and settings.messages_per_second == 10 and settings.timeout == 30


def test_an_explicit_port_wins_and_the_message_id_domain_defaults_to_the_sender_domain() -> None:
    settings = SmtpSettings(**BASE, port=2525)
    assert settings.smtp_port == 2525
    assert settings.domain == "acme.example"
    assert settings.sender.addr_spec == "success@acme.example" and settings.sender.display_name == "Acme Success"
    assert SmtpSettings(**BASE, message_id_domain="mail.acme.example").domain == "mail.acme.example"


@pytest.mark.parametrize(("extra", "message"), [
    ({"username": "u"}, "username and password together"),
    ({"password": "p"}, "username and password together"),
    ({"unsubscribe_url": "https://hub.acme.example/unsubscribe"}, "unsubscribe_url and unsubscribe_secret"),
    ({"unsubscribe_url": "http://hub.acme.example/u", "unsubscribe_secret": "x" * 20}, "https"),
    ({"unsubscribe_url": "https://hub.acme.example/u", "unsubscribe_secret": "short"}, "16 characters"),
    ({"from_address": "not an address"}, "not an email address"),
    ({"from_address": "a@acme.example\r\nBcc: x@y.example"}, "line break"),
    ({"reply_to": "nobody"}, "not an email address"),
    ({"security": "tls"}, "starttls"),
    ({"smtp_host": "x"}, "Extra inputs"),
])
def test_invalid_settings_are_refused_with_a_reason(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SmtpSettings(**{**BASE, **extra})


def test_plain_http_unsubscribe_is_allowed_only_for_a_hub_on_this_machine() -> None:
    settings = SmtpSettings(**BASE, unsubscribe_url="http://127.0.0.1:8000/unsubscribe/",
                            unsubscribe_secret="s" * 16)
    assert settings.unsubscribe_url == "http://127.0.0.1:8000/unsubscribe"


def test_secrets_are_hidden_and_listed_for_redaction() -> None:
    settings = SmtpSettings(**BASE, username="mailer", password="hunter2-long", unsubscribe_secret="u" * 20,
                            unsubscribe_url="https://hub.acme.example/unsubscribe")
    assert "hunter2" not in repr(settings)
    assert settings.secrets() == ["hunter2-long", "u" * 20]
