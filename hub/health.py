"""The health score: a weighted mean of factor values, explained by what each factor cost.

For one customer, each factor gives a value v in [0, 100] (or no data). With weights w over the
factors that count, the score is `sum(w * v) / sum(w)`, so factor i contributes
`points_i = w_i / sum(w) * v_i` and the points SUM to the score. Its `impact_i = points_i -
w_i / sum(w) * 100` is what it cost against a perfect 100: the explanation
"-18 support: 3 tickets in 30 days" reads straight off it, and 100 + the impacts = the score.

A factor without data is skipped and the weights renormalised (`missing: skip`), or counted at
a default value (`missing: default`). A customer no factor has data for gets no score.
Segments (for example enterprise vs self-serve by MRR or plan) choose their own weights,
options and bands; a customer takes the first segment it matches, else the default model.

Scoring is vectorised: each factor runs once over the whole `FactTable`; plugins without
`compute_many` fall back to their per-customer `compute`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from hub.errors import ConfigError
from hub.extensions import FactorColumn, HealthFactor
from hub.facts import FactTable, customer_mrr_at, from_epoch, live_subscriptions
from hub.sections.health import Bands, FactorSettings, HealthSettings, SegmentMatch

Locate = Callable[[str, str], ConfigError]


def plain_error(path: str, message: str) -> ConfigError:
    return ConfigError(message, path=path)


@dataclass(frozen=True)
class FactorSpec:
    """One factor as a model uses it: its weight, validated options and missing-data policy."""

    name: str
    factor: HealthFactor
    weight: float
    options: BaseModel | None
    missing: str
    default: float

    @property
    def cache_key(self) -> str:
        options = self.options.model_dump_json() if self.options is not None else ""
        return f"{self.name}\x00{options}"


@dataclass(frozen=True)
class HealthModel:
    name: str
    factors: tuple[FactorSpec, ...]
    bands: Bands
    match: SegmentMatch | None = None


@dataclass(frozen=True)
class Scorecard:
    """The segment models in config order, then the default model."""

    models: tuple[HealthModel, ...]

    @property
    def default(self) -> HealthModel:
        return self.models[-1]

    @property
    def factor_names(self) -> list[str]:
        names: list[str] = []
        for model in self.models:
            names += [s.name for s in model.factors if s.name not in names]
        return names


def build_scorecard(settings: HealthSettings, factors: Mapping[str, HealthFactor],
                    locate: Locate = plain_error) -> Scorecard:
    """Validate `health:` against the registered factors; errors name the dotted path."""
    if not factors:
        raise locate("health", "no health factors are registered (the built-in plugin hub.default_factors "
                               "registers them; is it in DEFAULT_PLUGINS and allowed by CHURNHUB_PLUGINS?)")
    for name in settings.factors:
        if name not in factors:
            raise locate(f"health.factors.{name}",
                         f"unknown health factor (registered: {', '.join(sorted(factors)) or 'none'})")
    models = []
    for position, segment in enumerate(settings.segments):
        for name in segment.factors:
            if name not in factors:
                raise locate(f"health.segments.{position}.factors.{name}", "unknown health factor")
        merged = {name: _merge(settings.factors.get(name), segment.factors.get(name)) for name in factors}
        models.append(_model(segment.name, merged, factors, segment.missing or settings.missing,
                             settings.missing_default, segment.bands or settings.bands, segment.when,
                             locate, f"health.segments.{position}.factors"))
    base = {name: settings.factors.get(name) or FactorSettings() for name in factors}
    models.append(_model("default", base, factors, settings.missing, settings.missing_default,
                         settings.bands, None, locate, "health.factors"))
    return Scorecard(tuple(models))


def _merge(base: FactorSettings | None, override: FactorSettings | None) -> FactorSettings:
    data: dict[str, Any] = {}
    for block in (base, override):
        if block is not None:
            data.update(block.model_dump(exclude_unset=True))
    return FactorSettings.model_validate(data)


def _model(name: str, blocks: Mapping[str, FactorSettings], factors: Mapping[str, HealthFactor],
           missing: str, missing_default: float, bands: Bands, match: SegmentMatch | None,
           locate: Locate, where: str) -> HealthModel:
    specs = []
    for factor_name, block in blocks.items():
        factor = factors[factor_name]
        weight = factor.default_weight if block.weight is None else block.weight
        if not block.enabled or weight <= 0:
            continue
        specs.append(FactorSpec(factor_name, factor, weight, _options(factor, block, locate, f"{where}.{factor_name}"),
                                block.missing or missing, missing_default if block.default is None else block.default))
    if not specs:
        raise locate(where, f"health model {name!r} has no enabled factor with a weight above 0")
    return HealthModel(name, tuple(specs), bands, match)


def _options(factor: HealthFactor, block: FactorSettings, locate: Locate, where: str) -> BaseModel | None:
    own = block.options()
    if factor.options is None:
        if own:
            raise locate(f"{where}.{next(iter(own))}", f"unknown key: factor {factor.name!r} takes no options")
        return None
    try:
        return factor.options.model_validate(own)
    except ValidationError as exc:
        error = exc.errors()[0]
        path = ".".join([where, *(str(p) for p in error["loc"])])
        message = "unknown key (check the spelling)" if error["type"] == "extra_forbidden" else error["msg"]
        raise locate(path, message) from None


# ---- scoring ------------------------------------------------------------------------------------

@dataclass
class Scores:
    """Every customer's score at `as_of`; factor arrays are (customers x factors).

    `weights` are the normalised weights actually used (0: factor not counted), in steps of 0.001
    summing to exactly 1; `points = weights * values` rounded to 0.1 and `score = sum(points)`.
    """

    table: FactTable
    as_of: float
    names: list[str]
    score: np.ndarray
    band: np.ndarray
    model: np.ndarray
    values: np.ndarray
    weights: np.ndarray
    points: np.ndarray
    defaulted: np.ndarray
    sources: list[list[tuple[np.ndarray, FactorColumn]]] = field(repr=False)  # per factor: (members, column)

    @property
    def scored(self) -> np.ndarray:
        return ~np.isnan(self.score)

    def impacts(self) -> np.ndarray:
        """What each factor cost against a perfect 100 (<= 0); 100 + the impacts = the score."""
        return np.round(self.points - self.weights * 100, 1)

    def why(self, i: int, k: int) -> str:
        if self.defaulted[i, k]:
            return "no data (default value)"
        for members, column in self.sources[k]:
            if members[i]:
                return column.explain(i)
        return ""

    def breakdown(self, i: int) -> dict[str, dict[str, Any]]:
        """Customer i's factors, explained: value, weight, points, impact and why."""
        out: dict[str, dict[str, Any]] = {}
        impacts = self.impacts()
        for k, name in enumerate(self.names):
            if not self.weights[i, k] > 0:
                continue
            out[name] = {"value": round(float(self.values[i, k]), 1), "weight": round(float(self.weights[i, k]), 3),
                         "points": float(self.points[i, k]), "impact": float(impacts[i, k]), "why": self.why(i, k)}
            if self.defaulted[i, k]:
                out[name]["default"] = True
        return out

    def stored_factors(self, rows: np.ndarray) -> list[str]:
        """`health_scores.factors` of `rows` as JSON text: {"support": [points, impact], ...} (a third
        element "default" marks a defaulted factor). Built per pattern of factors present, with one
        string format per customer, so a million rows take about a second."""
        impacts = self.impacts()
        used, defaulted = self.weights[rows] > 0, self.defaulted[rows]
        pattern = (used.astype(np.int64) + defaulted) @ (3 ** np.arange(len(self.names), dtype=np.int64))
        out = np.empty(len(rows), dtype=object)
        for key in np.unique(pattern).tolist():
            members = np.nonzero(pattern == key)[0]
            parts, columns = [], []
            for k, name in enumerate(self.names):
                code = key // 3 ** k % 3
                if not code:
                    continue
                parts.append(json.dumps(name) + ":[%s,%s" + (',"default"]' if code == 2 else "]"))
                chosen = rows[members]
                columns.append(_POINTS[np.rint(self.points[chosen, k] * 10).astype(np.int64)].tolist())
                columns.append(_IMPACTS[np.rint(-impacts[chosen, k] * 10).astype(np.int64)].tolist())
            template = "{" + ",".join(parts) + "}"
            out[members] = [template % values for values in zip(*columns, strict=True)]
        return out.tolist()


