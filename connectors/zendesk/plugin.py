"""Registers the `zendesk` connector type."""

from __future__ import annotations

from typing import Any

from hub import ConnectorType, hookimpl

from .connector import ZendeskConnector
from .settings import ZendeskSettings


def start_sandbox(dataset: Any = None, **options: Any) -> Any:
    from .sandbox import start_sandbox as start  # Starlette and uvicorn only when a sandbox is wanted

    return start(dataset, **options)


@hookimpl
def register_connector_types(register: Any) -> None:
    register(ConnectorType(
        name="zendesk",
        settings=ZendeskSettings,
        factory=ZendeskConnector,
        description="Zendesk Support: organizations, users, tickets, CSAT/NPS; tags, fields, tickets, notes",
        start_sandbox=start_sandbox,
    ))
