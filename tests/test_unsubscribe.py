"""Unsubscribe tokens (HMAC-signed, carrying the address) and Message-IDs derived from idempotency keys."""

from __future__ import annotations

import base64
import re

import pytest

from hub.unsubscribe import make_token, message_id_for, unsubscribe_link, verify_token

SECRET = "a-long-random-unsubscribe-secret"


@pytest.mark.parametrize("email", ["dana@northwind.example", "Mixed.Case+tag@Example.COM", "jörg@bücher.example"])
def test_a_token_round_trips_to_its_address(email: str) -> None:
    token = make_token(email, SECRET)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token), "opaque and URL-safe, no padding"
    assert verify_token(token, SECRET) == email
    assert verify_token(token, SECRET.encode()) == email


def test_tokens_are_deterministic_and_differ_per_address_and_secret() -> None:
    assert make_token("a@example.com", SECRET) == make_token("a@example.com", SECRET)
    assert make_token("a@example.com", SECRET) != make_token("b@example.com", SECRET)
    assert make_token("a@example.com", SECRET) != make_token("a@example.com", SECRET + "x")


def test_tampered_tokens_are_rejected() -> None:
    token = make_token("dana@northwind.example", SECRET)
    address_part, mac_part = token.split(".")
    other_address = base64.urlsafe_b64encode(b"eve@attacker.example").rstrip(b"=").decode()
    flipped_mac = mac_part[:-2] + ("A" if mac_part[-2] != "A" else "B") + mac_part[-1]

    assert verify_token(f"{other_address}.{mac_part}", SECRET) is None      # someone else's address
    assert verify_token(f"{address_part}.{flipped_mac}", SECRET) is None    # a forged signature
    assert verify_token(f"{address_part}.{mac_part[:-4]}", SECRET) is None  # a truncated signature
    assert verify_token(token, "another-secret-entirely") is None
    assert verify_token(token, SECRET, purpose="preferences") is None        # minted for another use
    assert verify_token(make_token("dana@northwind.example", SECRET, purpose="preferences"), SECRET) is None


@pytest.mark.parametrize("garbage", [
    None, 42, b"bytes.token", "", ".", "..", "abc", "a.b.c", "!!!.???", "ZGFuYQ.", ".ZGFuYQ",
    "ZGFuYQ==.ZGFuYQ",                       # padding is not part of the format
    "_w.AAAA",                               # decodes to bytes that are not UTF-8
    "A" * 5000 + "." + "B" * 43,             # absurdly long
    "ZGFuYUBub3J0aHdpbmQuZXhhbXBsZQ.\u00e9\u00e9",
])
def test_garbage_is_rejected_without_raising(garbage: object) -> None:
    assert verify_token(garbage, SECRET) is None


def test_an_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="secret"):
        make_token("a@example.com", "")
    with pytest.raises(ValueError, match="secret"):
        verify_token("x.y", b"")


def test_unsubscribe_link_appends_the_token_to_the_base_url() -> None:
    link = unsubscribe_link("https://hub.example.com/unsubscribe/", "dana@northwind.example", SECRET)
    base, token = link.rsplit("/", 1)
    assert base == "https://hub.example.com/unsubscribe"
    assert verify_token(token, SECRET) == "dana@northwind.example"


def test_message_ids_are_derived_from_the_idempotency_key() -> None:
    first = message_id_for("playbook:reengage:cus_1:2025-03", "acme.example")
    assert first == message_id_for("playbook:reengage:cus_1:2025-03", "acme.example")
    assert re.fullmatch(r"<[0-9a-f]{32}@acme\.example>", first)
    assert message_id_for("playbook:reengage:cus_2:2025-03", "acme.example") != first
