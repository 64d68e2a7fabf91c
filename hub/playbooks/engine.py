"""Playbooks end to end: who enters (dry run), then entries and actions into the outbox, then execution.

    plan = plan_playbooks(hub, now=now)      # nothing is written: entrants, why, rendered actions
    report = run_playbooks(hub, now=now)     # the same plan, written and executed

One run, step by step:
1. facts and signals for every customer (set-based), each playbook's segment and trigger;
2. holds: a customer who entered less than `cooldown` ago, `max_entries` times already, or for
   this occurrence already (the same day) does not enter;
3. control group: `control_group` of the entrants, chosen by a hash of (playbook, customer), so a
   customer is always on the same side; control entries get no actions;
4. for the others every action is planned (rendered, validated) with the idempotency key
   `playbook:<name>|<config version>|<customer>|<occurrence>|<position>`;
5. ONE transaction writes the entries (unique per playbook, customer, occurrence) and the outbox
   rows (unique keys): a crash before the commit leaves nothing, after it everything, and a second
   run finds the entries (no new entrants) and the keys (no new rows): a no-op;
6. entries whose metric window has passed get their metric measured (`outcomes`);
7. the outbox is executed (`hub.outbox.execute`: leases, retries, provider idempotency).

`plan` and `run` share steps 1-4, so a dry run shows exactly what a run would write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, case, func, select, update

from hub.factsdb import load_facts
from hub.models import PlaybookEntry
from hub.outbox import (
    ActionRequest,
    Intent,
    OutboxRunner,
    Planner,
    action_key,
    enqueue,
    planner_for,
    runner_for,
)
from hub.outbox.plan import HubLike
from hub.outbox.state import SKIPPED, _insert
from hub.outbox.state import actions as actions_table
from hub.playbooks.config import PlaybookConfig, PlaybooksSettings, validate_playbooks
from hub.playbooks.evaluate import Entrant, entrants, number
from hub.playbooks.outcomes import measure_due, playbook_stats
from hub.playbooks.signals import SignalTable, json_value, load_inputs

entries_table = PlaybookEntry.__table__


def in_control(playbook: str, customer_id: str, share: float) -> bool:
    """Stable per (playbook, customer): the same customer is always held out, or never."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{playbook}|{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def occurrence_of(now: datetime) -> str:
    """A trigger occurrence is its day: at most one entry per playbook, customer and day."""
    return now.astimezone(UTC).date().isoformat()


@dataclass
class PlannedEntry:
    playbook: str
    version: str
    customer_id: str
    customer_name: str
    occurrence: str
    control: bool
    trigger: dict[str, Any]
    metric: str | None
    metric_at_entry: float | None
    actions: list[Intent] = field(default_factory=list)
    delays: list[timedelta] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in ("actions", "delays")}
        data["actions"] = [{"key": i.key, "action_type": i.action_type, "connector": i.connector,
                            "operation": i.operation, "params": dict(i.params), "status": i.status,
                            "error": i.error, "summary": i.summary, "delay_seconds": d.total_seconds()}
                           for i, d in zip(self.actions, self.delays, strict=True)]
        return data


@dataclass
class PlaybookPlan:
    as_of: datetime
    entries: list[PlannedEntry] = field(default_factory=list)
    held: dict[str, dict[str, int]] = field(default_factory=dict)   # playbook: {cooldown, max_entries, ...}
    signals: SignalTable | None = field(default=None, repr=False)

    @property
    def intents(self) -> list[Intent]:
        return [i for e in self.entries for i in e.actions]

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for entry in self.entries:
            row = out.setdefault(entry.playbook, {"entrants": 0, "control": 0, "actions": 0, "skipped_actions": 0})
            row["entrants"] += 1
            row["control"] += entry.control
            row["actions"] += sum(1 for i in entry.actions if i.status != SKIPPED)
            row["skipped_actions"] += sum(1 for i in entry.actions if i.status == SKIPPED)
        for name, held in self.held.items():
            out.setdefault(name, {"entrants": 0, "control": 0, "actions": 0, "skipped_actions": 0}).update(
                {f"held_{k}": v for k, v in held.items()})
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat(), "summary": self.summary(),
                "entries": [e.as_dict() for e in self.entries]}


