"""An SMTP sink for the demo and tests: a real aiosmtpd server on 127.0.0.1 that keeps what it gets.

    sandbox = start_sandbox(directory="var/outbox")     # plain SMTP on a free port
    settings = sandbox.settings()                        # host/port/security: none/from/unsubscribe
    ...
    sandbox.messages()[0].subject                        # captured: envelope, raw bytes, parsed parts
    sandbox.stop()

Every accepted message is kept in memory and, with `directory`, also written as an `.eml` file
into a maildir-style folder (`tmp/` then renamed into `new/`), so `churnhub sandbox` can say where
to look. Options:

    tls_context=ctx               offer STARTTLS (required before MAIL) with this server context
    ssl_context=ctx               implicit TLS on connect instead (port-465 style)
    auth=("user", "password")     require AUTH (PLAIN/LOGIN) with these credentials
    ca_file="ca.pem"              passed through to settings() so the connector trusts the certificate
    reject_recipients=[...]       these addresses answer 550 5.1.1 at RCPT (hard bounces)
    from_address, unsubscribe_url, unsubscribe_secret   values settings() hands out
    clock=callable                when a message was received (aware datetime)

Fault injection for tests: `fail_next_data(n)` answers the next n DATA commands with 451 (or any
code given); `reject_recipient(address)` makes one address bounce. `connections` counts TCP
connections clients opened.

Data set (optional, JSON-shaped): `{"reject_recipients": ["gone@example.com", ...]}`, addresses the
demo world wants to bounce so suppression can be seen at work.
"""

from __future__ import annotations

