"""Building the MIME message for one send: pure, and refusing anything that could forge a header.

    message = build_message(rendered, sender=Address("Acme", addr_spec="success@acme.example"),
                            to="dana@northwind.example", to_name="Dana Whitfield",
                            message_id="<9f2c...@acme.example>", date=now, reply_to=None,
                            list_unsubscribe=list_unsubscribe_header(url, None))
    raw = to_bytes(message)

A value from data (a customer's name, an address, a subject) containing a line break would end
its header and start another (`Bcc:` ...). Python's email package refuses CR and LF itself, but
we check first, for every line separator Python knows, so the refusal is ours, names the field,
and becomes a final (not retryable) result.
"""

from __future__ import annotations

import email.policy
import io
from datetime import datetime
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from hub.templating import RenderedEmail

# Every character str.splitlines() treats as a line boundary, plus NUL.
_LINE_SEPARATORS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00")

# Generating with a long line limit keeps headers such as List-Unsubscribe (one long URL) on one
# line: at 78 the email package would wrap the URL into RFC 2047 encoded words, which mail
# clients do not read as a link. Bodies are already encoded (quoted-printable at 76) by then.
_WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)


class UnsafeHeaderError(ValueError):
    """A value destined for a header contains a line break (a header-injection attempt)."""


def refuse_line_breaks(field: str, value: str) -> str:
    if any(ch in _LINE_SEPARATORS for ch in value):
        raise UnsafeHeaderError(f"refused to send: the {field} contains a line break ({value[:80]!r}), "
                                "which could inject email headers")
    return value


def mailbox(addr_spec: str, display_name: str | None = None) -> Address:
    """One mailbox, `local@domain` (+ a display name); ValueError when it is not one."""
    try:
        address = Address(display_name=display_name or "", addr_spec=addr_spec.strip())
    except Exception as exc:  # the email parser raises several unrelated types for bad input
        raise ValueError(f"{addr_spec!r} is not an email address ({exc})") from None
    if not address.username or not address.domain:
        raise ValueError(f"{addr_spec!r} is not an email address")
    return address


def parse_mailbox(value: str) -> Address:
    """`"Acme <success@acme.example>"` or `success@acme.example` -> an `Address` (ValueError otherwise)."""
    refuse_line_breaks("address", value)
    name, addr_spec = parseaddr(value)
    if not addr_spec:
        raise ValueError(f"{value!r} is not an email address")
    return mailbox(addr_spec, name)


def recipient_address(to: str, to_name: str | None) -> Address:
    """The `To` mailbox; UnsafeHeaderError for line breaks, ValueError when `to` is not an address."""
    refuse_line_breaks("recipient address", to)
    refuse_line_breaks("recipient name", to_name or "")
    return mailbox(to, to_name)


def list_unsubscribe_header(one_click_url: str, mailto: str | None) -> str:
    """RFC 8058: `<https://.../TOKEN>` first, then an optional `<mailto:...>` fallback."""
    refuse_line_breaks("unsubscribe URL", one_click_url)
    targets = [f"<{one_click_url}>"]
    if mailto:
        targets.append(f"<mailto:{refuse_line_breaks('unsubscribe mailto', mailto)}?subject=unsubscribe>")
    return ", ".join(targets)


def build_message(rendered: RenderedEmail, *, sender: Address, to: Address, message_id: str, date: datetime,
                  reply_to: str | None = None, list_unsubscribe: str | None = None) -> EmailMessage:
    """A `multipart/alternative` message (text, then HTML) or a plain-text one when there is no HTML."""
    refuse_line_breaks("subject", rendered.subject)
    message = EmailMessage()
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(date)
    message["From"] = sender
    message["To"] = to
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = rendered.subject
    if list_unsubscribe:
        message["List-Unsubscribe"] = list_unsubscribe
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(rendered.text)
    if rendered.html:
        message.add_alternative(rendered.html, subtype="html")
    return message


def to_bytes(message: EmailMessage, *, international: bool = False) -> bytes:
    """The message as sent on the wire (CRLF line endings); `international` for SMTPUTF8 addresses."""
    buffer = io.BytesIO()
    policy = _WIRE_POLICY.clone(utf8=True) if international else _WIRE_POLICY
    BytesGenerator(buffer, policy=policy).flatten(message)
    return buffer.getvalue()
