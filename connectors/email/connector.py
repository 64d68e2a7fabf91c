"""The SMTP connector: no inbound streams, one outbound operation, `send`.

`send` renders a named template (`hub.templating.TemplateLibrary`), builds the message and submits
it. The Message-ID is derived from the outbox idempotency key (`hub.unsubscribe.message_id_for`),
so a retried action carries the same id; the hub, not the connector, records what was sent.
Non-transactional mail gets RFC 8058 one-click unsubscribe headers with a signed token.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub import AuthError, CheckResult, Connector, Operation, OperationResult, Page, RateLimiter
from hub.templating import TemplateLibrary, TemplateRenderError
from hub.unsubscribe import message_id_for, unsubscribe_link

from .client import SmtpFailure, SmtpSession, classify
from .message import (
    UnsafeHeaderError,
    build_message,
    list_unsubscribe_header,
    parse_mailbox,
    recipient_address,
    refuse_line_breaks,
    to_bytes,
)
from .settings import SmtpSettings


class SendEmail(BaseModel):
    """Parameters of `send`: which template, to whom, with what context."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1)
    to: str = Field(min_length=3)
    to_name: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    transactional: bool = Field(False, description="billing and account notices: no unsubscribe headers")
    subject_override: str | None = None


OPERATIONS = {"send": Operation("send", SendEmail, "render an email template and send it over SMTP")}


@dataclass(frozen=True)
class Prepared:
    """A message ready for the wire and its envelope recipient."""

    raw: bytes
    recipient: str
    international: bool      # a non-ASCII address needs SMTPUTF8


def _failed(failure: SmtpFailure, message_id: str, recipient: str) -> OperationResult:
    return OperationResult(ok=False, error=failure.error, code=failure.code, retryable=failure.retryable,
                           data={"message_id": message_id, "recipient": recipient, "smtp_code": failure.smtp_code})


def _refused(code: str, error: str, message_id: str, recipient: str) -> OperationResult:
    return OperationResult(ok=False, error=error, code=code, retryable=False,
                           data={"message_id": message_id, "recipient": recipient})


class SmtpConnector(Connector):
    streams: Mapping[str, Any] = {}
    operations = OPERATIONS

    def __init__(self, settings: SmtpSettings, *, templates: TemplateLibrary | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.templates = templates or TemplateLibrary(settings.templates_dir)
        self.limiter = RateLimiter(settings.messages_per_second, clock=clock, sleep=sleep)
        self._now = now
        self._attempts = 0

    def message_id(self, idempotency_key: str) -> str:
        """The Message-ID `send` uses for this key."""
        return message_id_for(idempotency_key, self.settings.domain)

    def check(self) -> CheckResult:
        session = SmtpSession(self.settings)
        try:
            session.open()
            reply = session.noop()
        except AuthError as exc:
            return CheckResult(ok=False, detail=str(exc))
        except (smtplib.SMTPException, OSError) as exc:
            return CheckResult(ok=False, detail=classify(exc, recipient="", secrets=self.settings.secrets()).error)
        finally:
            session.close()
        who = f" as {self.settings.username}" if self.settings.username else ""
        return CheckResult(ok=True, detail=f"connected to {session.detail}{who}; NOOP: {reply}")

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        raise ValueError(f"smtp has no stream {stream!r}: it only sends email")

    def execute(self, operation: str, params: BaseModel, *, idempotency_key: str) -> OperationResult:
        return self.execute_many(operation, [(params, idempotency_key)])[0]

    def execute_many(self, operation: str, items: Sequence[tuple[BaseModel, str]]) -> list[OperationResult]:
        """Send every item over one SMTP connection, opened on the first message that needs it."""
        if operation not in OPERATIONS:
            raise ValueError(f"smtp has no operation {operation!r}; it has: {', '.join(OPERATIONS)}")
        session = SmtpSession(self.settings)
        lost: SmtpFailure | None = None     # once the connection is gone, the rest wait for a retry
        results: list[OperationResult] = []
        try:
            for params, key in items:
                send = params if isinstance(params, SendEmail) else SendEmail.model_validate(params.model_dump())
                message_id = self.message_id(key)
                prepared = self._prepare(send, message_id)
                if isinstance(prepared, OperationResult):
                    results.append(prepared)
                elif lost is not None:
                    not_sent = replace(lost, error=f"not attempted, the connection was lost: {lost.error}")
                    results.append(_failed(not_sent, message_id, prepared.recipient))
                else:
                    result, lost = self._submit(session, prepared, send, message_id)
                    results.append(result)
        finally:
            session.close()
        return results

    def _prepare(self, send: SendEmail, message_id: str) -> Prepared | OperationResult:
        """Render and build the message; a final refusal when data or template make that impossible."""
        s = self.settings
        try:
            to = recipient_address(send.to, send.to_name)
        except UnsafeHeaderError as exc:
            return _refused("header_injection", str(exc), message_id, send.to)
        except ValueError as exc:
            return _refused("invalid_address", str(exc), message_id, send.to)
        unsubscribe_url = list_unsubscribe = None
        if not send.transactional:
            if s.unsubscribe_url is None or s.unsubscribe_secret is None:
                return _refused("unsubscribe_not_configured", "non-transactional email needs unsubscribe_url and "
                                "unsubscribe_secret in the smtp settings (RFC 8058 one-click)", message_id, send.to)
            unsubscribe_url = unsubscribe_link(s.unsubscribe_url, to.addr_spec, s.unsubscribe_secret.get_secret_value())
            mailto = parse_mailbox(s.unsubscribe_mailto).addr_spec if s.unsubscribe_mailto else None
            list_unsubscribe = list_unsubscribe_header(unsubscribe_url, mailto)
        try:
            # The connector owns unsubscribe_url: the link in the body must match the header's token.
            rendered = self.templates.render(send.template, {**send.context, "unsubscribe_url": unsubscribe_url})
            if send.subject_override is not None:
                rendered = replace(rendered, subject=refuse_line_breaks("subject", send.subject_override.strip()))
            message = build_message(rendered, sender=s.sender, to=to, message_id=message_id, date=self._now(),
                                    reply_to=s.reply_to, list_unsubscribe=list_unsubscribe)
        except UnsafeHeaderError as exc:
            return _refused("header_injection", str(exc), message_id, to.addr_spec)
        except TemplateRenderError as exc:
            return _refused("template_error", str(exc), message_id, to.addr_spec)
        international = not (to.addr_spec.isascii() and s.sender.addr_spec.isascii())
        return Prepared(to_bytes(message, international=international), to.addr_spec, international)

    def _submit(self, session: SmtpSession, prepared: Prepared, send: SendEmail,
                message_id: str) -> tuple[OperationResult, SmtpFailure | None]:
        """Send one built message; also returns the failure that ended the connection, if one did."""
        recipient = prepared.recipient
        try:
            if not session.is_open:
                session.open()            # AuthError propagates: nothing in the batch has been sent
            self.limiter.acquire()
            self._attempts += 1
            session.send(prepared.raw, sender=self.settings.sender.addr_spec, recipient=recipient,
                         international=prepared.international)
        except (smtplib.SMTPException, OSError) as exc:
            failure = classify(exc, recipient=recipient, secrets=self.settings.secrets())
            return _failed(failure, message_id, recipient), None if session.is_open else failure
        return OperationResult(ok=True, external_id=message_id,
                               data={"message_id": message_id, "recipient": recipient,
                                     "template": send.template, "transactional": send.transactional}), None

    @property
    def request_count(self) -> int:
        """Messages handed to the SMTP server so far."""
        return self._attempts
