"""The outbox state machine on SQLite and PostgreSQL, with scripted in-process providers.

`IdempotentProvider` behaves like Stripe: it counts every call per idempotency key, acts once per
key and replays the first answer. `MailServer` behaves like SMTP: every call delivers. Failures
are injected inside the provider (an exception or a refusal) and as crashes of the runner itself
at named steps (`checkpoint`): a crash leaves the database exactly as the last commit left it,
like a killed process. Real connectors against their sandboxes: tests/test_outbox_sandboxes.py.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, insert, select

from hub import CheckResult, Connector, Operation, OperationResult, PermanentError, TransientError
from hub.models import Action, Customer, SentMessage, Suppression
from hub.outbox import (
    DEAD,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    ActionOutcome,
    Intent,
    OutboxError,
    OutboxPolicy,
    OutboxRunner,
    action_key,
    claim,
    enqueue,
    list_actions,
    reap_expired,
    retry,
)
from hub.outbox.state import fence

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = OutboxPolicy(max_attempts=3, backoff=timedelta(minutes=1), lease=timedelta(minutes=5))


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


class Mail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str
    template: str


class IdempotentProvider(Connector):
    """Acts once per idempotency key and replays its final answer, like Stripe; scriptable failures."""

    operations = {"make": Operation("make", Thing)}

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.effects: dict[str, str] = {}
        self.answers: dict[str, OperationResult] = {}
        self.batches: list[int] = []
        self.script: dict[str, list[OperationResult | Exception]] = {}

    def check(self) -> CheckResult:
        return CheckResult(True, "ok")

    def read(self, stream: str, state: Any) -> Any:
        raise NotImplementedError

    def execute_many(self, operation: str, items: Sequence[tuple[BaseModel, str]]) -> list[OperationResult]:
        self.batches.append(len(items))
        return [self.execute(operation, params, idempotency_key=key) for params, key in items]

    def execute(self, operation: str, params: BaseModel, *, idempotency_key: str) -> OperationResult:
        self.calls[idempotency_key] += 1
        if idempotency_key in self.answers:             # a final answer is replayed, like Stripe does
            return self.answers[idempotency_key]
        scripted = self.script.get(idempotency_key)
        if scripted:
            step = scripted.pop(0)
            if isinstance(step, Exception):
                raise step
            if not step.retryable:
                self.answers[idempotency_key] = step
            return step
        self.effects[idempotency_key] = f"obj_{len(self.effects) + 1}"
        answer = OperationResult(ok=True, external_id=self.effects[idempotency_key], data={"name": params.name})
        self.answers[idempotency_key] = answer
        return answer


class MailServer(Connector):
    """Delivers on every call (SMTP has no idempotency)."""

    operations = {"send": Operation("send", Mail)}

    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.bounce: set[str] = set()
        self.batches: list[int] = []

    def execute_many(self, operation: str, items: Sequence[tuple[BaseModel, str]]) -> list[OperationResult]:
        self.batches.append(len(items))   # one SMTP connection per batch
        return super().execute_many(operation, items)

    def check(self) -> CheckResult:
        return CheckResult(True, "ok")

    def read(self, stream: str, state: Any) -> Any:
        raise NotImplementedError

    def execute(self, operation: str, params: BaseModel, *, idempotency_key: str) -> OperationResult:
        assert isinstance(params, Mail)
        if params.to in self.bounce:
            return OperationResult(ok=False, code="hard_bounce", error="550 5.1.1 no such user")
        self.delivered.append(idempotency_key)
        return OperationResult(ok=True, external_id=f"<{idempotency_key}@test>", data={"message_id": f"<{idempotency_key}@test>"})


class Crash(BaseException):
    """A simulated SIGKILL: nothing after it runs, nothing uncommitted survives."""


def crash_at(step: str, times: int = 1) -> Any:
    remaining = [times]

    def checkpoint(name: str, actions: Sequence[Any]) -> None:
        if name == step and remaining[0] > 0:
            remaining[0] -= 1
            raise Crash(step)

    return checkpoint


def make_intents(n: int, *, connector: str = "api", operation: str = "make") -> list[Intent]:
    return [Intent(action_key("test", i), "playbook:test", "thing", f"c{i}", connector, operation, {"name": f"n{i}"})
            for i in range(n)]


def mail_intent(i: int, to: str, *, transactional: bool = False) -> Intent:
    return Intent(action_key("mail", i), "playbook:test", "send_email", None, "mail", "send",
                  {"to": to, "template": "checkin"}, recipient=to, transactional=transactional, at_most_once=True)


def put(engine: Engine, intents: list[Intent], now: datetime = T0) -> list[int]:
    with engine.begin() as connection:
        return enqueue(connection, intents, now=now)


def rows(engine: Engine) -> dict[int, Any]:
    with engine.connect() as connection:
        return {row.id: row for row in connection.execute(select(Action.__table__))}


def runner(engine: Engine, clock: Clock, connectors: dict[str, Connector], **options: Any) -> OutboxRunner:
    return OutboxRunner(engine, connectors=connectors.__getitem__, clock=clock, policy=POLICY, **options)


def test_enqueue_twice_is_one_row(engine: Engine) -> None:
    intents = make_intents(3)
    assert len(put(engine, intents)) == 3
    assert put(engine, intents) == []
    assert put(engine, intents + make_intents(4)[3:]) != []
    assert len(rows(engine)) == 4
    assert {r.status for r in rows(engine).values()} == {PENDING}


def test_success_records_result_and_notifies_once(engine: Engine) -> None:
    put(engine, make_intents(3))
    provider, clock, finished = IdempotentProvider(), Clock(), []
    report = runner(engine, clock, {"api": provider}, on_finished=finished.append).execute_pending()
    assert report.claimed == 3 and report.counts() == {SUCCEEDED: 3}
    assert provider.batches == [3]                  # one execute_many for the (connector, operation) group
    stored = rows(engine)
    assert all(r.status == SUCCEEDED and r.attempts == 1 and r.lease_owner is None for r in stored.values())
    assert sorted(r.result["external_id"] for r in stored.values()) == ["obj_1", "obj_2", "obj_3"]
    assert sorted(o.id for o in finished) == sorted(stored) and all(isinstance(o, ActionOutcome) for o in finished)
    assert runner(engine, clock, {"api": provider}).execute_pending().claimed == 0


def test_retry_with_exponential_backoff_then_dead(engine: Engine) -> None:
    [action_id] = put(engine, make_intents(1))
    provider, clock = IdempotentProvider(), Clock()
    key = action_key("test", 0)
    provider.script[key] = [OperationResult(ok=False, retryable=True, error="503 upstream busy")] * 3
    run = runner(engine, clock, {"api": provider})
    run.execute_pending()
    row = rows(engine)[action_id]
    assert (row.status, row.attempts, row.error) == (FAILED, 1, "503 upstream busy")
    assert run.execute_pending().claimed == 0          # not due before its backoff
    clock.advance(minutes=1)
    run.execute_pending()
    row = rows(engine)[action_id]
    assert row.status == FAILED and row.attempts == 2
    assert row.next_attempt_at.replace(tzinfo=UTC) == clock.now + timedelta(minutes=2)   # doubled
    clock.advance(minutes=2)
    run.execute_pending()
    row = rows(engine)[action_id]
    assert row.status == DEAD and row.attempts == 3
    assert row.error == "503 upstream busy (gave up after 3 attempts)"
    assert provider.calls[key] == 3


def test_provider_refusal_is_dead_with_its_own_words(engine: Engine) -> None:
    put(engine, make_intents(2))
    provider = IdempotentProvider()
    provider.script[action_key("test", 0)] = [
        OperationResult(ok=False, error="Your card was declined.", code="insufficient_funds")]
    provider.script[action_key("test", 1)] = [PermanentError("404 no such subscription", status=404)] * 2
    runner(engine, Clock(), {"api": provider}).execute_pending()
    dead = {r.idempotency_key: (r.status, r.error, r.error_code) for r in rows(engine).values()}
    assert dead[action_key("test", 0)] == (DEAD, "Your card was declined.", "insufficient_funds")
    assert dead[action_key("test", 1)] == (DEAD, "404 no such subscription", "404")


def test_raised_transient_error_is_retried_with_retry_after(engine: Engine) -> None:
    [action_id] = put(engine, make_intents(1))
    provider, clock = IdempotentProvider(), Clock()
    provider.script[action_key("test", 0)] = [TransientError("429 slow down", retry_after=600)]
    run = runner(engine, clock, {"api": provider})
    run.execute_pending()
    row = rows(engine)[action_id]
    assert row.status == FAILED and row.next_attempt_at.replace(tzinfo=UTC) == T0 + timedelta(minutes=10)
    clock.advance(minutes=10)
    run.execute_pending()
    assert rows(engine)[action_id].status == SUCCEEDED
    assert provider.effects == {action_key("test", 0): "obj_1"}


def test_invalid_params_and_unknown_operation_are_dead(engine: Engine) -> None:
    put(engine, [Intent("k1", "s", "thing", None, "api", "make", {"nom": "typo"}),
                 Intent("k2", "s", "thing", None, "api", "explode", {"name": "x"})])
    provider = IdempotentProvider()
    runner(engine, Clock(), {"api": provider}).execute_pending()
    errors = {r.idempotency_key: (r.status, r.error) for r in rows(engine).values()}
    assert errors["k1"][0] == DEAD and "invalid make parameters" in errors["k1"][1]
    assert errors["k2"] == (DEAD, "connector 'api' has no operation 'explode'")
    assert provider.calls == Counter()


@pytest.mark.parametrize("step", ["claimed", "before_call", "after_call"])
def test_crash_at_any_step_never_duplicates_at_an_idempotent_provider(engine: Engine, step: str) -> None:
    put(engine, make_intents(4))
    provider, clock = IdempotentProvider(), Clock()
    with pytest.raises(Crash):
        runner(engine, clock, {"api": provider}, checkpoint=crash_at(step), worker="w1").execute_pending()
    assert {r.status for r in rows(engine).values()} == {RUNNING}
    other = runner(engine, clock, {"api": provider}, worker="w2")
    assert other.execute_pending().claimed == 0          # the lease still protects the rows
    clock.advance(minutes=6)
    report = other.execute_pending()
    assert {r.status for r in rows(engine).values()} == {SUCCEEDED}
    assert len(provider.effects) == 4                    # each key acted on exactly once
    expected_calls = 2 if step == "after_call" else 1    # a repeat after the call is the provider's to dedupe
    assert set(provider.calls.values()) == {expected_calls}
    assert {r.attempts for r in rows(engine).values()} == {2}
    assert any(o.error and "lease expired" in o.error for o in report.outcomes)


def test_worker_killed_every_time_ends_dead_not_looping(engine: Engine) -> None:
    [action_id] = put(engine, make_intents(1))
    provider, clock = IdempotentProvider(), Clock()
    for _ in range(POLICY.max_attempts):
        with pytest.raises(Crash):
            runner(engine, clock, {"api": provider}, checkpoint=crash_at("before_call")).execute_pending()
        clock.advance(minutes=6)
    runner(engine, clock, {"api": provider}).execute_pending()
    row = rows(engine)[action_id]
    assert row.status == DEAD and "gave up after 3 attempts" in row.error
    assert provider.calls == Counter()


@pytest.mark.parametrize("step", ["before_call", "after_call"])
def test_email_crash_between_marker_and_record_is_dead_letter_not_resent(engine: Engine, step: str) -> None:
    [action_id] = put(engine, [mail_intent(1, "dana@example.com")])
    server, clock = MailServer(), Clock()
    with pytest.raises(Crash):
        runner(engine, clock, {"mail": server}, checkpoint=crash_at(step)).execute_pending()
    assert rows(engine)[action_id].status == "sending"
    delivered_before = len(server.delivered)
    assert delivered_before == (1 if step == "after_call" else 0)
    clock.advance(minutes=6)
    finished: list[ActionOutcome] = []
    runner(engine, clock, {"mail": server}, on_finished=finished.append).drain()
    row = rows(engine)[action_id]
    assert row.status == DEAD and row.error_code == "uncertain" and "delivery uncertain" in row.error
    assert len(server.delivered) == delivered_before      # never sent a second time on its own
    assert [o.status for o in finished] == [DEAD]
    with engine.begin() as connection:                    # a person checked: it did not arrive
        retry(connection, action_id, now=clock.now)
    runner(engine, clock, {"mail": server}).execute_pending()
    assert rows(engine)[action_id].status == SUCCEEDED
    assert len(server.delivered) == delivered_before + 1


def test_email_is_sent_in_chunks_and_a_crash_costs_one_chunk_at_most(engine: Engine) -> None:
    put(engine, [mail_intent(i, f"user{i}@example.com") for i in range(45)])
    server, clock = MailServer(), Clock()
    with pytest.raises(Crash):
        runner(engine, clock, {"mail": server}, checkpoint=crash_at("after_call")).execute_pending(limit=100)
    assert server.batches == [20] and len(server.delivered) == 20
    clock.advance(minutes=6)
    runner(engine, clock, {"mail": server}).drain()
    statuses = Counter((r.status, r.error_code) for r in rows(engine).values())
    assert statuses == {(DEAD, "uncertain"): 20, (SUCCEEDED, None): 25}
    assert server.batches == [20, 20, 5]
    assert len(server.delivered) == len(set(server.delivered)) == 45


def test_email_sent_log_written_with_success_and_checked_before_sending(engine: Engine) -> None:
    ids = put(engine, [mail_intent(1, "dana@example.com"), mail_intent(2, "eve@example.com")])
    with engine.begin() as connection:   # as if an earlier attempt's commit of the log had happened
        connection.execute(insert(SentMessage.__table__).values(
            message_id="<earlier@test>", action_id=ids[1], recipient="eve@example.com", template="checkin", sent_at=T0))
    server = MailServer()
    runner(engine, Clock(), {"mail": server}).execute_pending()
    assert server.delivered == [action_key("mail", 1)]
    stored = rows(engine)
    assert stored[ids[0]].status == SUCCEEDED and stored[ids[1]].status == SUCCEEDED
    assert stored[ids[1]].result["already_sent"] is True
    with engine.connect() as connection:
        log = dict(connection.execute(select(SentMessage.action_id, SentMessage.message_id)).all())
    assert log == {ids[0]: f"<{action_key('mail', 1)}@test>", ids[1]: "<earlier@test>"}


def test_suppressed_addresses_are_skipped_unless_transactional(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(insert(Suppression.__table__).values(email="dana@example.com", reason="unsubscribed"))
    ids = put(engine, [mail_intent(1, "Dana@Example.com"), mail_intent(2, "dana@example.com", transactional=True),
                       mail_intent(3, "eve@example.com")])
    server = MailServer()
    runner(engine, Clock(), {"mail": server}).execute_pending()
    stored = rows(engine)
    assert stored[ids[0]].status == SKIPPED and "unsubscribed" in stored[ids[0]].error
    assert stored[ids[1]].status == SUCCEEDED and stored[ids[2]].status == SUCCEEDED
    assert sorted(server.delivered) == [action_key("mail", 2), action_key("mail", 3)]


def test_hard_bounce_suppresses_the_address(engine: Engine) -> None:
    server, clock = MailServer(), Clock()
    server.bounce.add("gone@example.com")
    [first] = put(engine, [mail_intent(1, "gone@example.com")])
    runner(engine, clock, {"mail": server}).execute_pending()
    row = rows(engine)[first]
    assert (row.status, row.error_code, row.error) == (DEAD, "hard_bounce", "550 5.1.1 no such user")
    with engine.connect() as connection:
        assert connection.execute(select(Suppression.email, Suppression.reason)).all() == [("gone@example.com", "hard_bounce")]
    [second] = put(engine, [mail_intent(2, "gone@example.com")])
    runner(engine, clock, {"mail": server}).execute_pending()
    assert rows(engine)[second].status == SKIPPED and server.delivered == []


def test_concurrent_workers_never_claim_the_same_action(engine: Engine) -> None:
    """Three threads (three connections) claim in lock-step rounds, so every round is a real race."""
    put(engine, make_intents(300))
    rounds = 300 // (3 * 7) + 2
    barrier = threading.Barrier(3)
    claimed: dict[str, list[int]] = {f"w{i}": [] for i in range(3)}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        for _ in range(rounds):
            barrier.wait()
            try:
                with engine.begin() as connection:
                    batch = claim(connection, owner=name, now=T0, policy=POLICY, limit=7)
                assert len(batch) <= 7
                claimed[name].extend(a.id for a in batch)
            except Exception as exc:  # surfaced below
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    every = [i for ids in claimed.values() for i in ids]
    assert len(every) == len(set(every)) == 300
    assert all(claimed.values())          # each worker got a share


@pytest.mark.postgres
def test_postgres_claims_skip_rows_another_worker_has_locked(database_url: str, engine: Engine) -> None:
    """While one worker's claim is still uncommitted, another claims other rows without waiting."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serialises writers instead")
    put(engine, make_intents(10))
    with engine.connect() as first, engine.connect() as second:
        first.begin()
        mine = claim(first, owner="first", now=T0, policy=POLICY, limit=4)
        second.begin()
        second.exec_driver_sql("SET LOCAL lock_timeout = '2s'")   # waiting would fail the test
        theirs = claim(second, owner="second", now=T0, policy=POLICY, limit=100)
        second.commit()
        first.commit()
    assert len(mine) == 4 and len(theirs) == 6
    assert not {a.id for a in mine} & {a.id for a in theirs}


