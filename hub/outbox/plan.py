"""Planning: from an action request (type + templated YAML params + customer) to an outbox intent.

    request  = ActionRequest(key, "playbook:nps-follow-up", "create_crm_task", {"subject": "Call {{ customer.name }}"},
                             customer_id="c_42", variables={"nps": 5})
    intents  = Planner(actions, connector_types).plan(connection, [request])   # set-based context load
    enqueue(connection, intents, now=now)

For each request: pick the connector instance (the params' `connector:`, else the first configured
instance of the action type's `connector_type`, preferring one this customer is linked to), render
every string in the params with the customer context in a sandboxed Jinja2 environment
(StrictUndefined), validate them with the action's params model, and call its `plan`. Whatever
the customer lacks (no contact email, no linked organization, a template reaching a missing value)
makes the intent `skipped` with the reason, so a dry run shows it and a run records it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection

from hub.connector import Operation
from hub.context import load_contexts
from hub.errors import ConfigError
from hub.extensions import ActionPlan, ActionType
from hub.models import utcnow
from hub.outbox.state import PENDING, SKIPPED, Intent
from hub.templating import TemplateRenderError, render_string

# Operations the hub carries out itself (actions whose type has no connector_type).
HUB_OPERATIONS = ("post_webhook", "set_status")

_syntax = SandboxedEnvironment(undefined=StrictUndefined)


def render_value(value: Any, context: Mapping[str, Any], path: str = "params") -> Any:
    """Render every string inside `value` (dicts and lists too) with `hub.templating.render_string`.

    Strings without `{` are returned as they are; other values pass through. A failure raises
    TemplateRenderError naming the parameter's path.
    """
    if isinstance(value, str):
        return render_string(value, context, name=path) if "{" in value else value
    if isinstance(value, Mapping):
        return {k: render_value(v, context, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(v, context, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def template_errors(value: Any, path: str = "params") -> list[str]:
    """Syntax errors in the templates inside `value` (for `config validate`), with their paths."""
    if isinstance(value, str):
        try:
            _syntax.parse(value)
        except TemplateSyntaxError as exc:
            return [f"{path}: {exc.message} (line {exc.lineno})"]
        return []
    if isinstance(value, Mapping):
        return [e for k, v in value.items() for e in template_errors(v, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [e for i, v in enumerate(value) for e in template_errors(v, f"{path}[{i}]")]
    return []


@dataclass(frozen=True)
class ActionRequest:
    """An action some rule wants for a customer: the action type and its YAML params (templates)."""

    key: str
    source: str
    action_type: str
    params: Mapping[str, Any]
    customer_id: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)   # extra template values (trigger, invoice)


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, merging one level of mappings (variables add to `customer`, not replace it)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def as_plan(value: Any) -> ActionPlan:
    """Accept what `ActionType.plan` may return: an ActionPlan, a mapping, or (operation, params)."""
    if isinstance(value, ActionPlan):
        return value
    if isinstance(value, Mapping):
        return ActionPlan(**value)
    if isinstance(value, tuple) and len(value) == 2:
        return ActionPlan(operation=value[0], params=value[1])
    raise TypeError(f"an action's plan must return an ActionPlan, a mapping or (operation, params), got {value!r}")


def _jsonable(params: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(params, BaseModel):
        return params.model_dump(mode="json", exclude_none=True)
    return dict(params)


class Planner:
    """Turns requests into intents. `operations(connector)` (optional) validates operation params."""

    def __init__(self, actions: Mapping[str, ActionType], connector_types: Mapping[str, str], *,
                 operations: Callable[[str], Mapping[str, Operation]] | None = None) -> None:
        self.actions = actions
        self.connector_types = dict(connector_types)
        self.operations = operations

    def plan(self, connection: Connection, requests: Sequence[ActionRequest], *,
             now: datetime | None = None) -> list[Intent]:
        """Intents for `requests`, in order; customer contexts are loaded for all of them at once."""
        customer_ids = {r.customer_id for r in requests if r.customer_id}
        contexts = load_contexts(connection, customer_ids, self.connector_types)
        now = now or utcnow()
        return [self.plan_one(request, contexts.get(request.customer_id) if request.customer_id else {}, now=now)
                for request in requests]

    def plan_one(self, request: ActionRequest, context: Mapping[str, Any] | None, *, now: datetime) -> Intent:
        action_type = self.actions.get(request.action_type)
        if action_type is None:
            known = ", ".join(sorted(self.actions)) or "none registered"
            raise ConfigError(f"unknown action type {request.action_type!r} (known: {known})")
        base = Intent(request.key, request.source, request.action_type, request.customer_id,
                      at_most_once=action_type.at_most_once)

        def skipped(reason: str, **changes: Any) -> Intent:
            return _replace(base, status=SKIPPED, error=reason, **changes)

        if context is None:
            return skipped(f"customer {request.customer_id!r} does not exist")
        raw = dict(request.params)
        chosen = raw.pop("connector", None)
        connector, problem = self._connector_for(action_type, chosen, context)
        if problem:
            return skipped(problem)
        accounts = context.get("accounts") or {}
        template_context = merge(
            {**context, "connector": {"name": connector, "type": self.connector_types.get(connector)},
             "account": accounts.get(connector) if connector else None,
             "now": now.isoformat(), "today": now.date().isoformat()},
            request.variables)
        try:
            rendered = render_value(raw, template_context)
            params = action_type.params.model_validate(rendered)
            plan = as_plan(action_type.plan(params, template_context)) if action_type.plan else None
        except ValidationError as exc:
            return skipped(f"invalid parameters: {_short(exc)}")
        except TemplateRenderError as exc:  # usually a value this customer does not have
            return skipped(f"template error: {exc}")
        except ValueError as exc:  # the action found the customer lacks something it needs
            return skipped(str(exc))
        if plan is None:
            raise ConfigError(f"action type {action_type.name!r} has no plan function")
        if plan.connector and plan.connector != connector:
            connector, problem = self._connector_for(action_type, plan.connector, context)
            if problem:
                return skipped(problem)
        operation_params = _jsonable(plan.params)
        problem = self._check_operation(connector, plan.operation, operation_params)
        intent = _replace(base, connector=connector, operation=plan.operation, params=operation_params,
                          recipient=plan.recipient, transactional=plan.transactional, summary=plan.summary)
        return _replace(intent, status=SKIPPED, error=problem) if problem else intent

    def _connector_for(self, action_type: ActionType, chosen: str | None,
                       context: Mapping[str, Any]) -> tuple[str | None, str | None]:
        wanted = action_type.connector_type
        if wanted is None:
            return None, None
        if chosen:
            actual = self.connector_types.get(chosen)
            if actual is None:
                return None, f"no connector named {chosen!r} is configured"
            if actual != wanted:
                return None, f"connector {chosen!r} is a {actual} connector; {action_type.name} needs {wanted}"
            return chosen, None
        candidates = [name for name, type_name in self.connector_types.items() if type_name == wanted]
        if not candidates:
            return None, f"no {wanted} connector is configured"
        linked = [name for name in candidates if name in (context.get("accounts") or {})]
        return (linked or candidates)[0], None

    def _check_operation(self, connector: str | None, operation: str, params: Mapping[str, Any]) -> str | None:
        if connector is None:
            return None if operation in HUB_OPERATIONS else f"the hub has no operation {operation!r}"
        if self.operations is None:
            return None
        available = self.operations(connector)
        if operation not in available:
            return f"connector {connector!r} has no operation {operation!r}"
        try:
            available[operation].params.model_validate(params)
        except ValidationError as exc:
            return f"invalid {operation} parameters: {_short(exc)}"
        return None


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors())


def _replace(intent: Intent, **changes: Any) -> Intent:
    return replace(intent, **changes)


class HubLike(Protocol):
    """What planning and execution need from `hub.app.Hub` (without importing it: layer 5)."""

    settings: Any
    registry: Any

    @property
    def engine(self) -> Any: ...

    @property
    def hook(self) -> Any: ...

    def connector(self, name: str) -> Any: ...


def enabled_connector_types(hub: HubLike) -> dict[str, str]:
    return {name: config.type for name, config in hub.settings.connectors.items() if config.enabled}


def planner_for(hub: HubLike) -> Planner:
    """A Planner over the hub's registered actions and configured connectors."""
    cache: dict[str, Mapping[str, Operation]] = {}

    def operations(name: str) -> Mapping[str, Operation]:
        if name not in cache:
            with hub.connector(name) as connector:
                cache[name] = dict(connector.operations)
        return cache[name]

    return Planner(hub.registry.actions, enabled_connector_types(hub), operations=operations)


__all__ = ["HUB_OPERATIONS", "PENDING", "ActionRequest", "HubLike", "Planner", "as_plan", "planner_for",
           "render_value", "template_errors"]
