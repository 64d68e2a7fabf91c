"""Planning: for every open case, the steps due now, written to the outbox with deterministic keys.

Emails and CRM tasks go through the outbox `Planner` (recipient, customer context, templates);
Stripe steps (a retry, the final action) are intents on the case's Stripe connector directly,
each with its own key, so Stripe's idempotency makes every retry act once. The case records the
steps it took (`details.steps`) in the same transaction as the enqueue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from hub.dunning.cases import (
    CHUNK,
    EXHAUSTED,
    OPEN,
    RECOVERED,
    SOURCE,
    case_key,
    cases,
    customers_of,
    parse_time,
    records,
    set_case_values,
)
from hub.dunning.policy import DunningSettings, is_hard_decline
from hub.dunning.steps import CaseView, Decision, Step, decide, planned_steps
from hub.models import Customer, HealthScore
from hub.outbox import SKIPPED, ActionRequest, Intent, Planner, enqueue

customers = Customer.__table__
health = HealthScore.__table__
DEFAULT_VARIABLES = {"product": {"name": "our service"}}


@dataclass
class PlannedCase:
    case: dict[str, Any]
    view: CaseView
    decision: Decision


@dataclass
class PlanReport:
    cases: list[PlannedCase] = field(default_factory=list)
    intents: list[Intent] = field(default_factory=list)
    enqueued: int = 0


def open_cases(connection: Connection, connectors: Sequence[str]) -> list[dict[str, Any]]:
    """Open cases; on PostgreSQL locked, so two workers planning at once take disjoint cases."""
    query = select(cases).where(cases.c.status == OPEN, cases.c.connector.in_(list(connectors))).order_by(cases.c.id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [dict(r) for r in connection.execute(query).mappings()]


def plan_recovered_emails(connection: Connection, planner: Planner, policy: DunningSettings,
                          connectors: Sequence[str], now: datetime) -> list[Intent]:
    """`recovered_email`: one thank-you per recovered case that had been emailed (off by default)."""
    if not policy.recovered_email:
        return []
    rows = connection.execute(select(cases).where(
        cases.c.status == RECOVERED, cases.c.connector.in_(list(connectors)),
        cases.c.closed_at >= now - timedelta(days=7))).mappings().all()
    due = [dict(r) for r in rows if any(k.startswith("email-") for k in (r["details"] or {}).get("steps") or {})
           and "recovered" not in ((r["details"] or {}).get("steps") or {})]
    if not due:
        return []
    params: dict[str, Any] = {"template": policy.recovered_email, "to": policy.to, "transactional": True}
    if policy.email_connector:
        params["connector"] = policy.email_connector
    requests = [ActionRequest(case_key(r["connector"], r["invoice_id"], "recovered"), SOURCE, "send_email", params,
                              r["customer_id"], variables=_variables(policy, invoice_variables(r, None)))
                for r in due]
    set_case_values(connection, [{"id": r["id"], "step": r["step"] + 1, "status": RECOVERED, "closed_at": r["closed_at"],
                                  "details": {**r["details"], "steps": {**r["details"]["steps"],
                                                                        "recovered": now.isoformat()}}}
                                 for r in due])
    return planner.plan(connection, requests, now=now)


def _high_value(connection: Connection, customer_ids: set[str], policy: DunningSettings) -> set[str]:
    rule = policy.high_value
    if rule is None or not customer_ids:
        return set()
    ids = sorted(customer_ids)
    found: set[str] = set()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        if rule.mrr_at_least is not None:
            found |= set(connection.execute(select(customers.c.id).where(
                customers.c.id.in_(chunk), customers.c.mrr >= rule.mrr_at_least)).scalars())
        if rule.health_bands:
            latest = (select(health.c.customer_id, func.max(health.c.scored_at).label("at"))
                      .where(health.c.customer_id.in_(chunk)).group_by(health.c.customer_id).subquery())
            found |= set(connection.execute(
                select(health.c.customer_id).join(latest, and_(latest.c.customer_id == health.c.customer_id,
                                                               latest.c.at == health.c.scored_at))
                .where(health.c.band.in_(rule.health_bands))).scalars())
    return found


def _default_cards(connection: Connection, accounts: set[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    wanted = sorted(a for a in accounts if a[1])
    found: dict[tuple[str, str], str | None] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        rows = connection.execute(select(records.c.connector, records.c.external_id, records.c.data).where(
            records.c.kind == "account",
            or_(*(and_(records.c.connector == c, records.c.external_id == e) for c, e in chunk))))
        for connector, external_id, data in rows:
            found[(connector, external_id)] = (data or {}).get("default_payment_method")
    return found


def case_views(connection: Connection, rows: Sequence[dict[str, Any]], policy: DunningSettings) -> list[CaseView]:
    valuable = _high_value(connection, {r["customer_id"] for r in rows if r["customer_id"]}, policy)
    accounts = {(r["connector"], str((r["details"] or {}).get("account_id") or "")) for r in rows}
    cards = _default_cards(connection, accounts)
    views = []
    for row in rows:
        details = row["details"] or {}
        account = (row["connector"], str(details.get("account_id") or ""))
        if "card_at_open" not in details:
            details["card_at_open"] = cards.get(account)
        views.append(CaseView(opened_at=parse_time(row["opened_at"]),  # type: ignore[arg-type]
                              decline_code=row["decline_code"], attempts=int(details.get("attempts") or 0),
                              taken=dict(details.get("steps") or {}), high_value=row["customer_id"] in valuable,
                              card_at_open=details.get("card_at_open"), card_now=cards.get(account)))
    return views


def invoice_variables(case: Mapping[str, Any], next_retry: datetime | None) -> dict[str, Any]:
    invoice = dict((case["details"] or {}).get("invoice") or {})
    invoice.setdefault("amount_due", case["amount_due"])
    invoice.setdefault("currency", case["currency"])
    invoice["number"] = invoice.get("number") or case["invoice_id"]
    invoice["id"] = case["invoice_id"]
    if next_retry is not None:
        invoice["next_payment_attempt"] = next_retry.isoformat()
    return invoice


def _variables(policy: DunningSettings, invoice: dict[str, Any]) -> dict[str, Any]:
    variables = {**DEFAULT_VARIABLES, **policy.variables}
    return {**variables, "invoice": invoice}


def _next_retry(planned: PlannedCase, now: datetime, policy: DunningSettings) -> datetime | None:
    if policy.retries == "stripe" or is_hard_decline(planned.view.decline_code, planned.view.attempts, policy):
        return None
    later = [s.due for s in planned_steps(planned.view, policy) if s.kind == "retry" and s.due > now]
    return later[0] if later else None


def requests_for(planned: PlannedCase, steps: Sequence[Step], policy: DunningSettings,
                 now: datetime) -> tuple[list[ActionRequest], list[Intent]]:
    """Outbox requests (email, CRM task) and direct intents (Stripe) for a case's due steps."""
    case = planned.case
    connector, invoice_id, customer_id = case["connector"], case["invoice_id"], case["customer_id"]
    invoice = invoice_variables(case, _next_retry(planned, now, policy))
    subscription = (case["details"] or {}).get("subscription_id")
    requests: list[ActionRequest] = []
    intents: list[Intent] = []
    for step in steps:
        key = case_key(connector, invoice_id, step.name)
        if step.kind == "email":
            params: dict[str, Any] = {"template": step.template, "to": policy.to, "transactional": True}
            if policy.email_connector:
                params["connector"] = policy.email_connector
            requests.append(ActionRequest(key, SOURCE, "send_email", params, customer_id,
                                          variables=_variables(policy, invoice)))
        elif step.kind == "task" and policy.high_value is not None:
            rule = policy.high_value
            requests.append(ActionRequest(key, SOURCE, "create_crm_task", {
                "subject": rule.subject, "priority": rule.priority, "due_in_days": rule.due_in_days,
                "description": f"Invoice {invoice['number']} could not be paid"
                               f" ({case['decline_code'] or 'declined'}); the customer has been emailed. "
                               f"Pay / update card: {invoice.get('hosted_invoice_url') or '-'}"},
                customer_id, variables=_variables(policy, invoice)))
        elif step.kind == "retry":
            intents.append(Intent(key, SOURCE, "stripe_retry_invoice", customer_id, connector=connector,
                                  operation="retry_invoice", params={"invoice_id": invoice_id},
                                  summary=f"retry {invoice_id}"))
        elif step.kind == "final":
            intents.extend(_final_intents(key, case, subscription, policy))
    return requests, intents


