"""Scoring every customer and keeping the history: `churnhub score` and `churnhub customer`.

One run loads the facts (one query per kind), scores everyone in numpy and appends one
`health_scores` row per scored customer with its per-factor breakdown. Customers who churned
(billing data, but no live subscription) are not scored; customers without billing data are.
Trends compare with the newest stored score at or before 7 and 30 days ago.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, and_, func, select

from hub.extensions import HealthFactor
from hub.facts import FactTable, live_customers
from hub.factsdb import load_facts, refresh_ticket_signals
from hub.health import (
    Locate,
    Scorecard,
    Scores,
    build_scorecard,
    explain,
    explanation_lines,
    factor_entries,
    plain_error,
    score_table,
)
from hub.models import HealthScore
from hub.sections.health import HealthSettings

scores_table = HealthScore.__table__
WRITE_BATCH = 20_000
TREND_DAYS = (7, 30)


def lookback_days(scorecard: Scorecard) -> float | None:
    """How much history the factors read (None: a plugin factor may read anything)."""
    longest = 0.0
    for model in scorecard.models:
        for spec in model.factors:
            if spec.factor.compute_many is None or spec.options is None:
                if spec.factor.compute_many is None:
                    return None
                continue
            reach = getattr(spec.options, "lookback_days", None)
            if reach is None:
                return None
            longest = max(longest, float(reach()))
    return longest + 1


def eligible_customers(table: FactTable, as_of: float) -> np.ndarray:
    """Customers worth a score: live now, or with no billing data to say otherwise."""
    subs = table.frame("subscription")
    known_billing = table.columns["has_billing"] | (np.bincount(subs.customer, minlength=table.n) > 0)
    return live_customers(table, as_of) | ~known_billing


def load_for(engine: Engine, scorecard: Scorecard, earliest: datetime, now: datetime,
             customers: list[str] | None = None) -> FactTable:
    """The facts `scorecard` reads to score as of `earliest` or later: ticket signals are brought up
    to date (and kept), then every kind is loaded from the factors' lookback on."""
    reach = lookback_days(scorecard)
    since = None if reach is None else earliest - timedelta(days=reach)
    with engine.begin() as connection:
        refresh_ticket_signals(connection, since.timestamp() if since else None)
    with engine.connect() as connection:
        return load_facts(connection, since=since, now=now, customers=customers)


@dataclass
class ScoreRun:
    scored_at: datetime
    scored: int
    unscored: int
    bands: dict[str, int]
    models: dict[str, int]
    average: float | None
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"scored_at": self.scored_at, "scored": self.scored, "unscored": self.unscored,
                "bands": self.bands, "models": self.models, "average": self.average,
                "timings": {k: round(v, 3) for k, v in self.timings.items()}}


def score_all(engine: Engine, settings: HealthSettings, factors: Mapping[str, HealthFactor], *,
              now: datetime | None = None, locate: Locate = plain_error, write: bool = True) -> ScoreRun:
    """Recompute every customer's score as of `now` and append it to the history."""
    now = now or datetime.now(UTC)
    scorecard = build_scorecard(settings, factors, locate)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    table = load_for(engine, scorecard, now, now)
    timings["load"] = time.perf_counter() - started
    started = time.perf_counter()
    as_of = now.timestamp()
    scores = score_table(scorecard, table, as_of, eligible_customers(table, as_of))
    timings["score"] = time.perf_counter() - started
    started = time.perf_counter()
    if write:
        with engine.begin() as connection:
            write_scores(connection, scores, now)
    timings["write"] = time.perf_counter() - started
    scored = scores.scored
    bands = {b: int(np.sum(scores.band[scored] == b)) for b in ("green", "yellow", "red")}
    models = {m: int(np.sum(scores.model[scored] == m)) for m in (x.name for x in scorecard.models)}
    average = round(float(scores.score[scored].mean()), 2) if scored.any() else None
    return ScoreRun(now, int(scored.sum()), int(table.n - scored.sum()), bands, models, average, timings)


def write_scores(connection: Connection, scores: Scores, scored_at: datetime) -> int:
    """Append one `health_scores` row per scored customer, with driver-level bulk inserts (COPY on
    PostgreSQL): the factors' JSON is built column-wise, never one object per customer."""
    rows = np.nonzero(scores.scored)[0]
    for start in range(0, len(rows), WRITE_BATCH):
        batch = rows[start:start + WRITE_BATCH]
        values = zip(scores.table.ids[batch].tolist(), scores.score[batch].tolist(), scores.band[batch].tolist(),
                     scores.model[batch].tolist(), scores.stored_factors(batch), strict=True)
        _bulk_insert(connection, scored_at, values)
    return len(rows)


