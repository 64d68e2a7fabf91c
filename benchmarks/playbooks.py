"""Playbook evaluation over a million customers with ten playbooks, in memory.

    figures = playbook_benchmark(customers=1_000_000)

The customers are item 5's tiled table, with the health scores and churn states that scoring and
classification gave them, so triggers fire on realistic signals. Measured: the signal table, each
playbook's segment and trigger, and the entrants with the values that made them match
(`hub.playbooks.evaluate.entrants`) — steps 1 of the engine's plan. Holds, control groups and
rendering the entrants' actions (steps 2-4) read the database and the outbox, so they are not in
this figure. Skipped with a note while `hub.playbooks` has not landed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

PLAYBOOKS = [
    {"name": "health-below-50", "trigger": "health.score < 50"},
    {"name": "turned-red", "trigger": 'health.band_changed_to == "red"'},
    {"name": "gone-quiet", "trigger": "days_since_last_login >= 14", "segment": "not churned"},
    {"name": "ticket-burst", "trigger": "tickets_opened(7d) >= 3"},
    {"name": "stale-ticket", "trigger": "ticket_open_longer_than(5d)"},
    {"name": "detractor", "trigger": "nps <= 6"},
    {"name": "onboarding-late", "trigger": "onboarding_overdue"},
    {"name": "payment-failed", "trigger": "payment_failed"},
    {"name": "win-back", "trigger": "churned_days_ago in [30, 60, 90]"},
    {"name": "expansion", "trigger": "usage_near_plan_limit", "segment": "mrr >= 50000"},
]


def playbook_benchmark(customers: int = 1_000_000, base: int = 5_000) -> dict[str, Any]:
    try:
        from hub.playbooks.config import parse_section
        from hub.playbooks.evaluate import entrants
        from hub.playbooks.signals import SignalInputs, SignalTable
    except ImportError as exc:
        return {"skipped": f"playbooks not landed ({exc})"}
    from benchmarks.compute import prepared

    million = prepared(customers, base)
    table, scores = million.table, million.scores
    settings = parse_section(PLAYBOOKS)
    health = np.where(scores.scored, scores.score, np.nan)
    band = np.where(scores.scored, scores.band, "").astype(object)
    inputs = SignalInputs.from_table(table, health_score=health, health_band=band,
                                     churn_state=np.asarray(million.classification.states, dtype=object))
    started = time.perf_counter()
    signals = SignalTable(inputs, million.now.timestamp())
    per_playbook = {}
    total = 0
    for playbook in settings.active:
        began = time.perf_counter()
        found = entrants(playbook, signals)
        per_playbook[playbook.name] = {"entrants": len(found), "seconds": round(time.perf_counter() - began, 3)}
        total += len(found)
    seconds = time.perf_counter() - started
    return {"customers": int(table.n), "playbooks": len(settings.active), "seconds": seconds, "entrants": total,
            "per_playbook": per_playbook,
            "scope": "signals + segment + trigger + entrants (engine step 1); holds and action rendering excluded"}
