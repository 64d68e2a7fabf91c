"""`health:` — which factors make the health score, their weights and thresholds, bands and segments.

    health:
      missing: skip              # a factor without data: skip it and renormalise (or `default`)
      missing_default: 50        # the value used by `missing: default`
      bands: {green: 70, yellow: 40}
      factors:
        support: {weight: 2, window_days: 14, stale_days: 5}
        sentiment: {enabled: false}
      segments:
        - name: enterprise
          when: {min_mrr: 100000}          # minor units per month, or `plans: [enterprise]`
          factors: {usage: {weight: 4}}

Keys a factor does not know (its thresholds and curves) are checked against the factor's own
options model when the score is built, so a typo still fails with its dotted path.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from hub.sections.common import Strict

MissingPolicy = Literal["skip", "default"]


class Bands(Strict):
    """Lower bounds of each band; below `yellow` is red."""

    green: float = 70
    yellow: float = 40

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if not 0 <= self.yellow <= self.green <= 100:
            raise ValueError("bands must satisfy 0 <= yellow <= green <= 100")
        return self

    def band(self, score: float) -> str:
        return "green" if score >= self.green else "yellow" if score >= self.yellow else "red"


class FactorSettings(Strict):
    """One factor's block: the common keys, plus the factor's own options (validated by the factor)."""

    model_config = ConfigDict(extra="allow")

    enabled: bool = True
    weight: float | None = Field(default=None, ge=0, description="default: the factor's default weight")
    missing: MissingPolicy | None = Field(default=None, description="default: the section's `missing`")
    default: float | None = Field(default=None, ge=0, le=100, description="value when missing: default")

    def options(self) -> dict[str, object]:
        """The factor-specific keys (thresholds, curves, windows)."""
        return dict(self.model_extra or {})


class SegmentMatch(Strict):
    """Which customers a segment covers; every given condition must hold."""

    min_mrr: int | None = Field(default=None, description="monthly recurring revenue, minor units")
    max_mrr: int | None = None
    plans: list[str] | None = Field(default=None, description="any live subscription on one of these plans")


class Segment(Strict):
    name: str
    when: SegmentMatch
    factors: dict[str, FactorSettings] = Field(default_factory=dict)
    bands: Bands | None = None
    missing: MissingPolicy | None = None


class HealthSettings(Strict):
    missing: MissingPolicy = "skip"
    missing_default: float = Field(default=50, ge=0, le=100)
    bands: Bands = Field(default_factory=Bands)
    factors: dict[str, FactorSettings] = Field(default_factory=dict)
    segments: list[Segment] = Field(default_factory=list)
    snapshot_tolerance_days: float = Field(
        default=2, ge=0,
        description="CRM snapshot fields (usage, NPS) count only when scoring within this many days of the sync")
    at_risk_limit: int = Field(default=50, ge=1, description="rows in the report's at-risk list")

    @model_validator(mode="after")
    def _unique_segments(self) -> HealthSettings:
        names = [s.name for s in self.segments]
        duplicates = sorted({n for n in names if names.count(n) > 1} | ({"default"} & set(names)))
        if duplicates:
            raise ValueError(f"segment names must be unique and not 'default': {', '.join(duplicates)}")
        return self
