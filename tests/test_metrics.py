"""Retention metrics against a hand computation on a small book, and the `metrics` command."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from typer.testing import CliRunner

from hub import synthetic
from hub.facts import FactTable
from hub.metrics import compute, periods
from hub.models import Customer, DunningCase
from hub.sections.churn import ChurnSettings

NOW = datetime(2025, 6, 15, tzinfo=UTC)


def day(month: int, day_: int) -> datetime:
    return datetime(2025, month, day_, tzinfo=UTC)


def small_book() -> FactTable:
    """Live on May 1: A 1000, B 2000, C 3000, D 1000+500, E 4000 (5 customers, MRR 11,500).
    In May: B cancels (price), C's payment fails, D drops its 500 add-on, E grows to 5000,
    F starts at 700. G left in March."""
    subs = [
        {"customer": "A", "id": "a1", "start": day(1, 1), "mrr": 1000, "status": "active"},
        {"customer": "B", "id": "b1", "start": day(2, 1), "mrr": 2000, "status": "canceled", "ended_at": day(5, 10),
         "reason": "cancellation_requested", "feedback": "too_expensive"},
        {"customer": "C", "id": "c1", "start": day(3, 1), "mrr": 3000, "status": "canceled", "ended_at": day(5, 20),
         "reason": "payment_failed"},
        {"customer": "D", "id": "d1", "start": day(1, 15), "mrr": 1000, "status": "active"},
        {"customer": "D", "id": "d2", "start": day(1, 15), "mrr": 500, "status": "canceled", "ended_at": day(5, 5)},
        {"customer": "E", "id": "e1", "start": day(1, 1), "mrr": 5000, "status": "active"},
        {"customer": "F", "id": "f1", "start": day(5, 12), "mrr": 700, "status": "active"},
        {"customer": "G", "id": "g1", "start": day(1, 1), "mrr": 900, "status": "canceled", "ended_at": day(3, 1)},
    ]
    return FactTable.build(
        [{"id": c, "has_billing": True} for c in "ABCDEFG"],
        subscription=subs,
        mrr_change=[{"customer": "E", "subscription_id": "e1", "observed": day(4, 1), "mrr": 4000},
                    {"customer": "E", "subscription_id": "e1", "observed": day(5, 15), "mrr": 5000}],
        satisfaction=[{"customer": c, "created": day(5, 3 + k), "type": "nps", "score": s}
                      for k, (c, s) in enumerate(zip("ABCDE", (10, 9, 7, 3, 0), strict=True))]
        + [{"customer": "A", "created": day(4, 20), "type": "nps", "score": 0},
           {"customer": "B", "created": day(5, 8), "type": "csat", "score": 0}],
        usage=[{"customer": "A", "day": day(5, d), "active_users": u} for d, u in ((2, 3), (9, 2), (16, 1), (23, 0))]
        + [{"customer": "B", "day": day(5, 2), "logins": 4}],
        dunning=[{"customer": "C", "opened": day(4, 25), "closed": day(5, 19), "status": "exhausted"},
                 {"customer": "A", "opened": day(5, 3), "closed": day(5, 6), "status": "recovered"},
                 {"customer": "D", "opened": day(5, 28), "status": "open"}],
        observed_at=NOW)


def test_may_matches_the_hand_computation() -> None:
    result = compute(small_book(), ChurnSettings(gross_margin=0.8), start=day(1, 1), end=day(6, 1), now=NOW)
    may = result["periods"][-1]
    assert may["period"] == "2025-05"
    assert (may["customers_start"], may["customers_lost"], may["customers_end"], may["new_customers"]) == (5, 2, 4, 1)
    assert may["churn_rate"] == 40.0
    assert may["churn_rate_by_type"] == {"voluntary": 20.0, "involuntary": 20.0}
    assert may["reasons"] == {"voluntary:price": 1, "involuntary:payment_failed": 1}
    assert (may["mrr_start"], may["mrr_churned"], may["mrr_contraction"], may["mrr_expansion"]) == (11500, 5000, 500, 1000)
    assert may["mrr_churn_rate"] == pytest.approx(100 * 5500 / 11500, abs=0.01)
    assert may["grr"] == pytest.approx(100 * 6000 / 11500, abs=0.01)
    assert may["nrr"] == pytest.approx(100 * 7000 / 11500, abs=0.01)     # A 1000 + D 1000 + E 5000 on June 1
    assert may["arpa"] == 2300
    assert may["clv"] == 4600                                          # 2300 x 0.8 / 0.4
    assert may["nps"] == {"responses": 5, "promoters": 2, "passives": 1, "detractors": 2, "score": 0.0}
    assert may["engagement_frequency"] == 2.0                          # A: 3 active weeks, B: 1
    assert {k: may["dunning"][k] for k in ("opened", "recovered", "failed", "recovery_rate")} == \
        {"opened": 2, "recovered": 1, "failed": 1, "recovery_rate": 50.0}


def test_quiet_periods_give_nulls_not_errors() -> None:
    result = compute(small_book(), ChurnSettings(), start=day(1, 1), end=day(6, 1), now=NOW)
    february = result["periods"][1]
    assert february["period"] == "2025-02" and february["customers_lost"] == 0
    assert february["clv"] is None and february["nps"]["score"] is None
    assert {k: february["dunning"][k] for k in ("opened", "recovered", "failed", "recovery_rate")} == \
        {"opened": 0, "recovered": 0, "failed": 0, "recovery_rate": None}
    december = compute(small_book(), ChurnSettings(), start=datetime(2024, 12, 1, tzinfo=UTC), end=day(1, 1),
                       now=NOW)["periods"][0]
    assert december["customers_start"] == 0 and december["churn_rate"] is None and december["grr"] is None
    empty = compute(FactTable.build([], observed_at=NOW), ChurnSettings(), start=day(1, 1), end=day(6, 1), now=NOW)
    assert [p["churn_rate"] for p in empty["periods"]] == [None] * 5 and empty["cohorts"] == []


def test_cohorts_retain_by_start_month() -> None:
    cohorts = compute(small_book(), ChurnSettings(), start=day(1, 1), end=day(6, 1), now=NOW)["cohorts"]
    by_month = {c["cohort"]: c for c in cohorts}
    january = by_month["2025-01"]                  # A, D, E, G; G gone from March 1
    assert january["customers"] == 4
    assert january["retention"] == [100.0, 75.0, 75.0, 75.0, 75.0]
    assert by_month["2025-03"]["retention"] == [100.0, 100.0, 0.0]   # C: live end of March and April, gone in May
    assert by_month["2025-05"] == {"cohort": "2025-05", "customers": 1, "retention": [100.0]}


def test_periods_cover_weeks_months_and_quarters() -> None:
    assert [p[0].isoformat()[:10] for p in periods(day(2, 10), day(5, 2), "quarter")] == ["2025-01-01", "2025-04-01"]
    weeks = list(periods(day(5, 7), day(5, 20), "week"))
    assert [p[0] for p in weeks] == [day(5, 5), day(5, 12), day(5, 19)]
    quarterly = compute(small_book(), ChurnSettings(), start=day(4, 1), end=day(6, 1), period="quarter", now=NOW)
    assert quarterly["periods"][0]["period"] == "2025-Q2" and quarterly["periods"][0]["customers_lost"] == 2


def test_metrics_command_prints_json_with_nulls_when_there_is_no_dunning(hub_cli,
        engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = synthetic.generate(80, now=datetime.now(UTC), seed=2)
    with engine.begin() as connection:
        synthetic.write(connection, world)
    app, args = hub_cli()
    result = CliRunner().invoke(app, [*args, "metrics", "--period", "month", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["periods"]) == 12 and data["currencies"] == ["usd"]
    assert all(p["dunning"]["recovery_rate"] is None for p in data["periods"])
    assert sum(p["customers_lost"] for p in data["periods"]) > 0
    table = CliRunner().invoke(app, [*args, "metrics", "--period", "quarter", "--from", "2024-01-01"])
    assert table.exit_code == 0 and "2024-Q1" in table.output


def test_metrics_command_attributes_recoveries_from_the_dunning_cases(hub_cli, engine: Engine) -> None:
    """`recovered_by` travels from dunning_cases through the facts to `metrics --json`."""
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    opened = (this_month - timedelta(days=1)).replace(day=2)   # well inside last month
    cases = [("in_1", "recovered", "retry"), ("in_2", "recovered", "email"), ("in_3", "recovered", "retry"),
             ("in_4", "exhausted", None)]
    with engine.begin() as connection:
        connection.execute(insert(Customer.__table__).values(id="c1", name="Acme", status="Active", mrr=49900))
        connection.execute(insert(DunningCase.__table__), [
            {"connector": "billing", "invoice_id": invoice, "customer_id": "c1", "status": status,
             "recovered_by": recovered_by, "decline_code": "insufficient_funds", "amount_due": 49900,
             "opened_at": opened, "closed_at": opened + timedelta(days=3), "details": {}}
            for invoice, status, recovered_by in cases])
    app, args = hub_cli()
    result = CliRunner().invoke(app, [*args, "metrics", "--period", "month", "--json"])
    assert result.exit_code == 0, result.output
    [dunning] = [p["dunning"] for p in json.loads(result.output)["periods"] if p["dunning"]["opened"]]
    assert (dunning["recovered"], dunning["failed"]) == (3, 1)
    assert dunning["recovered_by"] == {"email": 1, "retry": 2}
