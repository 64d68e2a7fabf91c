"""Dunning decisions without a database: the policy, which steps fall due, and how observations
move a case (order-independent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from hub.dunning.cases import Observation, advance, new_case, recovered_by
from hub.dunning.policy import DunningSettings, is_hard_decline, on_preferred_day, retry_times
from hub.dunning.steps import CaseView, decide, planned_steps

OPENED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)   # a Monday


def view(**changes: object) -> CaseView:
    values: dict[str, object] = {"opened_at": OPENED, "decline_code": "insufficient_funds", "attempts": 1, "taken": {}}
    values.update(changes)
    return CaseView(**values)  # type: ignore[arg-type]


def test_soft_hard_and_do_not_honor_after_n_attempts() -> None:
    policy = DunningSettings(do_not_honor_after=2)
    assert not is_hard_decline("insufficient_funds", 5, policy)
    assert is_hard_decline("expired_card", 1, policy) and is_hard_decline("stolen_card", 1, policy)
    assert not is_hard_decline("do_not_honor", 2, policy) and is_hard_decline("do_not_honor", 3, policy)
    assert not is_hard_decline("some_new_code", 1, policy) and not is_hard_decline(None, 1, policy)


def test_retries_move_to_preferred_weekdays() -> None:
    policy = DunningSettings(retries=[1, 3], preferred_weekdays=["Thursday", "sat"])
    assert [t.strftime("%a %d") for t in retry_times(OPENED, policy)] == ["Thu 05", "Thu 05"]
    assert on_preferred_day(OPENED, []) == OPENED
    with pytest.raises(ValidationError):
        DunningSettings(preferred_weekdays=["someday"])
    with pytest.raises(ValidationError):
        DunningSettings(retries=[3, 1])
    assert DunningSettings(retries="stripe").hub_retries == []


def test_a_soft_decline_gets_emails_and_retries_a_hard_one_only_emails() -> None:
    policy = DunningSettings()
    soft = [s.name for s in planned_steps(view(), policy)]
    assert soft == ["email-0", "retry-0", "email-1", "retry-1", "retry-2", "email-2", "retry-3", "email-3", "final"]
    hard = [s.name for s in planned_steps(view(decline_code="lost_card"), policy)]
    assert hard == ["email-0", "email-1", "email-2", "email-3", "final"]
    stripe = [s.name for s in planned_steps(view(), DunningSettings(retries="stripe"))]
    assert "retry-0" not in stripe
    new_card = [s.name for s in planned_steps(view(decline_code="expired_card", card_at_open="pm_1",
                                                   card_now="pm_2"), policy)]
    assert "retry-card-pm_2" in new_card
    assert "csm-task" in [s.name for s in planned_steps(view(high_value=True), policy)]


def test_only_the_latest_due_step_of_a_kind_runs_and_the_final_action_ends_everything() -> None:
    policy = DunningSettings()
    late = decide(view(), policy, OPENED + timedelta(days=4))      # the hub was away for four days
    assert [s.name for s in late.run] == ["email-1", "retry-1"]
    assert [s.name for s in late.superseded] == ["email-0", "retry-0"]
    assert late.next_step is not None and late.next_step.name == "retry-2"
    retries_only = decide(view(), policy, OPENED + timedelta(days=4), frozenset({"retry"}))
    assert [s.name for s in retries_only.run] == ["retry-1"] and retries_only.superseded == [s for s in
                                                                                               late.superseded
                                                                                               if s.kind == "retry"]
    taken = {s: "x" for s in ("email-0", "retry-0", "email-1", "retry-1")}
    end = decide(view(taken=taken), policy, OPENED + timedelta(days=30))
    assert [s.name for s in end.run] == ["final"] and end.next_step is None
    assert {s.name for s in end.superseded} == {"retry-2", "email-2", "retry-3", "email-3"}
    assert decide(view(taken={**taken, "final": "x"}), policy, OPENED + timedelta(days=40)).run == []


def invoice(status: str, attempts: int, **extra: object) -> dict[str, object]:
    return {"status": status, "attempt_count": attempts, "amount_due": 4990, "currency": "usd",
            "account_id": "cus_1", "subscription_id": "sub_1", **extra}


def test_observations_only_move_a_case_forward() -> None:
    failed = Observation("billing", "in_1", invoice("open", 1), OPENED, decline_code="insufficient_funds")
    paid = Observation("billing", "in_1", invoice("paid", 2, paid_at="2026-03-05T09:00:00Z"), OPENED + timedelta(days=3))
    case = new_case(failed, "c1")
    assert case is not None and case["status"] == "open" and case["decline_code"] == "insufficient_funds"
    closing = advance(case, paid)
    assert closing is not None and closing["status"] == "recovered"
    assert closing["closed_at"] == datetime(2026, 3, 5, 9, tzinfo=UTC)
    case.update(closing)
    assert advance(case, failed) is None                      # a late duplicate of the failure: nothing

    born_paid = new_case(paid, "c1")                          # shuffled: the payment before the failure
    assert born_paid is not None and born_paid["status"] == "recovered"
    later = advance(born_paid, Observation("billing", "in_1", invoice("open", 1), OPENED - timedelta(hours=1),
                                           decline_code="expired_card"))
    assert later == {"decline_code": "expired_card", "opened_at": OPENED - timedelta(hours=1)}
    assert new_case(Observation("billing", "in_2", invoice("paid", 1), OPENED), "c1") is None
    assert new_case(Observation("billing", "in_3", invoice("draft", 0), OPENED), "c1") is None
    voided = advance(new_case(failed, "c1"), Observation("billing", "in_1", invoice("void", 1), OPENED))  # type: ignore[arg-type]
    assert voided is not None and voided["status"] == "failed"


def test_attribution_of_a_recovery() -> None:
    def action(operation: str, status: str = "succeeded") -> dict[str, str]:
        return {"operation": operation, "status": status}

    assert recovered_by([action("send"), action("retry_invoice")]) == "retry"
    assert recovered_by([action("send"), action("retry_invoice", "running")]) == "retry"
    assert recovered_by([action("send"), action("retry_invoice", "dead"), action("create_task")]) == "csm"
    assert recovered_by([action("send"), action("retry_invoice", "dead")]) == "email"
    assert recovered_by([]) == "retry"   # Stripe's own retries, nothing of ours was tried
