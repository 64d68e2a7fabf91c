"""Churn classification: one case per type, configurable rules, idempotent persistence, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, insert, select
from typer.testing import CliRunner

from hub.churn import ChurnEvent, _adoption_moments, classify, classify_table
from hub.churnrun import list_events, run_churn
from hub.facts import DAY, FactTable, Frame
from hub.models import ChurnEvent as ChurnEventRow
from hub.models import Customer, CustomerLink, MrrSnapshot
from hub.records import Record
from hub.sections.churn import ChurnSettings
from hub.store import write_records

NOW = datetime(2025, 6, 1, tzinfo=UTC)
RULES = ChurnSettings()


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def customer(**frames: list[dict[str, Any]]) -> FactTable:
    columns = frames.pop("columns", [{}])[0]
    return FactTable.build([{"id": "c1", "created": days_ago(900), "has_billing": True, **columns}],
                           observed_at=NOW, **{k: [{"customer": "c1", **row} for row in v] for k, v in frames.items()})


def sub(sub_id: str = "s1", *, start: float = 400, **fields: Any) -> dict[str, Any]:
    return {"id": sub_id, "start": days_ago(start), "status": "active", "mrr": 10000, "currency": "usd",
            "quantity": 10, "plan": "pro", **fields}


def events_of(table: FactTable, rules: ChurnSettings = RULES, at: datetime = NOW) -> tuple[list[ChurnEvent], str | None]:
    return classify(table.customer(0), rules, at)


@pytest.mark.parametrize(("feedback", "reason"), [
    ("too_expensive", "price"), ("missing_features", "missing_features"), ("switched_service", "competitor"),
    ("unused", "unused"), ("customer_service", "service"), ("too_complex", "complexity"),
    ("low_quality", "quality"), ("other", "other"), (None, "unknown")])
def test_a_requested_cancellation_is_voluntary_with_the_feedback_as_reason(feedback: str | None, reason: str) -> None:
    events, state = events_of(customer(subscription=[sub(status="canceled", canceled_at=days_ago(20),
                                                         ended_at=days_ago(10), reason="cancellation_requested",
                                                         feedback=feedback)]))
    assert [(e.type, e.reason, e.mrr_lost, e.currency, e.occurred_at) for e in events] == [
        ("voluntary", reason, 10000, "usd", days_ago(10))]
    assert events[0].evidence["cancellation_reason"] == "cancellation_requested"
    assert state == "churned_voluntary"


def test_a_failed_payment_ending_is_involuntary_with_the_decline_code() -> None:
    events, state = events_of(customer(
        subscription=[sub(status="canceled", ended_at=days_ago(5), reason="payment_failed")],
        charge=[{"created": days_ago(30), "status": "failed", "decline_code": "expired_card"},
                {"created": days_ago(12), "status": "failed", "decline_code": "insufficient_funds"},
                {"created": days_ago(2), "status": "failed", "decline_code": "after_the_end"}]))
    assert [(e.type, e.reason) for e in events] == [("involuntary", "insufficient_funds")]
    assert events[0].evidence["decline_code"] == "insufficient_funds"
    assert state == "churned_involuntary"


def test_unpaid_and_expired_subscriptions_end_involuntarily() -> None:
    unpaid, _ = events_of(customer(
        subscription=[sub(status="unpaid")],
        invoice=[{"subscription_id": "s1", "created": days_ago(40), "status": "paid"},
                 {"subscription_id": "s1", "created": days_ago(15), "status": "open", "attempt_count": 4}]))
    assert [(e.type, e.reason, e.occurred_at) for e in unpaid] == [("involuntary", "unpaid", days_ago(15))]
    expired, state = events_of(customer(subscription=[sub(start=3, status="incomplete_expired", ended_at=days_ago(2))],
                                        charge=[{"created": days_ago(3), "status": "failed",
                                                 "decline_code": "do_not_honor"}]))
    assert [(e.type, e.reason) for e in expired] == [("involuntary", "do_not_honor")]
    assert state == "churned_involuntary"


def test_exhausted_dunning_makes_an_unexplained_ending_involuntary() -> None:
    events, _ = events_of(customer(
        subscription=[sub(status="canceled", ended_at=days_ago(8))],
        dunning=[{"opened": days_ago(30), "closed": days_ago(9), "status": "exhausted", "decline_code": "card_declined"}]))
    assert [(e.type, e.reason, e.evidence.get("dunning")) for e in events] == [("involuntary", "card_declined", "failed")]
    recovered, _ = events_of(customer(
        subscription=[sub(status="canceled", ended_at=days_ago(8))],
        dunning=[{"opened": days_ago(30), "closed": days_ago(25), "status": "recovered"}]))
    assert [e.type for e in recovered] == ["voluntary"]


def test_a_cancellation_requested_by_the_dunning_final_action_is_involuntary() -> None:
    """`cancel_at_period_end` after exhausted dunning: Stripe says `cancellation_requested`, but the
    unpaid invoice ended it; a requested cancellation on another subscription stays voluntary."""
    ended = {"status": "canceled", "canceled_at": days_ago(20), "ended_at": days_ago(10),
             "reason": "cancellation_requested"}
    case = {"opened": days_ago(40), "closed": days_ago(10), "status": "exhausted", "decline_code": "lost_card",
            "subscription_id": "s1"}
    events, state = events_of(customer(subscription=[sub(**ended)], dunning=[case],
                                       charge=[{"created": days_ago(19), "status": "failed",
                                                "decline_code": "insufficient_funds", "amount": 10000}]))
    assert [(e.type, e.reason, e.evidence.get("dunning")) for e in events] == [("involuntary", "lost_card", "failed")]
    assert events[0].evidence["cancellation_reason"] == "cancellation_requested"
    assert state == "churned_involuntary"

    recovered, _ = events_of(customer(subscription=[sub(**ended)], dunning=[{**case, "status": "recovered"}]))
    assert [e.type for e in recovered] == ["voluntary"]
    elsewhere, _ = events_of(customer(subscription=[sub(**ended)], dunning=[{**case, "subscription_id": "s2"}]))
    assert [e.type for e in elsewhere] == ["voluntary"]


def test_rules_decide_unexplained_and_reclassified_endings() -> None:
    silent_end = customer(subscription=[sub(status="canceled", ended_at=days_ago(8))])
    assert [(e.type, e.reason) for e in events_of(silent_end)[0]] == [("voluntary", "unknown")]
    strict = ChurnSettings(default_type="involuntary")
    assert [e.type for e in events_of(silent_end, strict)[0]] == ["involuntary"]
    disputed = customer(subscription=[sub(status="canceled", ended_at=days_ago(8), reason="payment_disputed")])
    assert [e.type for e in events_of(disputed)[0]] == ["involuntary"]
    as_voluntary = ChurnSettings(voluntary_reasons=["cancellation_requested", "payment_disputed"],
                                 involuntary_reasons=["payment_failed"])
    assert [e.type for e in events_of(disputed, as_voluntary)[0]] == ["voluntary"]
    remapped = ChurnSettings(feedback_reasons={"too_expensive": "budget"})
    priced = customer(subscription=[sub(status="canceled", ended_at=days_ago(8), feedback="too_expensive")])
    assert [e.reason for e in events_of(priced, remapped)[0]] == ["budget"]
    assert remapped.feedback_reasons["unused"] == "unused"   # the other defaults stay


def test_a_crm_status_makes_an_ending_voluntary_and_marks_crm_only_customers() -> None:
    table = customer(subscription=[sub(status="canceled", ended_at=days_ago(8))],
                     columns=[{"lifecycle_stage": "Churned"}])
    events, _ = events_of(table, ChurnSettings(default_type="involuntary"))
    assert [(e.type, e.evidence.get("crm_stage")) for e in events] == [("voluntary", "churned")]
    crm_only = FactTable.build([{"id": "c1", "lifecycle_stage": "former customer"}], observed_at=NOW)
    assert classify_table(crm_only, RULES, NOW).states.tolist() == ["churned_voluntary"]


def test_a_partial_ending_is_contraction_not_churn() -> None:
    events, state = events_of(customer(subscription=[
        sub("s1", mrr=10000), sub("s2", mrr=2500, status="canceled", ended_at=days_ago(6), feedback="unused")]))
    assert [(e.type, e.reason, e.mrr_lost) for e in events] == [("contraction", "unused", 2500)]
    assert state == "active"


def test_mrr_snapshots_show_downgrades_and_fewer_seats() -> None:
    snapshots = [{"subscription_id": "s1", "observed": days_ago(60), "mrr": 10000, "quantity": 10, "plan": "pro"},
                 {"subscription_id": "s1", "observed": days_ago(30), "mrr": 6000, "quantity": 6, "plan": "pro"},
                 {"subscription_id": "s1", "observed": days_ago(10), "mrr": 3000, "quantity": 6, "plan": "basic"},
                 {"subscription_id": "s1", "observed": days_ago(5), "mrr": 4000, "quantity": 8, "plan": "basic"}]
    table = customer(subscription=[sub(mrr=4000)], mrr_change=snapshots)
    events, state = events_of(table)
    assert [(e.type, e.reason, e.mrr_lost, e.occurred_at) for e in events] == [
        ("contraction", "fewer_seats", 4000, days_ago(30)), ("contraction", "downgrade", 3000, days_ago(10))]
    assert state == "active"
    earlier, _ = events_of(table, at=days_ago(20))
    assert [e.reason for e in earlier] == ["fewer_seats"]


def test_a_new_subscription_after_churn_is_a_reactivation() -> None:
    events, state = events_of(customer(subscription=[
        sub("s1", start=300, status="canceled", ended_at=days_ago(200), reason="cancellation_requested"),
        sub("s2", start=50, mrr=7000)]))
    assert [(e.type, e.occurred_at) for e in events] == [("voluntary", days_ago(200)), ("reactivation", days_ago(50))]
    assert events[1].evidence["mrr"] == 7000
    assert state == "active"


def test_switching_plans_is_not_churn_and_a_cheaper_switch_is_contraction() -> None:
    upgrade, state = events_of(customer(subscription=[
        sub("s1", start=300, status="canceled", ended_at=days_ago(100), mrr=5000),
        sub("s2", start=100, mrr=9000)]))
    assert upgrade == [] and state == "active"
    cheaper, state = events_of(customer(subscription=[
        sub("s1", start=300, status="canceled", ended_at=days_ago(100.2), mrr=5000),
        sub("s2", start=100, mrr=3000)]))
    assert [(e.type, e.reason, e.mrr_lost) for e in cheaper] == [("contraction", "downgrade", 2000)]
    assert cheaper[0].evidence["replaced_by"] == ["s2"] and state == "active"


def declining_usage(start: float = 400, drop: float = 0.5) -> list[dict[str, Any]]:
    return [{"day": days_ago(d), "active_users": 10 * (drop if d < 90 else 1)} for d in range(0, int(start), 7)]


def test_paying_but_quiet_with_falling_usage_is_silent_churn() -> None:
    table = customer(subscription=[sub(start=400)], usage=declining_usage(), columns=[{"created": days_ago(400)}])
    events, state = events_of(table)
    assert [(e.type, e.reason) for e in events] == [("silent", "usage_falling")]
    assert events[0].occurred_at == days_ago(400 - 182)    # the quiet window completed, to the day
    assert events[0].evidence["usage_change"] == pytest.approx(-0.5, abs=0.05)
    assert state == "silent"
    assert events_of(table, at=NOW + timedelta(days=1))[0][0].occurred_at == events[0].occurred_at   # stable


def test_growth_or_steady_usage_is_not_silent_churn() -> None:
    steady = customer(subscription=[sub()], usage=declining_usage(drop=0.9), columns=[{"created": days_ago(400)}])
    assert events_of(steady)[0] == []
    new_contact = customer(subscription=[sub()], usage=declining_usage(), contact=[{"created": days_ago(40)}],
                           columns=[{"created": days_ago(400)}])
    assert events_of(new_contact)[0] == []
    upsell = customer(subscription=[sub()], usage=declining_usage(), columns=[{"created": days_ago(400)}],
                      opportunity=[{"created": days_ago(100), "closed": days_ago(60), "won": True, "type": "upsell"}])
    assert events_of(upsell)[0] == []
    disabled = ChurnSettings(silent={"enabled": False})
    quiet = customer(subscription=[sub()], usage=declining_usage(), columns=[{"created": days_ago(400)}])
    assert events_of(quiet, disabled)[0] == []
    assert [e.type for e in events_of(quiet, ChurnSettings(silent={"usage_drop": 0.6}))[0]] == []


def test_states_cover_cancelling_past_due_and_unconverted_trials() -> None:
    assert events_of(customer(subscription=[sub(cancel_at_period_end=True)]))[1] == "cancelling"
    assert events_of(customer(subscription=[sub(status="past_due")]))[1] == "past_due"
    trial = customer(subscription=[sub(start=20, status="canceled", trial_end=days_ago(6), ended_at=days_ago(6))])
    assert events_of(trial) == ([], None)
    counted, state = events_of(trial, ChurnSettings(count_trials=True))
    assert [e.type for e in counted] == ["voluntary"] and state == "churned_voluntary"


def test_classification_as_of_an_earlier_time_ignores_what_came_later() -> None:
    table = customer(subscription=[sub(status="canceled", ended_at=days_ago(10), reason="cancellation_requested")])
    assert events_of(table, at=days_ago(11)) == ([], "active")


# ---- database ------------------------------------------------------------------------------------

def seed_customer(engine: Engine, *, mrr: int = 10000, quantity: int = 10, **extra: Any) -> None:
    with engine.begin() as connection:
        connection.execute(insert(Customer.__table__), [{"id": "c1", "name": "Acme"}, {"id": "c2", "name": "Globex"}])
        connection.execute(insert(CustomerLink.__table__), [
            {"customer_id": c, "connector": "billing", "kind": "account", "external_id": f"cus_{c}", "rule": "test"}
            for c in ("c1", "c2")])
        write_records(connection, "billing", [
            Record("account", "cus_c1", {"name": "Acme", "created_at": "2023-01-01T00:00:00Z"}),
            Record("account", "cus_c2", {"name": "Globex", "created_at": "2023-01-01T00:00:00Z"}),
            subscription_record(mrr=mrr, quantity=quantity, **extra),
            Record("subscription", "sub_c2", {"account_id": "cus_c2", "status": "canceled", "mrr": 5000,
                                              "currency": "usd", "start_date": "2024-01-01T00:00:00Z",
                                              "ended_at": "2025-05-20T00:00:00Z",
                                              "cancellation_reason": "payment_failed"}),
            Record("charge", "ch_1", {"account_id": "cus_c2", "status": "failed", "decline_code": "stolen_card",
                                      "created_at": "2025-05-10T00:00:00Z"})], now=NOW)


def subscription_record(**fields: Any) -> Record:
    return Record("subscription", "sub_c1", {"account_id": "cus_c1", "status": "active", "currency": "usd",
                                             "plan": "pro", "start_date": "2023-01-01T00:00:00Z", **fields})


def test_run_churn_persists_events_and_states_idempotently(engine: Engine) -> None:
    seed_customer(engine)
    first = run_churn(engine, RULES, now=NOW)
    assert (first.inserted, first.snapshots, first.states) == (1, 1, {"active": 1, "churned_involuntary": 1})
    again = run_churn(engine, RULES, now=NOW + timedelta(hours=1))
    assert (again.inserted, again.updated, again.states_changed, again.snapshots) == (0, 0, 0, 0)
    with engine.connect() as connection:
        events = list_events(connection)
        states = dict(connection.execute(select(Customer.id, Customer.churn_state)).all())
        mrr = dict(connection.execute(select(Customer.id, Customer.mrr)).all())
    assert [(e["customer_id"], e["type"], e["reason"], e["mrr_lost"], e["name"]) for e in events] == [
        ("c2", "involuntary", "stolen_card", 5000, "Globex")]
    assert events[0]["occurred_at"] == datetime(2025, 5, 20, tzinfo=UTC)
    assert states == {"c1": "active", "c2": "churned_involuntary"} and mrr == {"c1": 10000, "c2": 0}


def test_a_downgrade_between_runs_is_recorded_as_contraction(engine: Engine) -> None:
    seed_customer(engine)
    run_churn(engine, RULES, now=NOW)
    later = NOW + timedelta(days=3)
    with engine.begin() as connection:
        write_records(connection, "billing", [subscription_record(mrr=6000, quantity=6)], now=later)
    run = run_churn(engine, RULES, now=later)
    assert run.snapshots == 1 and run.inserted == 1
    with engine.connect() as connection:
        contraction = list_events(connection, types=["contraction"])
        snapshots = connection.execute(select(MrrSnapshot.mrr).order_by(MrrSnapshot.observed_at)).scalars().all()
        assert connection.execute(select(Customer.mrr).where(Customer.id == "c1")).scalar() == 6000
    assert snapshots == [10000, 6000]
    assert [(e["reason"], e["mrr_lost"], e["occurred_at"]) for e in contraction] == [("fewer_seats", 4000, later)]
    assert run_churn(engine, RULES, now=later + timedelta(days=1)).inserted == 0


def test_facts_that_change_update_the_stored_event(engine: Engine) -> None:
    seed_customer(engine, status="canceled", ended_at="2025-05-25T00:00:00Z", cancellation_reason="cancellation_requested")
    run_churn(engine, RULES, now=NOW)
    with engine.begin() as connection:
        write_records(connection, "billing", [subscription_record(
            status="canceled", ended_at="2025-05-25T00:00:00Z", cancellation_reason="cancellation_requested",
            cancellation_feedback="switched_service", mrr=10000, quantity=10)], now=NOW)
    run = run_churn(engine, RULES, now=NOW)
    assert (run.inserted, run.updated) == (0, 1)
    with engine.connect() as connection:
        reasons = connection.execute(select(ChurnEventRow.reason).where(ChurnEventRow.customer_id == "c1")).scalars().all()
    assert reasons == ["competitor"]


def test_churn_command_lists_events_as_json(hub_cli, engine: Engine, database_url: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seed_customer(engine)
    app, args = hub_cli()
    result = CliRunner().invoke(app, [*args, "churn", "--since", "2025-01-01", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [(e["customer_id"], e["type"], e["reason"]) for e in data["events"]] == [("c2", "involuntary", "stolen_card")]
    assert data["run"]["states"] == {"active": 1, "churned_involuntary": 1}
    none = CliRunner().invoke(app, [*args, "churn", "--type", "voluntary", "--json"])
    assert json.loads(none.output)["events"] == []
    table = CliRunner().invoke(app, [*args, "churn", "--since", "2025-01-01"])
    assert "Globex" in table.output and "stolen_card" in table.output
    bad = CliRunner().invoke(app, [*args, "churn", "--type", "sad"])
    assert bad.exit_code != 0 and "unknown churn type" in str(bad.exception)


def reference_adoption_moments(customers: np.ndarray, days: np.ndarray, users: np.ndarray, n: int,
                               as_of: float) -> np.ndarray:
    """The definition, one usage row at a time: the newest day whose active users beat every earlier day's."""
    out = np.full(n, np.nan)
    rows = sorted((c, d, k) for k, (c, d, u) in enumerate(zip(customers, days, users, strict=True))
                  if d <= as_of and not np.isnan(u))
    peak: dict[int, float] = {}
    for c, d, k in rows:
        if c in peak and users[k] > peak[c]:
            out[c] = d if np.isnan(out[c]) else max(out[c], d)
        peak[c] = max(peak.get(c, -np.inf), users[k])
    return out


@pytest.mark.parametrize("seed", range(40))
def test_adoption_moments_match_their_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 25)), int(rng.integers(1, 150))
    customers = np.sort(rng.integers(0, n, m))
    order = rng.permutation(m) if seed % 2 else np.arange(m)   # days shuffled within customers, or not
    days = rng.integers(0, 10, m).astype(float)[order] * DAY
    users = rng.choice([0.0, 0.5, 1.0, 2.0, 3.0, np.nan], m)    # ties, fractions and gaps
    table = FactTable(np.array([f"c{i}" for i in range(n)], dtype=object), {},
                      {"usage": Frame("usage", customers, {"day": days, "active_users": users, "logins": users})}, 0.0)
    expected = reference_adoption_moments(customers, days, users, n, 8 * DAY)
    assert np.array_equal(_adoption_moments(table, 8 * DAY, DAY), expected, equal_nan=True)