def test_a_worker_that_lost_its_lease_cannot_record(engine: Engine) -> None:
    put(engine, make_intents(1))
    clock = Clock()
    with engine.begin() as connection:
        [mine] = claim(connection, owner="slow", now=clock.now, policy=POLICY, limit=10)
    clock.advance(minutes=6)
    with engine.begin() as connection:
        [reaped] = reap_expired(connection, now=clock.now, policy=POLICY)
        assert reaped.status == FAILED
        [theirs] = claim(connection, owner="fast", now=clock.now, policy=POLICY, limit=10)
    assert theirs.id == mine.id and theirs.attempts == 2
    with engine.begin() as connection:
        assert fence(connection, [mine.id], owner="slow", now=clock.now) == set()
        assert fence(connection, [mine.id], owner="fast", now=clock.now) == {mine.id}


def test_retry_moves_only_failed_or_dead_back_to_pending(engine: Engine) -> None:
    put(engine, make_intents(2))
    provider = IdempotentProvider()
    provider.script[action_key("test", 0)] = [OperationResult(ok=False, error="Your card was declined.", code="do_not_honor")]
    runner(engine, Clock(), {"api": provider}).execute_pending()
    by_key = {r.idempotency_key: r.id for r in rows(engine).values()}
    dead_id, done_id = by_key[action_key("test", 0)], by_key[action_key("test", 1)]
    with engine.begin() as connection:
        again = retry(connection, dead_id, now=T0)
    assert again["status"] == PENDING and again["attempts"] == 0
    with engine.begin() as connection, pytest.raises(OutboxError, match="succeeded"):
        retry(connection, done_id, now=T0)
    with engine.begin() as connection, pytest.raises(OutboxError, match="no action"):
        retry(connection, 999_999, now=T0)
    provider.answers.clear()   # the cause was fixed (and Stripe's 24 h replay of the decline is over)
    runner(engine, Clock(), {"api": provider}).execute_pending()
    assert rows(engine)[dead_id].status == SUCCEEDED
    with engine.connect() as connection:
        listed = list_actions(connection, status=SUCCEEDED)
    assert {r["id"] for r in listed} == {dead_id, done_id} and listed[0]["id"] > listed[1]["id"]


