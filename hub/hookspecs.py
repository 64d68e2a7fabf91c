"""Hook specifications. Hooks are called with keyword arguments only."""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("churnhub")
hookimpl = pluggy.HookimplMarker("churnhub")


@hookspec
def register_connector_types(register: Any) -> None:
    """Call ``register(ConnectorType)`` for each connector type the plugin provides."""


@hookspec
def register_actions(register: Any) -> None:
    """Call ``register(ActionType)`` for each playbook action the plugin provides."""


@hookspec
def register_health_factors(register: Any) -> None:
    """Call ``register(HealthFactor)`` for each health-score factor the plugin provides."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``churnhub`` Typer application."""


@hookspec
def sync_finished(run: Any) -> None:
    """Notification: one stream run ended (``run`` is a ``SyncRunSummary``)."""


@hookspec
def action_finished(action: Any) -> None:
    """Notification: one outbox action reached a final state (``action`` is an ``ActionOutcome``)."""