def _final_intents(key: str, case: Mapping[str, Any], subscription: str | None,
                   policy: DunningSettings) -> list[Intent]:
    final = policy.final_action
    base = Intent(key, SOURCE, f"dunning_{final.action}", case["customer_id"], connector=case["connector"],
                  summary=f"final action: {final.action}")
    if final.action == "none":
        return []
    if final.action == "mark_uncollectible":
        return [replace(base, operation="mark_uncollectible", params={"invoice_id": case["invoice_id"]})]
    if not subscription:
        return [replace(base, status=SKIPPED, error="the invoice has no subscription")]
    if final.action == "pause_collection":
        return [replace(base, operation="pause_collection",
                        params={"subscription_id": subscription, "behavior": final.pause_behavior})]
    return [replace(base, operation="cancel_at_period_end",
                    params={"subscription_id": subscription, "cancel_at_period_end": True})]


def plan_cases(connection: Connection, planner: Planner, policy: DunningSettings, connectors: Sequence[str],
               now: datetime, *, dry_run: bool = False, kinds: frozenset[str] | None = None) -> PlanReport:
    """Decide and (unless `dry_run`) enqueue every open case's due steps; record them on the case."""
    report = PlanReport()
    rows = open_cases(connection, connectors)
    views = case_views(connection, rows, policy)
    requests: list[ActionRequest] = []
    updates = []
    for row, view in zip(rows, views, strict=True):
        planned = PlannedCase(row, view, decide(view, policy, now, kinds))
        report.cases.append(planned)
        decision = planned.decision
        if not decision.run and not decision.superseded:
            continue
        case_requests, intents = requests_for(planned, decision.run, policy, now)
        requests += case_requests
        report.intents += intents
        report.intents += [Intent(case_key(row["connector"], row["invoice_id"], s.name), SOURCE, f"dunning_{s.kind}",
                                  row["customer_id"], status=SKIPPED,
                                  error="superseded: a later step fell due before this one ran")
                           for s in decision.superseded]
        details = dict(row["details"] or {})
        details.setdefault("card_at_open", view.card_at_open)
        details["steps"] = {**view.taken, **{s.name: now.isoformat() for s in [*decision.run, *decision.superseded]}}
        final = any(s.kind == "final" for s in decision.run)
        if final:
            details["final_action"] = {"action": policy.final_action.action, "at": now.isoformat()}
        updates.append({"id": row["id"], "step": len(details["steps"]), "status": EXHAUSTED if final else OPEN,
                        "details": details, "closed_at": None})
    if requests:
        report.intents += planner.plan(connection, requests, now=now)
    if not dry_run:
        report.enqueued = len(enqueue(connection, report.intents, now=now))
        set_case_values(connection, updates)
    return report


