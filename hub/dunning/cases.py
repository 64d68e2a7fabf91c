"""Dunning cases: opened when an invoice payment fails, closed the moment the invoice is paid.

Cases change from *observations* of an invoice — a synced invoice record, a webhook event's
invoice, the result of the hub's own retry — and an observation only moves a case forward:
an invoice's progress is (attempts, settled), so a late or repeated delivery of an older state
(a `payment_failed` after the `paid`) changes nothing but missing details. That is what makes
duplicate and shuffled webhook deliveries harmless.

    statuses: open -> recovered            (paid by any path; `recovered_by` says what did it)
              open -> exhausted            (the sequence ended and the final action was taken;
                                            closed when the subscription ends: involuntary churn)
              open -> failed               (voided / marked uncollectible outside the sequence)

Closing a case skips its dunning actions still waiting in the outbox, so no email goes out
after a recovery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.models import Action, CustomerLink, DunningCase, SourceRecord

cases = DunningCase.__table__
actions = Action.__table__
records = SourceRecord.__table__
links = CustomerLink.__table__

OPEN, RECOVERED, EXHAUSTED, FAILED = "open", "recovered", "exhausted", "failed"
ACTIVE = (OPEN, EXHAUSTED)          # not settled: the invoice may still be paid
SETTLED_INVOICE = {"paid": RECOVERED, "void": FAILED, "uncollectible": FAILED}
SOURCE = "dunning"
CHUNK = 500


def case_key(connector: str, invoice_id: str, step: str) -> str:
    """The outbox key of one step of one case: the same step is never enqueued twice."""
    return f"{SOURCE}|{connector}|{invoice_id}|{step}"


def iso_of(timestamp: Any) -> str | None:
    if timestamp is None or isinstance(timestamp, bool):
        return None
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True)
class Observation:
    """What one source said about an invoice at `at` (canonical invoice fields)."""

    connector: str
    invoice_id: str
    fields: Mapping[str, Any]
    at: datetime
    decline_code: str | None = None
    recovered_by: str | None = None      # set when the observer knows (the hub's own retry)

    @property
    def status(self) -> str | None:
        return self.fields.get("status")

    @property
    def attempts(self) -> int:
        return int(self.fields.get("attempt_count") or 0)

    @property
    def progress(self) -> tuple[int, int]:
        return (self.attempts, 1 if self.status in SETTLED_INVOICE else 0)

    @property
    def failed(self) -> bool:
        return self.status == "open" and self.attempts >= 1


def invoice_fields_from_stripe(invoice: Mapping[str, Any]) -> dict[str, Any]:
    """A Stripe invoice object (a webhook payload) as canonical invoice fields."""
    parent = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription = parent.get("subscription") or invoice.get("subscription")
    customer = invoice.get("customer")
    return {
        "account_id": customer.get("id") if isinstance(customer, Mapping) else customer,
        "subscription_id": subscription.get("id") if isinstance(subscription, Mapping) else subscription,
        "status": invoice.get("status"), "number": invoice.get("number"),
        "amount_due": invoice.get("amount_due"), "amount_remaining": invoice.get("amount_remaining"),
        "currency": invoice.get("currency"), "attempt_count": invoice.get("attempt_count"),
        "next_payment_attempt": iso_of(invoice.get("next_payment_attempt")),
        "hosted_invoice_url": invoice.get("hosted_invoice_url"), "due_date": iso_of(invoice.get("due_date")),
        "billing_reason": invoice.get("billing_reason"),
        "paid_at": iso_of((invoice.get("status_transitions") or {}).get("paid_at")),
    }


def decline_of_charge(charge: Mapping[str, Any]) -> str | None:
    outcome = charge.get("outcome") or {}
    return outcome.get("reason") or charge.get("failure_code")


def observations_from_event(connector: str, payload: Mapping[str, Any]) -> list[Observation]:
    """The invoice observation in a Stripe event (`invoice.*`), if any."""
    obj = (payload.get("data") or {}).get("object") or {}
    if obj.get("object") != "invoice" or not obj.get("id"):
        return []
    at = datetime.fromtimestamp(int(payload.get("created") or 0), UTC)
    return [Observation(connector, str(obj["id"]), invoice_fields_from_stripe(obj), at)]


# --- deciding -------------------------------------------------------------------------------------

def _snapshot(fields: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("number", "amount_due", "currency", "hosted_invoice_url", "next_payment_attempt", "due_date",
            "attempt_count", "status")
    return {k: fields.get(k) for k in keep}


def new_case(obs: Observation, customer_id: str | None) -> dict[str, Any] | None:
    """The case an observation opens when there is none yet (or None)."""
    if obs.failed:
        status, closed = OPEN, None
    elif obs.status == "paid" and obs.attempts > 1:
        # a paid invoice that needed several attempts had failed: its failure event may still be
        # on its way (deliveries are unordered), so the case is born recovered
        status, closed = RECOVERED, parse_time(obs.fields.get("paid_at")) or obs.at
    else:
        return None
    return {"connector": obs.connector, "invoice_id": obs.invoice_id, "customer_id": customer_id,
            "status": status, "decline_code": obs.decline_code, "amount_due": int(obs.fields.get("amount_due") or 0),
            "currency": obs.fields.get("currency"), "opened_at": obs.at, "closed_at": closed, "step": 0,
            "recovered_by": (obs.recovered_by or "retry") if status == RECOVERED else None,
            "details": {"account_id": obs.fields.get("account_id"), "subscription_id": obs.fields.get("subscription_id"),
                        "invoice": _snapshot(obs.fields), "attempts": obs.attempts, "seen": list(obs.progress),
                        "steps": {}}}


def advance(case: Mapping[str, Any], obs: Observation) -> dict[str, Any] | None:
    """The columns an observation changes on an existing case (None: nothing)."""
    details = dict(case["details"] or {})
    changes: dict[str, Any] = {}
    if obs.decline_code and not case["decline_code"]:
        changes["decline_code"] = obs.decline_code
    if obs.failed and obs.at < parse_time(case["opened_at"]):  # type: ignore[operator]
        changes["opened_at"] = obs.at   # a late delivery of the first failure
    seen = tuple(details.get("seen") or (0, 0))
    if obs.progress >= seen and case["status"] in ACTIVE:
        details.update(seen=list(obs.progress), attempts=max(obs.attempts, int(details.get("attempts") or 0)),
                       invoice={**(details.get("invoice") or {}), **{k: v for k, v in _snapshot(obs.fields).items()
                                                                     if v is not None}})
        if obs.decline_code and obs.attempts >= int(case["details"].get("attempts") or 0):
            changes["decline_code"] = obs.decline_code
        settled = SETTLED_INVOICE.get(obs.status or "")
        if settled:
            changes["status"] = RECOVERED if settled == RECOVERED else (
                EXHAUSTED if case["status"] == EXHAUSTED else FAILED)
            changes["closed_at"] = parse_time(obs.fields.get("paid_at")) or obs.at
            if obs.recovered_by:
                changes["recovered_by"] = obs.recovered_by
        if details != case["details"]:
            changes["details"] = details
    return changes or None


# --- applying --------------------------------------------------------------------------------------

def _insert(connection: Connection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def load_cases(connection: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    wanted = sorted(set(keys))
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        condition = or_(*(and_(cases.c.connector == c, cases.c.invoice_id == i) for c, i in chunk))
        for row in connection.execute(select(cases).where(condition)).mappings():
            found[(row["connector"], row["invoice_id"])] = dict(row)
    return found


def customers_of(connection: Connection, accounts: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(connector, billing account id) -> unified customer id."""
    wanted = sorted({a for a in accounts if a[1]})
    found: dict[tuple[str, str], str] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        condition = or_(*(and_(links.c.connector == c, links.c.external_id == e) for c, e in chunk))
        for connector, external_id, customer_id in connection.execute(
                select(links.c.connector, links.c.external_id, links.c.customer_id)
                .where(links.c.kind == "account", condition)):
            found[(connector, external_id)] = customer_id
    return found


