"""Loading a `FactTable` from the database with one set-based query per kind of fact.

Every child record (subscription, invoice, ticket, ...) belongs to the customer linked to its
parent account: `customer_links (connector, kind='account', external_id = record.account_ref)`.
Fields are read from the JSON `data` in SQL (several candidate keys per fact, so connectors that
name a field differently still load) and timestamps become epoch seconds in SQL. Kinds that grow
with time (tickets, usage, invoices, contacts) can be limited to a window with `since`.

Ticket text is read only to compute its sentiment and topic once per ticket version; those land
in `ticket_signals`, so later loads read two numbers instead of the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Float, String, and_, func, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from hub import textsignals
from hub.facts import CUSTOMER_SCHEMA, FRAME_SCHEMA, FactTable, Frame, column_from_values, times
from hub.models import Customer, CustomerLink, DunningCase, MrrSnapshot, SourceRecord, TicketSignal

source = SourceRecord.__table__
links = CustomerLink.__table__
signals = TicketSignal.__table__

Key = str | tuple[str, ...]

# Where each fact is read from in a record's `data`: the first non-null candidate wins.
FIELD_KEYS: dict[str, dict[str, Sequence[Key]]] = {
    "subscription": {
        "start": ("start_date", "created", "created_at", "current_period_start"), "canceled_at": ("canceled_at",),
        "ended_at": ("ended_at",), "trial_end": ("trial_end",), "status": ("status",), "mrr": ("mrr",),
        "currency": ("currency",), "plan": ("plan", "plan_id"), "quantity": ("quantity",),
        "cancel_at_period_end": ("cancel_at_period_end",),
        "reason": ("cancellation_reason", ("cancellation_details", "reason")),
        "feedback": ("cancellation_feedback", ("cancellation_details", "feedback")),
    },
    "invoice": {
        "subscription_id": ("subscription_id", "subscription"), "created": ("created_at", "created"),
        "status": ("status",), "amount_due": ("amount_due",), "amount_paid": ("amount_paid",),
        "attempt_count": ("attempt_count",), "paid_at": ("paid_at", ("status_transitions", "paid_at")),
    },
    "charge": {
        "created": ("created_at", "created"), "status": ("status",),
        "decline_code": ("decline_code", ("outcome", "reason"), "failure_code"), "amount": ("amount",),
    },
    "ticket": {"created": ("created_at",), "solved": ("solved_at",), "status": ("status",),
               "priority": ("priority",)},
    "satisfaction": {"created": ("created_at", "updated_at"), "type": ("type",), "score": ("score",)},
    "usage": {"day": ("date", "day"), "active_users": ("active_users",), "logins": ("logins",),
              "events": ("events",)},
    "opportunity": {"created": ("created_at", "created_date"), "closed": ("close_date", "closed_at"),
                    "type": ("type",), "stage": ("stage", "stage_name"), "amount": ("amount",),
                    "won": ("is_won", "won")},
    "contact": {"created": ("created_at",)},
    "payment_method": {"created": ("created_at", "created")},
}
ACCOUNT_KEYS: dict[str, Sequence[Key]] = {
    "created": ("created_at", "created"),
    "last_login": (("usage", "last_login"), "last_login"),
    "active_users": (("usage", "active_users"), "active_users"),
    "nps": ("nps",),
    "lifecycle_stage": ("lifecycle_stage",),
    "last_activity": ("last_activity_at", "last_activity_date", ("usage", "last_activity")),
}
BOOLEAN_FIELDS = {"cancel_at_period_end", "won"}
TEXT_FIELDS = BOOLEAN_FIELDS | {"score"}   # read as text, converted in Python (a CSAT score is good/bad)
# Kinds whose rows are limited to the window when `since` is given, and what "recent" means.
WINDOWED = ("ticket", "usage", "invoice", "charge", "contact")
TIME_KEY = {"ticket": "created", "usage": "day", "invoice": "created", "charge": "created", "contact": "created"}
BILLING_KINDS, HELPDESK_KINDS, USAGE_KINDS, CRM_KINDS = (
    {"subscription", "invoice", "charge"}, {"ticket"}, {"usage"}, {"opportunity"})


class jvalue(FunctionElement[Any]):
    """The JSON value at a path: its native type on SQLite (json_extract), text on PostgreSQL (#>>)."""

    type = String()
    inherit_cache = True


@compiles(jvalue, "sqlite")
def _jvalue_sqlite(element: jvalue, compiler: Any, **kw: Any) -> str:
    column, sqlite_path, _ = list(element.clauses)
    return f"json_extract({compiler.process(column, **kw)}, {compiler.process(sqlite_path, **kw)})"


@compiles(jvalue, "postgresql")
def _jvalue_postgresql(element: jvalue, compiler: Any, **kw: Any) -> str:
    column, _, pg_path = list(element.clauses)
    return f"({compiler.process(column, **kw)} #>> CAST({compiler.process(pg_path, **kw)} AS TEXT[]))"


def _json(table: Any, key: Key) -> ColumnElement[Any]:
    keys = (key,) if isinstance(key, str) else tuple(key)
    sqlite_path = "$" + "".join(f'."{k}"' for k in keys)
    pg_path = "{" + ",".join(keys) + "}"
    return jvalue(table.c.data, literal(sqlite_path), literal(pg_path))


def _field(table: Any, keys: Sequence[Key], kind: str = "s") -> ColumnElement[Any]:
    """The first present of several candidate keys. Times stay text (numpy parses them fast, see
    `hub.facts.times`); numbers are numbers in SQL (`number`)."""
    values = [_json(table, key) for key in keys]
    value = values[0] if len(values) == 1 else func.coalesce(*values)
    return number(value) if kind == "f" else value


class number(FunctionElement[float]):
    """A JSON value as a number: SQLite's json_extract already gives one; on PostgreSQL the text is
    cast when it looks like a number (anything else becomes NULL, never an error)."""

    type = Float()
    inherit_cache = True


@compiles(number, "sqlite")
def _number_sqlite(element: number, compiler: Any, **kw: Any) -> str:
    return compiler.process(list(element.clauses)[0], **kw)


@compiles(number, "postgresql")
def _number_postgresql(element: number, compiler: Any, **kw: Any) -> str:
    value = compiler.process(list(element.clauses)[0], **kw)
    return (f"(CASE WHEN {value} ~ '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$' "
            f"THEN CAST({value} AS DOUBLE PRECISION) END)")


def _prepare(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")  # naive timestamps are UTC


def _as_bool(value: Any) -> float:
    if value is None:
        return float("nan")
    return 1.0 if str(value).lower() in ("1", "true", "t", "yes") else 0.0


def numbers(values: Sequence[Any]) -> np.ndarray:
    """Values -> floats (NaN for None and anything not a number); numpy's C path when it can."""
    try:
        return np.array(values, dtype=float)
    except (ValueError, TypeError):
        return np.array([_as_number(v) for v in values], dtype=float)


def _as_number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _columns(names: Sequence[str], schema: dict[str, str], raw: Sequence[Sequence[Any]]) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for name, values in zip(names, raw, strict=True):
        kind = schema[name]
        if name in BOOLEAN_FIELDS:
            columns[name] = np.array([_as_bool(v) for v in values], dtype=float)
        elif kind == "t":
            columns[name] = times(values)
        elif kind == "f":
            columns[name] = numbers(values)
        elif kind in ("s", "k"):
            array = np.array(values, dtype=object)
            array[np.equal(array, None)] = ""
            columns[name] = array.astype(str) if kind == "s" else array.astype(str).astype(object)
        else:
            columns[name] = column_from_values(kind, values)
    return columns


def _frame(kind: str, rows: Sequence[Sequence[Any]], names: Sequence[str], index: CustomerIndex) -> Frame:
    if not rows:
        return Frame.empty(kind)
    transposed = list(zip(*rows, strict=True))
    customer_ids, raw = transposed[0], transposed[1:]
    position = index.positions(customer_ids)
    frame = Frame(kind, position, _columns(names, FRAME_SCHEMA[kind], raw))
    known = position >= 0
    return (frame if known.all() else frame.take(known)).sorted()


def _linked(kind: str, *columns: ColumnElement[Any]) -> Any:
    """SELECT customer_id, columns... of the records of `kind`, via their parent account's link."""
    return (select(links.c.customer_id, *columns)
            .select_from(source.join(links, and_(links.c.connector == source.c.connector,
                                                 links.c.kind == "account",
                                                 links.c.external_id == source.c.account_ref)))
            .where(source.c.kind == kind, source.c.deleted.is_(False)))


def _window(kind: str, since: float | None) -> ColumnElement[bool] | None:
    """Rows of `kind` recent enough to matter. Compares ISO-8601 UTC text (the records contract), so
    the database needs no date parsing: "2025-03-01T10:00:00Z" >= "2025-02-01T00:00:00"."""
    if since is None or kind not in WINDOWED:
        return None
    keys = FIELD_KEYS[kind]
    floor = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    recent = _field(source, keys[TIME_KEY[kind]]) >= floor
    if kind == "ticket":
        solved = _field(source, keys["solved"])
        return or_(recent, solved.is_(None), solved >= floor)
    if kind == "invoice":
        return or_(recent, _json(source, "status").in_(("open", "uncollectible")))
    if kind == "charge":
        return or_(recent, _json(source, "status") == "failed")
    return recent


class CustomerIndex:
    """Customer id -> row in the table, for whole columns at once (sorted search in numpy)."""

    def __init__(self, ids: np.ndarray) -> None:
        keys = ids.astype(str)
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]

    def __len__(self) -> int:
        return len(self.order)

    def positions(self, customer_ids: Sequence[Any]) -> np.ndarray:
        """Each id's row, -1 for ids not in the table."""
        if not len(customer_ids) or not len(self.sorted):
            return np.full(len(customer_ids), -1, dtype=np.int64)
        wanted = np.array(customer_ids, dtype=str)
        found = np.minimum(np.searchsorted(self.sorted, wanted), len(self.sorted) - 1)
        return np.where(self.sorted[found] == wanted, self.order[found], -1).astype(np.int64)


def _fetch(connection: Connection, stmt: Any) -> list[Any]:
    """All rows as plain tuples, straight from the driver (no per-row Row objects)."""
    return connection.execute(stmt).cursor.fetchall()


def _restrict(stmt: Any, column: Any, only: Sequence[str] | None) -> Any:
    return stmt if only is None else stmt.where(column.in_(list(only)))


def load_facts(connection: Connection, *, since: datetime | float | None = None, now: datetime | None = None,
               customers: Sequence[str] | None = None) -> FactTable:
    """Every customer's facts (or only `customers`'); kinds that grow with time only from `since` on."""
    _prepare(connection)
    since_s = since.timestamp() if isinstance(since, datetime) else since
    observed = (now or datetime.now(UTC)).timestamp()
    only = customers
    listed = connection.execute(_restrict(select(Customer.id, Customer.name).order_by(Customer.id), Customer.id, only)).all()
    ids = np.array([c[0] for c in listed], dtype=object)
    index = CustomerIndex(ids)
    columns = _account_columns(connection, index, only)
    columns["name"] = np.array([c[1] or "" for c in listed], dtype=object)
    frames: dict[str, Frame] = {}
    for kind, keys in FIELD_KEYS.items():
        names = list(keys)
        fields = [_field(source, keys[name], "s" if name in TEXT_FIELDS else FRAME_SCHEMA[kind][name])
                  for name in names]
        extra_names: list[str] = []
        stmt = _restrict(_linked(kind, *fields), links.c.customer_id, only)
        if kind == "subscription":
            stmt = stmt.add_columns(source.c.connector, source.c.external_id)
            extra_names = ["connector", "_external_id"]
        if kind == "invoice":
            stmt = stmt.add_columns(source.c.connector)
            extra_names = ["_connector"]
        if kind == "ticket":   # signals are computed beforehand by `refresh_ticket_signals`
            stmt = stmt.outerjoin(signals, signals.c.record_id == source.c.id).add_columns(
                signals.c.sentiment, signals.c.topic)
            extra_names = ["sentiment", "topic"]
        window = _window(kind, since_s)
        if window is not None:
            stmt = stmt.where(window)
        rows = _fetch(connection, stmt)
        if kind == "satisfaction":
            rows += _satisfaction_via_ticket(connection, fields, only)
        frames[kind] = _typed_frame(kind, rows, names + extra_names, index)
    frames["dunning"] = _dunning(connection, index, only)
    frames["mrr_change"] = _mrr_changes(connection, index, only)
    _mark_sources(connection, index, columns, only)
    return FactTable(ids, columns, frames, observed)


def _typed_frame(kind: str, rows: Sequence[Sequence[Any]], names: list[str], index: CustomerIndex) -> Frame:
    schema = dict(FRAME_SCHEMA[kind])
    schema.update({"_external_id": "k", "_connector": "k"})
    if kind == "satisfaction":
        rows = [(*r[:3], _satisfaction_score(r[2], r[3])) for r in rows]
    if not rows:
        return Frame.empty(kind)
    transposed = list(zip(*rows, strict=True))
    position = index.positions(transposed[0])
    columns = _columns(names, schema, transposed[1:])
    if kind == "subscription":   # ids unique across connectors: "<connector>:<external id>"
        columns["id"] = np.array([f"{c}:{e}" for c, e in zip(columns["connector"], columns.pop("_external_id"),
                                                              strict=True)], dtype=object)
    if kind == "invoice":
        connectors = columns.pop("_connector")
        columns["subscription_id"] = np.array(
            [f"{c}:{s}" if s else "" for c, s in zip(connectors, columns["subscription_id"], strict=True)],
            dtype=object)
    frame = Frame(kind, position, columns)
    known = position >= 0
    return (frame if known.all() else frame.take(known)).sorted()


def _satisfaction_score(kind: Any, score: Any) -> float | None:
    """CSAT good/bad -> 1/0; an NPS answer stays 0..10."""
    if score in ("good", "bad"):
        return 1.0 if score == "good" else 0.0
    try:
        return float(score) if score is not None else None
    except (TypeError, ValueError):
        return None


def _satisfaction_via_ticket(connection: Connection, fields: list[ColumnElement[Any]],
                             only: Sequence[str] | None) -> list[Any]:
    """CSAT ratings without an organisation belong to the customer of the rated ticket."""
    ticket = source.alias("rated_ticket")
    stmt = (select(links.c.customer_id, *fields)
            .select_from(source.join(ticket, and_(ticket.c.connector == source.c.connector,
                                                  ticket.c.kind == "ticket",
                                                  ticket.c.external_id == _json(source, "ticket_id")))
                         .join(links, and_(links.c.connector == ticket.c.connector, links.c.kind == "account",
                                           links.c.external_id == ticket.c.account_ref)))
            .where(source.c.kind == "satisfaction", source.c.deleted.is_(False), source.c.account_ref.is_(None)))
    return list(connection.execute(_restrict(stmt, links.c.customer_id, only)).all())


def _account_columns(connection: Connection, index: CustomerIndex, only: Sequence[str] | None) -> dict[str, np.ndarray]:
    """Customer-level facts from every linked account record: the earliest `created`, the newest
    snapshot values (a customer may have a CRM account, a helpdesk org and a billing customer)."""
    n = len(index)
    names = list(ACCOUNT_KEYS)
    stmt = (select(links.c.customer_id, source.c.synced_at,
                   *[_field(source, ACCOUNT_KEYS[name], CUSTOMER_SCHEMA[name]) for name in names])
            .select_from(source.join(links, and_(links.c.connector == source.c.connector,
                                                 links.c.kind == "account",
                                                 links.c.external_id == source.c.external_id)))
            .where(source.c.kind == "account", source.c.deleted.is_(False)))
    columns = {name: column_from_values(kind, [None] * n) for name, kind in CUSTOMER_SCHEMA.items()}
    rows = _fetch(connection, _restrict(stmt, links.c.customer_id, only))
    if not rows:
        return columns
    transposed = list(zip(*rows, strict=True))
    position = index.positions(transposed[0])
    known = position >= 0
    position = position[known]
    synced = times(transposed[1])[known]
    has_snapshot = np.zeros(len(position), dtype=bool)
    for name, values in zip(names, transposed[2:], strict=True):
        kind = CUSTOMER_SCHEMA[name]
        if kind in ("s", "k"):
            texts = np.array(["" if v is None else str(v) for v in values], dtype=object)[known]
            present = texts != ""
            # any non-empty value wins (one system usually owns a field); later rows overwrite
            target = columns[name].astype(object)
            target[position[present]] = texts[present]
            columns[name] = target.astype(str) if kind == "s" else target
        else:
            parsed = (times(values) if kind == "t" else numbers(values))[known]
            present = ~np.isnan(parsed)
            combined = np.full(n, np.inf if name == "created" else -np.inf)
            (np.minimum if name == "created" else np.maximum).at(combined, position[present], parsed[present])
            columns[name] = np.where(np.isinf(combined), np.nan, combined)
        if name != "created":
            has_snapshot |= present
    observed = np.full(n, -np.inf)
    np.maximum.at(observed, position[has_snapshot], np.nan_to_num(synced[has_snapshot], nan=-np.inf))
    columns["observed"] = np.where(np.isinf(observed), np.nan, observed)
    return columns


def _mark_sources(connection: Connection, index: CustomerIndex, columns: dict[str, np.ndarray],
                  only: Sequence[str] | None) -> None:
    """has_billing / has_helpdesk / has_usage / has_crm: linked to a connector that yields that kind."""
    kinds_of: dict[str, set[str]] = {}
    for connector, kind in connection.execute(select(source.c.connector, source.c.kind).distinct()):
        kinds_of.setdefault(connector, set()).add(kind)
    flags = {"has_billing": BILLING_KINDS, "has_helpdesk": HELPDESK_KINDS, "has_usage": USAGE_KINDS,
             "has_crm": CRM_KINDS}
    for flag, wanted in flags.items():
        connectors = [c for c, kinds in kinds_of.items() if kinds & wanted]
        if not connectors:
            continue
        linked = connection.execute(_restrict(select(links.c.customer_id).where(
            links.c.kind == "account", links.c.connector.in_(connectors)).distinct(), links.c.customer_id, only))
        position = index.positions([c for (c,) in linked])
        columns[flag][position[position >= 0]] = True


def _dunning(connection: Connection, index: CustomerIndex, only: Sequence[str] | None) -> Frame:
    table = DunningCase.__table__
    rows = connection.execute(_restrict(select(table.c.customer_id, table.c.opened_at, table.c.closed_at, table.c.status,
                                               table.c.decline_code, table.c.amount_due, table.c.recovered_by,
                                               table.c.connector, table.c.details)
                                        .where(table.c.customer_id.is_not(None)), table.c.customer_id, only)).all()
    converted = [(r[0], _ts(r[1]), _ts(r[2]), r[3], r[4], r[5], r[6], _case_subscription(r[7], r[8])) for r in rows]
    return _frame("dunning", converted, ["opened", "closed", "status", "decline_code", "amount_due", "recovered_by",
                                         "subscription_id"], index)


def _case_subscription(connector: str, details: Any) -> str | None:
    """The case's subscription as the subscription frame names it ("<connector>:<id>")."""
    subscription = (details or {}).get("subscription_id") if isinstance(details, dict) else None
    return f"{connector}:{subscription}" if subscription else None


def _mrr_changes(connection: Connection, index: CustomerIndex, only: Sequence[str] | None) -> Frame:
    table = MrrSnapshot.__table__
    subscription = source.alias("snapshot_subscription")
    stmt = (select(links.c.customer_id, table.c.connector, table.c.subscription_id, table.c.observed_at,
                   table.c.mrr, table.c.quantity, table.c.plan)
            .select_from(table.join(subscription, and_(subscription.c.connector == table.c.connector,
                                                       subscription.c.kind == "subscription",
                                                       subscription.c.external_id == table.c.subscription_id))
                         .join(links, and_(links.c.connector == subscription.c.connector,
                                           links.c.kind == "account",
                                           links.c.external_id == subscription.c.account_ref))))
    rows = [(r[0], f"{r[1]}:{r[2]}", _ts(r[3]), r[4], r[5], r[6])
            for r in connection.execute(_restrict(stmt, links.c.customer_id, only))]
    return _frame("mrr_change", rows, ["subscription_id", "observed", "mrr", "quantity", "plan"], index)


def _ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def refresh_ticket_signals(connection: Connection, since: float | None = None, *, batch: int = 2000) -> int:
    """Compute sentiment and topic for tickets whose current version has none; returns how many."""
    stale = (select(source.c.id, source.c.checksum, _json(source, "subject"), _json(source, "description"),
                    _json(source, "satisfaction_comment"))
             .select_from(source.outerjoin(signals, signals.c.record_id == source.c.id))
             .where(source.c.kind == "ticket", source.c.deleted.is_(False),
                    or_(signals.c.record_id.is_(None), signals.c.checksum != source.c.checksum)))
    window = _window("ticket", since)
    if window is not None:
        stale = stale.where(window)
    rows = connection.execute(stale).all()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(signals)
    upsert = insert.on_conflict_do_update(index_elements=["record_id"], set_={
        "checksum": insert.excluded.checksum, "sentiment": insert.excluded.sentiment,
        "topic": insert.excluded.topic})
    for start in range(0, len(rows), batch):
        values = [{"record_id": r[0], "checksum": r[1],
                   "sentiment": textsignals.sentiment(textsignals.ticket_text(r[2], r[3], r[4])),
                   "topic": textsignals.topic_key(r[2] or "")} for r in rows[start:start + batch]]
        connection.execute(upsert, values)
    return len(rows)