def test_set_status_runs_in_the_hub(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(insert(Customer.__table__).values(id="c1", name="Acme", status="Active", mrr=0))
    put(engine, [Intent("s1", "playbook:x", "set_status", "c1", None, "set_status", {"customer_id": "c1", "status": "At risk"}),
                 Intent("s2", "playbook:x", "set_status", "gone", None, "set_status", {"customer_id": "gone", "status": "At risk"})])
    runner(engine, Clock(), {}).execute_pending()
    with engine.connect() as connection:
        assert connection.execute(select(Customer.status)).scalar() == "At risk"
    stored = {r.idempotency_key: r for r in rows(engine).values()}
    assert stored["s1"].status == SUCCEEDED and stored["s1"].result == {"status": "At risk", "previous": "Active"}
    assert stored["s2"].status == DEAD and "no longer exists" in stored["s2"].error


def test_skipped_intents_are_recorded_with_their_reason(engine: Engine) -> None:
    put(engine, [Intent("k", "playbook:x", "send_email", "c1", status=SKIPPED, error="no primary contact")])
    [row] = rows(engine).values()
    assert (row.status, row.error) == (SKIPPED, "no primary contact") and row.finished_at is not None
    assert runner(engine, Clock(), {}).execute_pending().claimed == 0


def test_action_key_is_deterministic_and_header_safe() -> None:
    assert action_key("p", 1, "c") == action_key("p", 1, "c") == "p|1|c"
    long = action_key("playbook", "é" * 300)
    assert long.isascii() and len(long) <= 200 and long == action_key("playbook", "é" * 300)
    assert action_key("playbook", "é" * 300) != action_key("playbook", "é" * 301)