@dataclass
class Applied:
    opened: list[tuple[str, str]]
    closed: list[tuple[str, str]]


def apply_observations(connection: Connection, observations: Sequence[Observation], *, now: datetime) -> Applied:
    """Open, advance and close cases from `observations` (several per invoice are fine, any order)."""
    applied = Applied([], [])
    if not observations:
        return applied
    existing = load_cases(connection, [(o.connector, o.invoice_id) for o in observations])
    customers = customers_of(connection, [(o.connector, str(o.fields.get("account_id") or "")) for o in observations])
    created: dict[tuple[str, str], dict[str, Any]] = {}
    changed: dict[tuple[str, str], dict[str, Any]] = {}
    for obs in sorted(observations, key=lambda o: (o.progress, o.at)):
        key = (obs.connector, obs.invoice_id)
        current = existing.get(key) or created.get(key)
        if current is None:
            case = new_case(obs, customers.get((obs.connector, str(obs.fields.get("account_id") or ""))))
            if case is not None:
                created[key] = case
            continue
        changes = advance(current, obs) or {}
        customer = customers.get((obs.connector, str(obs.fields.get("account_id") or "")))
        if current["customer_id"] is None and customer:   # linked since the case opened
            changes["customer_id"] = customer
        if changes:
            current.update(changes)
            if key in existing:
                changed.setdefault(key, {}).update(changes)
    if created:
        rows = list(created.values())
        inserted = connection.execute(_insert(connection)(cases).values(rows).on_conflict_do_nothing(
            index_elements=["connector", "invoice_id"]).returning(cases.c.connector, cases.c.invoice_id)).all()
        applied.opened = [tuple(r) for r in inserted if created[tuple(r)]["status"] == OPEN]  # type: ignore[misc]
    closing = [k for k, c in changed.items() if "closed_at" in c]
    attribute(connection, [existing[k] for k in closing if existing[k]["status"] == RECOVERED], changed)
    for key, values in changed.items():
        connection.execute(update(cases).where(cases.c.id == existing[key]["id"]).values(**values))
    if closing:
        skip_pending_steps(connection, closing, now=now)
    applied.closed = closing
    return applied


