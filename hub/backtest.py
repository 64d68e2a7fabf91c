"""Backtesting the health score against what actually happened, and fitting weights on history.

`backtest(...)` scores every customer live at `as_of` with the facts known then (the same
factor code as `churnhub score`, CRM snapshot fields excluded because they have no history)
and labels who churned (types in `churn.label_types`) within `horizon` after it. It reports:

- ROC AUC of the risk (100 - score): the chance a churner is ranked riskier than a stayer;
- precision and recall of the red band (and of red + yellow);
- lift of the riskiest decile: its churn rate / the base churn rate;
- revenue at risk captured: MRR (at `as_of`) of churners the red band caught / all churners' MRR.

`fit=True` proposes weights by logistic regression (scikit-learn) of churn on the factor
values. It trains on the snapshot one horizon earlier (labels fully known by `as_of`), then
backtests the proposal at `as_of` beside the current config, so the comparison is out of sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from hub.churn import classify_table
from hub.extensions import HealthFactor
from hub.facts import DAY, FactTable, customer_mrr_at, live_customers
from hub.health import Locate, Scorecard, Scores, build_scorecard, plain_error, score_table
from hub.scoring import load_for
from hub.sections.churn import ChurnSettings
from hub.sections.health import FactorSettings, HealthSettings

MIN_POSITIVES_TO_FIT = 10


@dataclass
class Evaluation:
    customers: int
    churned: int
    base_rate: float | None
    auc: float | None
    bands: dict[str, dict[str, float | int | None]]
    red: dict[str, float | None]
    red_or_yellow: dict[str, float | None]
    top_decile_lift: float | None
    revenue: dict[str, float | int | None]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class BacktestResult:
    as_of: datetime
    horizon_days: float
    current: Evaluation
    proposal: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of, "horizon_days": self.horizon_days, "current": self.current.as_dict(),
                "proposal": self.proposal, "warnings": self.warnings}


def labels(table: FactTable, rules: ChurnSettings, as_of: float, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """(live at as_of, churned within (as_of, as_of + horizon]) for every customer."""
    live = live_customers(table, as_of)
    events = classify_table(table, rules, as_of + horizon).events
    churned = np.zeros(table.n, dtype=bool)
    for event in events:
        moment = event.occurred_at.timestamp()
        if event.type in rules.label_types and as_of < moment <= as_of + horizon:
            churned[table.index_of(event.customer_id)] = True
    return live, churned & live


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def _auc(y: np.ndarray, risk: np.ndarray) -> float | None:
    if y.all() or not y.any():
        return None
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(y, risk)), 4)


def evaluate(scores: Scores, churned: np.ndarray, mrr: np.ndarray) -> Evaluation:
    """How well `scores` ranked the churners among the scored customers."""
    scored = scores.scored
    y, score, band, revenue = churned[scored], scores.score[scored], scores.band[scored], mrr[scored]
    n, positives = len(y), int(y.sum())
    base = _rate(positives, n)
    bands = {}
    for name in ("green", "yellow", "red"):
        members = band == name
        bands[name] = {"customers": int(members.sum()), "churned": int(y[members].sum()),
                       "churn_rate": _rate(int(y[members].sum()), int(members.sum()))}

    def caught(mask: np.ndarray) -> dict[str, float | None]:
        hits = int((mask & y).sum())
        return {"flagged": int(mask.sum()), "precision": _rate(hits, int(mask.sum())), "recall": _rate(hits, positives)}

    lift = None
    if n and positives:
        decile = max(1, math.ceil(n / 10))
        riskiest = np.argsort(score, kind="stable")[:decile]
        lift = round(float(y[riskiest].mean()) / (positives / n), 3)
    churned_mrr = float(revenue[y].sum())
    red_mrr = float(revenue[y & (band == "red")].sum())
    flagged_mrr = float(revenue[y & (band != "green")].sum())
    return Evaluation(n, positives, base, _auc(y, 100 - score), bands, caught(band == "red"),
                      caught(band != "green"), lift, {
                          "churned_mrr": int(churned_mrr),
                          "at_risk_mrr": int(revenue[band == "red"].sum()),
                          "captured_red": _rate(int(red_mrr), int(churned_mrr)),
                          "captured_red_or_yellow": _rate(int(flagged_mrr), int(churned_mrr))})


def backtest(engine: Any, health: HealthSettings, churn: ChurnSettings, factors: Mapping[str, HealthFactor], *,
             as_of: datetime, horizon: timedelta, fit: bool = False, now: datetime | None = None,
             locate: Locate = plain_error) -> BacktestResult:
    """Score everyone as of `as_of` and measure the ranking against churn within `horizon`."""
    now = now or datetime.now(UTC)
    if as_of >= now:
        raise ValueError(f"--as-of must be in the past (before {now:%Y-%m-%d})")
    scorecard = build_scorecard(health, factors, locate)
    earliest = as_of - (horizon if fit else timedelta(0))
    table = load_for(engine, scorecard, earliest, now)
    t, h = as_of.timestamp(), horizon.total_seconds()
    warnings = []
    if t + h > now.timestamp():
        warnings.append(f"the horizon ends {(t + h - now.timestamp()) / DAY:.0f} days after the newest data: "
                        "churn in that part is not yet known, so recall is understated")
    current, scores, churned, mrr = _run(scorecard, table, churn, t, h)
    result = BacktestResult(as_of, h / DAY, current, warnings=warnings)
    if current.customers == 0:
        warnings.append("no customer was live at --as-of: nothing to backtest")
    if fit:
        result.proposal = propose(scorecard, health, factors, table, churn, t, h, scores, churned, mrr, warnings, locate)
    return result


def _run(scorecard: Scorecard, table: FactTable, churn: ChurnSettings, t: float,
         h: float) -> tuple[Evaluation, Scores, np.ndarray, np.ndarray]:
    live, churned = labels(table, churn, t, h)
    scores = score_table(scorecard, table, t, live)
    mrr = customer_mrr_at(table, t)
    return evaluate(scores, churned, mrr), scores, churned, mrr


def fit_weights(scores: Scores, churned: np.ndarray) -> dict[str, float]:
    """Logistic regression of churn on factor values -> a weight per factor (higher = protects more)."""
    from sklearn.linear_model import LogisticRegression

    scored = scores.scored
    values = scores.values[scored] / 100.0
    used = scores.weights[scored] > 0
    x = np.where(used, values, np.nan)
    means = np.array([np.nanmean(col) if np.any(~np.isnan(col)) else 0.5 for col in x.T])
    x = np.where(np.isnan(x), means, x)       # a missing factor counts at the population's mean
    model = LogisticRegression(class_weight="balanced", max_iter=1000)
    model.fit(x, churned[scored])
    # churn falls as a factor's value rises when its coefficient is negative: that is its weight
    return {name: max(0.0, -float(c)) for name, c in zip(scores.names, model.coef_[0], strict=True)}


def proposed_settings(health: HealthSettings, weights: Mapping[str, float]) -> HealthSettings:
    """`health` with the proposed weights for every model (segment weight overrides removed)."""
    factors = {name: FactorSettings.model_validate({**(health.factors.get(name) or FactorSettings()).model_dump(
        exclude_unset=True), "weight": weight, "enabled": True}) for name, weight in weights.items()}
    segments = [segment.model_copy(update={"factors": {
        name: FactorSettings.model_validate({k: v for k, v in block.model_dump(exclude_unset=True).items()
                                             if k != "weight"}) for name, block in segment.factors.items()}})
        for segment in health.segments]
    return health.model_copy(update={"factors": {**health.factors, **factors}, "segments": segments})


def propose(scorecard: Scorecard, health: HealthSettings, factors: Mapping[str, HealthFactor], table: FactTable,
            churn: ChurnSettings, t: float, h: float, scores: Scores, churned: np.ndarray, mrr: np.ndarray,
            warnings: list[str], locate: Locate) -> dict[str, Any] | None:
    train_at = t - h
    _, train_scores, train_churned, _ = _run(scorecard, table, churn, train_at, h)
    trained_on = {"as_of": datetime.fromtimestamp(train_at, UTC), "out_of_sample": True}
    if int(train_churned[train_scores.scored].sum()) < MIN_POSITIVES_TO_FIT:
        warnings.append("too few churners one horizon before --as-of to train out of sample: "
                        "weights were fitted on --as-of itself (in sample, optimistic)")
        train_scores, train_churned = scores, churned
        trained_on = {"as_of": datetime.fromtimestamp(t, UTC), "out_of_sample": False}
    positives = int(train_churned[train_scores.scored].sum())
    if positives == 0 or positives == int(train_scores.scored.sum()):
        warnings.append("cannot fit weights: the training snapshot has no churner (or only churners)")
        return None
    raw = fit_weights(train_scores, train_churned)
    total_current = sum(s.weight for s in scorecard.default.factors)
    total_raw = sum(raw.values())
    if total_raw <= 0:
        warnings.append("the fit found no factor that lowers churn: no proposal")
        return None
    weights = {name: round(w / total_raw * total_current, 2) for name, w in raw.items()}
    proposal_card = build_scorecard(proposed_settings(health, weights), factors, locate)
    proposal_scores = score_table(proposal_card, table, t, live_customers(table, t))
    return {"weights": weights, "trained_on": {**trained_on, "customers": int(train_scores.scored.sum()),
                                               "churned": positives},
            "metrics": evaluate(proposal_scores, churned, mrr).as_dict()}