@dataclass
class RunReport:
    plan: PlaybookPlan
    entries_written: int = 0
    actions_enqueued: int = 0
    measured: int = 0
    executed: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"as_of": self.plan.as_of.isoformat(), "summary": self.plan.summary(),
                "entries_written": self.entries_written, "actions_enqueued": self.actions_enqueued,
                "measured": self.measured, "executed": self.executed}


def _history(connection: Connection, names: Sequence[str], occurrence: str) -> dict[tuple[str, str], tuple[Any, int, bool]]:
    """(playbook, customer) -> (last entered_at, entries so far, entered for `occurrence`), one query."""
    if not names:
        return {}
    today = func.max(case((entries_table.c.occurrence == occurrence, 1), else_=0))
    rows = connection.execute(
        select(entries_table.c.playbook, entries_table.c.customer_id, func.max(entries_table.c.entered_at),
               func.count(), today)
        .where(entries_table.c.playbook.in_(bindparam("names", expanding=True)))
        .group_by(entries_table.c.playbook, entries_table.c.customer_id), {"names": list(names)}).all()
    return {(r[0], r[1]): (_aware(r[2]), int(r[3]), bool(r[4])) for r in rows}


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _held_reason(playbook: PlaybookConfig, history: tuple[Any, int, bool] | None, now: datetime) -> str | None:
    if history is None:
        return None
    last, count, today = history
    if today:
        return "occurrence"
    if playbook.max_entries is not None and count >= playbook.max_entries:
        return "max_entries"
    if last is not None and now - last < playbook.cooldown:
        return "cooldown"
    return None


def _variables(settings: PlaybooksSettings, playbook: PlaybookConfig, entrant: Entrant,
               signals: SignalTable) -> dict[str, Any]:
    i = entrant.index
    score = json_value(signals.named("health.score")[i])
    inactive = json_value(signals.named("days_since_last_login")[i])
    nps = json_value(signals.named("nps")[i])
    variables: dict[str, Any] = dict(settings.variables)
    variables.update({
        "trigger": entrant.values,
        "playbook": {"name": playbook.name, "description": playbook.description, "owner_role": playbook.owner},
        "health": {"score": score, "band": json_value(signals.named("health.band")[i]) or None},
        "customer": {**(settings.variables.get("customer") or {}), "health_score": score,
                     "days_inactive": int(inactive) if inactive is not None else None, "nps_score": nps},
    })
    person = settings.owners.get(playbook.owner)
    if person is not None:   # the role is mapped in config: that person, not the CRM account owner
        variables["owner"] = {"name": person.name, "email": person.email, "id": person.crm_user_id,
                              "connector": None, "role": playbook.owner}
    return variables


def build_plan(connection: Connection, settings: PlaybooksSettings, planner: Planner, *, now: datetime) -> PlaybookPlan:
    """Steps 1-4 (see the module docstring): read-only."""
    as_of = now.timestamp()
    table = load_facts(connection, now=now)
    inputs = load_inputs(connection, table, as_of)
    inputs.onboarding, inputs.near_limit = settings.onboarding, settings.near_limit
    signals = SignalTable(inputs, as_of)
    plan = PlaybookPlan(now, signals=signals)
    occurrence = occurrence_of(now)
    active = settings.active
    history = _history(connection, [p.name for p in active], occurrence)
    requests: list[ActionRequest] = []
    owners: list[tuple[PlannedEntry, int]] = []
    names = table.columns["name"]
    for playbook in active:
        metric = number(playbook.metric_ast, signals) if playbook.metric_ast is not None else None
        held = plan.held.setdefault(playbook.name, {"cooldown": 0, "max_entries": 0, "occurrence": 0})
        for entrant in entrants(playbook, signals):
            reason = _held_reason(playbook, history.get((playbook.name, entrant.customer_id)), now)
            if reason:
                held[reason] += 1
                continue
            control = in_control(playbook.name, entrant.customer_id, playbook.control_group)
            entry = PlannedEntry(playbook.name, playbook.version, entrant.customer_id, str(names[entrant.index] or ""),
                                 occurrence, control, entrant.values, playbook.metric,
                                 json_value(metric[entrant.index]) if metric is not None else None)
            plan.entries.append(entry)
            if control:
                continue
            variables = _variables(settings, playbook, entrant, signals)
            for position, step in enumerate(playbook.actions):
                key = action_key(f"playbook:{playbook.name}", playbook.version, entrant.customer_id, occurrence, position)
                requests.append(ActionRequest(key, f"playbook:{playbook.name}", step.type, step.params,
                                              entrant.customer_id, variables))
                owners.append((entry, position))
                entry.delays.append(step.delay)
    for intent, (entry, _) in zip(planner.plan(connection, requests, now=now), owners, strict=True):
        entry.actions.append(intent)
    return plan