def attribute(connection: Connection, recovered: list[dict[str, Any]], changed: dict[tuple[str, str], dict[str, Any]]) -> None:
    """What recovered each case: our retry, the CSM's task, the emails (+ the customer's update)."""
    if not recovered:
        return
    steps = case_actions(connection, [(c["connector"], c["invoice_id"]) for c in recovered])
    for case in recovered:
        key = (case["connector"], case["invoice_id"])
        if changed[key].get("recovered_by"):
            continue
        done = steps.get(key, [])
        changed[key]["recovered_by"] = recovered_by(done)


def recovered_by(done: Sequence[Mapping[str, Any]]) -> str:
    """`retry` when a hub retry paid (or Stripe's own retries did, nothing else having been tried),
    `csm` when the owner had a task, `email` when the customer paid after our emails."""
    def did(operation: str, statuses: tuple[str, ...] = ("succeeded",)) -> bool:
        return any(a["operation"] == operation and a["status"] in statuses for a in done)

    if did("retry_invoice", ("succeeded", "running")):
        return "retry"
    if did("create_task"):
        return "csm"
    if did("send"):
        return "email"
    return "retry"


def case_actions(connection: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The outbox rows of each case's steps (by key prefix)."""
    prefixes = {case_key(c, i, ""): (c, i) for c, i in keys}
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    items = sorted(prefixes)
    for start in range(0, len(items), CHUNK):
        chunk = items[start:start + CHUNK]
        rows = connection.execute(select(actions.c.idempotency_key, actions.c.operation, actions.c.status,
                                         actions.c.finished_at, actions.c.action_type)
                                  .where(actions.c.source == SOURCE,
                                         or_(*(actions.c.idempotency_key.startswith(p, autoescape=True)
                                               for p in chunk)))).mappings().all()
        for row in rows:
            prefix = row["idempotency_key"].rsplit("|", 1)[0] + "|"
            if prefix in prefixes:
                found.setdefault(prefixes[prefix], []).append(dict(row))
    return found


def skip_pending_steps(connection: Connection, keys: Sequence[tuple[str, str]], *, now: datetime) -> int:
    """Steps of closed cases that have not run yet are skipped: nothing is sent after a recovery."""
    total = 0
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start:start + CHUNK]
        result = connection.execute(
            update(actions).where(actions.c.source == SOURCE, actions.c.status.in_(("pending", "failed")),
                                  or_(*(actions.c.idempotency_key.startswith(case_key(c, i, ""), autoescape=True)
                                        for c, i in chunk)))
            .values(status="skipped", error="the dunning case closed (invoice settled) before this step ran",
                    finished_at=now, updated_at=now))
        total += result.rowcount or 0
    return total


def set_case_values(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bulk update of (id, step, status, details, closed_at) after planning."""
    if not rows:
        return
    connection.execute(update(cases).where(cases.c.id == bindparam("b_id")).values(
        step=bindparam("b_step"), status=bindparam("b_status"), details=bindparam("b_details"),
        closed_at=bindparam("b_closed_at")), [{f"b_{k}": v for k, v in r.items()} for r in rows])


def with_decline(obs: Observation, code: str | None) -> Observation:
    return replace(obs, decline_code=code) if code else obs
