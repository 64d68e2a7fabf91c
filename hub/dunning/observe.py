"""Where observations come from: synced records, webhook events, and the hub's own retries.

- `reconcile(connection, connectors, now)`: every synced invoice that failed (open with an attempt)
  or that belongs to an unsettled case becomes an observation, with the decline code of the
  account's latest failed charge since the invoice was created; cases whose subscription ended
  are closed at the ending (that is what makes the ending involuntary churn).
- `apply_event(connection, connector, payload, records, now)`: one stored webhook event, in the
  transaction that processes it: the connector's mapped records when it has them, else the
  event's own invoice / charge / subscription object.
- `apply_outcomes(connection, outcomes, now)`: a retry that paid closes its case as `retry`; a
  declined one records the decline code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from hub.dunning.cases import (
    ACTIVE,
    CHUNK,
    EXHAUSTED,
    FAILED,
    SOURCE,
    Applied,
    Observation,
    apply_observations,
    cases,
    decline_of_charge,
    iso_of,
    observations_from_event,
    parse_time,
    records,
    skip_pending_steps,
)
from hub.models import WebhookEvent
from hub.records import Record

webhook_events = WebhookEvent.__table__

ENDED = ("canceled", "incomplete_expired")


def _failed_charges(connection: Connection, accounts: set[tuple[str, str]]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(connector, account) -> [(created_at, decline code)] of failed charges, oldest first."""
    wanted = sorted(a for a in accounts if a[1])
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        rows = connection.execute(select(records.c.connector, records.c.account_ref, records.c.data).where(
            records.c.kind == "charge", records.c.data["status"].as_string() == "failed",
            or_(*(and_(records.c.connector == c, records.c.account_ref == a) for c, a in chunk))))
        for connector, account, data in rows:
            data = data or {}
            found.setdefault((connector, account), []).append(
                (str(data.get("created_at") or ""), str(data.get("decline_code") or data.get("failure_code") or "")))
    for charges in found.values():
        charges.sort()
    return found


def reconcile(connection: Connection, connectors: Sequence[str], now: datetime) -> Applied:
    """Cases from the synced invoices and charges; close cases whose subscription ended."""
    failed = select(records.c.connector, records.c.external_id, records.c.data, records.c.source_updated_at).where(
        records.c.kind == "invoice", records.c.deleted.is_(False), records.c.connector.in_(list(connectors)),
        records.c.data["status"].as_string() == "open", records.c.data["attempt_count"].as_integer() >= 1)
    unsettled = (select(records.c.connector, records.c.external_id, records.c.data, records.c.source_updated_at)
                 .join(cases, and_(cases.c.connector == records.c.connector, cases.c.invoice_id == records.c.external_id))
                 .where(records.c.kind == "invoice", cases.c.status.in_(ACTIVE)))
    rows = {(r.connector, r.external_id): r for r in [*connection.execute(failed), *connection.execute(unsettled)]}
    charges = _failed_charges(connection, {(c, str((r.data or {}).get("account_id") or "")) for (c, _), r in rows.items()})
    observations = []
    for (connector, invoice_id), row in rows.items():
        data = row.data or {}
        since = str(data.get("created_at") or "")
        declines = [c for c in charges.get((connector, str(data.get("account_id") or "")), []) if c[0] >= since]
        first_failure = parse_time(declines[0][0]) if declines else None
        at = first_failure or parse_time(row.source_updated_at) or now
        if data.get("status") == "paid":
            at = parse_time(data.get("paid_at")) or at
        observations.append(Observation(connector, invoice_id, data, at,
                                        decline_code=(declines[-1][1] or None) if declines else None))
    applied = apply_observations(connection, observations, now=now)
    end_cases(connection, ended_subscriptions(connection, connectors), now=now)
    return applied


def ended_subscriptions(connection: Connection, connectors: Sequence[str]) -> list[tuple[str, str, datetime | None]]:
    """(connector, subscription, ended at) of the synced subscriptions that unsettled cases are about."""
    active = connection.execute(select(cases.c.connector, cases.c.details).where(
        cases.c.status.in_(ACTIVE), cases.c.connector.in_(list(connectors)))).all()
    wanted = sorted({(c, str(d.get("subscription_id"))) for c, d in active if d and d.get("subscription_id")})
    ended = []
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        for connector, external_id, data in connection.execute(
                select(records.c.connector, records.c.external_id, records.c.data).where(
                    records.c.kind == "subscription",
                    or_(*(and_(records.c.connector == c, records.c.external_id == s) for c, s in chunk)))):
            data = data or {}
            if data.get("status") in ENDED or data.get("ended_at"):
                ended.append((connector, external_id, parse_time(data.get("ended_at") or data.get("canceled_at"))))
    return ended


