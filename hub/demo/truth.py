"""What is true in a demo world, counted from the world itself (not from any API shape).

    truth = ground_truth(world)
    truth.customers, truth.churned_by_type["involuntary"], truth.failed_invoices

The demo's summary and its tests compare what the hub concluded with these numbers. A perfect
identity resolution finds `expected_customers`: one per company, plus one per company that pays
privately (a gmail address) with no explicit link, whose Stripe customer nothing can tie to its
company.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from hub.demo.billing import billing_history
from hub.demo.world import Fate, World


@dataclass
class GroundTruth:
    customers: int                                   # companies in the world
    expected_customers: int                          # what a correct identity resolution finds
    unlinkable_payers: int
    fates: dict[str, int] = field(default_factory=dict)
    churned_by_type: dict[str, int] = field(default_factory=dict)   # customers with such an event
    churned_now: int = 0                             # without an active subscription at `now`
    at_risk_now: int = 0                             # live with warning signs showing (see Company.at_risk)
    cancellation_feedback: dict[str, int] = field(default_factory=dict)
    decline_codes: dict[str, int] = field(default_factory=dict)      # of involuntary churns
    invoices: int = 0
    failed_invoices: int = 0                         # open with failed attempts: dunning work now
    failed_invoice_amount: int = 0                   # cents
    uncollectible_invoices: int = 0
    failed_charges: int = 0
    paused: int = 0
    pending_cancellations: int = 0
    sister_conflicts: int = 0                        # pairs of companies sharing one domain

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ground_truth(world: World) -> GroundTruth:
    fates = Counter(company.fate.value for company in world.companies)
    truth = GroundTruth(
        customers=len(world.companies), expected_customers=0, unlinkable_payers=0, fates=dict(fates),
        churned_by_type={
            "voluntary": fates[Fate.VOLUNTARY.value] + fates[Fate.REACTIVATED.value],
            "involuntary": fates[Fate.INVOLUNTARY.value],
            "reactivation": fates[Fate.REACTIVATED.value],
            "contraction": fates[Fate.CONTRACTION.value],
            "silent": fates[Fate.SILENT.value]},
        churned_now=sum(company.churned for company in world.companies),
        at_risk_now=sum(company.at_risk for company in world.companies))
    feedback: Counter[str] = Counter()
    declines: Counter[str] = Counter()
    for company in world.companies:
        if company.free_mail_payer and company.stripe_link is None:
            truth.unlinkable_payers += 1
        if company.sister_of is not None and company.keeps_domain:
            truth.sister_conflicts += 1
        if company.paused_from is not None:
            truth.paused += 1
        if company.pending_cancel_at is not None:
            truth.pending_cancellations += 1
        if company.fate in (Fate.VOLUNTARY, Fate.REACTIVATED) and company.feedback:
            feedback[company.feedback] += 1
        if company.fate is Fate.INVOLUNTARY and company.failing:
            declines[company.failing] += 1
        for subscription in billing_history(world, company):
            for invoice in subscription.invoices:
                truth.invoices += 1
                truth.failed_charges += sum(a.decline_code is not None for a in invoice.attempts)
                truth.uncollectible_invoices += invoice.status == "uncollectible"
                if invoice.failing:
                    truth.failed_invoices += 1
                    truth.failed_invoice_amount += invoice.total
    truth.expected_customers = truth.customers + truth.unlinkable_payers
    truth.cancellation_feedback = dict(sorted(feedback.items()))
    truth.decline_codes = dict(sorted(declines.items()))
    return truth