# every value points (0..100) and impacts (-100..0) can take in steps of 0.1, as JSON text
_POINTS = np.array([f"{k / 10:g}" for k in range(1001)], dtype=object)
_IMPACTS = np.array(["0"] + [f"-{k / 10:g}" for k in range(1, 1001)], dtype=object)


def segment_of(scorecard: Scorecard, table: FactTable, as_of: float) -> np.ndarray:
    """The index (into `scorecard.models`) of each customer's model."""
    chosen = np.full(table.n, len(scorecard.models) - 1)
    undecided = np.ones(table.n, dtype=bool)
    if len(scorecard.models) == 1:
        return chosen
    mrr = customer_mrr_at(table, as_of)
    subs = table.frame("subscription")
    live = live_subscriptions(table, as_of)
    for position, model in enumerate(scorecard.models[:-1]):
        match = model.match
        assert match is not None
        ok = np.ones(table.n, dtype=bool)
        if match.min_mrr is not None:
            ok &= mrr >= match.min_mrr
        if match.max_mrr is not None:
            ok &= mrr <= match.max_mrr
        if match.plans is not None:
            on_plan = live & np.isin(subs["plan"].astype(str), match.plans)
            ok &= np.bincount(subs.customer[on_plan], minlength=table.n) > 0
        take = ok & undecided
        chosen[take] = position
        undecided &= ~take
    return chosen


