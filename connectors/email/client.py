"""One SMTP submission session (connect, TLS, AUTH, send, quit) and what each SMTP failure means.

    session = SmtpSession(settings)
    session.open()                                   # AuthError when credentials are refused
    session.send(raw, sender="success@acme.example", recipient="dana@northwind.example")
    session.close()

Failures are sorted for the outbox (RFC 5321 reply classes; RFC 3463 enhanced codes):

    4xx reply, dropped connection, timeout, TLS trouble  -> retryable (`smtp_4xx`, `connection`, `tls`)
    5xx at RCPT TO, or 5.1.x at DATA (no such mailbox)   -> `hard_bounce`: suppress the address
    5xx for the sender (MAIL FROM)                       -> `sender_refused`: fix from_address
    any other 5xx (content refused, policy)              -> `smtp_5xx`, final
    535 at AUTH                                          -> AuthError (nothing is sent)
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass

from hub import AuthError, redact

from .settings import SmtpSettings


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """Verify certificates against the system CAs, or only `ca_file` when it is given."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class StartTlsUnavailableError(smtplib.SMTPNotSupportedError):
    """The server does not offer STARTTLS, and we never fall back to plaintext."""


@dataclass(frozen=True)
class SmtpFailure:
    """What went wrong with one message, in the server's words."""

    code: str
    error: str
    retryable: bool
    smtp_code: int | None = None


class SmtpSession:
    """One connection for a batch of messages; opened once, never silently downgraded to plaintext."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self.detail = ""

    @property
    def is_open(self) -> bool:
        return self._smtp is not None and self._smtp.sock is not None

    def open(self) -> None:
        """Connect, negotiate TLS, log in. Raises AuthError, smtplib errors or OSError."""
        s = self.settings
        host, port = s.host, s.smtp_port
        if s.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=s.timeout, context=tls_context(s))
        else:
            smtp = smtplib.SMTP(host, port, timeout=s.timeout)
        self._smtp = smtp
        smtp.ehlo()
        if s.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise StartTlsUnavailableError(f"{host}:{port} does not offer STARTTLS; refusing to send "
                                                    "in plaintext (set security: none only for a local relay)")
            smtp.starttls(context=tls_context(s))
            smtp.ehlo()
        if s.username is not None and s.password is not None:
            try:
                smtp.login(s.username, s.password.get_secret_value())
            except (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError) as exc:
                raise AuthError(f"{host}:{port} refused the login of {s.username}: {_words(exc)}",
                                status=getattr(exc, "smtp_code", None), code="auth_failed") from None
        cipher = smtp.sock.cipher() if isinstance(smtp.sock, ssl.SSLSocket) else None
        self.detail = f"{host}:{port} ({s.security}{', ' + cipher[1] if cipher else ''})"

    def send(self, raw: bytes, *, sender: str, recipient: str, international: bool = False) -> None:
        """Submit one message to one recipient; raises what smtplib raises."""
        assert self._smtp is not None, "open() the session first"
        options = ["SMTPUTF8"] if international else []
        self._smtp.sendmail(sender, [recipient], raw, mail_options=options)

    def noop(self) -> str:
        assert self._smtp is not None, "open() the session first"
        code, message = self._smtp.noop()
        return f"{code} {message.decode('utf-8', 'replace')}"

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            if self._smtp.sock is not None:
                self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass   # the server hung up first; nothing left to release
        finally:
            self._smtp.close()
            self._smtp = None


_ENHANCED_CODE = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


def _words(exc: BaseException) -> str:
    """The server's reply (`550 5.1.1 <x>: Recipient address rejected`) or the exception text."""
    code, message = getattr(exc, "smtp_code", None), getattr(exc, "smtp_error", None)
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    if code is not None and message is not None and code != -1:
        return f"{code} {message}".strip()
    return str(exc) or type(exc).__name__


def _reply_failure(smtp_code: int, words: str, *, at: str) -> SmtpFailure:
    if 400 <= smtp_code < 500:
        return SmtpFailure("smtp_4xx", words, retryable=True, smtp_code=smtp_code)
    enhanced = _ENHANCED_CODE.match(words.split(" ", 1)[1] if " " in words else "")
    bad_mailbox = enhanced is not None and enhanced.group(2) == "1"
    if at == "rcpt" or (at == "data" and bad_mailbox):
        return SmtpFailure("hard_bounce", words, retryable=False, smtp_code=smtp_code)
    if at == "mail":
        return SmtpFailure("sender_refused", words, retryable=False, smtp_code=smtp_code)
    return SmtpFailure("smtp_5xx", words, retryable=False, smtp_code=smtp_code)


def classify(exc: BaseException, *, recipient: str, secrets: list[str]) -> SmtpFailure:
    """Sort an exception raised while opening a session or sending into a failure for the outbox."""
    failure = _classify(exc, recipient)
    return SmtpFailure(failure.code, redact(failure.error, secrets), failure.retryable, failure.smtp_code)


def _classify(exc: BaseException, recipient: str) -> SmtpFailure:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, message = exc.recipients.get(recipient) or next(iter(exc.recipients.values()), (550, b""))
        words = f"{code} {message.decode('utf-8', 'replace') if isinstance(message, bytes) else message}"
        return _reply_failure(code, words, at="rcpt")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _reply_failure(exc.smtp_code, _words(exc), at="mail")
    if isinstance(exc, smtplib.SMTPDataError):
        return _reply_failure(exc.smtp_code, _words(exc), at="data")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SmtpFailure("connection", f"the SMTP server closed the connection: {_words(exc)}", retryable=True)
    if isinstance(exc, smtplib.SMTPResponseException):   # e.g. 421 at the greeting, 554 no service
        return _reply_failure(exc.smtp_code, _words(exc), at="session")
    if isinstance(exc, StartTlsUnavailableError):
        return SmtpFailure("tls", str(exc), retryable=True)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return SmtpFailure("not_supported", str(exc), retryable=False)   # e.g. SMTPUTF8 for a non-ASCII address
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SmtpFailure("tls", f"TLS certificate not trusted: {exc.verify_message} "
                                  "(set ca_file to trust a private CA)", retryable=True)
    if isinstance(exc, ssl.SSLError):
        return SmtpFailure("tls", f"TLS negotiation failed: {exc}", retryable=True)
    if isinstance(exc, TimeoutError):
        return SmtpFailure("connection", f"timed out talking to the SMTP server: {exc}", retryable=True)
    if isinstance(exc, OSError):
        return SmtpFailure("connection", f"could not reach the SMTP server: {exc}", retryable=True)
    if isinstance(exc, smtplib.SMTPException):
        return SmtpFailure("smtp_error", str(exc), retryable=True)
    raise exc
