"""`run_dunning(hub, now=...)`: reconcile cases with synced data, plan due steps, run the outbox.

    report = run_dunning(hub)                      # what `churnhub dunning run` and the pipeline call
    report = run_dunning(hub, now=t, execute=False)  # plan and enqueue only
    cases = list_cases(hub, now=t)                 # what `churnhub dunning` shows
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from hub.dunning.cases import ACTIVE, EXHAUSTED, SOURCE, cases, parse_time
from hub.dunning.observe import apply_outcomes, reconcile
from hub.dunning.planner import PlanReport, case_views, plan_card_notices, plan_cases, plan_recovered_emails
from hub.dunning.policy import DunningSettings
from hub.dunning.steps import decide
from hub.models import utcnow
from hub.outbox import enqueue, planner_for, runner_for
from hub.outbox.plan import HubLike

RETRIES_FIRST = frozenset({"retry"})


def dunning_policy(hub: HubLike) -> DunningSettings:
    """The validated `dunning:` section (located errors for mistakes)."""
    return hub.section("dunning", DunningSettings)  # type: ignore[attr-defined, no-any-return]


def billing_connectors(hub: HubLike, policy: DunningSettings) -> list[str]:
    configured = hub.settings.connectors
    if policy.connectors is not None:
        return [n for n in policy.connectors if n in configured]
    return [n for n, c in configured.items() if c.type == "stripe" and c.enabled]


@dataclass
class DunningReport:
    opened: int = 0
    closed: int = 0
    enqueued: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)
    executed: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"opened": self.opened, "closed": self.closed, "enqueued": self.enqueued, "steps": self.steps,
                "executed": self.executed}


def _steps_of(plan: PlanReport) -> list[dict[str, Any]]:
    return [{"key": i.key, "action": i.action_type, "status": i.status, "summary": i.summary, "error": i.error}
            for i in plan.intents]


def run_dunning(hub: HubLike, *, now: datetime | None = None, execute: bool = True,
                dry_run: bool = False) -> DunningReport:
    """One dunning round: reconcile, then the due retries (executed, when `execute`, so a retry
    that pays stops the emails due with it), then the other due steps (executed too).
    The outbox runs with `now` as its clock."""
    policy = dunning_policy(hub)
    report = DunningReport()
    if not policy.enabled:
        return report
    moment = now or utcnow()
    connectors = billing_connectors(hub, policy)
    planner = planner_for(hub)
    passes: list[frozenset[str] | None] = [RETRIES_FIRST, None] if execute and not dry_run else [None]
    for number, kinds in enumerate(passes):
        with hub.engine.begin() as connection:
            if number == 0:
                applied = reconcile(connection, connectors, moment)
                report.opened, report.closed = len(applied.opened), len(applied.closed)
            plan = plan_cases(connection, planner, policy, connectors, moment, dry_run=dry_run, kinds=kinds)
            if kinds is None:
                notices = [*plan_card_notices(connection, planner, policy, connectors, moment),
                           *plan_recovered_emails(connection, planner, policy, connectors, moment)]
                if not dry_run:
                    plan.enqueued += len(enqueue(connection, notices, now=moment))
                plan.intents += notices
            report.enqueued += plan.enqueued
            report.steps += _steps_of(plan)
            if dry_run:
                connection.rollback()
        if execute and not dry_run:
            executed = runner_for(hub, clock=lambda: moment).drain()
            for status, count in executed.counts().items():
                report.executed[status] = report.executed.get(status, 0) + count
            with hub.engine.begin() as connection:
                report.closed += len(apply_outcomes(connection, executed.outcomes, now=moment).closed)
    return report


def list_cases(hub: HubLike, *, now: datetime | None = None, include_closed: bool = False,
               refresh: bool = True) -> list[dict[str, Any]]:
    """Cases (unsettled ones by default) with attempts, the steps taken and the next step.

    `refresh` first reconciles cases with the synced invoices (idempotent; plans nothing)."""
    policy = dunning_policy(hub)
    moment = now or utcnow()
    if refresh:
        with hub.engine.begin() as connection:
            reconcile(connection, billing_connectors(hub, policy), moment)
    query = select(cases).order_by(cases.c.opened_at, cases.c.id)
    if not include_closed:
        query = query.where(cases.c.status.in_(ACTIVE), cases.c.closed_at.is_(None))
    with hub.engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(query).mappings()]
        views = case_views(connection, rows, policy)
    out = []
    for row, view in zip(rows, views, strict=True):
        details = row["details"] or {}
        next_step = None
        if row["status"] not in (EXHAUSTED,) and row["closed_at"] is None:
            decision = decide(view, policy, moment)
            upcoming = decision.run[0] if decision.run else decision.next_step
            next_step = {"step": upcoming.name, "due": upcoming.due.isoformat()} if upcoming else None
        out.append({
            "id": row["id"], "connector": row["connector"], "invoice": row["invoice_id"],
            "customer_id": row["customer_id"], "status": row["status"], "decline_code": row["decline_code"],
            "amount_due": row["amount_due"], "currency": row["currency"],
            "opened_at": parse_time(row["opened_at"]), "closed_at": parse_time(row["closed_at"]),
            "attempts": int(details.get("attempts") or 0), "steps_taken": sorted(details.get("steps") or {}),
            "next_step": next_step, "recovered_by": row["recovered_by"],
            "final_action": details.get("final_action"), "source": SOURCE,
        })
    return out


__all__ = ["DunningReport", "billing_connectors", "dunning_policy", "list_cases", "run_dunning"]

