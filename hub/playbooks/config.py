"""The `playbooks:` section: typed playbooks, their version hash, and validation with positions.

    playbooks:
      variables: {product: {name: Acme Analytics}, links: {app: "https://app.acme.example"}}
      owners: {implementation: {name: Ida Impl, email: ida@ourco.example}}
      playbooks:
        - name: health-below-70
          description: Health fell below 70: the CSM follows up.
          owner: csm                       # a role; the CRM account owner unless `owners` maps it
          segment: mrr >= 50000            # optional, same language as the trigger
          trigger: health.score < 70
          actions:
            - create_crm_task: {subject: "Follow up with {{ customer.name }}", due_in_days: 2}
            - send_email: {template: checkin, to: primary_contact}
              delay: 3d                    # a sequence: this one becomes due 3 days after entry
          cooldown: 14d                    # a customer re-enters at most once per 14 days
          max_entries: 3                   # and at most 3 times in all
          metric: health.score             # an expression, measured at entry and after metric_window
          metric_window: 30d
          control_group: 10%               # held out (no actions) to measure lift

The section may also be a plain list of playbooks. Triggers, segments and metrics are parsed and
checked against the signal catalog (`hub.playbooks.signals.CATALOG`) by `validate_playbooks`,
which `churnhub config validate` calls; every error names file, line, dotted path and column.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from hub.config import located_errors
from hub.errors import ConfigError
from hub.expressions import ExpressionError, Node, check, parse
from hub.extensions import ActionType
from hub.outbox.plan import template_errors
from hub.playbooks.signals import CATALOG
from hub.sections.common import Duration, Strict, parse_duration
from hub.yamlsource import SourceMap

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
# Named metrics: what each measures, as an expression over the signals.
METRICS: dict[str, str] = {
    "health": "health.score",
    "reactivation_rate": "days_since_last_login <= 7",
    "time_to_activation": "onboarding_milestones_overdue",
    "nps_change": "nps",
    "repeat_tickets": "tickets_opened(30d)",
    "win_back_rate": "not churned",
}


class Person(Strict):
    """Who a role means when the CRM account owner is not the right person."""

    name: str | None = None
    email: str | None = None
    crm_user_id: str | None = None


class ActionStep(BaseModel):
    """One action of a playbook: its type, its (templated) params and an optional delay."""

    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    delay: timedelta = timedelta(0)


def _percent(value: Any) -> float:
    if isinstance(value, str) and value.strip().endswith("%"):
        value = float(value.strip()[:-1]) / 100
    number = float(value)
    if not 0 <= number < 1:
        raise ValueError("expected a share like 10% (0% up to, not including, 100%)")
    return number


class PlaybookConfig(Strict):
    name: str
    description: str = ""
    owner: str = "csm"
    segment: str | None = None
    trigger: str
    actions: list[ActionStep] = Field(default_factory=list)
    cooldown: Duration = timedelta(days=14)
    max_entries: int | None = Field(None, ge=1, description="times one customer may enter, in all")
    metric: str | None = None
    metric_window: Duration = timedelta(days=30)
    control_group: float = 0.0
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("use lowercase letters, digits, - and _ (at most 60), e.g. health-below-70")
        return value

    @field_validator("control_group", mode="before")
    @classmethod
    def _control(cls, value: Any) -> float:
        return _percent(value)

    @field_validator("actions", mode="before")
    @classmethod
    def _actions(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [_action_step(item) for item in value]

    @property
    def metric_expression(self) -> str | None:
        return METRICS.get(self.metric, self.metric) if self.metric else None

    @cached_property
    def version(self) -> str:
        """A hash of everything that decides who enters and what happens (not the description)."""
        data = self.model_dump(mode="json", exclude={"description"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    @cached_property
    def trigger_ast(self) -> Node:
        return parse(self.trigger)

    @cached_property
    def segment_ast(self) -> Node | None:
        return parse(self.segment) if self.segment else None

    @cached_property
    def metric_ast(self) -> Node | None:
        expression = self.metric_expression
        return parse(expression) if expression else None


def _action_step(item: Any) -> Any:
    """`{send_email: {...}, delay: 3d}` -> {type, params, delay}."""
    if not isinstance(item, Mapping):
        return item
    if "type" in item:
        return item
    extra = {k: v for k, v in item.items() if k != "delay"}
    if len(extra) != 1:
        raise ValueError("each action is one mapping `<action type>: {params}` (plus an optional delay)")
    [(type_name, params)] = extra.items()
    step: dict[str, Any] = {"type": type_name, "params": params if params is not None else {}}
    if "delay" in item:
        step["delay"] = parse_duration(item["delay"])
    return step


class OnboardingDue(Strict):
    """When each onboarding milestone is due, counted from the customer's start."""

    first_activity: Duration = timedelta(days=7)
    active_users: Duration = timedelta(days=30)
    team: Duration = timedelta(days=30)
    first_payment: Duration = timedelta(days=45)
    applies: Duration = timedelta(days=180)
    active_users_target: int = Field(default=3, ge=1)
    team_target: int = Field(default=3, ge=1)


