"""A playbook run through real connectors and their sandboxes, with a crash injected at every step.

Steps: while writing entries and outbox rows (the transaction rolls back), after the commit when
the runner has claimed, before the provider call and after it before recording. After each crash
the lease expires, another worker (and the next scheduled playbook run) carry on; the sandboxes
then show one ticket, one tag set and one coupon per idempotency key, never two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from connectors.stripe.connector import StripeConnector
from connectors.stripe.sandbox import start_sandbox as start_stripe
from connectors.stripe.settings import StripeSettings
from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.sandbox import start_sandbox as start_zendesk
from connectors.zendesk.settings import ZendeskSettings
from hub import Connector, Record
from hub.models import Customer, CustomerLink
from hub.outbox import SUCCEEDED, OutboxPolicy, OutboxRunner, Planner, list_actions
from hub.playbooks import engine as playbook_engine
from hub.playbooks.config import validate_playbooks
from hub.plugins import build_registry, load_plugins, new_plugin_manager
from hub.store import write_records

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TYPES = {"helpdesk": "zendesk", "billing": "stripe"}
POLICY = OutboxPolicy(max_attempts=3, lease=timedelta(minutes=5))
STRIPE_DATASET = {
    "prices": [{"id": "price_growth", "unit_amount": 49900, "currency": "usd",
                "recurring": {"interval": "month", "interval_count": 1}}],
    "coupons": [{"id": "CARE10", "percent_off": 10, "duration": "once"}],
    "customers": [{"id": "cus_acme", "email": "ap@acme.example", "name": "Acme"}],
    "subscriptions": [{"id": "sub_acme", "customer": "cus_acme", "status": "active",
                       "items": [{"price": "price_growth", "quantity": 1}]}],
}
PLAYBOOK = {
    "name": "three-tickets", "trigger": "tickets_opened(7d) >= 3", "cooldown": "7d",
    "actions": [{"create_helpdesk_ticket": {"subject": "Check in with {{ customer.name }}",
                                            "body": "{{ trigger['tickets_opened(7)'] }} tickets in 7 days",
                                            "requester": "none"}},
                {"tag_helpdesk_org": {"tags": ["at-risk"]}},
                {"stripe_apply_coupon": {"coupon": "CARE10"}}],
}


class Crash(BaseException):
    """A simulated SIGKILL."""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def crash_at(step: str) -> Callable[[str, Sequence[Any]], None]:
    fired = [False]

    def checkpoint(name: str, actions: Sequence[Any]) -> None:
        if name == step and not fired[0]:
            fired[0] = True
            raise Crash(step)

    return checkpoint


@pytest.fixture
def world(engine: Engine) -> Iterator[tuple[Engine, Any, Any, Callable[[str], Connector]]]:
    zendesk = start_zendesk({"organizations": [{"id": 7, "name": "Acme", "tags": ["vip"]}]}, rate_limits=False)
    stripe = start_stripe(STRIPE_DATASET, rate_limit=None)
    zendesk_settings, stripe_settings = ZendeskSettings(**zendesk.settings()), StripeSettings(**stripe.settings())

    def connectors(name: str) -> Connector:
        if name == "helpdesk":
            return ZendeskConnector(zendesk_settings, sleep=lambda _: None)
        if name == "billing":
            return StripeConnector(stripe_settings, sleep=lambda _: None)
        raise KeyError(name)

    with engine.begin() as connection:
        write_records(connection, "helpdesk", [Record("account", "7", {"name": "Acme"})] + [
            Record("ticket", f"t{k}", {"account_id": "7", "status": "open", "subject": "Export fails",
                                       "created_at": (T0 - timedelta(days=k + 1)).isoformat()}) for k in range(3)],
                      now=T0)
        write_records(connection, "billing", [
            Record("account", "cus_acme", {"name": "Acme", "email": "ap@acme.example"}),
            Record("subscription", "sub_acme", {"account_id": "cus_acme", "status": "active", "mrr": 49900,
                                                "start_date": (T0 - timedelta(days=90)).isoformat()})], now=T0)
        connection.execute(insert(Customer.__table__).values(id="c1", name="Acme", status="Active", mrr=49900))
        connection.execute(insert(CustomerLink.__table__), [
            {"customer_id": "c1", "connector": name, "kind": "account", "external_id": ext, "rule": "seed"}
            for name, ext in (("helpdesk", "7"), ("billing", "cus_acme"))])
    yield engine, zendesk, stripe, connectors
    zendesk.stop()
    stripe.stop()


def actions_registry() -> Any:
    manager = new_plugin_manager()
    return build_registry(manager, load_plugins(manager, allow=["actions.plugin"], builtins=("actions.plugin",))).actions


def run_once(engine: Engine, connectors: Callable[[str], Connector], clock: Clock, *, worker: str,
             checkpoint: Callable[[str, Sequence[Any]], None] | None = None) -> playbook_engine.RunReport:
    actions = actions_registry()
    settings = validate_playbooks([PLAYBOOK], actions)
    options: dict[str, Any] = {"checkpoint": checkpoint} if checkpoint else {}
    runner = OutboxRunner(engine, connectors, worker=worker, clock=clock, policy=POLICY, **options)
    return playbook_engine.run(engine, settings, Planner(actions, TYPES), runner, now=clock.now)


def assert_acted_once(engine: Engine, zendesk: Any, stripe: Any) -> None:
    with engine.connect() as connection:
        rows = list_actions(connection)
    assert len(rows) == 3 and {r["status"] for r in rows} == {SUCCEEDED}, [(r["key"], r["status"], r["error"]) for r in rows]
    ticket_key = next(r["key"] for r in rows if r["action_type"] == "create_helpdesk_ticket")
    tickets = [t for t in zendesk.created_tickets() if t.get("external_id") == ticket_key]
    assert len(tickets) == 1 and tickets[0]["subject"] == "Check in with Acme"
    assert len([e for e in zendesk.request_log if e[0] == "POST" and e[1].startswith("/api/v2/tickets")]) == 1
    assert sorted(zendesk.organization_tags(7)) == ["at-risk", "vip"]
    assert len(stripe.get("sub_acme")["discounts"]) == 1
    posts = [r for r in stripe.requests if r.method == "POST" and r.path == "/v1/subscriptions/sub_acme"]
    assert sum(1 for r in posts if not r.replayed) == 1


@pytest.mark.parametrize("step", ["claimed", "before_call", "after_call"])
def test_a_crash_while_executing_never_acts_twice(world: Any, step: str) -> None:
    engine, zendesk, stripe, connectors = world
    clock = Clock()
    with pytest.raises(Crash):
        run_once(engine, connectors, clock, worker="doomed", checkpoint=crash_at(step))
    clock.now += timedelta(minutes=6)    # the lease expired; the next scheduled run carries on
    report = run_once(engine, connectors, clock, worker="heir")
    assert (report.entries_written, report.actions_enqueued) == (0, 0)   # the first run's write stood
    assert_acted_once(engine, zendesk, stripe)
    clock.now += timedelta(hours=1)
    assert run_once(engine, connectors, clock, worker="third").executed == {}
    assert_acted_once(engine, zendesk, stripe)


def test_a_crash_while_writing_leaves_nothing_then_the_next_run_does_it_once(world: Any,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    engine, zendesk, stripe, connectors = world
    real_enqueue = playbook_engine.enqueue

    def enqueue_then_crash(*args: Any, **kwargs: Any) -> Any:
        real_enqueue(*args, **kwargs)
        raise Crash("after enqueue, before commit")

    monkeypatch.setattr(playbook_engine, "enqueue", enqueue_then_crash)
    clock = Clock()
    with pytest.raises(Crash):
        run_once(engine, connectors, clock, worker="doomed")
    with engine.connect() as connection:
        assert list_actions(connection) == []
    assert zendesk.created_tickets() == [] and stripe.get("sub_acme").get("discounts") in (None, [])
    monkeypatch.setattr(playbook_engine, "enqueue", real_enqueue)
    report = run_once(engine, connectors, clock, worker="heir")
    assert (report.entries_written, report.actions_enqueued) == (1, 3)
    assert_acted_once(engine, zendesk, stripe)