def factor_column(spec: FactorSpec, table: FactTable, as_of: float, rows: np.ndarray | None = None) -> FactorColumn:
    """One factor over the table (bulk when the factor can, else customer by customer)."""
    if spec.factor.compute_many is not None:
        column = spec.factor.compute_many(table, as_of, spec.options)
        values = np.asarray(column.values, dtype=float)
        if values.shape != (table.n,) or (not callable(column.why) and len(column.why) != table.n):
            raise ValueError(f"health factor {spec.name!r} returned {values.shape} values for {table.n} customers")
        return FactorColumn(np.clip(values, 0, 100), column.why)
    values = np.full(table.n, np.nan)
    why = [""] * table.n
    moment = from_epoch(as_of)
    for i in (range(table.n) if rows is None else rows.tolist()):
        result = spec.factor.compute(table.customer(i), moment, spec.options)
        if result is not None:
            values[i], why[i] = min(max(float(result[0]), 0.0), 100.0), str(result[1])
    return FactorColumn(values, why)


def _round_weights(weights: np.ndarray) -> np.ndarray:
    """Row-normalised weights in steps of 0.001 that sum to exactly 1 (the largest absorbs rounding)."""
    total = weights.sum(axis=1, keepdims=True)
    thousandths = np.rint(np.divide(weights, total, out=np.zeros_like(weights), where=total > 0) * 1000)
    residual = np.where(total[:, 0] > 0, 1000 - thousandths.sum(axis=1), 0)
    thousandths[np.arange(len(weights)), np.argmax(weights, axis=1)] += residual
    return thousandths / 1000


def score_table(scorecard: Scorecard, table: FactTable, as_of: float, eligible: np.ndarray | None = None) -> Scores:
    """Score every eligible customer of `table` as of `as_of` (epoch seconds)."""
    n, names = table.n, scorecard.factor_names
    eligible = np.ones(n, dtype=bool) if eligible is None else eligible
    k = len(names)
    values, weights = np.full((n, k), np.nan), np.zeros((n, k))
    defaulted = np.zeros((n, k), dtype=bool)
    sources: list[list[tuple[np.ndarray, FactorColumn]]] = [[] for _ in names]
    model_of = segment_of(scorecard, table, as_of)
    cache: dict[str, FactorColumn] = {}
    rows = np.nonzero(eligible)[0]
    for position, model in enumerate(scorecard.models):
        members = eligible & (model_of == position)
        if not members.any():
            continue
        for spec in model.factors:
            column = cache.get(spec.cache_key)
            if column is None:
                column = cache[spec.cache_key] = factor_column(spec, table, as_of, rows)
            j = names.index(spec.name)
            has = members & ~np.isnan(column.values)
            values[has, j] = column.values[has]
            weights[has, j] = spec.weight
            sources[j].append((members, column))
            if spec.missing == "default":
                fill = members & np.isnan(column.values)
                values[fill, j] = spec.default
                weights[fill, j] = spec.weight
                defaulted[fill, j] = True
    scorable = eligible & ((weights > 0) & ~defaulted).any(axis=1)
    weights = np.where(scorable[:, None], _round_weights(weights), 0.0)
    points = np.where(weights > 0, np.round(weights * np.nan_to_num(values), 1), 0.0)
    score = np.where(scorable, np.round(points.sum(axis=1), 1), np.nan)
    band = np.full(n, "", dtype=object)
    model_names = np.array([m.name for m in scorecard.models], dtype=object)
    for position, model in enumerate(scorecard.models):
        members = scorable & (model_of == position)
        band[members] = np.where(score[members] >= model.bands.green, "green",
                                 np.where(score[members] >= model.bands.yellow, "yellow", "red"))
    return Scores(table, as_of, names, score, band, np.where(scorable, model_names[model_of], ""),
                  values, weights, points, defaulted, sources)


# ---- explanations -------------------------------------------------------------------------------

def factor_entries(factors: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Stored factors (`{"support": [points, impact]}`) or a breakdown -> {name: {points, impact, ...}}."""
    out = {}
    for name, entry in factors.items():
        if isinstance(entry, Mapping):
            out[name] = dict(entry)
        else:
            out[name] = {"points": entry[0], "impact": entry[1], **({"default": True} if len(entry) > 2 else {})}
    return out


def explanation_lines(factors: Mapping[str, Any], why: Mapping[str, str] | None = None) -> list[str]:
    """Lines like "-18 support: 3 tickets in 30 days", costliest first (`why` fills in reasons)."""
    entries = factor_entries(factors)
    lines = []
    for name, entry in sorted(entries.items(), key=lambda item: item[1].get("impact", 0)):
        reason = (why or {}).get(name) or entry.get("why") or ("no data (default value)" if entry.get("default") else "")
        lines.append(f"{entry.get('impact', 0):+.0f} {name}" + (f": {reason}" if reason else ""))
    return lines


def explain(score: float, band: str, factors: Mapping[str, Any], why: Mapping[str, str] | None = None) -> str:
    """One paragraph: the score, then what each factor cost ("health 54 (yellow): -18 support: ...")."""
    costs = "; ".join(line for line in explanation_lines(factors, why) if not line.startswith(("+0", "-0")))
    return f"health {score:.0f} ({band})" + (f": {costs}" if costs else ": every factor at its best")


def dumps_factors(factors: Mapping[str, Any]) -> str:
    return json.dumps(factors, separators=(",", ":"), ensure_ascii=False)
