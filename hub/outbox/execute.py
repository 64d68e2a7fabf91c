"""Executing the outbox: claim due actions, run them through connectors, record each result.

    runner = OutboxRunner(engine, connectors=hub.connector)
    report = runner.execute_pending(limit=100)

Claimed actions are grouped by (connector, operation): idempotent ones go to the connector in one
`execute_many` call (Salesforce batches them into sObject Collections), and each `OperationResult`
is mapped back to its action — ok: `succeeded` with the result; retryable: `failed`, due again
after an exponential backoff; not retryable: `dead` with the provider's own words and code (a
Stripe decline code). Webhooks and `set_status` are carried out by the hub itself.

Exactly once, step by step (a crash can happen between any two lines):

1. claim: committed `running` with a lease. A crash from here until step 3 leaves the row running;
   when the lease expires `reap_expired` makes it `failed` and due, and the next attempt repeats
   the call with the same idempotency key.
2. idempotent providers: the call carries the key (Stripe `Idempotency-Key`, Zendesk ticket
   `external_id`, Salesforce upsert on the key field, webhook `Idempotency-Key` header), so a repeat
   after a crash between the provider's answer and our commit is recognised by the provider and
   does not act twice.
3. record: the result, and for email the `sent_messages` row, are written in ONE transaction, and
   only while the lease is still ours (`fence`).

Email (SMTP has no idempotency) is `at_most_once`, in chunks of `policy.at_most_once_chunk`:
  a. `sent_messages` already has a row for the action -> it was sent: succeeded, nothing sent;
  b. commit `sending` (the marker) for the chunk before handing anything to the server;
  c. send the chunk over one connection (`execute_many`);
  d. commit each result, and `sent_messages` for the delivered, in one transaction.
A crash between b and d leaves `sending`; when the lease expires those actions become `dead`
with "delivery uncertain" instead of being sent again. So the outbox itself never sends a
message twice: the only window where the server may have accepted a message without our record
is b..d, and from that window nothing is retried automatically; a person checks the mailbox and
runs `churnhub actions retry ID`. The price: a crash in that window (short, one chunk) costs that
check, also for messages of the chunk that had not been sent yet. During c, only errors that
mean "not handed over" are retried (`NOT_DELIVERED`: the connector's retryable results and
Transient/RateLimited/Auth/Quota errors); any other exception is "delivery uncertain" too.
SMTP's own residual window — a connection lost after the server accepted DATA but before its
reply arrived — is reported by the smtp connector as a retryable `connection` failure; a retry
then carries the same Message-ID, which lets receiving systems and the sent log recognise it.

Before sending, a non-transactional email to an address in `suppressions` is `skipped`; a result
with code `hard_bounce` adds the address to `suppressions`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Engine, bindparam, select, update

from hub.config import read_environment
from hub.connector import Connector
from hub.models import Customer, SentMessage, Suppression, utcnow
from hub.outbox.plan import HubLike
from hub.outbox.results import attempt_at_most_once, attempt_from_error, attempt_from_result, message_id_of
from hub.outbox.state import (
    ActionOutcome,
    Attempt,
    ClaimedAction,
    OutboxPolicy,
    _insert,
    claim,
    fence,
    mark_sending,
    reap_expired,
    renew,
    write_outcomes,
)
from hub.outbox.webhook import post_webhook

log = logging.getLogger(__name__)
customers = Customer.__table__
sent_messages = SentMessage.__table__
suppressions = Suppression.__table__

Checkpoint = Callable[[str, Sequence[ClaimedAction]], None]


def default_worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


def _no_checkpoint(step: str, actions: Sequence[ClaimedAction]) -> None:
    """Tests replace this to crash the runner at a named step (claimed, before_call, after_call)."""


@dataclass
class ExecutionReport:
    claimed: int = 0
    outcomes: list[ActionOutcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for outcome in self.outcomes:
            totals[outcome.status] = totals.get(outcome.status, 0) + 1
        return totals


@dataclass
class OutboxRunner:
    """Executes due outbox actions for one worker. `connectors(name)` builds a configured connector."""

    engine: Engine
    connectors: Callable[[str], Connector]
    worker: str = field(default_factory=default_worker_id)
    policy: OutboxPolicy = field(default_factory=OutboxPolicy)
    clock: Callable[[], datetime] = utcnow
    on_finished: Callable[[ActionOutcome], None] | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    http_transport: httpx.BaseTransport | None = None
    checkpoint: Checkpoint = _no_checkpoint

    def drain(self, *, batch: int = 100, max_batches: int | None = None) -> ExecutionReport:
        """Execute batches until nothing is due (or `max_batches`)."""
        total = ExecutionReport()
        rounds = 0
        while max_batches is None or rounds < max_batches:
            report = self.execute_pending(limit=batch)
            total.claimed += report.claimed
            total.outcomes.extend(report.outcomes)
            rounds += 1
            if report.claimed == 0:
                break
        return total

    def execute_pending(self, *, limit: int = 100) -> ExecutionReport:
        """Release expired leases, claim up to `limit` due actions and execute them."""
        now = self.clock()
        report = ExecutionReport()
        with self.engine.begin() as connection:
            report.outcomes.extend(reap_expired(connection, now=now, policy=self.policy))
        self._notify(report.outcomes)
        owner = f"{self.worker}:{secrets.token_hex(4)}"
        with self.engine.begin() as connection:
            claimed = claim(connection, owner=owner, now=now, policy=self.policy, limit=limit)
        report.claimed = len(claimed)
        self.checkpoint("claimed", claimed)
        if not claimed:
            return report
        opened: dict[str, Connector] = {}
        http: httpx.Client | None = None
        try:
            runnable = self._skip_suppressed(claimed, report)
            def group_key(a: ClaimedAction) -> tuple[str, str]:
                return (a.connector or "", a.operation or "")

            for (name, operation), group in groupby(sorted(runnable, key=group_key), key=group_key):
                actions = self._still_ours(list(group))
                if not actions:
                    continue
                if not name:
                    if operation == "post_webhook":
                        http = http or httpx.Client(timeout=15, transport=self.http_transport)
                        report.outcomes.extend(self._run_webhooks(http, actions))
                    else:
                        report.outcomes.extend(self._run_hub_operation(operation, actions))
                    continue
                report.outcomes.extend(self._run_connector_group(name, operation, actions, opened))
        finally:
            for connector in opened.values():
                connector.close()
            if http is not None:
                http.close()
        return report

    # -- steps ---------------------------------------------------------------------------------

    def _still_ours(self, actions: list[ClaimedAction]) -> list[ClaimedAction]:
        """Renew the lease before a group (long batches must not expire under us)."""
        with self.engine.begin() as connection:
            held = renew(connection, [a.id for a in actions], owner=actions[0].owner, now=self.clock(),
                         policy=self.policy)
        return [a for a in actions if a.id in held]

    def _skip_suppressed(self, claimed: list[ClaimedAction], report: ExecutionReport) -> list[ClaimedAction]:
        candidates = [a for a in claimed if a.recipient and not a.transactional]
        if not candidates:
            return claimed
        addresses = sorted({a.recipient for a in candidates if a.recipient} |
                           {a.recipient.lower() for a in candidates if a.recipient})
        with self.engine.connect() as connection:
            rows = connection.execute(select(suppressions.c.email, suppressions.c.reason)
                                      .where(suppressions.c.email.in_(bindparam("emails", expanding=True))),
                                      {"emails": addresses}).all()
        reasons = {email.lower(): reason for email, reason in rows}
        skipped = [(a, Attempt(ok=False, skipped=True, code="suppressed",
                               error=f"suppressed: {a.recipient} is on the suppression list ({reasons[a.recipient.lower()]})"))
                   for a in candidates if a.recipient and a.recipient.lower() in reasons]
        if skipped:
            report.outcomes.extend(self._record(skipped))
        done = {a.id for a, _ in skipped}
        return [a for a in claimed if a.id not in done]

    def _run_connector_group(self, name: str, operation: str, actions: list[ClaimedAction],
                             opened: dict[str, Connector]) -> list[ActionOutcome]:
        try:
            connector = opened.get(name) or opened.setdefault(name, self.connectors(name))
        except Exception as exc:  # e.g. the connector was removed from the config: retried, then dead
            failure = Attempt(ok=False, retryable=True, error=f"cannot build connector {name!r}: {exc}", code="config")
            return self._record([(a, failure) for a in actions])
        spec = connector.operations.get(operation)
        if spec is None:
            refusal = Attempt(ok=False, error=f"connector {name!r} has no operation {operation!r}", code="config")
            return self._record([(a, refusal) for a in actions])
        valid: list[tuple[ClaimedAction, BaseModel]] = []
        invalid: list[tuple[ClaimedAction, Attempt]] = []
        for action in actions:
            try:
                valid.append((action, spec.params.model_validate(dict(action.params))))
            except ValidationError as exc:
                invalid.append((action, Attempt(ok=False, error=f"invalid {operation} parameters: {exc}", code="invalid")))
        outcomes = self._record(invalid) if invalid else []
        batch = [(a, p) for a, p in valid if not a.at_most_once]
        if batch:
            outcomes.extend(self._run_batch(connector, operation, batch))
        single = [(a, p) for a, p in valid if a.at_most_once]
        if single:
            outcomes.extend(self._run_at_most_once(connector, operation, single))
        return outcomes

    def _run_batch(self, connector: Connector, operation: str,
                   batch: list[tuple[ClaimedAction, BaseModel]]) -> list[ActionOutcome]:
        actions = [a for a, _ in batch]
        self.checkpoint("before_call", actions)
        try:
            results = list(connector.execute_many(operation, [(params, a.key) for a, params in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"execute_many returned {len(results)} results for {len(batch)} actions")
            attempts = [attempt_from_result(r) for r in results]
        except Exception as exc:
            # One item's error must not decide the others': run them one by one (safe to repeat,
            # these operations are idempotent by key).
            attempts = [attempt_from_error(exc)] if len(batch) == 1 else [
                self._execute_one(connector, operation, params, action.key) for action, params in batch]
        self.checkpoint("after_call", actions)
        return self._record(list(zip(actions, attempts, strict=True)))

    @staticmethod
    def _execute_one(connector: Connector, operation: str, params: BaseModel, key: str) -> Attempt:
        try:
            return attempt_from_result(connector.execute(operation, params, idempotency_key=key))
        except Exception as exc:
            return attempt_from_error(exc)

    def _run_at_most_once(self, connector: Connector, operation: str,
                          items: list[tuple[ClaimedAction, BaseModel]]) -> list[ActionOutcome]:
        with self.engine.connect() as connection:
            already = dict(connection.execute(
                select(sent_messages.c.action_id, sent_messages.c.message_id)
                .where(sent_messages.c.action_id.in_(bindparam("ids", expanding=True))),
                {"ids": [a.id for a, _ in items]}).all())
        outcomes = self._record([(a, Attempt(ok=True, result={"message_id": already[a.id], "already_sent": True}))
                                 for a, _ in items if a.id in already])
        todo = [(a, p) for a, p in items if a.id not in already]
        size = max(1, self.policy.at_most_once_chunk)
        for start in range(0, len(todo), size):
            outcomes.extend(self._send_chunk(connector, operation, todo[start:start + size]))
        return outcomes

    def _send_chunk(self, connector: Connector, operation: str,
                    chunk: list[tuple[ClaimedAction, BaseModel]]) -> list[ActionOutcome]:
        """Commit the `sending` marker, hand the chunk over (one connection), record the answers."""
        with self.engine.begin() as connection:
            marked = mark_sending(connection, [a.id for a, _ in chunk], owner=chunk[0][0].owner, now=self.clock())
        chunk = [(a, p) for a, p in chunk if a.id in marked]   # a lost lease: whoever holds it decides
        if not chunk:
            return []
        actions = [a for a, _ in chunk]
        self.checkpoint("before_call", actions)
        try:
            results = list(connector.execute_many(operation, [(params, a.key) for a, params in chunk]))
            if len(results) != len(chunk):
                raise RuntimeError(f"execute_many returned {len(results)} results for {len(chunk)} actions")
            attempts = [attempt_from_result(r) for r in results]
        except Exception as exc:
            attempts = [attempt_at_most_once(exc)] * len(chunk)
        self.checkpoint("after_call", actions)
        return self._record(list(zip(actions, attempts, strict=True)))

    def _run_webhooks(self, http: httpx.Client, actions: list[ClaimedAction]) -> list[ActionOutcome]:
        self.checkpoint("before_call", actions)
        pairs = []
        for action in actions:
            try:
                result = post_webhook(http, action.params, key=action.key, environ=self.environ,
                                      now=self.clock().timestamp())
                pairs.append((action, attempt_from_result(result)))
            except Exception as exc:
                pairs.append((action, attempt_from_error(exc)))
        self.checkpoint("after_call", actions)
        return self._record(pairs)

    def _run_hub_operation(self, operation: str, actions: list[ClaimedAction]) -> list[ActionOutcome]:
        if operation == "set_status":
            self.checkpoint("before_call", actions)
            return self._record([(a, Attempt(ok=True)) for a in actions], extra=self._set_status)
        refusal = Attempt(ok=False, error=f"the hub has no operation {operation!r}", code="config")
        return self._record([(a, refusal) for a in actions])

    def _set_status(self, connection: Connection, pairs: list[tuple[ClaimedAction, Attempt]],
                    now: datetime) -> list[tuple[ClaimedAction, Attempt]]:
        """Set `customers.status` in the transaction that records the actions (exactly once, trivially)."""
        wanted = {a.id: (str(a.params.get("customer_id") or a.customer_id), str(a.params["status"])) for a, _ in pairs}
        previous = dict(connection.execute(
            select(customers.c.id, customers.c.status)
            .where(customers.c.id.in_(bindparam("ids", expanding=True))),
            {"ids": sorted({cid for cid, _ in wanted.values()})}).all())
        rows = [{"b_id": cid, "b_status": status} for cid, status in wanted.values() if cid in previous]
        if rows:
            connection.execute(update(customers).where(customers.c.id == bindparam("b_id"))
                               .values(status=bindparam("b_status"), updated_at=now), rows)
        result = []
        for action, _ in pairs:
            cid, status = wanted[action.id]
            if cid in previous:
                result.append((action, Attempt(ok=True, result={"status": status, "previous": previous[cid]})))
            else:
                result.append((action, Attempt(ok=False, error=f"customer {cid!r} no longer exists", code="not_found")))
        return result

    # -- recording -----------------------------------------------------------------------------

    def _record(self, pairs: list[tuple[ClaimedAction, Attempt]],
                extra: Callable[[Connection, list[tuple[ClaimedAction, Attempt]], datetime],
                                list[tuple[ClaimedAction, Attempt]]] | None = None) -> list[ActionOutcome]:
        """Write attempts (plus their side rows) in one transaction, for the actions still ours."""
        if not pairs:
            return []
        now = self.clock()
        with self.engine.begin() as connection:
            held = fence(connection, [a.id for a, _ in pairs], owner=pairs[0][0].owner, now=now)
            lost = [a.id for a, _ in pairs if a.id not in held]
            if lost:
                log.warning("lease lost before recording actions %s; their result is dropped", lost)
            pairs = [(a, t) for a, t in pairs if a.id in held]
            if extra and pairs:
                pairs = extra(connection, pairs, now)
            self._write_email_rows(connection, pairs, now)
            outcomes = write_outcomes(connection, pairs, now=now, policy=self.policy)
        self._notify(outcomes)
        return outcomes

    def _write_email_rows(self, connection: Connection, pairs: list[tuple[ClaimedAction, Attempt]],
                          now: datetime) -> None:
        sent = [{"message_id": message_id_of(a, t), "action_id": a.id, "recipient": a.recipient,
                 "template": str(a.params.get("template") or a.action_type)[:100], "sent_at": now}
                for a, t in pairs if a.recipient and t.ok and not (t.result or {}).get("already_sent")]
        if sent:
            connection.execute(_insert(connection)(sent_messages).on_conflict_do_nothing(
                index_elements=["message_id"]), sent)
        bounced = {a.recipient.lower(): t.error for a, t in pairs if a.recipient and t.code == "hard_bounce"}
        if bounced:
            connection.execute(_insert(connection)(suppressions).on_conflict_do_nothing(index_elements=["email"]),
                               [{"email": email, "reason": "hard_bounce", "detail": detail, "created_at": now}
                                for email, detail in bounced.items()])

    def _notify(self, outcomes: Sequence[ActionOutcome]) -> None:
        if self.on_finished is None:
            return
        for outcome in outcomes:
            if not outcome.final:
                continue
            try:
                self.on_finished(outcome)
            except Exception:  # a plugin's bug must not stop the outbox
                log.exception("action_finished hook failed for action %s", outcome.id)


def runner_for(hub: HubLike, **options: Any) -> OutboxRunner:
    """An OutboxRunner over the hub's database and connectors that calls the `action_finished` hook."""
    return OutboxRunner(engine=hub.engine, connectors=hub.connector,
                        on_finished=lambda outcome: hub.hook.action_finished(action=outcome),
                        environ=read_environment(hub.settings.path), **options)
