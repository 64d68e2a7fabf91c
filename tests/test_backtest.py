"""Backtests: labels, metrics matching a hand computation, a generated history, fitted weights, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from hub import synthetic
from hub.backtest import backtest, evaluate, labels
from hub.factors import BUILTIN_FACTORS
from hub.facts import FactTable, customer_mrr_at
from hub.health import build_scorecard, score_table
from hub.sections.churn import ChurnSettings
from hub.sections.health import HealthSettings

NOW = datetime(2025, 6, 1, tzinfo=UTC)
AS_OF = NOW - timedelta(days=100)
HORIZON = timedelta(days=90)
FACTORS = {f.name: f for f in BUILTIN_FACTORS}


def at(days_after_as_of: float) -> datetime:
    return AS_OF + timedelta(days=days_after_as_of)


def ten_customers() -> FactTable:
    """c0..c9 with 4,4,3,2,1,0,... failed payments (payment values 20,20,40,60,80,100,...);
    c0, c2 and c5 churn 30 days after AS_OF; c9 churned before it; c8 churns after the horizon."""
    failures = [4, 4, 3, 2, 1, 0, 0, 0, 0, 0]
    mrr = {0: 1000, 2: 2000, 5: 4000}
    subscriptions, charges = [], []
    for i, count in enumerate(failures):
        sub: dict[str, Any] = {"customer": f"c{i}", "id": f"s{i}", "start": at(-400), "status": "active",
                               "mrr": mrr.get(i, 1000)}
        if i in (0, 2, 5):
            sub.update(status="canceled", ended_at=at(30), reason="cancellation_requested")
        if i == 8:
            sub.update(status="canceled", ended_at=at(120), reason="cancellation_requested")
        subscriptions.append(sub)
        charges += [{"customer": f"c{i}", "created": at(-10 - k), "status": "failed"} for k in range(count)]
    subscriptions.append({"customer": "c10", "id": "s10", "start": at(-400), "status": "canceled",
                          "ended_at": at(-20), "mrr": 9999})
    return FactTable.build([{"id": f"c{i}", "has_billing": True} for i in range(11)], subscription=subscriptions,
                           charge=charges, observed_at=NOW)


def test_labels_are_churn_within_the_horizon_among_customers_live_at_as_of() -> None:
    live, churned = labels(ten_customers(), ChurnSettings(), AS_OF.timestamp(), HORIZON.total_seconds())
    assert live.tolist() == [True] * 10 + [False]
    assert [i for i, c in enumerate(churned) if c] == [0, 2, 5]
    only_involuntary = ChurnSettings(label_types=["involuntary"])
    assert not labels(ten_customers(), only_involuntary, AS_OF.timestamp(), HORIZON.total_seconds())[1].any()


def test_backtest_metrics_match_a_hand_computation() -> None:
    table = ten_customers()
    only_payment = HealthSettings.model_validate({"factors": {n: {"enabled": False} for n in FACTORS if n != "payment"}})
    live, churned = labels(table, ChurnSettings(), AS_OF.timestamp(), HORIZON.total_seconds())
    scores = score_table(build_scorecard(only_payment, FACTORS), table, AS_OF.timestamp(), live)
    assert scores.score[:10].tolist() == [20, 20, 40, 60, 80, 100, 100, 100, 100, 100]
    result = evaluate(scores, churned, customer_mrr_at(table, AS_OF.timestamp())).as_dict()
    # churners' risks 80, 60, 0 against stayers' 80, 40, 20, 0, 0, 0, 0: (6.5 + 6 + 2) / 21 pairs
    assert result["auc"] == pytest.approx(14.5 / 21, abs=1e-4)
    assert (result["customers"], result["churned"], result["base_rate"]) == (10, 3, 0.3)
    assert result["red"] == {"flagged": 2, "precision": 0.5, "recall": pytest.approx(1 / 3, abs=1e-4)}
    assert result["red_or_yellow"] == {"flagged": 4, "precision": 0.5, "recall": pytest.approx(2 / 3, abs=1e-4)}
    assert result["top_decile_lift"] == pytest.approx(1 / 0.3, abs=1e-3)
    assert result["revenue"] == {"churned_mrr": 7000, "at_risk_mrr": 2000,
                                 "captured_red": pytest.approx(1 / 7, abs=1e-4),
                                 "captured_red_or_yellow": pytest.approx(3 / 7, abs=1e-4)}
    assert result["bands"]["red"] == {"customers": 2, "churned": 1, "churn_rate": 0.5}


def seeded(engine: Engine, **options: Any) -> None:
    """A generated history where churners show warning signs in the 100 days before they leave."""
    world = synthetic.generate(300, now=NOW, seed=11, **{"warning_days": 100, **options})
    with engine.begin() as connection:
        synthetic.write(connection, world)


def test_a_history_with_warning_signs_backtests_well_above_chance(engine: Engine) -> None:
    seeded(engine)
    result = backtest(engine, HealthSettings(), ChurnSettings(), FACTORS, as_of=NOW - timedelta(days=120),
                      horizon=HORIZON, fit=True, now=NOW)
    current = result.current
    assert current.customers > 100 and current.churned >= 10
    assert current.auc is not None and current.auc > 0.75
    assert current.top_decile_lift is not None and current.top_decile_lift > 2
    assert current.red_or_yellow["recall"] > 0.4
    assert result.warnings == []
    proposal = result.proposal
    assert proposal is not None and proposal["trained_on"]["out_of_sample"] is True
    assert set(proposal["weights"]) <= set(FACTORS) and all(w >= 0 for w in proposal["weights"].values())
    assert proposal["metrics"]["auc"] > 0.7
    assert proposal["metrics"]["customers"] == current.customers


def test_without_warning_signs_the_score_ranks_no_better_than_chance(engine: Engine) -> None:
    seeded(engine, signal=0.0, false_alarms=0.0)
    result = backtest(engine, HealthSettings(), ChurnSettings(), FACTORS, as_of=NOW - timedelta(days=120),
                      horizon=HORIZON, now=NOW)
    assert result.current.auc is not None and result.current.auc < 0.7


def test_a_horizon_past_the_data_is_flagged_and_the_future_refused(engine: Engine) -> None:
    seeded(engine)
    result = backtest(engine, HealthSettings(), ChurnSettings(), FACTORS, as_of=NOW - timedelta(days=30),
                      horizon=HORIZON, now=NOW)
    assert any("after the newest data" in warning for warning in result.warnings)
    with pytest.raises(ValueError, match="in the past"):
        backtest(engine, HealthSettings(), ChurnSettings(), FACTORS, as_of=NOW, horizon=HORIZON, now=NOW)


def test_backtest_command(hub_cli, engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seeded(engine)
    app, args = hub_cli()
    as_of = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    result = CliRunner().invoke(app, [*args, "health", "backtest", "--as-of", as_of, "--horizon", "30d", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["horizon_days"] == 30 and "auc" in data["current"] and data["proposal"] is None
    text = CliRunner().invoke(app, [*args, "health", "backtest", "--as-of", "400d", "--fit"])
    assert text.exit_code == 0, text.output
    assert "ROC AUC" in text.output and "current" in text.output
    bad = CliRunner().invoke(app, [*args, "health", "backtest", "--as-of", "yesterday"])
    assert bad.exit_code != 0 and "expected a date" in str(bad.exception)