import email.policy
import os
import re
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class CapturedMessage:
    """One message as the sink received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    received_at: datetime
    path: Path | None = None

    def parsed(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        return str(self.parsed()["Subject"] or "")

    @property
    def message_id(self) -> str:
        return str(self.parsed()["Message-ID"] or "")

    def header(self, name: str) -> str | None:
        value = self.parsed()[name]
        return None if value is None else str(value)

    def body(self, subtype: str) -> str | None:
        """The decoded `text/plain` ("plain") or `text/html` ("html") part."""
        part = self.parsed().get_body(preferencelist=(subtype,))
        if part is None or part.get_content_subtype() != subtype:
            return None
        content = part.get_content()
        return content if isinstance(content, str) else None


@dataclass
class SinkHandler:
    """aiosmtpd handler: keeps messages and answers with the faults a test asked for."""

    clock: Callable[[], datetime]
    directory: Path | None = None
    reject: dict[str, str] = field(default_factory=dict)       # lowercased address -> reply
    data_failures: list[str] = field(default_factory=list)      # replies for the next DATA commands
    captured: list[CapturedMessage] = field(default_factory=list)
    connections: int = 0
    received: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            refusal = self.reject.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.data_failures:
                return self.data_failures.pop(0)
            self.received += 1
            number = self.received
        raw = envelope.original_content or b""
        received_at = self.clock()
        path = self._write(number, raw) if self.directory is not None else None
        message = CapturedMessage(str(envelope.mail_from), tuple(envelope.rcpt_tos), raw, received_at, path)
        with self.lock:
            self.captured.append(message)
        return f"250 2.0.0 Ok: queued as sink-{number}"

    def _write(self, number: int, raw: bytes) -> Path:
        assert self.directory is not None
        name = f"{number:06d}.{os.getpid()}.churnhub-sandbox.eml"
        temporary, final = self.directory / "tmp" / name, self.directory / "new" / name
        temporary.write_bytes(raw)
        os.replace(temporary, final)      # readers never see a half-written file
        return final


class _SinkController(Controller):
    def factory(self) -> SMTP:
        # aiosmtpd builds one SMTP protocol object per TCP connection: count them here.
        handler = self.handler
        assert isinstance(handler, SinkHandler)
        with handler.lock:
            handler.connections += 1
        return super().factory()


def _authenticator(username: str, password: str) -> Callable[..., AuthResult]:
    expected = LoginPassword(username.encode(), password.encode())

    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        # handled=False: aiosmtpd then answers a failure with the standard 535 itself
        return AuthResult(success=isinstance(auth_data, LoginPassword) and auth_data == expected, handled=False)

    return authenticate


class SmtpSandbox:
    """A running SMTP sink."""

    def __init__(self, *, directory: str | os.PathLike[str] | None = None,
                 tls_context: ssl.SSLContext | None = None, ssl_context: ssl.SSLContext | None = None,
                 auth: tuple[str, str] | None = None, ca_file: str | None = None,
                 reject_recipients: Iterable[str] = (), from_address: str = "Acme Success <success@acme.example>",
                 unsubscribe_url: str = "http://127.0.0.1:8000/unsubscribe", unsubscribe_secret: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if tls_context is not None and ssl_context is not None:
            raise ValueError("choose STARTTLS (tls_context) or implicit TLS (ssl_context), not both")
        self.directory = Path(directory).resolve() if directory is not None else None
        if self.directory is not None:
            for sub in ("tmp", "new", "cur"):
                (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.handler = SinkHandler(clock=clock, directory=self.directory)
        for address in reject_recipients:
            self.reject_recipient(address)
        self.security = "ssl" if ssl_context else "starttls" if tls_context else "none"
        self.auth, self.ca_file, self.from_address = auth, ca_file, from_address
        self.unsubscribe_url = unsubscribe_url
        self.unsubscribe_secret = unsubscribe_secret or secrets.token_urlsafe(24)
        self.port = _free_port()
        options: dict[str, Any] = {}
        if tls_context is not None:
            options.update(tls_context=tls_context, require_starttls=True)
        if auth is not None:
            # Credentials only over TLS, as a real submission server insists; a plain sink lets them pass.
            options.update(authenticator=_authenticator(*auth), auth_required=True,
                           auth_require_tls=self.security != "none")
        self._controller = _SinkController(self.handler, hostname=HOST, port=self.port, ssl_context=ssl_context,
                                           server_hostname="sandbox.churnhub.invalid", **options)
        self._controller.start()
        with self.handler.lock:
            self.handler.connections = 0       # start() opened one connection to see the server is up
        self.url = f"smtp{'s' if ssl_context else ''}://{HOST}:{self.port}"
        self.host = HOST

    def settings(self) -> dict[str, Any]:
        """The `type: smtp` settings block (minus `type`) that sends into this sink."""
        values: dict[str, Any] = {
            "host": HOST, "port": self.port, "security": self.security, "from_address": self.from_address,
            "unsubscribe_url": self.unsubscribe_url, "unsubscribe_secret": self.unsubscribe_secret,
            "timeout": 10,
        }
        if self.auth is not None:
            values.update(username=self.auth[0], password=self.auth[1])
        if self.ca_file is not None:
            values["ca_file"] = self.ca_file
        return values

    @property
    def connections(self) -> int:
        with self.handler.lock:
            return self.handler.connections

    def messages(self) -> list[CapturedMessage]:
        with self.handler.lock:
            return list(self.handler.captured)

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.captured.clear()
            self.handler.connections = 0

    def fail_next_data(self, count: int = 1, reply: str = "451 4.3.0 Temporary local problem, try again later") -> None:
        """Answer the next `count` DATA commands with `reply` (a 4xx by default)."""
        if not re.match(r"^[45]\d\d ", reply):
            raise ValueError("reply must be a 4xx or 5xx SMTP reply such as '451 4.3.0 Try again later'")
        with self.handler.lock:
            self.handler.data_failures.extend([reply] * count)

    def reject_recipient(self, address: str, reply: str | None = None) -> None:
        """Make `address` bounce at RCPT TO (550 5.1.1 unless another reply is given)."""
        with self.handler.lock:
            self.handler.reject[address.lower()] = reply or f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox(dataset: Mapping[str, Any] | None = None, **options: Any) -> SmtpSandbox:
    """Start an SMTP sink on 127.0.0.1 (see the module docstring for the options and data set)."""
    rejected = list((dataset or {}).get("reject_recipients", [])) + list(options.pop("reject_recipients", []))
    return SmtpSandbox(reject_recipients=rejected, **options)
