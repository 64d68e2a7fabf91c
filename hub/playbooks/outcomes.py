"""Outcomes: each entry's metric at entry and after its window, and lift against the control group.

    measure_due(connection, settings, signals, now=now)   # fills metric_after where the window passed
    playbook_stats(connection, settings)                  # per playbook: treated vs control

A playbook's `metric` is an expression over the signals (or a named one, `METRICS`), measured
for every customer at once; `metric_after` is read at the first run after `entered_at +
metric_window`. Lift = mean change (after - at entry) of treated entries minus that of control
entries, so a metric that improves by itself is not credited to the playbook.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, func, select, update

from hub.factsdb import CustomerIndex
from hub.models import PlaybookEntry
from hub.outbox.state import actions as actions_table
from hub.playbooks.config import PlaybooksSettings
from hub.playbooks.evaluate import number
from hub.playbooks.signals import SignalTable, json_value

entries_table = PlaybookEntry.__table__


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def measure_due(connection: Connection, settings: PlaybooksSettings, signals: SignalTable, *, now: datetime) -> int:
    """Measure every unmeasured entry whose window has passed; returns how many."""
    playbooks = {p.name: p for p in settings.playbooks if p.metric_ast is not None}
    if not playbooks:
        return 0
    rows = connection.execute(
        select(entries_table.c.id, entries_table.c.playbook, entries_table.c.customer_id, entries_table.c.entered_at)
        .where(entries_table.c.measured_at.is_(None), entries_table.c.metric.is_not(None),
               entries_table.c.playbook.in_(bindparam("names", expanding=True))),
        {"names": sorted(playbooks)}).all()
    due = [r for r in rows if _aware(r.entered_at) + playbooks[r.playbook].metric_window <= now]
    if not due:
        return 0
    positions = CustomerIndex(signals.table.ids).positions([r.customer_id for r in due])
    columns = {name: number(playbooks[name].metric_ast, signals) for name in {r.playbook for r in due}}
    updates = [{"b_id": r.id, "b_after": json_value(columns[r.playbook][p]) if p >= 0 else None, "b_at": now}
               for r, p in zip(due, positions.tolist(), strict=True)]
    connection.execute(update(entries_table).where(entries_table.c.id == bindparam("b_id"))
                       .values(metric_after=bindparam("b_after"), measured_at=bindparam("b_at")), updates)
    return len(updates)


def _group(rows: list[Any]) -> dict[str, Any]:
    return {"entries": 0, "measured": 0, "mean_at_entry": None, "mean_after": None, "mean_change": None,
            **({} if not rows else rows[0])}


def playbook_stats(connection: Connection, settings: PlaybooksSettings | None = None) -> list[dict[str, Any]]:
    """Per playbook: treated and control entries, their metric means and the lift (two queries)."""
    measured = entries_table.c.measured_at.is_not(None) & entries_table.c.metric_after.is_not(None)
    change = entries_table.c.metric_after - entries_table.c.metric_at_entry
    rows = connection.execute(
        select(entries_table.c.playbook, entries_table.c.control, func.count(),
               func.count(entries_table.c.id).filter(measured),
               func.avg(entries_table.c.metric_at_entry).filter(measured),
               func.avg(entries_table.c.metric_after).filter(measured),
               func.avg(change).filter(measured & entries_table.c.metric_at_entry.is_not(None)),
               func.max(entries_table.c.metric))
        .group_by(entries_table.c.playbook, entries_table.c.control)).all()
    grouped: dict[str, dict[str, Any]] = {}
    for name, control, count, n_measured, at_entry, after, mean_change, metric in rows:
        side = grouped.setdefault(name, {"metric": metric})
        side["control" if control else "treated"] = {
            "entries": int(count), "measured": int(n_measured), "mean_at_entry": _round(at_entry),
            "mean_after": _round(after), "mean_change": _round(mean_change)}
    statuses = connection.execute(
        select(actions_table.c.source, actions_table.c.status, func.count())
        .where(actions_table.c.source.like("playbook:%"))
        .group_by(actions_table.c.source, actions_table.c.status)).all()
    for source, status, count in statuses:
        side = grouped.setdefault(source.removeprefix("playbook:"), {"metric": None})
        side.setdefault("actions", {})[status] = int(count)
    names = [p.name for p in settings.playbooks] if settings is not None else []
    out = []
    for name in names + sorted(set(grouped) - set(names)):
        data = grouped.get(name, {"metric": None})
        treated, control = _group([data["treated"]] if "treated" in data else []), \
            _group([data["control"]] if "control" in data else [])
        lift = None
        if treated["mean_change"] is not None and control["mean_change"] is not None:
            lift = _round(treated["mean_change"] - control["mean_change"])
        before_after = treated["mean_change"]
        out.append({"playbook": name, "metric": data.get("metric"), "treated": treated, "control": control,
                    "change": before_after, "lift": lift, "actions": data.get("actions", {})})
    return out


def _round(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if np.isnan(number) else round(number, 3)


__all__ = ["measure_due", "playbook_stats"]
