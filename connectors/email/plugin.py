"""Registers the `smtp` connector type."""

from __future__ import annotations

from typing import Any

from hub import ConnectorType, hookimpl

from .connector import SmtpConnector
from .settings import SmtpSettings


def start_sandbox(dataset: Any = None, **options: Any) -> Any:
    from .sandbox import start_sandbox as start  # aiosmtpd only when a sandbox is wanted
    return start(dataset, **options)


@hookimpl
def register_connector_types(register: Any) -> None:
    register(ConnectorType(
        name="smtp",
        settings=SmtpSettings,
        factory=SmtpConnector,
        description="Email over SMTP: templates rendered with Jinja2, STARTTLS or TLS, one-click unsubscribe",
        start_sandbox=start_sandbox,
    ))