class PlaybooksSettings(Strict):
    variables: dict[str, Any] = Field(default_factory=dict, description="template values for every action")
    owners: dict[str, Person] = Field(default_factory=dict)
    onboarding: OnboardingDue = Field(default_factory=OnboardingDue)
    near_limit: float = Field(default=0.9, gt=0, description="usage share of the plan limit that counts as near")
    playbooks: list[PlaybookConfig] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _list_form(cls, value: Any) -> Any:
        return {"playbooks": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _unique(self) -> PlaybooksSettings:
        seen: set[str] = set()
        for playbook in self.playbooks:
            if playbook.name in seen:
                raise ValueError(f"two playbooks are named {playbook.name!r}")
            seen.add(playbook.name)
        return self

    @property
    def active(self) -> list[PlaybookConfig]:
        return [p for p in self.playbooks if p.enabled]


Locate = Callable[[str, str], ConfigError]


def _plain(path: str, message: str) -> ConfigError:
    return ConfigError(message, path=path)


@dataclass(frozen=True)
class Located:
    """Where the section came from (to name lines in errors)."""

    source: SourceMap | None
    list_form: bool

    def path(self, index: int, key: str) -> str:
        return f"playbooks.{index}.{key}" if self.list_form else f"playbooks.playbooks.{index}.{key}"

    def error(self, path: str, message: str) -> ConfigError:
        return self.source.error(path, message) if self.source is not None else _plain(path, message)


def parse_section(raw: Any, source: SourceMap | None = None) -> PlaybooksSettings:
    """The section's shape (pydantic), with located errors."""
    list_form = isinstance(raw, list) or raw is None
    try:
        return PlaybooksSettings.model_validate({"playbooks": raw or []} if list_form else raw)
    except ValidationError as exc:
        if source is None:
            raise ConfigError(f"playbooks: {exc}") from None
        # the list form's errors are located at playbooks.<n>..., the mapping's at playbooks.playbooks.<n>...
        raise located_errors(exc, source, "" if list_form else "playbooks") from None


def validate_playbooks(raw: Any, actions: Mapping[str, ActionType], source: SourceMap | None = None) -> PlaybooksSettings:
    """Parse the section and check every expression, action type, parameter key and template."""
    settings = parse_section(raw, source)
    where = Located(source, isinstance(raw, list) or raw is None)
    for index, playbook in enumerate(settings.playbooks):
        for key, text in (("trigger", playbook.trigger), ("segment", playbook.segment),
                          ("metric", playbook.metric_expression)):
            if text is None:
                continue
            try:
                check(parse(text), CATALOG)
            except ExpressionError as exc:
                shown = f" (metric {playbook.metric!r} means {text!r})" if key == "metric" and text != playbook.metric else ""
                raise where.error(where.path(index, key), f"{exc}{shown}") from None
        for position, step in enumerate(playbook.actions):
            path = where.path(index, f"actions.{position}")
            action = actions.get(step.type)
            if action is None:
                known = ", ".join(sorted(actions)) or "none registered"
                raise where.error(path, f"unknown action type {step.type!r} (known: {known})")
            unknown = sorted(set(step.params) - set(action.params.model_fields) - {"connector"})
            if unknown:
                raise where.error(f"{path}.{step.type}",
                                  f"unknown parameter(s) {', '.join(unknown)} for {step.type} "
                                  f"(known: {', '.join(action.params.model_fields)})")
            problems = template_errors(step.params, f"{path}.{step.type}")
            if problems:
                raise where.error(path, "; ".join(problems))
    return settings


__all__ = ["METRICS", "ActionStep", "OnboardingDue", "Person", "PlaybookConfig", "PlaybooksSettings",
           "parse_section", "validate_playbooks"]