def end_cases(connection: Connection, ended: Sequence[tuple[str, str, datetime | None]], *, now: datetime) -> int:
    """Unsettled cases of ended subscriptions close at the ending: exhausted stays, open -> failed."""
    if not ended:
        return 0
    when = {(c, s): at or now for c, s, at in ended}
    rows = connection.execute(select(cases.c.id, cases.c.connector, cases.c.invoice_id, cases.c.status, cases.c.details)
                              .where(cases.c.status.in_(ACTIVE), cases.c.closed_at.is_(None),
                                     cases.c.connector.in_(sorted({c for c, _, _ in ended})))).all()
    closed = []
    for row in rows:
        key = (row.connector, str((row.details or {}).get("subscription_id")))
        if key in when:
            status = EXHAUSTED if row.status == EXHAUSTED else FAILED
            connection.execute(update(cases).where(cases.c.id == row.id).values(status=status, closed_at=when[key]))
            closed.append((row.connector, row.invoice_id))
    skip_pending_steps(connection, closed, now=now)
    return len(closed)


# --- webhook events ------------------------------------------------------------------------------

def _record_observations(connector: str, found: Sequence[Record], at: datetime) -> list[Observation]:
    return [Observation(connector, r.external_id, dict(r.fields), r.updated_at or at)
            for r in found if r.kind == "invoice" and not r.deleted]


def note_decline(connection: Connection, connector: str, account_id: str, code: str, at: datetime) -> None:
    """A failed charge: its decline code goes to the account's case it belongs to (unsettled, or
    one still without a code that was open around `at`); the newest charge wins."""
    rows = connection.execute(select(cases.c.id, cases.c.details, cases.c.status, cases.c.decline_code,
                                     cases.c.closed_at).where(
        cases.c.connector == connector, cases.c.details["account_id"].as_string() == account_id,
        or_(cases.c.status.in_(ACTIVE), cases.c.decline_code.is_(None)))).all()
    for row in rows:
        closed = parse_time(row.closed_at)
        if row.status not in ACTIVE and closed is not None and closed < at:
            continue  # settled before this charge: not its decline
        details = dict(row.details or {})
        if str(details.get("decline_at") or "") > at.isoformat():
            continue  # a later charge already told us
        details["decline_at"] = at.isoformat()
        connection.execute(update(cases).where(cases.c.id == row.id).values(decline_code=code, details=details))


def apply_event(connection: Connection, connector: str, payload: Mapping[str, Any], mapped: Sequence[Record], *,
                now: datetime) -> Applied:
    """Open/advance/close cases from one webhook event (duplicates and any order are harmless)."""
    at = datetime.fromtimestamp(int(payload.get("created") or 0), UTC)
    obj = (payload.get("data") or {}).get("object") or {}
    if obj.get("object") == "charge" and obj.get("status") == "failed" and obj.get("customer"):
        customer = obj["customer"]
        note_decline(connection, connector, customer if isinstance(customer, str) else customer.get("id"),
                     decline_of_charge(obj) or "card_declined", at)
    if obj.get("object") == "subscription" and (obj.get("status") in ENDED or obj.get("ended_at")):
        ended_at = parse_time(iso_of(obj.get("ended_at") or obj.get("canceled_at")))
        end_cases(connection, [(connector, str(obj["id"]), ended_at)], now=now)
    observations = _record_observations(connector, mapped, at) or observations_from_event(connector, payload)
    applied = apply_observations(connection, observations, now=now)
    _declines_from_stored_events(connection, connector, observations)
    return applied


def _declines_from_stored_events(connection: Connection, connector: str, observed: Sequence[Observation]) -> None:
    """`charge.failed` often arrives before the invoice's event (and deliveries are unordered): a
    case without a decline code takes it from the stored charge events of its account."""
    ids = [o.invoice_id for o in observed]
    if not ids:
        return
    missing = connection.execute(select(cases.c.details).where(
        cases.c.connector == connector, cases.c.invoice_id.in_(ids), cases.c.decline_code.is_(None))).scalars().all()
    for details in missing:
        account = str((details or {}).get("account_id") or "")
        row = connection.execute(
            select(webhook_events.c.payload).where(
                webhook_events.c.connector == connector, webhook_events.c.type == "charge.failed",
                webhook_events.c.payload["data"]["object"]["customer"].as_string() == account)
            .order_by(webhook_events.c.id.desc()).limit(1)).first()
        if row is not None:
            charge = row.payload["data"]["object"]
            at = datetime.fromtimestamp(int(charge.get("created") or 0), UTC)
            note_decline(connection, connector, account, decline_of_charge(charge) or "card_declined", at)


# --- the hub's own retries -------------------------------------------------------------------------

def apply_outcomes(connection: Connection, outcomes: Sequence[Any], *, now: datetime) -> Applied:
    """Results of dunning retries: paid -> recovered by `retry`; declined -> the decline code."""
    observations = []
    for outcome in outcomes:
        if outcome.source != SOURCE or outcome.operation != "retry_invoice":
            continue
        parts = outcome.key.split("|")
        if len(parts) < 4:
            continue
        connector, invoice_id = parts[1], parts[2]
        result = dict(outcome.result or {})
        if outcome.status == "succeeded" and result.get("status") == "paid":
            observations.append(Observation(connector, invoice_id, result, now, recovered_by="retry"))
        elif outcome.error_code:
            connection.execute(update(cases).where(cases.c.connector == connector, cases.c.invoice_id == invoice_id,
                                                   cases.c.status.in_(ACTIVE))
                               .values(decline_code=outcome.error_code))
    return apply_observations(connection, observations, now=now)
