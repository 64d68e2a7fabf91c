"""Dunning: recovering failed payments, from the first decline to paid or given up.

    report = run_dunning(hub, now=now)   # reconcile with synced invoices, plan due steps, run the outbox
    cases = list_cases(hub)              # open cases with attempts and their next step

`policy` reads the `dunning:` section; `cases` opens and closes cases from observations of an
invoice (sync, webhooks, our retries) in an order-independent way; `observe` turns synced
records, webhook events and retry results into observations; `steps` decides which steps are
due (pure); `planner` writes them to the outbox with deterministic keys.
"""

from hub.dunning.cases import EXHAUSTED, FAILED, OPEN, RECOVERED, Observation, apply_observations, case_key
from hub.dunning.observe import apply_event, apply_outcomes, reconcile
from hub.dunning.policy import DunningSettings, is_hard_decline
from hub.dunning.run import DunningReport, billing_connectors, dunning_policy, list_cases, run_dunning

__all__ = [
    "EXHAUSTED", "FAILED", "OPEN", "RECOVERED", "DunningReport", "DunningSettings", "Observation", "apply_event",
    "apply_observations", "apply_outcomes", "billing_connectors", "case_key", "dunning_policy", "is_hard_decline",
    "list_cases", "reconcile", "run_dunning",
]
