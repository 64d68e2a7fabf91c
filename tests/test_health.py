"""Health scores: explanations that add up, config that changes scores as documented, history in the DB."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from hub import synthetic
from hub.errors import ConfigError
from hub.extensions import HealthFactor
from hub.factors import BUILTIN_FACTORS
from hub.facts import FactTable
from hub.factsdb import load_facts
from hub.health import build_scorecard, explanation_lines, score_table
from hub.models import HealthScore
from hub.scoring import customer_health, score_all
from hub.sections.health import HealthSettings

NOW = datetime(2025, 6, 1, tzinfo=UTC)
FACTORS = {f.name: f for f in BUILTIN_FACTORS}


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def settings(**data: Any) -> HealthSettings:
    return HealthSettings.model_validate(data)


def scores_of(table: FactTable, config: HealthSettings | None = None, factors: dict[str, HealthFactor] | None = None,
              at: datetime = NOW) -> Any:
    return score_table(build_scorecard(config or HealthSettings(), factors or FACTORS), table, at.timestamp())


def varied_table() -> FactTable:
    """Customers with very different facts, so every factor and branch is exercised."""
    return FactTable.build(
        [{"id": "healthy", "created": days_ago(800), "has_billing": True, "has_helpdesk": True, "has_usage": True},
         {"id": "troubled", "created": days_ago(60), "has_billing": True, "has_helpdesk": True, "has_usage": True},
         {"id": "crm_only", "created": days_ago(200), "last_login": days_ago(3), "nps": 4, "observed": NOW},
         {"id": "nothing"}],
        subscription=[{"customer": "healthy", "id": "s1", "start": days_ago(800), "status": "active", "mrr": 50000},
                      {"customer": "troubled", "id": "s2", "start": days_ago(60), "status": "past_due", "mrr": 9900}],
        usage=[*({"customer": "healthy", "day": days_ago(d), "active_users": 20} for d in range(0, 60, 5)),
               *({"customer": "troubled", "day": days_ago(d), "active_users": 1 + d / 6} for d in range(4, 60, 5))],
        ticket=[{"customer": "troubled", "created": days_ago(2), "status": "open", "subject": "Export fails",
                 "text": "Export fails again. This is terrible, we are angry."},
                {"customer": "troubled", "created": days_ago(12), "status": "open", "subject": "RE: export failing",
                 "text": "Still broken, very disappointed."},
                {"customer": "healthy", "created": days_ago(20), "solved": days_ago(19), "status": "solved",
                 "subject": "Thanks", "text": "Great product, thank you!"}],
        charge=[{"customer": "troubled", "created": days_ago(10), "status": "failed", "decline_code": "expired_card"}],
        invoice=[{"customer": "troubled", "created": days_ago(10), "status": "open", "amount_due": 9900,
                  "attempt_count": 2}],
        satisfaction=[{"customer": "healthy", "created": days_ago(30), "type": "nps", "score": 10},
                      {"customer": "troubled", "created": days_ago(5), "type": "csat", "score": 0}],
        contact=[{"customer": "healthy", "created": days_ago(700)}],
        observed_at=NOW)


def test_contributions_sum_to_the_score_and_impacts_to_its_distance_from_100() -> None:
    scores = scores_of(varied_table())
    assert scores.scored.tolist() == [True, True, True, False]   # no data at all: no score
    for i in np.nonzero(scores.scored)[0]:
        breakdown = scores.breakdown(i)
        assert sum(e["points"] for e in breakdown.values()) == pytest.approx(scores.score[i], abs=1e-9)
        assert 100 + sum(e["impact"] for e in breakdown.values()) == pytest.approx(scores.score[i], abs=1e-9)
        assert sum(e["weight"] for e in breakdown.values()) == pytest.approx(1.0)
        stored = json.loads(scores.stored_factors(np.array([i]))[0])
        assert set(stored) == set(breakdown)
        assert sum(points for points, _ in stored.values()) == pytest.approx(scores.score[i], abs=1e-9)
        assert all(stored[name] == [breakdown[name]["points"], breakdown[name]["impact"]] for name in stored)


def test_the_explanation_names_what_cost_points() -> None:
    table = varied_table()
    scores = scores_of(table)
    troubled = table.index_of("troubled")
    lines = explanation_lines(scores.breakdown(troubled))
    assert scores.band[troubled] in ("yellow", "red") and scores.band[table.index_of("healthy")] == "green"
    assert any(line.startswith("-") and "payment: 1 failed payment in 90 days; invoice past due" in line for line in lines)
    assert any("support: 2 tickets in 30 days, 1 open > 7 days, 1 repeated" in line for line in lines)
    assert any("satisfaction: CSAT 0 of 1 good" in line for line in lines)
    assert any("sentiment: ticket tone -" in line and "(negative)" in line for line in lines)
    costs = [float(line.split()[0]) for line in lines]
    assert costs == sorted(costs)   # costliest first


def test_one_customer_computes_exactly_what_the_bulk_path_computes() -> None:
    table = varied_table()
    for factor in BUILTIN_FACTORS:
        options = factor.options.model_validate({}) if factor.options else None
        column = factor.compute_many(table, NOW.timestamp(), options)
        for i in range(table.n):
            one = factor.compute(table.customer(i), NOW, options)
            if np.isnan(column.values[i]):
                assert one is None, factor.name
            else:
                assert one == (pytest.approx(column.values[i]), column.explain(i)), factor.name


def two_factor_customer(*, helpdesk: bool = True) -> FactTable:
    """Payment value 80 (one failed charge), support value 60 (three tickets, none stale or repeated)."""
    return FactTable.build(
        [{"id": "c1", "created": days_ago(400), "has_billing": True, "has_helpdesk": helpdesk}],
        subscription=[{"customer": "c1", "id": "s1", "start": days_ago(400), "status": "active", "mrr": 1000}],
        charge=[{"customer": "c1", "created": days_ago(5), "status": "failed"}],
        ticket=[{"customer": "c1", "created": days_ago(d), "solved": days_ago(d - 1), "status": "solved",
                 "subject": subject} for d, subject in ((3, "Login"), (9, "Invoice copy"), (20, "API limits"))]
        if helpdesk else [],
        observed_at=NOW)


ONLY_TWO = {name: {"enabled": False} for name in FACTORS if name not in ("support", "payment")}


def test_weights_change_the_score_as_documented() -> None:
    table = two_factor_customer()
    even = scores_of(table, settings(factors={**ONLY_TWO, "support": {"weight": 1}, "payment": {"weight": 1}}))
    support_heavy = scores_of(table, settings(factors={**ONLY_TWO, "support": {"weight": 3}, "payment": {"weight": 1}}))
    payment_heavy = scores_of(table, settings(factors={**ONLY_TWO, "support": {"weight": 1}, "payment": {"weight": 3}}))
    assert even.score[0] == pytest.approx((60 + 80) / 2)
    assert support_heavy.score[0] == pytest.approx(0.75 * 60 + 0.25 * 80)
    assert payment_heavy.score[0] == pytest.approx(0.25 * 60 + 0.75 * 80)
    assert payment_heavy.breakdown(0)["support"]["impact"] == pytest.approx(-10.0)   # 0.25 * (60 - 100)


def test_factor_options_change_values_as_documented() -> None:
    table = two_factor_customer()
    base = {**ONLY_TWO, "support": {"enabled": False}}
    stricter = scores_of(table, settings(factors={**base, "payment": {"failed_penalty": 50}}))
    assert stricter.score[0] == pytest.approx(50.0)
    curved = scores_of(table, settings(factors={**ONLY_TWO, "payment": {"enabled": False},
                                                "support": {"count_curve": [[0, 100], [3, 30], [4, 0]]}}))
    assert curved.score[0] == pytest.approx(30.0)
    narrow = scores_of(table, settings(factors={**ONLY_TWO, "payment": {"enabled": False}, "support": {"window_days": 7}}))
    assert narrow.score[0] == pytest.approx(90.0)   # only one ticket in the last 7 days


def test_bands_follow_their_thresholds() -> None:
    table = two_factor_customer()
    factors = {**ONLY_TWO, "support": {"weight": 1}, "payment": {"weight": 3}}   # score 75
    assert scores_of(table, settings(factors=factors)).band[0] == "green"
    assert scores_of(table, settings(factors=factors, bands={"green": 80, "yellow": 40})).band[0] == "yellow"
    assert scores_of(table, settings(factors=factors, bands={"green": 90, "yellow": 76})).band[0] == "red"
    with pytest.raises(ValueError, match="yellow <= green"):
        settings(bands={"green": 30, "yellow": 60})


def test_missing_data_is_skipped_or_defaulted() -> None:
    table = two_factor_customer(helpdesk=False)   # no helpdesk: support has no data
    factors = {**ONLY_TWO, "support": {"weight": 1}, "payment": {"weight": 3}}
    skipped = scores_of(table, settings(factors=factors))
    assert skipped.score[0] == pytest.approx(80.0) and set(skipped.breakdown(0)) == {"payment"}
    defaulted = scores_of(table, settings(factors=factors, missing="default", missing_default=50))
    assert defaulted.score[0] == pytest.approx(0.25 * 50 + 0.75 * 80)
    assert defaulted.breakdown(0)["support"]["default"] is True
    assert "-12 support: no data (default value)" in explanation_lines(defaulted.breakdown(0))
    per_factor = scores_of(table, settings(factors={**factors, "support": {"weight": 1, "missing": "default",
                                                                             "default": 0}}))
    assert per_factor.score[0] == pytest.approx(60.0)
    nothing = FactTable.build([{"id": "c1"}], observed_at=NOW)
    assert np.isnan(scores_of(nothing, settings(missing="default")).score[0])   # defaults alone are not a score


def test_segments_score_with_their_own_model() -> None:
    table = FactTable.build(
        [{"id": "big", "created": days_ago(400), "has_billing": True},
         {"id": "small", "created": days_ago(400), "has_billing": True}],
        subscription=[{"customer": "big", "id": "s1", "start": days_ago(400), "status": "active", "mrr": 500000,
                       "plan": "enterprise"},
                      {"customer": "small", "id": "s2", "start": days_ago(400), "status": "active", "mrr": 2900,
                       "plan": "starter"}],
        charge=[{"customer": c, "created": days_ago(5), "status": "failed"} for c in ("big", "small")],
        observed_at=NOW)
    only_payment = {name: {"enabled": False} for name in FACTORS if name != "payment"}
    config = settings(factors=only_payment, segments=[
        {"name": "enterprise", "when": {"min_mrr": 100000}, "factors": {"payment": {"failed_penalty": 60}},
         "bands": {"green": 90, "yellow": 50}}])
    scores = scores_of(table, config)
    assert scores.model.tolist() == ["enterprise", "default"]
    assert scores.score.tolist() == [40.0, 80.0]
    assert scores.band.tolist() == ["red", "green"]
    by_plan = settings(factors=only_payment, segments=[{"name": "self_serve", "when": {"plans": ["starter"]}}])
    assert scores_of(table, by_plan).model.tolist() == ["default", "self_serve"]


def test_config_errors_name_the_dotted_path() -> None:
    with pytest.raises(ConfigError, match=r"health\.factors\.suport.*unknown health factor"):
        build_scorecard(settings(factors={"suport": {"weight": 2}}), FACTORS)
    with pytest.raises(ConfigError, match=r"health\.factors\.support\.window_dayz: unknown key"):
        build_scorecard(settings(factors={"support": {"window_dayz": 7}}), FACTORS)
    with pytest.raises(ConfigError, match=r"health\.factors\.usage\.recency_curve.*increasing x"):
        build_scorecard(settings(factors={"usage": {"recency_curve": [[30, 0], [0, 100]]}}), FACTORS)
    with pytest.raises(ConfigError, match="no enabled factor"):
        build_scorecard(settings(factors={name: {"weight": 0} for name in FACTORS}), FACTORS)


def test_a_plugin_factor_without_bulk_code_is_scored_customer_by_customer() -> None:
    def open_tickets(facts: Any, as_of: datetime, options: Any) -> tuple[float, str] | None:
        tickets = [t for t in facts.rows("ticket") if t["created"] <= as_of and t["solved"] is None]
        return (100.0 - 40 * len(tickets), f"{len(tickets)} open") if facts.value("has_helpdesk") else None

    plugin = HealthFactor("open_tickets", "open tickets", open_tickets, default_weight=1.0)
    table = varied_table()
    config = settings(factors={name: {"enabled": False} for name in FACTORS})
    scores = scores_of(table, config, {**FACTORS, "open_tickets": plugin})
    troubled = table.index_of("troubled")
    assert scores.score[troubled] == pytest.approx(20.0)
    assert scores.breakdown(troubled)["open_tickets"]["why"] == "2 open"
    assert np.isnan(scores.score[table.index_of("crm_only")])


def test_facts_after_as_of_are_ignored() -> None:
    table = varied_table()
    before_tickets = scores_of(table, at=days_ago(13))
    without_later = FactTable.build(
        [{"id": "troubled", "created": days_ago(60), "has_billing": True, "has_helpdesk": True, "has_usage": True}],
        subscription=[{"customer": "troubled", "id": "s2", "start": days_ago(60), "status": "past_due", "mrr": 9900}],
        usage=[{"customer": "troubled", "day": days_ago(d), "active_users": 1 + d / 6} for d in range(14, 60, 5)],
        observed_at=NOW)
    alone = scores_of(without_later, at=days_ago(13))
    troubled = table.index_of("troubled")
    assert before_tickets.score[troubled] == pytest.approx(alone.score[0])
    assert before_tickets.score[troubled] > scores_of(table).score[troubled]


def test_crm_snapshot_fields_count_only_near_their_sync() -> None:
    table = varied_table()
    crm = table.index_of("crm_only")
    now = scores_of(table).breakdown(crm)
    assert "last login 3 days ago (CRM)" in now["usage"]["why"] and "NPS 4 (detractor)" in now["satisfaction"]["why"]
    earlier = scores_of(table, at=days_ago(40)).breakdown(crm)
    assert "usage" not in earlier and "satisfaction" not in earlier


def test_crm_usage_snapshot_rates_seat_utilisation_not_just_the_last_login() -> None:
    """Someone logged in yesterday at both; only one uses most of its 40 seats."""
    def account(name: str, active_users: float) -> dict[str, Any]:
        return {"id": name, "created": days_ago(400), "last_login": days_ago(1), "active_users": active_users,
                "observed": NOW, "has_billing": True}

    table = FactTable.build(
        [account("adopted", 18.0), account("fading", 2.0), {**account("no_seats", 2.0), "has_billing": False}],
        subscription=[{"customer": name, "id": f"s_{name}", "start": days_ago(400), "status": "active",
                       "mrr": 100000, "quantity": 40} for name in ("adopted", "fading")])
    usage = scores_of(table, settings(factors={"usage": {"weight": 1}, **{
        name: {"weight": 0} for name in FACTORS if name != "usage"}}))
    adopted, fading, no_seats = (usage.breakdown(table.index_of(n))["usage"] for n in ("adopted", "fading", "no_seats"))
    assert adopted["value"] > 90 and fading["value"] < 30
    assert "2.0 of 40 seats active (CRM)" in fading["why"]
    assert no_seats["value"] > 90   # seats unknown: recency alone, as before


def test_ticket_text_tone_moves_the_sentiment_factor() -> None:
    def tone(text: str) -> float:
        table = FactTable.build([{"id": "c1"}], ticket=[{"customer": "c1", "created": days_ago(1), "status": "open",
                                                          "subject": "Question", "text": text}], observed_at=NOW)
        factor = FACTORS["sentiment"]
        return factor.compute_many(table, NOW.timestamp(), factor.options.model_validate({})).values[0]

    assert tone("This is awful, broken again and we are furious.") < 35 < 60 < tone("Love it, great support, thanks!")


# ---- database ------------------------------------------------------------------------------------

def seeded(engine: Engine, customers: int = 60, seed: int = 5) -> synthetic.World:
    world = synthetic.generate(customers, now=NOW, seed=seed)
    with engine.begin() as connection:
        synthetic.write(connection, world)
    return world


def test_score_all_appends_history_with_trend_and_explanations(engine: Engine) -> None:
    seeded(engine)
    first = score_all(engine, HealthSettings(), FACTORS, now=NOW - timedelta(days=30))
    second = score_all(engine, HealthSettings(), FACTORS, now=NOW - timedelta(days=7))
    run = score_all(engine, HealthSettings(), FACTORS, now=NOW)
    assert run.scored > 0 and sum(run.bands.values()) == run.scored and first.scored > 0
    with engine.connect() as connection:
        rows = connection.execute(select(HealthScore.customer_id, HealthScore.score, HealthScore.factors)
                                  .where(HealthScore.scored_at == NOW)).all()
        total = connection.execute(select(func.count()).select_from(HealthScore)).scalar()
    assert total == first.scored + second.scored + run.scored
    assert len(rows) == run.scored
    for _, score, factors in rows:
        assert sum(points for points, *_ in factors.values()) == pytest.approx(score, abs=1e-6)
    worst = min(rows, key=lambda r: r[1])[0]
    health = customer_health(engine, worst, HealthSettings(), FACTORS, now=NOW)
    assert health is not None and health["band"] in ("yellow", "red")
    assert set(health["trend"]) == {"7d", "30d"} and health["trend"]["30d"] is not None
    assert health["lines"][0].startswith("-") and ": " in health["lines"][0]
    assert health["explanation"].startswith(f"health {health['score']:.0f} ({health['band']})")
    assert customer_health(engine, "nobody", now=NOW) is None


def test_scores_from_the_database_match_one_customer_loads(engine: Engine) -> None:
    seeded(engine, customers=25, seed=9)
    card = build_scorecard(HealthSettings(), FACTORS)
    with engine.connect() as connection:
        everyone = load_facts(connection, now=NOW)
        bulk = score_table(card, everyone, NOW.timestamp())
        for customer_id in everyone.ids[:8]:
            alone = score_table(card, load_facts(connection, now=NOW, customers=[customer_id]), NOW.timestamp())
            i = everyone.index_of(customer_id)
            assert alone.score[0] == pytest.approx(bulk.score[i], nan_ok=True)
            if alone.scored[0]:
                assert alone.breakdown(0) == bulk.breakdown(i)


# ---- command line --------------------------------------------------------------------------------


def test_score_command_prints_json(hub_cli, engine: Engine, database_url: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    seeded(engine, customers=30)
    app, args = hub_cli("health:\n  bands: {green: 75, yellow: 45}\n")
    result = CliRunner().invoke(app, [*args, "score", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["scored"] > 0 and sum(summary["bands"].values()) == summary["scored"]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(HealthScore)).scalar() == summary["scored"]
    text = CliRunner().invoke(app, [*args, "score"])
    assert text.exit_code == 0 and "scored (average" in text.output


def test_a_config_typo_is_one_clean_error(hub_cli, engine: Engine, database_url: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    app, args = hub_cli("health:\n  bands: {green: 75, yellow: 45}\n")
    (tmp_path / "churnhub.yaml").write_text(f"database: {database_url}\nhealth:\n  factors:\n    support:\n"
                                            "      window_dayz: 3\n", encoding="utf-8")
    result = CliRunner().invoke(app, [*args, "score"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "churnhub.yaml:5 health.factors.support.window_dayz: unknown key" in str(result.exception)