def _month_end(year: int, month: int) -> datetime:
    """The first moment after the card's expiry month (cards work through their last day)."""
    return datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)


def plan_card_notices(connection: Connection, planner: Planner, policy: DunningSettings, connectors: Sequence[str],
                      now: datetime) -> list[Intent]:
    """Pre-dunning: a notice when the default card expires before the next renewal (off by default)."""
    notice = policy.card_expiry_notice
    if not notice.enabled or not connectors:
        return []
    cards = connection.execute(select(records.c.connector, records.c.external_id, records.c.account_ref, records.c.data)
                               .where(records.c.kind == "payment_method", records.c.deleted.is_(False),
                                      records.c.connector.in_(list(connectors)))).all()
    expiring = {}
    for connector, card_id, account, data in cards:
        data = data or {}
        if not data.get("default") or not data.get("exp_year") or not data.get("exp_month") or not account:
            continue
        expires = _month_end(int(data["exp_year"]), int(data["exp_month"]))
        if now < expires <= now + timedelta(days=notice.days_before):
            expiring[(connector, account)] = (card_id, expires, data)
    if not expiring:
        return []
    renewals = connection.execute(select(records.c.connector, records.c.account_ref, records.c.data).where(
        records.c.kind == "subscription", records.c.deleted.is_(False), records.c.connector.in_(list(connectors)),
        records.c.account_ref.in_(sorted({a for _, a in expiring})))).all()
    renewing = {}
    for connector, account, data in renewals:
        data = data or {}
        end = parse_time(data.get("current_period_end"))
        if data.get("status") in ("active", "trialing", "past_due") and end and not data.get("cancel_at_period_end"):
            renewing[(connector, account)] = min(end, renewing.get((connector, account), end))
    owners = customers_of(connection, list(expiring))
    requests = []
    for key, (card_id, expires, data) in sorted(expiring.items()):
        renewal = renewing.get(key)
        if renewal is None or expires > renewal or key not in owners:
            continue
        card = {k: data.get(k) for k in ("brand", "last4", "exp_month", "exp_year")}
        params: dict[str, Any] = {"template": notice.template, "to": policy.to, "transactional": True}
        if policy.email_connector:
            params["connector"] = policy.email_connector
        requests.append(ActionRequest(f"{SOURCE}|{key[0]}|card-expiring|{card_id}|{data['exp_year']}-{data['exp_month']}",
                                      SOURCE, "send_email", params, owners[key],
                                      variables={**DEFAULT_VARIABLES, **policy.variables, "card": card}))
    return planner.plan(connection, requests, now=now) if requests else []
