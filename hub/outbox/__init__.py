"""The outbox: every outbound action, written first, executed exactly once.

    planner = planner_for(hub)                                    # plan.py
    with hub.engine.begin() as connection:
        intents = planner.plan(connection, requests)               # rendered, validated, skipped with reasons
        enqueue(connection, intents, now=now)                      # state.py: duplicate keys are no-ops
    report = runner_for(hub).execute_pending(limit=100)           # execute.py: claim, call, record

`state` is the state machine on the `actions` table, `plan` turns action requests into intents,
`execute` runs them through connectors (and the hub's own webhook and status operations), and
`webhook` signs outgoing webhooks. The exactly-once protocol is described in `execute`.
"""

from hub.outbox.execute import ExecutionReport, OutboxRunner, default_worker_id, runner_for
from hub.outbox.plan import HUB_OPERATIONS, ActionRequest, Planner, planner_for, render_value, template_errors
from hub.outbox.state import (
    DEAD,
    FAILED,
    FINAL,
    PENDING,
    RUNNING,
    SENDING,
    SKIPPED,
    STATUSES,
    SUCCEEDED,
    ActionOutcome,
    Intent,
    OutboxError,
    OutboxPolicy,
    action_key,
    claim,
    count_by_status,
    enqueue,
    list_actions,
    reap_expired,
    retry,
)
from hub.outbox.webhook import SIGNATURE_HEADER, signature, verify_signature

__all__ = [
    "DEAD", "FAILED", "FINAL", "HUB_OPERATIONS", "PENDING", "RUNNING", "SENDING", "SIGNATURE_HEADER", "SKIPPED",
    "STATUSES", "SUCCEEDED", "ActionOutcome", "ActionRequest", "ExecutionReport", "Intent", "OutboxError",
    "OutboxPolicy", "OutboxRunner", "Planner", "action_key", "claim", "count_by_status", "default_worker_id",
    "enqueue", "list_actions", "planner_for", "reap_expired", "render_value", "retry", "runner_for", "signature",
    "template_errors", "verify_signature",
]
