"""Identifiers the hub and the SMTP connector must derive identically: unsubscribe tokens, Message-IDs.

The connector writes them into headers; the hub reads them back (the one-click unsubscribe
endpoint verifies the token, the sent log keys messages by Message-ID). Both sides call these
pure functions so they can never disagree.

An unsubscribe token carries the address and an HMAC-SHA256 over it, both base64url without
padding, joined by a dot:

    >>> token = make_token("dana@example.com", "s3cret")
    >>> token.split(".")[0]
    'ZGFuYUBleGFtcGxlLmNvbQ'
    >>> verify_token(token, "s3cret")
    'dana@example.com'
    >>> verify_token(token, "another secret") is None
    True

The address is readable by whoever holds the link (the recipient), but nobody can mint a token
for another address without the secret. Tokens do not expire: an unsubscribe link must keep
working for as long as the message sits in a mailbox.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_TOKEN_LENGTH = 1024     # an address is at most 320 characters; anything longer is garbage


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    if not _BASE64URL.match(text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not key:
        raise ValueError("the unsubscribe secret is empty")
    return key


def _mac(email: str, secret: str | bytes, purpose: str) -> bytes:
    # The purpose is signed too, so a token minted for one use is refused by another.
    message = purpose.encode("utf-8") + b"\x00" + email.encode("utf-8")
    return hmac.new(_key(secret), message, hashlib.sha256).digest()


def make_token(email: str, secret: str | bytes, *, purpose: str = "unsubscribe") -> str:
    """An opaque, URL-safe token that proves `email` was issued a link by us."""
    return f"{_b64encode(email.encode('utf-8'))}.{_b64encode(_mac(email, secret, purpose))}"


def verify_token(token: object, secret: str | bytes, *, purpose: str = "unsubscribe") -> str | None:
    """The address inside a genuine token, or None for anything else (never raises on input)."""
    key = _key(secret)
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 1:
        return None
    encoded_email, encoded_mac = token.split(".")
    raw_email, given_mac = _b64decode(encoded_email), _b64decode(encoded_mac)
    if raw_email is None or given_mac is None:
        return None
    try:
        email = raw_email.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not hmac.compare_digest(_mac(email, key, purpose), given_mac):
        return None
    return email


def unsubscribe_link(base_url: str, email: str, secret: str | bytes) -> str:
    """The one-click URL for `email`: `{base_url}/{token}` (the hub's endpoint takes the token)."""
    return f"{base_url.rstrip('/')}/{make_token(email, secret)}"


def message_id_for(idempotency_key: str, domain: str) -> str:
    """The Message-ID of the email sent for an outbox action: `<sha256(key)[:32]@domain>`.

    Deterministic, so a retried action carries the same id and is recognisable in the sent log
    and in the recipient's mailbox.
    """
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{domain}>"
