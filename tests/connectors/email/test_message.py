"""Building the MIME message: structure, headers on one line, and no way for data to add a header."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from connectors.email.message import (
    UnsafeHeaderError,
    build_message,
    list_unsubscribe_header,
    parse_mailbox,
    recipient_address,
    to_bytes,
)
from hub.templating import RenderedEmail

SENDER = parse_mailbox("Acme Success <success@acme.example>")
WHEN = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
LONG_URL = "https://hub.acme.example/unsubscribe/ZGFuYUBub3J0aHdpbmQuZXhhbXBsZQ." + "x" * 43


def _build(rendered: RenderedEmail, **kwargs: object) -> bytes:
    message = build_message(rendered, sender=SENDER, to=recipient_address("dana@northwind.example", "Dana"),
                            message_id="<abc@acme.example>", date=WHEN, **kwargs)  # type: ignore[arg-type]
    return to_bytes(message)


def test_text_and_html_become_multipart_alternative_and_text_alone_stays_plain() -> None:
    raw = _build(RenderedEmail("Hello", "Hi Dana,\n", "<p>Hi Dana,</p>"))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Message-ID"] == "<abc@acme.example>" and parsed["Date"] == "Tue, 04 Mar 2025 09:30:00 +0000"
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")

    plain = email.message_from_bytes(_build(RenderedEmail("Hello", "Hi Dana,\n", None)), policy=email.policy.default)
    assert plain.get_content_type() == "text/plain" and plain.get_content().splitlines() == ["Hi Dana,"]


def test_list_unsubscribe_stays_on_one_unencoded_line() -> None:
    header = list_unsubscribe_header(LONG_URL, "unsubscribe@acme.example")
    raw = _build(RenderedEmail("Hello", "Hi\n", None), list_unsubscribe=header)
    assert f"List-Unsubscribe: <{LONG_URL}>, <mailto:unsubscribe@acme.example?subject=unsubscribe>\r\n".encode() in raw
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw


def test_non_ascii_names_and_subjects_are_encoded_not_mangled() -> None:
    message = build_message(RenderedEmail("Grüße, Jörg", "Hallo\n", None), sender=SENDER,
                            to=recipient_address("jorg@example.com", "Jörg Müller"),
                            message_id="<abc@acme.example>", date=WHEN)
    parsed = email.message_from_bytes(to_bytes(message), policy=email.policy.default)
    assert parsed["Subject"] == "Grüße, Jörg" and parsed["To"] == "Jörg Müller <jorg@example.com>"
    assert to_bytes(message).isascii()


@pytest.mark.parametrize("name", ["Dana\nBcc: x@y.example", "Dana\r", "Dana\x0bX", "Dana\x85X", "Dana\u2029X", "D\x00"])
def test_every_line_separator_in_a_name_is_refused(name: str) -> None:
    with pytest.raises(UnsafeHeaderError, match="recipient name"):
        recipient_address("dana@northwind.example", name)


def test_a_line_break_in_the_subject_is_refused() -> None:
    with pytest.raises(UnsafeHeaderError, match="subject"):
        _build(RenderedEmail("Hello\nBcc: x@y.example", "Hi\n", None))


@pytest.mark.parametrize("address", ["dana", "dana@", "@northwind.example", "a b@example.com",
                                     "a@example.com, b@example.com", "<a@example.com>"])
def test_anything_but_one_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="not an email address"):
        recipient_address(address, None)