COLUMNS = "customer_id, scored_at, score, band, model, factors"


def _bulk_insert(connection: Connection, scored_at: datetime, values: Any) -> None:
    raw = connection.connection.dbapi_connection
    assert raw is not None
    if connection.dialect.name == "postgresql":
        with raw.cursor() as cursor, cursor.copy(f"COPY health_scores ({COLUMNS}) FROM STDIN") as copy:
            for customer_id, score, band, model, factors in values:
                copy.write_row((customer_id, scored_at, score, band, model, factors))
        return
    column_type = scores_table.c.scored_at.type
    stamp = column_type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    moment = stamp(scored_at) if stamp else scored_at
    cursor = raw.cursor()
    try:
        cursor.executemany(f"INSERT INTO health_scores ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                           ((c, moment, s, b, m, f) for c, s, b, m, f in values))
    finally:
        cursor.close()


def scores_at(connection: Connection, at: datetime, customer_ids: list[str] | None = None) -> dict[str, tuple[float, str]]:
    """Each customer's newest stored (score, band) at or before `at`."""
    newest = (select(scores_table.c.customer_id, func.max(scores_table.c.scored_at).label("at"))
              .where(scores_table.c.scored_at <= at).group_by(scores_table.c.customer_id))
    if customer_ids is not None:
        newest = newest.where(scores_table.c.customer_id.in_(customer_ids))
    newest_sq = newest.subquery()
    stmt = (select(scores_table.c.customer_id, scores_table.c.score, scores_table.c.band)
            .join(newest_sq, and_(newest_sq.c.customer_id == scores_table.c.customer_id,
                                  newest_sq.c.at == scores_table.c.scored_at)))
    return {c: (s, b) for c, s, b in connection.execute(stmt)}


def customer_health(engine: Engine, customer_id: str, settings: HealthSettings | None = None,
                    factors: Mapping[str, HealthFactor] | None = None, *, now: datetime | None = None) -> dict[str, Any] | None:
    """The newest stored score of one customer, explained, with its trend vs 7 and 30 days ago.

    The stored row keeps each factor's points and impact; the reasons ("3 tickets in 30 days") are
    recomputed from the customer's facts as of the score's time when `settings` and `factors` are
    given. Returns None when the customer was never scored. Example `explanation`:
    "health 54 (yellow): -18 support: 3 tickets in 30 days; -10 payment: 2 failed payments in 90 days"
    """
    now = now or datetime.now(UTC)
    with engine.connect() as connection:
        row = connection.execute(select(scores_table).where(scores_table.c.customer_id == customer_id,
                                                            scores_table.c.scored_at <= now)
                                 .order_by(scores_table.c.scored_at.desc(), scores_table.c.id.desc())
                                 .limit(1)).mappings().first()
        if row is None:
            return None
        scored_at = row["scored_at"] if row["scored_at"].tzinfo else row["scored_at"].replace(tzinfo=UTC)
        trend: dict[str, float | None] = {}
        for days in TREND_DAYS:
            past = scores_at(connection, scored_at - timedelta(days=days), [customer_id]).get(customer_id)
            trend[f"{days}d"] = round(row["score"] - past[0], 1) if past else None
        why = _reasons(connection, customer_id, scored_at, settings, factors) if settings is not None and factors else {}
    stored = factor_entries(row["factors"])
    return {"customer_id": customer_id, "score": row["score"], "band": row["band"], "model": row["model"],
            "scored_at": scored_at, "factors": {name: {**entry, "why": why.get(name, "")} for name, entry in stored.items()},
            "lines": explanation_lines(stored, why), "explanation": explain(row["score"], row["band"], stored, why),
            "trend": trend}


def _reasons(connection: Connection, customer_id: str, at: datetime, settings: HealthSettings,
             factors: Mapping[str, HealthFactor]) -> dict[str, str]:
    scorecard = build_scorecard(settings, factors)
    reach = lookback_days(scorecard)
    table = load_facts(connection, since=None if reach is None else at - timedelta(days=reach), now=at,
                       customers=[customer_id])   # ticket signals as they were computed for the scores
    if table.n != 1:
        return {}
    scores = score_table(scorecard, table, at.timestamp())
    return {name: entry["why"] for name, entry in scores.breakdown(0).items()}
