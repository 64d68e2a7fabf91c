"""`send` against a real SMTP server (aiosmtpd) on 127.0.0.1: plain, STARTTLS + AUTH, implicit TLS."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from connectors.email.connector import SendEmail, SmtpConnector
from connectors.email.sandbox import SmtpSandbox, start_sandbox
from connectors.email.settings import SmtpSettings
from hub import AuthError
from hub.unsubscribe import message_id_for, verify_token

MakeConnector = Callable[..., SmtpConnector]
MakeSend = Callable[..., SendEmail]


def test_plain_send_delivers_a_multipart_message_with_all_headers(sink: SmtpSandbox, make_connector: MakeConnector,
                                                                  make_send: MakeSend, fixed_now: datetime) -> None:
    connector = make_connector(sink, security="none", reply_to="help@acme.example")
    result = connector.execute("send", make_send(), idempotency_key="playbook:reengage:cus_1:2025-03")

    assert result.ok, result
    [captured] = sink.messages()
    assert result.external_id == captured.message_id == message_id_for("playbook:reengage:cus_1:2025-03", "acme.example")
    assert captured.mail_from == "success@acme.example"
    assert captured.rcpt_tos == ("dana@northwind.example",)
    message = captured.parsed()
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"] == "Acme Success <success@acme.example>"
    assert message["To"] == "Dana Whitfield <dana@northwind.example>"
    assert message["Reply-To"] == "help@acme.example"
    assert message["Date"].datetime == fixed_now
    assert captured.subject == "Is Acme Analytics still working for Northwind Traders?"
    assert "24 days" in (captured.body("plain") or "")
    assert result.data["recipient"] == "dana@northwind.example"


def test_non_transactional_mail_carries_one_click_unsubscribe(sink: SmtpSandbox, make_connector: MakeConnector,
                                                              make_send: MakeSend) -> None:
    connector = make_connector(sink, unsubscribe_mailto="unsubscribe@acme.example")
    assert connector.execute("send", make_send(), idempotency_key="k1").ok

    [captured] = sink.messages()
    header = captured.header("List-Unsubscribe") or ""
    link, mailto = header.split(", ")
    assert link.startswith(f"<{sink.unsubscribe_url}/") and link.endswith(">")
    token = link[1:-1].rsplit("/", 1)[1]
    assert verify_token(token, sink.unsubscribe_secret) == "dana@northwind.example"
    assert mailto == "<mailto:unsubscribe@acme.example?subject=unsubscribe>"
    assert captured.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    # the header stays one line on the wire: a folded or encoded URL is not a link
    raw_line = next(line for line in captured.raw.split(b"\r\n") if line.startswith(b"List-Unsubscribe:"))
    assert link.encode() in raw_line
    # the body links to the same URL as the header
    assert link[1:-1] in (captured.body("plain") or "")
    assert link[1:-1] in (captured.body("html") or "")


def test_transactional_mail_has_no_unsubscribe_headers_or_footer(sink: SmtpSandbox, make_connector: MakeConnector,
                                                                 make_send: MakeSend) -> None:
    connector = make_connector(sink)
    send = make_send(template="payment_failed_1", transactional=True)
    assert connector.execute("send", send, idempotency_key="dunning:in_1:1").ok

    [captured] = sink.messages()
    assert captured.header("List-Unsubscribe") is None
    assert captured.header("List-Unsubscribe-Post") is None
    assert "Unsubscribe" not in (captured.body("plain") or "")
    assert "https://invoice.stripe.com/" in (captured.body("html") or "")


def test_non_transactional_mail_without_unsubscribe_settings_is_refused(sink: SmtpSandbox,
                                                                        make_connector: MakeConnector,
                                                                        make_send: MakeSend) -> None:
    connector = make_connector(sink, unsubscribe_url=None, unsubscribe_secret=None)
    result = connector.execute("send", make_send(), idempotency_key="k1")
    assert (result.ok, result.retryable, result.code) == (False, False, "unsubscribe_not_configured")
    assert sink.messages() == []


def test_starttls_with_auth(certificates: Any, make_connector: MakeConnector, make_send: MakeSend) -> None:
    sandbox = start_sandbox(tls_context=certificates.server_context(), auth=("mailer", "correct horse"),
                            ca_file=str(certificates.ca_file))
    try:
        assert sandbox.settings()["security"] == "starttls"
        connector = make_connector(sandbox)
        check = connector.check()
        assert check.ok, check.detail
        assert "starttls" in check.detail and "as mailer" in check.detail

        assert connector.execute("send", make_send(), idempotency_key="k1").ok
        assert len(sandbox.messages()) == 1

        with pytest.raises(AuthError, match="535"):
            make_connector(sandbox, password="wrong").execute("send", make_send(), idempotency_key="k2")
        assert not make_connector(sandbox, password="wrong").check().ok
        assert len(sandbox.messages()) == 1
    finally:
        sandbox.stop()


def test_an_untrusted_certificate_is_refused_and_retryable(certificates: Any,
                                                           make_connector: MakeConnector,
                                                           make_send: MakeSend) -> None:
    sandbox = start_sandbox(tls_context=certificates.server_context())
    try:
        connector = make_connector(sandbox)          # no ca_file: the system CAs do not know our test CA
        result = connector.execute("send", make_send(), idempotency_key="k1")
        assert (result.ok, result.retryable, result.code) == (False, True, "tls")
        assert "certificate" in (result.error or "")
        assert sandbox.messages() == []
    finally:
        sandbox.stop()


def test_implicit_tls(certificates: Any, make_connector: MakeConnector, make_send: MakeSend) -> None:
    sandbox = start_sandbox(ssl_context=certificates.server_context(), ca_file=str(certificates.ca_file))
    try:
        assert sandbox.url.startswith("smtps://") and sandbox.settings()["security"] == "ssl"
        connector = make_connector(sandbox)
        assert connector.check().ok
        assert connector.execute("send", make_send(), idempotency_key="k1").ok
        assert [m.rcpt_tos for m in sandbox.messages()] == [("dana@northwind.example",)]
    finally:
        sandbox.stop()


def test_starttls_required_but_not_offered_never_falls_back_to_plaintext(sink: SmtpSandbox,
                                                                        make_connector: MakeConnector,
                                                                        make_send: MakeSend) -> None:
    connector = make_connector(sink, security="starttls")
    result = connector.execute("send", make_send(), idempotency_key="k1")
    assert (result.ok, result.retryable, result.code) == (False, True, "tls")
    assert "STARTTLS" in (result.error or "")
    assert sink.messages() == []


def test_a_4xx_is_retryable_and_the_retry_succeeds_with_the_same_message_id(sink: SmtpSandbox,
                                                                           make_connector: MakeConnector,
                                                                           make_send: MakeSend) -> None:
    connector = make_connector(sink)
    sink.fail_next_data(1)

    first = connector.execute("send", make_send(), idempotency_key="action-42")
    assert (first.ok, first.retryable, first.code) == (False, True, "smtp_4xx")
    assert first.error is not None and first.error.startswith("451 4.3.0")
    assert sink.messages() == []

    second = connector.execute("send", make_send(), idempotency_key="action-42")
    assert second.ok
    assert second.external_id == first.data["message_id"] == sink.messages()[0].message_id


def test_a_5xx_recipient_is_a_hard_bounce(sink: SmtpSandbox, make_connector: MakeConnector,
                                          make_send: MakeSend) -> None:
    sink.reject_recipient("gone@northwind.example")
    result = make_connector(sink).execute("send", make_send(to="gone@northwind.example"), idempotency_key="k1")

    assert (result.ok, result.retryable, result.code) == (False, False, "hard_bounce")
    assert result.error == "550 5.1.1 <gone@northwind.example>: Recipient address rejected: User unknown"
    assert result.data["recipient"] == "gone@northwind.example" and result.data["smtp_code"] == 550
    assert sink.messages() == []


def test_a_5xx_at_data_for_content_is_final_but_not_a_bounce(sink: SmtpSandbox, make_connector: MakeConnector,
                                                             make_send: MakeSend) -> None:
    sink.fail_next_data(1, "554 5.7.1 Message rejected as spam")
    result = make_connector(sink).execute("send", make_send(), idempotency_key="k1")
    assert (result.ok, result.retryable, result.code) == (False, False, "smtp_5xx")
    assert result.error == "554 5.7.1 Message rejected as spam"


@pytest.mark.parametrize(("field", "value"), [
    ("to_name", "Dana\r\nBcc: everyone@example.com"),
    ("to", "dana@northwind.example\nBcc: everyone@example.com"),
    ("subject_override", "Hello\r\nBcc: everyone@example.com"),
    ("to_name", "Dana\u2028Bcc: everyone@example.com"),
])
def test_header_injection_is_refused_before_anything_is_sent(sink: SmtpSandbox, make_connector: MakeConnector,
                                                             make_send: MakeSend, field: str, value: str) -> None:
    result = make_connector(sink).execute("send", make_send(**{field: value}), idempotency_key="k1")
    assert (result.ok, result.retryable, result.code) == (False, False, "header_injection")
    assert "line break" in (result.error or "")
    assert sink.messages() == [] and sink.connections == 0


def test_a_newline_in_data_reaching_the_subject_is_refused(sink: SmtpSandbox, make_connector: MakeConnector,
                                                           make_send: MakeSend) -> None:
    send = make_send()
    send.context["customer"]["name"] = "Northwind\r\nBcc: everyone@example.com"
    result = make_connector(sink).execute("send", send, idempotency_key="k1")
    assert (result.ok, result.code) == (False, "header_injection")
    assert "subject" in (result.error or "")
    assert sink.messages() == []


def test_bad_addresses_and_templates_are_final_refusals(sink: SmtpSandbox, make_connector: MakeConnector,
                                                        make_send: MakeSend) -> None:
    connector = make_connector(sink)
    bad_address = connector.execute("send", make_send(to="not an address"), idempotency_key="k1")
    assert (bad_address.ok, bad_address.retryable, bad_address.code) == (False, False, "invalid_address")
    unknown = connector.execute("send", make_send(template="nope"), idempotency_key="k2")
    assert (unknown.ok, unknown.code) == (False, "template_error") and "reengagement" in (unknown.error or "")
    missing = connector.execute("send", make_send(context={}), idempotency_key="k3")
    assert (missing.ok, missing.code) == (False, "template_error")
    assert "reengagement.j2" in (missing.error or "") and "undefined" in (missing.error or "")


def test_execute_many_uses_one_connection_and_keeps_going_after_a_refusal(sink: SmtpSandbox,
                                                                          make_connector: MakeConnector,
                                                                          make_send: MakeSend) -> None:
    sink.reject_recipient("gone@northwind.example")
    items = [(make_send(to=f"user{n}@northwind.example"), f"key-{n}") for n in range(4)]
    items.insert(2, (make_send(to="gone@northwind.example"), "key-gone"))

    results = make_connector(sink).execute_many("send", items)

    assert [r.ok for r in results] == [True, True, False, True, True]
    assert results[2].code == "hard_bounce"
    assert sink.connections == 1
    assert [m.rcpt_tos[0] for m in sink.messages()] == [f"user{n}@northwind.example" for n in range(4)]
    assert len({r.external_id for r in results if r.ok}) == 4


def test_the_same_idempotency_key_gives_the_same_message_id(sink: SmtpSandbox, make_connector: MakeConnector,
                                                             make_send: MakeSend) -> None:
    connector = make_connector(sink)
    first = connector.execute("send", make_send(), idempotency_key="action-7")
    again = make_connector(sink).execute("send", make_send(), idempotency_key="action-7")
    other = connector.execute("send", make_send(), idempotency_key="action-8")
    assert first.external_id == again.external_id == connector.message_id("action-7")
    assert other.external_id != first.external_id
    assert [m.message_id for m in sink.messages()] == [first.external_id, first.external_id, other.external_id]


def test_a_server_that_is_gone_is_retryable_for_the_whole_batch(make_connector: MakeConnector,
                                                                make_send: MakeSend) -> None:
    sandbox = start_sandbox()
    connector = make_connector(sandbox)
    sandbox.stop()
    results = connector.execute_many("send", [(make_send(), "a"), (make_send(), "b")])
    assert [(r.ok, r.retryable, r.code) for r in results] == [(False, True, "connection")] * 2
    assert "not attempted" in (results[1].error or "")
    assert not connector.check().ok


def test_the_rate_limit_spaces_out_messages(sink: SmtpSandbox, make_connector: MakeConnector,
                                            make_send: MakeSend, sleeps: list[float]) -> None:
    connector = make_connector(sink, messages_per_second=2)
    results = connector.execute_many("send", [(make_send(), f"k{n}") for n in range(4)])
    assert all(r.ok for r in results)
    # a burst of two, then each message waits its half second (the clock is frozen in this test)
    assert sleeps == [0.5, 1.0]
    assert connector.request_count == 4


def test_a_421_ends_the_connection_and_the_rest_of_the_batch_waits_for_a_retry(sink: SmtpSandbox,
                                                                              make_connector: MakeConnector,
                                                                              make_send: MakeSend) -> None:
    sink.fail_next_data(1, "421 4.3.2 Service shutting down")
    results = make_connector(sink).execute_many("send", [(make_send(), "a"), (make_send(), "b")])
    assert [(r.ok, r.retryable, r.code) for r in results] == [(False, True, "smtp_4xx")] * 2
    assert results[0].error == "421 4.3.2 Service shutting down"
    assert results[1].error is not None and results[1].error.startswith("not attempted")
    assert sink.messages() == [] and sink.connections == 1


def test_a_server_that_never_answers_times_out_as_retryable(make_send: MakeSend) -> None:
    with socket.socket() as silent:           # accepts connections into its backlog, never says hello
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings = SmtpSettings(host="127.0.0.1", port=silent.getsockname()[1], security="none", timeout=0.05,
                                from_address="success@acme.example")
        result = SmtpConnector(settings).execute("send", make_send(transactional=True), idempotency_key="k")
    assert (result.ok, result.retryable, result.code) == (False, True, "connection")
    assert "timed out" in (result.error or "")
