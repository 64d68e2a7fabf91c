"""Every trigger kind, evaluated set-based over customers described as fact rows (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from hub.expressions import check, parse
from hub.facts import FactTable
from hub.playbooks.config import PlaybookConfig
from hub.playbooks.evaluate import entrants
from hub.playbooks.signals import CATALOG, COMPUTE, SignalInputs, SignalTable

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def ago(days: float) -> str:
    return (T - timedelta(days=days)).isoformat()


def who(trigger: str, table: FactTable, segment: str | None = None, **inputs: Any) -> list[str]:
    signals = SignalTable(SignalInputs.from_table(table, **inputs), T.timestamp())
    playbook = PlaybookConfig(name="p", trigger=trigger, segment=segment)
    check(parse(trigger), CATALOG)
    return sorted(e.customer_id for e in entrants(playbook, signals))


def customers(*ids: str, **columns: Any) -> list[dict[str, Any]]:
    return [{"id": i, **{k: v[n] for k, v in columns.items()}} for n, i in enumerate(ids)]


def test_catalog_and_computations_agree() -> None:
    assert set(CATALOG) == set(COMPUTE)


def test_health_below_n_or_band_changed_to_red() -> None:
    table = FactTable.build(customers("a", "b", "c", "d"), observed_at=T)
    health = {"health_score": [65, 80, 40, np.nan], "health_band": ["yellow", "green", "red", ""],
              "previous_band": ["yellow", "green", "yellow", ""], "previous_score": [70, 85, 55, np.nan]}
    assert who("health.score < 70", table, **health) == ["a", "c"]
    assert who('health.band_changed_to == "red"', table, **health) == ["c"]
    assert who("health.score_change <= -10", table, **health) == ["c"]


def test_no_login_for_n_days_from_usage_or_crm() -> None:
    table = FactTable.build(
        customers("a", "b", "c", "d", last_login=[None, ago(2), ago(20), None]), observed_at=T,
        usage=[{"customer": "a", "day": ago(15), "logins": 3}, {"customer": "a", "day": ago(3), "logins": 0},
               {"customer": "b", "day": ago(30), "logins": 1}])
    assert who("days_since_last_login >= 14", table) == ["a", "c"]   # d: never seen, not "inactive"


def test_n_tickets_within_d_days() -> None:
    tickets = [{"customer": "a", "created": ago(d), "status": "open"} for d in (1, 3, 6.5)] + \
              [{"customer": "b", "created": ago(d), "status": "solved"} for d in (1, 3, 8)]
    table = FactTable.build(customers("a", "b"), observed_at=T, ticket=tickets)
    assert who("tickets_opened(7d) >= 3", table) == ["a"]
    assert who("tickets_opened(10d) >= 3", table) == ["a", "b"]


def test_ticket_open_longer_than_d_days() -> None:
    table = FactTable.build(customers("a", "b", "c"), observed_at=T, ticket=[
        {"customer": "a", "created": ago(6), "status": "open"},
        {"customer": "b", "created": ago(10), "status": "solved", "solved": ago(9)},
        {"customer": "c", "created": ago(2), "status": "pending"}])
    assert who("ticket_open_longer_than(5d)", table) == ["a"]
    assert who("oldest_open_ticket_days >= 2", table) == ["a", "c"]


def test_latest_nps_below_7() -> None:
    table = FactTable.build(customers("a", "b", "c", nps=[None, None, 4]), observed_at=T, satisfaction=[
        {"customer": "a", "created": ago(200), "type": "nps", "score": 9},
        {"customer": "a", "created": ago(5), "type": "nps", "score": 5},
        {"customer": "b", "created": ago(200), "type": "nps", "score": 3},
        {"customer": "b", "created": ago(5), "type": "nps", "score": 9},
        {"customer": "b", "created": ago(1), "type": "csat", "score": 0}])
    assert who("nps < 7", table) == ["a", "c"]   # c: the CRM's NPS field


def test_onboarding_milestone_missed_by_its_due_date() -> None:
    table = FactTable.build(
        customers("late", "young", "done", created=[ago(20), ago(3), ago(20)], has_usage=[True, True, True]),
        observed_at=T, usage=[{"customer": "done", "day": ago(10), "logins": 2, "active_users": 1}])
    assert who("onboarding_overdue", table) == ["late"]   # young: not due yet; done: first activity reached
    signals = SignalTable(SignalInputs.from_table(table), T.timestamp())
    assert signals.named("onboarding_milestones_overdue").tolist() == [1.0, 0.0, 0.0]


def test_payment_failed() -> None:
    table = FactTable.build(customers("a", "b", "c"), observed_at=T, charge=[
        {"customer": "a", "created": ago(40), "status": "succeeded", "amount": 100},
        {"customer": "a", "created": ago(2), "status": "failed", "amount": 100},
        {"customer": "b", "created": ago(5), "status": "failed", "amount": 100},
        {"customer": "b", "created": ago(1), "status": "succeeded", "amount": 100}],
        dunning=[{"customer": "c", "opened": ago(3), "status": "open"}])
    assert who("payment_failed", table) == ["a", "c"]


def test_churned_exactly_n_days_ago_only_while_churned() -> None:
    table = FactTable.build(customers("a", "b", "c", "d"), observed_at=T)
    churn = {"churn_state": ["churned_voluntary", "churned_involuntary", "active", "churned_voluntary"],
             "last_full_churn": [(T - timedelta(days=30, hours=3)).timestamp(),
                                 (T - timedelta(days=61)).timestamp(),
                                 (T - timedelta(days=30)).timestamp(),      # came back since
                                 (T - timedelta(days=45, hours=1)).timestamp()]}
    assert who("churned_days_ago in [30, 60, 90]", table, **churn) == ["a"]
    assert who("churned_days_ago == 45", table, **churn) == ["d"]
    assert who("churned", table, **churn) == ["a", "b", "d"]


def test_silent_churn() -> None:
    table = FactTable.build(customers("a", "b"), observed_at=T)
    assert who("silent_churn", table, churn_state=["silent", "active"]) == ["a"]


def test_usage_near_plan_limit_and_segment() -> None:
    subs = [{"customer": c, "id": f"sub_{c}", "start": ago(100), "status": "active", "mrr": mrr, "quantity": 10,
             "plan": plan} for c, mrr, plan in (("a", 90000, "growth"), ("b", 90000, "growth"), ("c", 9000, "starter"))]
    usage = [{"customer": c, "day": ago(1), "active_users": users, "logins": users} for c, users in
             (("a", 9), ("b", 5), ("c", 10))]
    table = FactTable.build(customers("a", "b", "c"), observed_at=T, subscription=subs, usage=usage)
    assert who("usage_near_plan_limit", table) == ["a", "c"]
    assert who("usage_near_plan_limit", table, segment='mrr >= 50000 and plan == "growth"') == ["a"]
    assert who("plan_usage >= 0.5 and plan != \"starter\"", table) == ["a", "b"]


@pytest.mark.parametrize("text", ["tickets_opened >= 3", "nps(7) < 3", "helth.score < 3"])
def test_wrong_signals_are_rejected_with_a_column(text: str) -> None:
    with pytest.raises(Exception, match=r"at column \d+"):
        check(parse(text), CATALOG)
