"""`churn:` — how endings are classified, what counts as silent churn, and metric constants.

    churn:
      involuntary_reasons: [payment_failed, payment_disputed]
      feedback_reasons: {too_expensive: price, switched_service: competitor}
      silent: {window_days: 180, usage_drop: 0.25}
      gross_margin: 0.75

Every key has a default; a block only overrides what it names (mappings are merged with the
defaults, so `feedback_reasons: {other: other}` keeps the other feedback codes).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from hub.sections.common import Strict

ChurnType = Literal["voluntary", "involuntary"]

DEFAULT_FEEDBACK_REASONS: dict[str, str] = {
    "too_expensive": "price",
    "missing_features": "missing_features",
    "switched_service": "competitor",
    "unused": "unused",
    "customer_service": "service",
    "too_complex": "complexity",
    "low_quality": "quality",
    "other": "other",
}


class SilentChurnRules(Strict):
    """Still paying, but nothing grew for `window_days` and usage fell by `usage_drop` or more."""

    enabled: bool = True
    window_days: int = Field(default=182, ge=1, description="two quarters without expansion or adoption")
    usage_window_days: int = Field(default=90, ge=1, description="usage of the last N days vs the N before")
    usage_drop: float = Field(default=0.2, gt=0, le=1, description="a fall of at least this fraction")


class ChurnSettings(Strict):
    voluntary_reasons: list[str] = Field(default_factory=lambda: ["cancellation_requested"])
    involuntary_reasons: list[str] = Field(
        default_factory=lambda: ["payment_failed", "payment_disputed", "canceled_by_retention_policy"])
    involuntary_statuses: list[str] = Field(
        default_factory=lambda: ["unpaid", "incomplete_expired"],
        description="a subscription that ended in one of these statuses ended for payment")
    default_type: ChurnType = Field(default="voluntary", description="an ending with no recorded reason")
    feedback_reasons: dict[str, str] = Field(default_factory=dict)
    crm_churned_stages: list[str] = Field(
        default_factory=lambda: ["churned", "former customer", "cancelled", "canceled"],
        description="CRM lifecycle stages that mean the customer left (lower case)")
    dunning_failed_statuses: list[str] = Field(default_factory=lambda: ["exhausted", "failed", "lost"])
    dunning_recovered_statuses: list[str] = Field(default_factory=lambda: ["recovered"])
    contraction_min_mrr: int = Field(default=1, ge=1, description="smallest MRR drop recorded as contraction")
    count_trials: bool = Field(default=False, description="a trial that ends unconverted counts as churn")
    silent: SilentChurnRules = Field(default_factory=SilentChurnRules)
    label_types: list[str] = Field(
        default_factory=lambda: ["voluntary", "involuntary"],
        description="churn types a backtest counts as 'churned within the horizon'")
    gross_margin: float = Field(default=0.8, gt=0, le=1, description="CLV = ARPA x gross_margin / churn rate")

    @field_validator("feedback_reasons")
    @classmethod
    def _merge_defaults(cls, value: dict[str, str]) -> dict[str, str]:
        return {**DEFAULT_FEEDBACK_REASONS, **value}

    def model_post_init(self, _context: object) -> None:
        if not self.feedback_reasons:
            self.feedback_reasons = dict(DEFAULT_FEEDBACK_REASONS)
