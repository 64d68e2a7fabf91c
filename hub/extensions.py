"""Contracts for what plugins contribute besides connectors: playbook actions and health factors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class ActionType:
    """A playbook action (``send_email``, ``create_crm_task``, ...).

    `params` validates the action's YAML block. `connector_type` names the connector type whose
    operation carries it out (None for actions the hub performs itself, like ``set_status``).
    `plan(params, context)` turns rendered parameters and the customer context into the
    operation name and operation parameters to put in the outbox.
    """

    name: str
    params: type[BaseModel]
    description: str = ""
    connector_type: str | None = None
    plan: Callable[[BaseModel, dict[str, Any]], Any] | None = None
    plugin: str = ""


@dataclass(frozen=True)
class HealthFactor:
    """One ingredient of the health score, computed from a customer's facts as of a time.

    `compute(facts, as_of, options)` returns a value in [0, 100] and a one-line explanation,
    or None when the customer has no data for this factor.
    """

    name: str
    description: str
    compute: Callable[..., Any]
    default_weight: float = 1.0
    plugin: str = ""
