"""Registers the `salesforce` connector type."""

from __future__ import annotations

from typing import Any

from hub import ConnectorType, hookimpl

from .connector import SalesforceConnector
from .settings import SalesforceSettings


def start_sandbox(dataset: Any = None, **options: Any) -> Any:
    from .sandbox import start_sandbox as start  # Starlette and uvicorn only when a sandbox is wanted

    return start(dataset, **options)


@hookimpl
def register_connector_types(register: Any) -> None:
    register(ConnectorType(
        name="salesforce",
        settings=SalesforceSettings,
        factory=SalesforceConnector,
        description="Salesforce: accounts (with usage/NPS facts), contacts, opportunities, users; tasks, field updates",
        start_sandbox=start_sandbox,
    ))
