"""Contracts for what plugins contribute besides connectors: playbook actions and health factors."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class ActionPlan:
    """What an action's `plan` decided: one connector operation and its parameters.

    `connector` names a configured instance when the action chose one explicitly (None: the
    first instance of the action type's `connector_type`). `recipient` is the email address an
    email action writes to (checked against suppressions unless `transactional`).
    """

    operation: str
    params: Mapping[str, Any]
    connector: str | None = None
    recipient: str | None = None
    transactional: bool = False
    summary: str = ""


@dataclass(frozen=True)
class ActionType:
    """A playbook action (``send_email``, ``create_crm_task``, ...).

    `params` validates the action's YAML block. `connector_type` names the connector type whose
    operation carries it out (None for actions the hub performs itself, like ``set_status``).
    `plan(params, context)` turns rendered parameters and the customer context into the
    operation name and operation parameters to put in the outbox: an `ActionPlan`, a mapping
    with the same keys, or an ``(operation, params)`` tuple. It raises ValueError when the
    customer lacks what the action needs (no contact email, no linked organization); the action
    is then recorded as skipped with that reason.

    `at_most_once` marks actions whose provider has no idempotency (SMTP): the outbox then
    records that a call is under way before making it, and a crash during the call turns the
    action into a dead letter for a person to check instead of a possible second delivery.
    """

    name: str
    params: type[BaseModel]
    description: str = ""
    connector_type: str | None = None
    plan: Callable[[BaseModel, dict[str, Any]], Any] | None = None
    plugin: str = ""
    at_most_once: bool = False


@dataclass(frozen=True)
class HealthFactor:
    """One ingredient of the health score, computed from a customer's facts as of a time.

    `compute(facts, as_of, options)` returns a value in [0, 100] and a one-line explanation,
    or None when the customer has no data for this factor (`facts` is a `hub.facts.CustomerFacts`,
    `as_of` an aware datetime).

    `options` (a pydantic model) validates the factor's own keys in `health.factors.<name>`;
    `compute` then receives an instance of it (None when the factor has no options).

    `compute_many(table, as_of, options)`, when given, scores every customer at once: `table` is a
    `hub.facts.FactTable`, `as_of` epoch seconds, and it returns a `FactorColumn`. Scoring a
    million customers needs it; without it the hub calls `compute` once per customer.
    """

    name: str
    description: str
    compute: Callable[..., Any]
    default_weight: float = 1.0
    plugin: str = ""
    options: type[BaseModel] | None = None
    compute_many: Callable[..., FactorColumn] | None = None


@dataclass(frozen=True)
class FactorColumn:
    """One factor for every customer of a table: `values[i]` in [0, 100] or NaN (no data), and
    the one-line explanation of `values[i]`: `why[i]`, or `why(i)` when `why` is a function
    (explanations are then only built for the customers someone looks at)."""

    values: Any            # numpy float array, one entry per customer
    why: Sequence[str] | Callable[[int], str]

    def explain(self, i: int) -> str:
        return self.why(i) if callable(self.why) else self.why[i]
