"""Scoring and churn classification of a million customers, in memory, with realistic facts.

    figures = score_benchmark(customers=1_000_000, base=5_000)

Realistic facts without a million-customer database: `hub.synthetic` writes `base` customers'
histories (billing, helpdesk, product usage) into a SQLite file, the real loader
(`hub.factsdb.load_facts`) reads them back as a `FactTable`, and that table is tiled to
`customers` (every frame repeated with shifted customer indices and fresh ids). The measured
part is what `score_all` and `run_churn` do between loading and writing: `score_table` over the
eligible customers and `classify_table`. Loading and writing are timed on the base database
and reported per customer, separately: they are database work, not the classification.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from hub.facts import FactTable, Frame


def base_table(customers: int, now: datetime, directory: Path) -> tuple[FactTable, dict[str, float], Any]:
    """`customers` synthetic customers through the database and the real loader."""
    from hub import db, synthetic
    from hub.factsdb import load_facts

    url = f"sqlite:///{directory / 'facts.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    world = synthetic.generate(customers, now=now, seed=11)
    with engine.begin() as connection:
        synthetic.write(connection, world)
    timings["write_base_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    with engine.connect() as connection:
        table = load_facts(connection, now=now)
    timings["load_base_seconds"] = time.perf_counter() - started
    return table, timings, engine


def tiled(table: FactTable, copies: int) -> FactTable:
    """`copies` copies of every customer; copy k's ids end in `~k`, its rows point at its customers."""
    n = table.n
    suffixes = np.repeat(np.array([f"~{k}" for k in range(copies)], dtype=object), n)
    ids = np.tile(table.ids, copies) + suffixes
    columns = {name: np.tile(values, copies) for name, values in table.columns.items()}
    frames = {}
    for kind, frame in table.frames.items():
        rows = len(frame)
        shift = np.repeat(np.arange(copies, dtype=np.int64) * n, rows)
        tiled_columns = {}
        for name, values in frame.columns.items():
            repeated = np.tile(values, copies)
            if values.dtype == object and name in ("id", "subscription_id"):   # keep ids unique per copy
                repeated = repeated + np.repeat(np.array([f"~{k}" for k in range(copies)], dtype=object), rows)
            tiled_columns[name] = repeated
        customer = np.tile(frame.customer, copies) + shift
        frames[kind] = Frame(kind, customer, tiled_columns)   # copy-major order is customer order
    return FactTable(ids, columns, frames, table.observed_at)


@dataclass
class Million:
    """The tiled table with what scoring and classification made of it (shared with the playbooks)."""

    table: FactTable
    now: datetime
    scores: Any
    classification: Any
    figures: dict[str, Any]


_prepared: dict[tuple[int, int], Million] = {}


def score_benchmark(customers: int = 1_000_000, base: int = 5_000) -> dict[str, Any]:
    return prepared(customers, base).figures


def prepared(customers: int, base: int) -> Million:
    """Build, score and classify `customers` (once per size in this process)."""
    if (customers, base) in _prepared:
        return _prepared[(customers, base)]
    from hub.app import discover_plugins
    from hub.churn import classify_table
    from hub.health import build_scorecard, score_table
    from hub.scoring import eligible_customers
    from hub.sections.churn import ChurnSettings
    from hub.sections.health import HealthSettings

    now = datetime.now(UTC).replace(microsecond=0)
    copies = max(1, customers // base)
    with tempfile.TemporaryDirectory(prefix="churnhub-bench-facts-") as tmp:
        small, timings, engine = base_table(base, now, Path(tmp))
        engine.dispose()
    started = time.perf_counter()
    table = tiled(small, copies)
    tile_seconds = time.perf_counter() - started
    factors = discover_plugins().registry.health_factors
    scorecard = build_scorecard(HealthSettings(), factors)
    as_of = now.timestamp()
    started = time.perf_counter()
    scores = score_table(scorecard, table, as_of, eligible_customers(table, as_of))
    score_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = classify_table(table, ChurnSettings(), now)
    classify_seconds = time.perf_counter() - started
    rows = {kind: len(frame) for kind, frame in table.frames.items() if len(frame)}
    scored = scores.scored
    values, counts = np.unique(np.asarray(result.states, dtype=object).astype(str), return_counts=True)
    figures = {
        "customers": int(table.n), "base_customers": base, "fact_rows": rows, "tile_seconds": tile_seconds,
        "score_seconds": score_seconds, "classify_seconds": classify_seconds,
        "seconds": score_seconds + classify_seconds,
        "scored": int(scored.sum()),
        "bands": {b: int(np.sum(scores.band[scored] == b)) for b in ("green", "yellow", "red")},
        "churn_events": len(result.events), "states": {str(v): int(c) for v, c in zip(values, counts, strict=True)},
        "base_load_seconds_per_1k": 1000 * timings["load_base_seconds"] / base,
        **timings,
    }
    _prepared[(customers, base)] = Million(table, now, scores, result, figures)
    return _prepared[(customers, base)]
