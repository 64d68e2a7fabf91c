"""The outbox's state machine, as set-based SQL on the `actions` table.

    pending ──claim──> running ──────────────> succeeded | dead | skipped   (final)
       ^                  │  └─(at-most-once)─> sending ──> succeeded | failed | dead
       │                  └──> failed ──(due at next_attempt_at)──> running ...
       └──── `retry` (a person) <── failed | dead

- `enqueue` inserts intents with INSERT ... ON CONFLICT (idempotency_key) DO NOTHING: the same
  intent twice is one row.
- `claim` moves due rows to `running` under a lease (owner + expiry) and counts the attempt. On
  PostgreSQL the candidates are locked with FOR UPDATE SKIP LOCKED, so concurrent workers take
  disjoint rows without waiting; on SQLite the single conditional UPDATE (WHERE status in
  pending/failed ... RETURNING) runs under the database's write lock, with the same effect.
- `reap_expired` handles leases nobody renewed (a killed worker): `running` becomes `failed`
  (due now, or `dead` once attempts are spent); `sending` becomes `dead` because the provider
  may have accepted the call (see hub/outbox/execute.py for that protocol).
- Results are written only while the lease is still ours (`fence`): a worker that lost its lease
  to `reap_expired` cannot overwrite what a newer attempt recorded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, desc, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.models import Action

actions = Action.__table__

PENDING, RUNNING, SENDING = "pending", "running", "sending"
SUCCEEDED, FAILED, DEAD, SKIPPED = "succeeded", "failed", "dead", "skipped"
STATUSES = (PENDING, RUNNING, SENDING, SUCCEEDED, FAILED, DEAD, SKIPPED)
FINAL = frozenset({SUCCEEDED, DEAD, SKIPPED})

UNCERTAIN = ("delivery uncertain: the worker stopped after handing this to the provider and before "
             "recording the answer, and the provider has no idempotency; check whether it arrived, "
             "and `churnhub actions retry ID` to send it again only if it did not")
LEASE_LOST = "the worker's lease expired before it recorded a result (stopped, or slower than the lease)"
CHUNK = 500


@dataclass(frozen=True)
class OutboxPolicy:
    """Retries, backoff and leases. Backoff doubles from `backoff` up to `backoff_cap`.

    The lease must outlast one group's calls (the runner renews it before each group); a worker
    that overruns it loses the action to `reap_expired` and its late result is dropped.
    """

    max_attempts: int = 5
    backoff: timedelta = timedelta(minutes=1)
    backoff_cap: timedelta = timedelta(hours=6)
    lease: timedelta = timedelta(minutes=5)
    # At-most-once actions (email) are marked and sent in chunks of this size: one SMTP connection
    # per chunk, and a crash mid-chunk leaves at most this many for a person to check.
    at_most_once_chunk: int = 20

    def delay(self, attempts: int, retry_after: float | None = None) -> timedelta:
        """The wait before attempt `attempts + 1` (at least what the provider asked for)."""
        exponential = self.backoff * (2 ** max(attempts - 1, 0))
        wait = min(exponential, self.backoff_cap)
        if retry_after:
            wait = max(wait, timedelta(seconds=retry_after))
        return wait


@dataclass(frozen=True)
class Intent:
    """One action to put in the outbox. `key` is deterministic: the same intent, the same key."""

    key: str
    source: str
    action_type: str
    customer_id: str | None = None
    connector: str | None = None
    operation: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    recipient: str | None = None
    transactional: bool = False
    at_most_once: bool = False
    status: str = PENDING               # or SKIPPED, with the reason in `error`
    error: str | None = None
    summary: str = ""                   # one line for plans and listings (not stored)


@dataclass(frozen=True)
class ClaimedAction:
    """A row this worker holds a lease on."""

    id: int
    key: str
    source: str
    customer_id: str | None
    action_type: str
    connector: str | None
    operation: str | None
    params: Mapping[str, Any]
    attempts: int
    recipient: str | None
    transactional: bool
    at_most_once: bool
    owner: str


@dataclass(frozen=True)
class ActionOutcome:
    """Where an action ended up after an attempt (the `action_finished` hook receives final ones)."""

    id: int
    key: str
    source: str
    customer_id: str | None
    action_type: str
    connector: str | None
    operation: str | None
    status: str
    attempts: int
    result: Mapping[str, Any] | None = None
    error: str | None = None
    error_code: str | None = None
    next_attempt_at: datetime | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL


@dataclass(frozen=True)
class Attempt:
    """What one attempt produced, before it is written."""

    ok: bool
    retryable: bool = False
    result: Mapping[str, Any] | None = None
    error: str | None = None
    code: str | None = None
    retry_after: float | None = None
    skipped: bool = False


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def action_key(*parts: object) -> str:
    """A deterministic idempotency key from its parts, safe for HTTP headers and provider limits.

    >>> action_key("playbook:win-back", "v3", "cus_1", "2026-01-30", 0)
    'playbook:win-back|v3|cus_1|2026-01-30|0'

    Long or non-ASCII keys keep a readable prefix and end with a hash of the whole.
    """
    text = "|".join(str(p) for p in parts)
    if len(text) <= 200 and text.isascii() and text.isprintable():
        return text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]
    prefix = "".join(c for c in text[:120] if c.isascii() and c.isprintable())
    return f"{prefix}#{digest}"


def _insert(connection: Connection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def enqueue(connection: Connection, intents: Iterable[Intent], *, now: datetime) -> list[int]:
    """Insert intents; ones whose key is already in the outbox are left alone. Returns new row ids."""
    rows: dict[str, dict[str, Any]] = {}
    for intent in intents:
        if intent.status not in (PENDING, SKIPPED):
            raise ValueError(f"an intent enters the outbox pending or skipped, not {intent.status!r}")
        rows.setdefault(intent.key, {
            "idempotency_key": intent.key, "source": intent.source, "customer_id": intent.customer_id,
            "action_type": intent.action_type, "connector": intent.connector, "operation": intent.operation,
            "params": dict(intent.params), "status": intent.status, "attempts": 0, "next_attempt_at": now,
            "error": intent.error, "recipient": intent.recipient, "transactional": intent.transactional,
            "at_most_once": intent.at_most_once, "created_at": now, "updated_at": now,
            "finished_at": now if intent.status == SKIPPED else None,
        })
    values = list(rows.values())
    inserted: list[int] = []
    for start in range(0, len(values), CHUNK):
        statement = (_insert(connection)(actions).values(values[start:start + CHUNK])
                     .on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(actions.c.id))
        inserted.extend(connection.execute(statement).scalars())
    return sorted(inserted)


def _claimed(row: Any, owner: str) -> ClaimedAction:
    return ClaimedAction(row.id, row.idempotency_key, row.source, row.customer_id, row.action_type, row.connector,
                         row.operation, row.params or {}, row.attempts, row.recipient, bool(row.transactional),
                         bool(row.at_most_once), owner)


def claim(connection: Connection, *, owner: str, now: datetime, policy: OutboxPolicy,
          limit: int) -> list[ClaimedAction]:
    """Take up to `limit` due actions for `owner` (attempts + 1, lease until now + policy.lease)."""
    due = actions.c.status.in_((PENDING, FAILED)) & (actions.c.next_attempt_at <= now)
    candidates = select(actions.c.id).where(due).order_by(actions.c.next_attempt_at, actions.c.id).limit(limit)
    claimed = update(actions).values(status=RUNNING, lease_owner=owner, lease_expires_at=now + policy.lease,
                                     attempts=actions.c.attempts + 1, updated_at=now).returning(*actions.c)
    if connection.dialect.name == "postgresql":
        # A MATERIALIZED CTE runs the locking SELECT exactly once; as an `IN (subquery)` PostgreSQL
        # may re-run it per row, and with SKIP LOCKED each run can pick other rows (more than `limit`).
        locked = candidates.with_for_update(skip_locked=True).cte("candidates").prefix_with("MATERIALIZED")
        statement = claimed.where(actions.c.id == locked.c.id, due)
    else:
        statement = claimed.where(actions.c.id.in_(candidates.scalar_subquery()), due)
    rows = connection.execute(statement).all()
    return sorted((_claimed(row, owner) for row in rows), key=lambda a: a.id)


def renew(connection: Connection, ids: Sequence[int], *, owner: str, now: datetime, policy: OutboxPolicy) -> set[int]:
    """Extend our lease on `ids`; returns the ids still ours."""
    if not ids:
        return set()
    statement = (update(actions)
                 .where(actions.c.id.in_(bindparam("ids", expanding=True)), actions.c.lease_owner == owner,
                        actions.c.status.in_((RUNNING, SENDING)))
                 .values(lease_expires_at=now + policy.lease, updated_at=now).returning(actions.c.id))
    return set(connection.execute(statement, {"ids": list(ids)}).scalars())


def renew_worker(connection: Connection, worker: str, *, now: datetime, policy: OutboxPolicy) -> int:
    """A live worker's heartbeat: extend every lease it holds (owners are `<worker>:<batch token>`).

    A killed worker stops renewing, so its actions are reaped one lease after its last heartbeat.
    """
    statement = (update(actions)
                 .where(actions.c.lease_owner.startswith(f"{worker}:", autoescape=True),
                        actions.c.status.in_((RUNNING, SENDING)))
                 .values(lease_expires_at=now + policy.lease))
    return connection.execute(statement).rowcount or 0


def fence(connection: Connection, ids: Sequence[int], *, owner: str, now: datetime) -> set[int]:
    """The ids among `ids` we still hold; on PostgreSQL they stay locked until the commit."""
    if not ids:
        return set()
    statement = (update(actions)
                 .where(actions.c.id.in_(bindparam("ids", expanding=True)), actions.c.lease_owner == owner,
                        actions.c.status.in_((RUNNING, SENDING)))
                 .values(updated_at=now).returning(actions.c.id))
    return set(connection.execute(statement, {"ids": list(ids)}).scalars())


def mark_sending(connection: Connection, ids: Sequence[int], *, owner: str, now: datetime) -> set[int]:
    """Record that calls without provider idempotency are about to be made (committed before them).

    Returns the ids still ours; only those may be handed to the provider.
    """
    if not ids:
        return set()
    statement = (update(actions)
                 .where(actions.c.id.in_(bindparam("ids", expanding=True)), actions.c.lease_owner == owner,
                        actions.c.status == RUNNING)
                 .values(status=SENDING, updated_at=now).returning(actions.c.id))
    return set(connection.execute(statement, {"ids": list(ids)}).scalars())


def outcome_values(action: ClaimedAction, attempt: Attempt, *, now: datetime,
                   policy: OutboxPolicy) -> dict[str, Any]:
    """The row's new columns after `attempt` (the state machine's transitions in one place)."""
    values: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "updated_at": now,
                              "result": dict(attempt.result) if attempt.result is not None else None,
                              "error": attempt.error, "error_code": attempt.code,
                              "next_attempt_at": None, "finished_at": now}
    if attempt.skipped:
        values["status"] = SKIPPED
    elif attempt.ok:
        values.update(status=SUCCEEDED, error=None, error_code=None)
    elif attempt.retryable and action.attempts < policy.max_attempts:
        values.update(status=FAILED, finished_at=None,
                      next_attempt_at=now + policy.delay(action.attempts, attempt.retry_after))
    else:
        values["status"] = DEAD
        if attempt.retryable:
            values["error"] = f"{attempt.error} (gave up after {action.attempts} attempts)"
    return values


def write_outcomes(connection: Connection, pairs: Sequence[tuple[ClaimedAction, Attempt]], *,
                   now: datetime, policy: OutboxPolicy) -> list[ActionOutcome]:
    """Write the attempts of actions already `fence`d (one executemany UPDATE)."""
    if not pairs:
        return []
    rows, outcomes = [], []
    for action, attempt in pairs:
        values = outcome_values(action, attempt, now=now, policy=policy)
        if values["next_attempt_at"] is None:
            values["next_attempt_at"] = now
        rows.append({"b_id": action.id, "b_owner": action.owner, **{f"b_{k}": v for k, v in values.items()}})
        outcomes.append(ActionOutcome(
            action.id, action.key, action.source, action.customer_id, action.action_type, action.connector,
            action.operation, values["status"], action.attempts, values["result"], values["error"],
            values["error_code"], values["next_attempt_at"] if values["status"] == FAILED else None))
    columns = ("status", "lease_owner", "lease_expires_at", "updated_at", "result", "error", "error_code",
               "next_attempt_at", "finished_at")
    statement = (update(actions)
                 .where(actions.c.id == bindparam("b_id"), actions.c.lease_owner == bindparam("b_owner"))
                 .values({name: bindparam(f"b_{name}") for name in columns}))
    connection.execute(statement, rows)
    return outcomes


def _outcome_from_row(row: Any) -> ActionOutcome:
    return ActionOutcome(row.id, row.idempotency_key, row.source, row.customer_id, row.action_type, row.connector,
                         row.operation, row.status, row.attempts, row.result, row.error, row.error_code,
                         aware(row.next_attempt_at) if row.status == FAILED else None)


def reap_expired(connection: Connection, *, now: datetime, policy: OutboxPolicy) -> list[ActionOutcome]:
    """Release leases that ran out: `sending` -> dead (uncertain), `running` -> failed or dead."""
    expired = actions.c.status.in_((RUNNING, SENDING)) & (actions.c.lease_expires_at < now)
    released = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    uncertain = connection.execute(
        update(actions).where(expired, actions.c.status == SENDING)
        .values(status=DEAD, error=UNCERTAIN, error_code="uncertain", finished_at=now, **released)
        .returning(*actions.c)).all()
    spent = connection.execute(
        update(actions).where(expired, actions.c.status == RUNNING, actions.c.attempts >= policy.max_attempts)
        .values(status=DEAD, error=f"{LEASE_LOST}; gave up after {policy.max_attempts} attempts",
                error_code="lease_expired", finished_at=now, **released)
        .returning(*actions.c)).all()
    retried = connection.execute(
        update(actions).where(expired, actions.c.status == RUNNING)
        .values(status=FAILED, error=LEASE_LOST, error_code="lease_expired", next_attempt_at=now, **released)
        .returning(*actions.c)).all()
    return [_outcome_from_row(row) for row in [*uncertain, *spent, *retried]]


class OutboxError(ValueError):
    """A request about the outbox that cannot be honoured (unknown id, wrong status)."""


def retry(connection: Connection, action_id: int, *, now: datetime) -> dict[str, Any]:
    """Move a failed or dead action back to pending with a fresh attempt budget."""
    row = connection.execute(
        update(actions).where(actions.c.id == action_id, actions.c.status.in_((FAILED, DEAD)))
        .values(status=PENDING, attempts=0, next_attempt_at=now, lease_owner=None, lease_expires_at=None,
                finished_at=None, updated_at=now)
        .returning(*actions.c)).first()
    if row is None:
        status = connection.execute(select(actions.c.status).where(actions.c.id == action_id)).scalar()
        if status is None:
            raise OutboxError(f"no action with id {action_id}")
        raise OutboxError(f"action {action_id} is {status}; only failed or dead actions can be retried")
    return action_row(row)


def action_row(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    for name in ("next_attempt_at", "lease_expires_at", "created_at", "updated_at", "finished_at"):
        data[name] = aware(data.get(name))
    data["key"] = data.pop("idempotency_key")
    return data


def list_actions(connection: Connection, *, status: str | None = None, limit: int = 100,
                 customer_id: str | None = None) -> list[dict[str, Any]]:
    """Actions newest first, optionally of one status or one customer."""
    query = select(actions).order_by(desc(actions.c.id)).limit(limit)
    if status:
        query = query.where(actions.c.status == status)
    if customer_id:
        query = query.where(actions.c.customer_id == customer_id)
    return [action_row(row) for row in connection.execute(query)]


def count_by_status(connection: Connection) -> dict[str, int]:
    rows = connection.execute(select(actions.c.status, func.count()).group_by(actions.c.status)).all()
    return {status: count for status, count in rows}
