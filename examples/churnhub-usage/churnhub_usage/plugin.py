"""Registers the `usage` connector type (found through the `churnhub` entry point)."""

from __future__ import annotations

from typing import Any

from hub import ConnectorType, hookimpl

from .connector import UsageConnector
from .settings import UsageSettings


def start_sandbox(dataset: Any = None, **options: Any) -> Any:
    from .sandbox import start_sandbox as start  # Starlette and uvicorn load only when a sandbox is wanted

    return start(dataset, **options)


CONNECTOR_TYPE = ConnectorType(
    name="usage",
    settings=UsageSettings,
    factory=UsageConnector,
    description="Product usage: accounts and daily active users, logins, key feature events; in-app messages",
    start_sandbox=start_sandbox,
)


@hookimpl
def register_connector_types(register: Any) -> None:
    register(CONNECTOR_TYPE)