def write_plan(connection: Connection, plan: PlaybookPlan) -> tuple[int, int]:
    """Step 5: the entries and their outbox rows, in the caller's transaction. Returns (entries, actions) new."""
    now = plan.as_of
    if not plan.entries:
        return 0, 0
    rows = [{"playbook": e.playbook, "version": e.version, "customer_id": e.customer_id, "occurrence": e.occurrence,
             "entered_at": now, "control": e.control, "metric": (e.metric or None) and e.metric[:60],
             "metric_at_entry": e.metric_at_entry,
             "details": {"trigger": e.trigger, "actions": [i.key for i in e.actions]}} for e in plan.entries]
    inserted = 0
    for start in range(0, len(rows), 500):
        statement = (_insert(connection)(entries_table).values(rows[start:start + 500])
                     .on_conflict_do_nothing(index_elements=["playbook", "customer_id", "occurrence"])
                     .returning(entries_table.c.id))
        inserted += len(connection.execute(statement).all())
    by_delay: dict[timedelta, list[Intent]] = {}
    for entry in plan.entries:
        for intent, delay in zip(entry.actions, entry.delays, strict=True):
            by_delay.setdefault(delay, []).append(intent)
    enqueued: list[int] = []
    for delay, intents in sorted(by_delay.items()):
        ids = enqueue(connection, intents, now=now + delay)
        if delay and ids:   # a later step of a sequence: due later, but created now
            connection.execute(update(actions_table).where(actions_table.c.id.in_(bindparam("ids", expanding=True)))
                               .values(created_at=now, updated_at=now), {"ids": ids})
        enqueued += ids
    return inserted, len(enqueued)


def plan(engine: Engine, settings: PlaybooksSettings, planner: Planner, *, now: datetime) -> PlaybookPlan:
    with engine.connect() as connection:
        return build_plan(connection, settings, planner, now=now)


def run(engine: Engine, settings: PlaybooksSettings, planner: Planner, runner: OutboxRunner | None, *,
        now: datetime) -> RunReport:
    """Steps 1-7. With `runner=None` the outbox is left for the workers."""
    with engine.begin() as connection:
        planned = build_plan(connection, settings, planner, now=now)
        report = RunReport(planned)
        report.entries_written, report.actions_enqueued = write_plan(connection, planned)
    with engine.begin() as connection:
        assert planned.signals is not None
        report.measured = measure_due(connection, settings, planned.signals, now=now)
    if runner is not None:
        report.executed = runner.drain().counts()
    return report


def playbooks_settings(hub: HubLike) -> PlaybooksSettings:
    """The hub's `playbooks:` section, validated against its registered actions."""
    return validate_playbooks(hub.settings.file.playbooks, hub.registry.actions, hub.settings.source)


def plan_playbooks(hub: HubLike, *, now: datetime | None = None) -> PlaybookPlan:
    """Dry run over the hub's configuration and database."""
    return plan(hub.engine, playbooks_settings(hub), planner_for(hub), now=now or datetime.now(UTC))


def run_playbooks(hub: HubLike, *, now: datetime | None = None, execute: bool = True,
                  runner_options: Mapping[str, Any] | None = None) -> RunReport:
    """Evaluate, write entries and actions, measure outcomes, then (with `execute`) run the outbox."""
    started = datetime.now(UTC)
    moment = now or started
    options = dict(runner_options or {})
    # the outbox's time runs from `now` at the real pace (leases and backoff stay meaningful)
    options.setdefault("clock", lambda: moment + (datetime.now(UTC) - started))
    runner = runner_for(hub, **options) if execute else None
    return run(hub.engine, playbooks_settings(hub), planner_for(hub), runner, now=moment)


def playbook_stats_for(hub: HubLike) -> list[dict[str, Any]]:
    """`playbook_stats` over the hub's database, in config order."""
    settings = playbooks_settings(hub)
    with hub.engine.connect() as connection:
        return playbook_stats(connection, settings)


__all__ = ["PlannedEntry", "PlaybookPlan", "RunReport", "build_plan", "in_control", "occurrence_of", "plan",
           "plan_playbooks", "playbook_stats_for", "playbooks_settings", "run", "run_playbooks", "write_plan"]
