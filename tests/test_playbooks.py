"""Playbooks against a real database (SQLite and PostgreSQL): plan = run, once, cooldowns, control, outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, update

from hub import Connector, Record
from hub.factsdb import load_facts
from hub.models import ChurnEvent as ChurnEventRow
from hub.models import Customer, CustomerLink, HealthScore, PlaybookEntry
from hub.outbox import SUCCEEDED, OutboxRunner, Planner, list_actions
from hub.playbooks.config import PlaybooksSettings, validate_playbooks
from hub.playbooks.engine import in_control, plan, run
from hub.playbooks.outcomes import playbook_stats
from hub.playbooks.signals import SignalTable, load_inputs
from hub.plugins import build_registry, load_plugins, new_plugin_manager
from hub.starter import STARTER_CONFIG
from hub.store import write_records
from hub.yamlsource import load_yaml

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TYPES = {"helpdesk": "zendesk", "crm": "salesforce"}


def registry_actions() -> Any:
    manager = new_plugin_manager()
    return build_registry(manager, load_plugins(manager, allow=["actions.plugin"], builtins=("actions.plugin",))).actions


ACTIONS = registry_actions()


def planner() -> Planner:
    return Planner(ACTIONS, TYPES)


def settings(*playbooks: dict[str, Any], **extra: Any) -> PlaybooksSettings:
    return validate_playbooks({"playbooks": list(playbooks), **extra}, ACTIONS)


def no_connectors(name: str) -> Connector:
    raise AssertionError(f"no connector expected, asked for {name}")


def seed(engine: Engine, tickets: dict[int, Sequence[float]], *, now: datetime = T0) -> None:
    """Customers c<i> with a helpdesk org <i>, each with tickets opened `days` before `now`."""
    with engine.begin() as connection:
        connection.execute(insert(Customer.__table__), [
            {"id": f"c{i}", "name": f"Customer {i}", "status": "Active"} for i in tickets])
        connection.execute(insert(CustomerLink.__table__), [
            {"customer_id": f"c{i}", "connector": "helpdesk", "kind": "account", "external_id": str(i), "rule": "seed"}
            for i in tickets])
        add_tickets(connection, tickets, now=now)


def add_tickets(connection: Any, tickets: dict[int, Sequence[float]], *, now: datetime, prefix: str = "t") -> None:
    records = [Record("account", str(i), {"name": f"Customer {i}"}) for i in tickets]
    records += [Record("ticket", f"{prefix}{i}-{k}", {"account_id": str(i), "status": "open", "subject": "Export broken",
                                                       "created_at": (now - timedelta(days=d)).isoformat()})
                for i, days in tickets.items() for k, d in enumerate(days)]
    write_records(connection, "helpdesk", records, now=now)


THREE_TICKETS = {
    "name": "three-tickets", "owner": "csm", "trigger": "tickets_opened(7d) >= 3", "cooldown": "7d",
    "actions": [{"set_status": {"status": "At risk"}},
                {"tag_helpdesk_org": {"tags": ["at-risk", "tickets-{{ trigger['tickets_opened(7)'] }}"]}},
                {"create_crm_task": {"subject": "Call {{ customer.name }}"}, "delay": "2d"}],
}


def outbox(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return sorted(list_actions(connection, limit=10_000), key=lambda r: r["key"])


def entries(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(PlaybookEntry.__table__).order_by(PlaybookEntry.id)).mappings().all()
    return [dict(r) for r in rows]


def test_plan_is_exactly_what_run_writes_and_a_second_run_is_a_no_op(engine: Engine) -> None:
    seed(engine, {1: [1, 2, 3], 2: [1, 2, 9], 3: [0.5, 1, 2, 3]})
    config = settings(THREE_TICKETS)
    dry = plan(engine, config, planner(), now=T0)
    assert [(e.customer_id, e.trigger) for e in dry.entries] == [("c1", {"tickets_opened(7)": 3}),
                                                                 ("c3", {"tickets_opened(7)": 4})]
    assert outbox(engine) == [] and entries(engine) == []          # a dry run writes nothing
    planned = sorted(((i.key, i.action_type, i.connector, i.operation, dict(i.params), i.status, i.error)
                      for i in dry.intents), key=lambda x: x[0])
    assert planned[0][0] == f"playbook:three-tickets|{config.playbooks[0].version}|c1|2026-03-02|0"
    tag = next(p for p in planned if p[1] == "tag_helpdesk_org" and "|c3|" in p[0])
    assert tag[4] == {"organization_id": 3, "tags": ["at-risk", "tickets-4"]}
    crm = [p for p in planned if p[1] == "create_crm_task"]
    assert all(p[5] == "skipped" and "CRM account" in p[6] for p in crm)   # no CRM link: skipped with the reason

    report = run(engine, config, planner(), None, now=T0)
    assert (report.entries_written, report.actions_enqueued) == (2, 6)
    written = [(r["key"], r["action_type"], r["connector"], r["operation"], r["params"], r["status"], r["error"])
               for r in outbox(engine)]
    assert written == planned

    again = run(engine, config, planner(), None, now=T0 + timedelta(hours=3))
    assert (again.entries_written, again.actions_enqueued) == (0, 0)
    assert again.plan.held["three-tickets"]["occurrence"] == 2
    assert len(outbox(engine)) == 6 and len(entries(engine)) == 2


def test_run_executes_the_outbox_and_delayed_steps_wait(engine: Engine) -> None:
    seed(engine, {1: [1, 2, 3]})
    config = settings({"name": "at-risk", "trigger": "tickets_opened(7d) >= 3",
                       "actions": [{"set_status": {"status": "At risk"}},
                                   {"set_status": {"status": "Still at risk"}, "delay": "1d"}]})
    report = run(engine, config, planner(), OutboxRunner(engine, no_connectors, clock=lambda: T0), now=T0)
    assert report.executed == {SUCCEEDED: 1}
    with engine.connect() as connection:
        assert connection.execute(select(Customer.status).where(Customer.id == "c1")).scalar() == "At risk"
    later = OutboxRunner(engine, no_connectors, clock=lambda: T0 + timedelta(days=1)).drain()
    assert later.counts() == {SUCCEEDED: 1}
    with engine.connect() as connection:
        assert connection.execute(select(Customer.status).where(Customer.id == "c1")).scalar() == "Still at risk"


def test_cooldown_and_max_entries(engine: Engine) -> None:
    seed(engine, {1: [0.1, 0.2, 0.3]})
    config = settings({"name": "busy", "trigger": "open_tickets >= 1", "cooldown": "3d", "max_entries": 2,
                       "actions": [{"set_status": {"status": "At risk"}}]})
    days = {0: "entered", 1: "cooldown", 2: "cooldown", 3: "entered", 6: "max_entries", 30: "max_entries"}
    for day, expected in days.items():
        report = run(engine, config, planner(), None, now=T0 + timedelta(days=day))
        held = {k for k, v in report.plan.held["busy"].items() if v}
        assert (held or {"entered"}) == {expected}, day
    assert [e["occurrence"] for e in entries(engine)] == ["2026-03-02", "2026-03-05"]
    assert len(outbox(engine)) == 2

    zero = settings({"name": "daily", "trigger": "open_tickets >= 1", "cooldown": "0d",
                     "actions": [{"set_status": {"status": "At risk"}}]})
    first = run(engine, zero, planner(), None, now=T0)
    same_day = run(engine, zero, planner(), None, now=T0 + timedelta(hours=5))
    next_day = run(engine, zero, planner(), None, now=T0 + timedelta(days=1))
    assert (first.entries_written, same_day.entries_written, next_day.entries_written) == (1, 0, 1)


def test_control_group_is_stable_per_customer_and_gets_no_actions(engine: Engine) -> None:
    ids = range(1, 41)
    seed(engine, {i: [1, 2, 3] for i in ids})
    config = settings({"name": "split", "trigger": "tickets_opened(7d) >= 3", "control_group": "30%",
                       "actions": [{"set_status": {"status": "At risk"}}]})
    run(engine, config, planner(), None, now=T0)
    control = {e["customer_id"] for e in entries(engine) if e["control"]}
    assert control == {f"c{i}" for i in ids if in_control("split", f"c{i}", 0.3)}
    assert 4 <= len(control) <= 20
    treated = {r["customer_id"] for r in outbox(engine)}
    assert treated == {f"c{i}" for i in ids} - control
    # the split depends only on (playbook, customer): the same on every call and every run
    assert all(in_control("split", f"c{i}", 0.3) == in_control("split", f"c{i}", 0.3) for i in ids)
    population = [f"cus_{i}" for i in range(5000)]
    share = sum(in_control("split", c, 0.1) for c in population) / len(population)
    assert 0.08 < share < 0.12
    other = {c for c in population if in_control("other-playbook", c, 0.1)}
    assert other != {c for c in population if in_control("split", c, 0.1)}   # independent per playbook


def test_outcomes_are_measured_after_the_window_and_lift_uses_the_control(engine: Engine) -> None:
    ids = range(1, 31)
    seed(engine, {i: [1, 2, 3] for i in ids})
    config = settings({"name": "calm", "trigger": "tickets_opened(7d) >= 3", "control_group": "40%",
                       "metric": "tickets_opened(7d)", "metric_window": "7d", "cooldown": "60d",
                       "actions": [{"set_status": {"status": "At risk"}}]})
    run(engine, config, planner(), None, now=T0)
    assert {e["metric_at_entry"] for e in entries(engine)} == {3.0}
    later = T0 + timedelta(days=8)
    control = {int(e["customer_id"][1:]) for e in entries(engine) if e["control"]}
    # the control customers keep opening tickets; half the treated ones open one more
    treated = sorted(set(ids) - control)
    with engine.begin() as connection:
        add_tickets(connection, {**{i: [1, 2] for i in control}, **{i: [1] for i in treated[::2]}}, now=later, prefix="n")
    assert run(engine, config, planner(), None, now=T0 + timedelta(days=5)).measured == 0   # window not over
    assert run(engine, config, planner(), None, now=later).measured == 30
    rows = entries(engine)
    expected_after = {f"c{i}": 2.0 if i in control else (1.0 if i in treated[::2] else 0.0) for i in ids}
    assert {e["customer_id"]: e["metric_after"] for e in rows} == expected_after
    with engine.connect() as connection:
        [stats] = playbook_stats(connection, config)
    treated_change = sum(expected_after[f"c{i}"] - 3 for i in treated) / len(treated)
    assert stats["treated"]["entries"] == len(treated) and stats["control"]["entries"] == len(control)
    assert stats["treated"]["mean_change"] == pytest.approx(treated_change, abs=1e-3)
    assert stats["control"]["mean_change"] == pytest.approx(-1.0)
    assert stats["lift"] == pytest.approx(treated_change + 1.0, abs=1e-3)
    assert stats["actions"] == {"pending": len(treated)}


def test_evaluation_is_set_based(engine: Engine) -> None:
    """The number of queries does not grow with the number of customers."""
    def count_queries(n: int) -> int:
        with engine.begin() as connection:
            connection.execute(PlaybookEntry.__table__.delete())
            connection.execute(Customer.__table__.delete())
        seed(engine, {i: [1, 2, 3] for i in range(1, n + 1)})
        seen: list[str] = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            plan(engine, settings(THREE_TICKETS), planner(), now=T0)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return len(seen)

    assert count_queries(3) == count_queries(60)


def test_health_and_churn_signals_come_from_the_hub_tables(engine: Engine) -> None:
    seed(engine, {1: [1], 2: [], 3: []})
    with engine.begin() as connection:
        connection.execute(insert(HealthScore.__table__), [
            {"customer_id": "c1", "scored_at": T0 - timedelta(days=1), "score": 75.0, "band": "yellow", "factors": {}},
            {"customer_id": "c1", "scored_at": T0 - timedelta(hours=2), "score": 62.0, "band": "red", "factors": {}},
            {"customer_id": "c1", "scored_at": T0 + timedelta(days=1), "score": 90.0, "band": "green", "factors": {}},
            {"customer_id": "c2", "scored_at": T0 - timedelta(hours=2), "score": 40.0, "band": "red", "factors": {}}])
        connection.execute(insert(ChurnEventRow.__table__), [
            {"customer_id": "c2", "occurred_at": T0 - timedelta(days=45, hours=2), "type": "voluntary", "evidence": {}},
            {"customer_id": "c2", "occurred_at": T0 - timedelta(days=400), "type": "involuntary", "evidence": {}}])
        connection.execute(update(Customer.__table__).where(Customer.id == "c2").values(churn_state="churned_voluntary"))
        connection.execute(update(Customer.__table__).where(Customer.id == "c3").values(churn_state="silent"))
        table = load_facts(connection, now=T0)
        signals = SignalTable(load_inputs(connection, table, T0.timestamp()), T0.timestamp())
    assert list(table.ids) == ["c1", "c2", "c3"]
    assert signals.named("health.score").tolist()[:2] == [62.0, 40.0]          # the future score is not seen
    assert signals.named("health.band_changed_to").tolist() == ["red", "", ""]  # c2 has no previous score
    assert signals.named("churned_days_ago").tolist()[1] == 45
    assert signals.named("silent_churn").tolist() == [False, False, True]
    assert signals.named("status").tolist() == ["Active", "Active", "Active"]


def test_the_starter_playbooks_plan_over_a_database(engine: Engine) -> None:
    data, source = load_yaml(STARTER_CONFIG, "churnhub.yaml", {})
    config = validate_playbooks(data["playbooks"], ACTIONS, source)
    assert len(config.playbooks) == 9
    seed(engine, {1: [1, 2, 3, 8], 2: [12]})
    result = plan(engine, config, Planner(ACTIONS, {**TYPES, "mail": "smtp"}), now=T0)
    assert {(e.playbook, e.customer_id) for e in result.entries} >= {
        ("three-tickets-7-days", "c1"), ("repeat-tickets", "c1"), ("ticket-open-5-days", "c1"),
        ("ticket-open-5-days", "c2")}
    three = next(e for e in result.entries if e.playbook == "three-tickets-7-days")
    assert [i.action_type for i in three.actions] == ["set_status", "create_crm_task", "webhook", "send_email"]
    assert three.actions[2].params["body"] == {"text": ":warning: Customer 1 opened 3 tickets in 7 days"}


def test_an_owner_role_mapped_in_config_receives_the_owner_email(engine: Engine) -> None:
    seed(engine, {1: [1, 2, 3]})
    config = settings({"name": "onboard", "owner": "implementation", "trigger": "tickets_opened(7d) >= 3",
                       "actions": [{"send_email": {"template": "checkin", "to": "owner"}}]},
                      owners={"implementation": {"name": "Ida Impl", "email": "ida@ourco.example"}},
                      variables={"product": {"name": "Acme Analytics"}})
    [entry] = plan(engine, config, Planner(ACTIONS, {"mail": "smtp"}), now=T0).entries
    [intent] = entry.actions
    assert intent.status == "pending" and intent.recipient == "ida@ourco.example"
    assert intent.params["context"]["owner"]["name"] == "Ida Impl"
    assert intent.params["context"]["product"] == {"name": "Acme Analytics"}
