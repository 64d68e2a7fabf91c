"""Playbooks: declarative triggers over customer signals -> actions through the outbox, with outcomes.

    plan = plan_playbooks(hub, now=now)          # dry run: entrants, why, rendered actions
    report = run_playbooks(hub, now=now)         # write entries + outbox rows once, execute
    stats = playbook_stats_for(hub)              # treated vs control, lift

`config` is the `playbooks:` section, `signals` the catalog of trigger signals computed over
every customer, `evaluate` who matches, `engine` plan/run, `outcomes` metrics and lift.
"""

from hub.playbooks.config import METRICS, PlaybookConfig, PlaybooksSettings, validate_playbooks
from hub.playbooks.engine import (
    PlaybookPlan,
    RunReport,
    in_control,
    plan_playbooks,
    playbook_stats_for,
    playbooks_settings,
    run_playbooks,
)
from hub.playbooks.outcomes import measure_due, playbook_stats
from hub.playbooks.signals import CATALOG, SignalInputs, SignalTable

__all__ = ["CATALOG", "METRICS", "PlaybookConfig", "PlaybookPlan", "PlaybooksSettings", "RunReport", "SignalInputs",
           "SignalTable", "in_control", "measure_due", "plan_playbooks", "playbook_stats", "playbook_stats_for",
           "playbooks_settings", "run_playbooks", "validate_playbooks"]
