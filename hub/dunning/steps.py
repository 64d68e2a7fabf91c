"""The steps of one dunning case, when each falls due, and which are due now (pure functions).

A case's steps are derived from the policy and what is known about the case, never stored as a
plan: `details.steps` only records the steps already taken (name -> when), so a changed policy
applies to open cases at the next run. Step names are stable and end up in the outbox key
(`dunning|<connector>|<invoice>|<step>`), so a step is enqueued once however often we plan.

    email-<i>          the i-th email of the sequence (only the latest due one is sent; the
                       earlier ones, if the hub was away, are recorded as superseded)
    retry-<i>          a hub retry on the schedule (soft declines only; not with `retries: stripe`)
    retry-card-<pm>    one retry after the customer set a new default card (hard declines too)
    csm-task           a CRM task for the owner of a high-value account (at the first failure)
    final              the final action, at the end of the sequence
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from hub.dunning.policy import DunningSettings, is_hard_decline, retry_times

StepKind = Literal["email", "retry", "task", "final"]


@dataclass(frozen=True)
class Step:
    name: str
    kind: StepKind
    due: datetime
    template: str | None = None


@dataclass(frozen=True)
class CaseView:
    """What planning needs to know about an open case."""

    opened_at: datetime
    decline_code: str | None
    attempts: int
    taken: Mapping[str, Any]               # details.steps
    high_value: bool = False
    card_at_open: str | None = None
    card_now: str | None = None


def planned_steps(case: CaseView, policy: DunningSettings) -> list[Step]:
    """Every step of the case's sequence (taken or not), in time order."""
    steps = [Step(f"email-{i}", "email", case.opened_at + timedelta(days=e.day), e.template)
             for i, e in enumerate(policy.emails)]
    if not is_hard_decline(case.decline_code, case.attempts, policy):
        steps += [Step(f"retry-{i}", "retry", when) for i, when in enumerate(retry_times(case.opened_at, policy))]
    if policy.retries != "stripe" and case.card_now and case.card_now != case.card_at_open:
        steps.append(Step(f"retry-card-{case.card_now}", "retry", case.opened_at))
    if case.high_value and policy.high_value is not None:
        steps.append(Step("csm-task", "task", case.opened_at))
    final = case.opened_at + timedelta(days=policy.final_action.after_days)
    steps = [s for s in steps if s.due < final or s.kind == "task"]
    steps.append(Step("final", "final", final))
    return sorted(steps, key=lambda s: (s.due, s.name))


@dataclass(frozen=True)
class Decision:
    run: list[Step]            # enqueue these now
    superseded: list[Step]     # due, but a later step of the same kind replaces them
    next_step: Step | None     # the first step not taken and not due yet


def decide(case: CaseView, policy: DunningSettings, now: datetime,
           kinds: frozenset[str] | None = None) -> Decision:
    """The steps to run now. `kinds` limits them (the hub retries first, and emails only if the
    retry did not pay)."""
    if "final" in case.taken:
        return Decision([], [], None)   # the sequence is over
    steps = planned_steps(case, policy)
    untaken = [s for s in steps if s.name not in case.taken]
    due = [s for s in untaken if s.due <= now]
    if any(s.kind == "final" for s in due):
        if kinds is not None and "final" not in kinds:
            return Decision([], [], None)
        # the sequence is over: the final action, and nothing else that was still waiting
        return Decision([s for s in due if s.kind == "final"], [s for s in due if s.kind != "final"], None)
    if kinds is not None:
        due = [s for s in due if s.kind in kinds]
    run: list[Step] = []
    superseded: list[Step] = []
    for kind in ("email", "retry"):
        of_kind = [s for s in due if s.kind == kind and not s.name.startswith("retry-card-")]
        if of_kind:
            run.append(of_kind[-1])
            superseded.extend(of_kind[:-1])
    run += [s for s in due if s.kind == "task" or s.name.startswith("retry-card-")]
    later = [s for s in untaken if s.due > now]
    return Decision(sorted(run, key=lambda s: (s.due, s.name)), superseded, later[0] if later else None)
