"""The SMTP sink: what it captures, where it writes, the faults it injects, and its registration."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from connectors.email.connector import SendEmail, SmtpConnector
from connectors.email.sandbox import SmtpSandbox, start_sandbox
from hub.plugins import build_registry, load_plugins, new_plugin_manager
from hub.templating import TemplateLibrary, sample_context

MakeConnector = Callable[..., SmtpConnector]
MakeSend = Callable[..., SendEmail]


def test_messages_are_kept_in_memory_and_written_as_eml_files(tmp_path: Path, make_connector: MakeConnector,
                                                              make_send: MakeSend, fixed_now: datetime) -> None:
    sandbox = start_sandbox(directory=tmp_path / "outbox", clock=lambda: fixed_now)
    try:
        connector = make_connector(sandbox)
        results = connector.execute_many("send", [(make_send(), "k1"), (make_send(template="checkin"), "k2")])
        assert all(r.ok for r in results)

        captured = sandbox.messages()
        assert [m.subject for m in captured] == ["Is Acme Analytics still working for Northwind Traders?",
                                                 "How is Acme Analytics working for Northwind Traders?"]
        assert all(m.received_at == fixed_now for m in captured)
        files = sorted((tmp_path / "outbox" / "new").glob("*.eml"))
        assert files == [m.path for m in captured]
        assert files[0].read_bytes() == captured[0].raw
        assert list((tmp_path / "outbox" / "tmp").iterdir()) == []

        sandbox.clear()
        assert sandbox.messages() == [] and sandbox.connections == 0
        assert len(list((tmp_path / "outbox" / "new").glob("*.eml"))) == 2     # files stay for people to read
    finally:
        sandbox.stop()


def test_settings_point_a_connector_at_the_sink(sink: SmtpSandbox) -> None:
    settings = sink.settings()
    assert sink.url == f"smtp://127.0.0.1:{settings['port']}"
    assert (settings["host"], settings["security"]) == ("127.0.0.1", "none")
    assert settings["unsubscribe_url"].startswith("http://127.0.0.1:") and len(settings["unsubscribe_secret"]) >= 16


def test_a_data_set_names_addresses_that_bounce(make_connector: MakeConnector, make_send: MakeSend) -> None:
    sandbox = start_sandbox({"reject_recipients": ["Gone@Northwind.example"]})
    try:
        result = make_connector(sandbox).execute("send", make_send(to="gone@northwind.example"), idempotency_key="k")
        assert result.code == "hard_bounce"
    finally:
        sandbox.stop()


def test_fault_injection_answers_only_the_next_n_data_commands(sink: SmtpSandbox, make_connector: MakeConnector,
                                                               make_send: MakeSend) -> None:
    sink.fail_next_data(2)
    results = make_connector(sink).execute_many("send", [(make_send(), f"k{n}") for n in range(3)])
    assert [(r.ok, r.code) for r in results] == [(False, "smtp_4xx"), (False, "smtp_4xx"), (True, None)]
    assert sink.connections == 1          # a 4xx leaves the connection usable
    with pytest.raises(ValueError, match="4xx or 5xx"):
        sink.fail_next_data(1, "250 fine")


def test_the_connector_uses_its_templates_dir(tmp_path: Path, sink: SmtpSandbox, make_connector: MakeConnector,
                                              make_send: MakeSend) -> None:
    (tmp_path / "checkin.j2").write_text('{% extends "builtin/checkin.j2" %}'
                                         "{% block subject %}Quick question, {{ contact.first_name }}{% endblock %}")
    connector = make_connector(sink, templates_dir=str(tmp_path))
    assert connector.execute("send", make_send(template="checkin"), idempotency_key="k").ok
    assert sink.messages()[0].subject == "Quick question, Dana"
    assert TemplateLibrary(tmp_path).render("checkin", sample_context()).subject == "Quick question, Dana"


def test_the_plugin_registers_the_smtp_type_with_its_sandbox() -> None:
    manager = new_plugin_manager()
    registry = build_registry(manager, load_plugins(manager, builtins=["connectors.email.plugin"], allow=[
        "connectors.email.plugin"]))

    smtp = registry.connector_types["smtp"]
    assert smtp.plugin == "connectors.email.plugin" and smtp.start_sandbox is not None
    sandbox = smtp.start_sandbox()
    try:
        connector = smtp.create(smtp.settings(**sandbox.settings()))
        assert isinstance(connector, SmtpConnector) and connector.check().ok
        assert set(connector.operations) == {"send"} and not connector.streams
    finally:
        sandbox.stop()
