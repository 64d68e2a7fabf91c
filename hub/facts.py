"""Per-customer facts in columns, as of any time: the one input of health, churn and metrics.

A `FactTable` holds every customer (`ids` plus customer-level `columns`) and one `Frame` per kind
of fact (subscriptions, invoices, tickets, ...): numpy columns of equal length plus `customer`,
the row's customer index, sorted by customer. Times are float seconds since the epoch (NaN when
unknown); text columns are object arrays ("" when absent). `FRAME_SCHEMA` lists every column.

Facts carry their own timestamps, so "as of T" is a mask, not another query: a ticket counts when
`created <= T`, a subscription is live when `start <= T < end`. The same table therefore scores
today, 30 days ago and every date of a backtest. Facts that have no history (CRM snapshot fields
such as `last_login`) count only near the time they were read (`observed`).

`CustomerFacts` is one customer's slice of a table (what factor plugins and explanations read);
`FactTable.build(...)` makes a table from plain rows, which is how tests describe customers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

DAY = 86400.0
NAN = float("nan")

# Column types: t = time (epoch seconds), f = number, s = short text (numpy unicode: fast to
# compare), k = identifier (object array: fast to look up), i = integer key.
FRAME_SCHEMA: dict[str, dict[str, str]] = {
    "subscription": {"id": "k", "connector": "s", "start": "t", "canceled_at": "t", "ended_at": "t",
                     "trial_end": "t", "status": "s", "mrr": "f", "currency": "s", "plan": "s",
                     "quantity": "f", "cancel_at_period_end": "f", "reason": "s", "feedback": "s"},
    "invoice": {"id": "k", "subscription_id": "k", "created": "t", "status": "s", "amount_due": "f",
                "amount_paid": "f", "attempt_count": "f", "paid_at": "t"},
    "charge": {"created": "t", "status": "s", "decline_code": "s", "amount": "f"},
    "ticket": {"created": "t", "solved": "t", "status": "s", "priority": "s", "sentiment": "f", "topic": "i"},
    "satisfaction": {"created": "t", "type": "s", "score": "f"},   # csat: good=1 bad=0; nps: 0..10
    "usage": {"day": "t", "active_users": "f", "logins": "f", "events": "f"},
    "opportunity": {"created": "t", "closed": "t", "type": "s", "stage": "s", "amount": "f", "won": "f"},
    "contact": {"created": "t"},
    "payment_method": {"created": "t"},
    # subscription_id: the failed invoice's subscription, "<connector>:<id>" like subscription ids
    "dunning": {"opened": "t", "closed": "t", "status": "s", "decline_code": "s", "amount_due": "f",
                "recovered_by": "s", "subscription_id": "k"},
    "mrr_change": {"subscription_id": "k", "observed": "t", "mrr": "f", "quantity": "f", "plan": "s"},
}
CUSTOMER_SCHEMA: dict[str, str] = {
    "name": "k", "created": "t",
    # CRM snapshot fields, valid near `observed` (when the account record was synced)
    "last_login": "t", "active_users": "f", "nps": "f", "lifecycle_stage": "s", "last_activity": "t",
    "observed": "t",
    # linked to a connector that yields that kind (no tickets + a helpdesk = no support load)
    "has_billing": "b", "has_helpdesk": "b", "has_usage": "b", "has_crm": "b",
}
# Subscription statuses that mean it is over (`unpaid`: Stripe keeps it, but nothing is collected).
ENDED_STATUSES = ("canceled", "incomplete_expired", "unpaid", "ended")


def to_epoch(value: Any) -> float:
    """A datetime, date, ISO-8601 string or epoch number -> epoch seconds (NaN for None/"")."""
    if value is None or value == "":
        return NAN
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    text = str(value).strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)        # epoch seconds written as text
    return to_epoch(datetime.fromisoformat(text.replace("Z", "+00:00")))


def times(values: Sequence[Any]) -> np.ndarray:
    """Many timestamps -> epoch seconds (NaN for None), fast: numpy parses ISO-8601 text and epoch
    numbers in C; anything it refuses goes value by value through `to_epoch`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # numpy deprecates parsing "Z"/offsets, but parses them right
            parsed = np.array(values, dtype="datetime64[s]")
        out = parsed.astype(np.int64).astype(float)
        out[np.isnat(parsed)] = np.nan
        return out
    except (ValueError, TypeError, OverflowError):
        return np.array([to_epoch(v) for v in values], dtype=float)


def from_epoch(value: float) -> datetime | None:
    return None if value is None or np.isnan(value) else datetime.fromtimestamp(float(value), UTC)


def _empty(kind: str, n: int) -> np.ndarray:
    if kind == "s":
        return np.full(n, "", dtype="U1")
    if kind == "k":
        return np.full(n, "", dtype=object)
    if kind == "b":
        return np.zeros(n, dtype=bool)
    if kind == "i":
        return np.zeros(n, dtype=np.int64)
    return np.full(n, np.nan)


def _column(kind: str, values: Sequence[Any]) -> np.ndarray:
    if kind == "t":
        return times(values)
    if kind in ("s", "k"):
        texts = ["" if v is None else str(v) for v in values]
        return np.array(texts, dtype=object) if kind == "k" else np.array(texts, dtype=str).reshape(len(texts))
    if kind == "b":
        return np.array([bool(v) for v in values], dtype=bool)
    if kind == "i":
        return np.array([int(v or 0) for v in values], dtype=np.int64)
    return np.array([NAN if v is None else float(v) for v in values], dtype=float)


def column_from_values(kind: str, values: Sequence[Any]) -> np.ndarray:
    """Build a typed column from plain Python values (used by the database loader too)."""
    return _column(kind, values)


class Frame:
    """Rows of one kind of fact; `customer[i]` is row i's customer index, ascending."""

    __slots__ = ("kind", "customer", "columns")

    def __init__(self, kind: str, customer: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
        self.kind = kind
        self.customer = np.asarray(customer, dtype=np.int64)
        schema = FRAME_SCHEMA.get(kind, {})
        n = len(self.customer)
        self.columns = {name: columns[name] if name in columns else _empty(t, n) for name, t in schema.items()}
        self.columns.update({k: v for k, v in columns.items() if k not in self.columns})

    @classmethod
    def empty(cls, kind: str) -> Frame:
        return cls(kind, np.zeros(0, dtype=np.int64), {})

    def __len__(self) -> int:
        return len(self.customer)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def take(self, rows: np.ndarray | slice) -> Frame:
        return Frame(self.kind, self.customer[rows], {k: v[rows] for k, v in self.columns.items()})

    def sorted(self) -> Frame:
        order = np.argsort(self.customer, kind="stable")
        return self if np.all(order == np.arange(len(order))) else self.take(order)


@dataclass
class FactTable:
    """Every customer's facts; see the module docstring."""

    ids: np.ndarray
    columns: dict[str, np.ndarray]
    frames: dict[str, Frame]
    observed_at: float                       # when the facts were read
    _offsets: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _index: dict[str, int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name, kind in CUSTOMER_SCHEMA.items():
            self.columns.setdefault(name, _empty(kind, n))
        for kind in FRAME_SCHEMA:
            self.frames.setdefault(kind, Frame.empty(kind))

    @property
    def n(self) -> int:
        return len(self.ids)

    def frame(self, kind: str) -> Frame:
        return self.frames[kind]

    def index_of(self, customer_id: str) -> int:
        if self._index is None:
            self._index = {str(c): i for i, c in enumerate(self.ids)}
        return self._index[customer_id]

    def rows_of(self, kind: str, i: int) -> slice:
        """The rows of customer `i` in frame `kind` (frames are sorted by customer)."""
        offsets = self._offsets.get(kind)
        if offsets is None:
            offsets = np.searchsorted(self.frames[kind].customer, np.arange(self.n + 1)).tolist()
            self._offsets[kind] = offsets
        return slice(offsets[i], offsets[i + 1])

    def subset(self, i: int) -> FactTable:
        """A one-customer table (customer index 0)."""
        frames = {}
        for kind, frame in self.frames.items():
            part = frame.take(self.rows_of(kind, i))
            part.customer = np.zeros(len(part), dtype=np.int64)
            frames[kind] = part
        return FactTable(self.ids[i:i + 1], {k: v[i:i + 1] for k, v in self.columns.items()}, frames,
                         self.observed_at)

    def customer(self, i: int | str) -> CustomerFacts:
        return CustomerFacts(self.subset(self.index_of(i) if isinstance(i, str) else i))

    @classmethod
    def build(cls, customers: Sequence[Mapping[str, Any]], *, observed_at: Any = None,
              **frames: Iterable[Mapping[str, Any]]) -> FactTable:
        """A table from plain rows: `build([{"id": "c1", ...}], ticket=[{"customer": "c1", ...}])`.

        Times may be datetimes, dates or ISO strings. A ticket row with `text` and no `sentiment`
        gets its sentiment and topic computed from the text, as the database loader does.
        """
        ids = np.array([str(c["id"]) for c in customers], dtype=object)
        index = {c: i for i, c in enumerate(ids)}
        columns = {name: _column(kind, [c.get(name) for c in customers]) for name, kind in CUSTOMER_SCHEMA.items()}
        built = {}
        for kind, rows in frames.items():
            if kind not in FRAME_SCHEMA:
                raise ValueError(f"unknown fact kind {kind!r} (known: {', '.join(FRAME_SCHEMA)})")
            rows = [dict(r) for r in rows]
            if kind == "ticket":
                rows = [_with_text_signals(r) for r in rows]
            customer = np.array([index[str(r["customer"])] for r in rows], dtype=np.int64)
            cols = {name: _column(t, [r.get(name) for r in rows]) for name, t in FRAME_SCHEMA[kind].items()}
            built[kind] = Frame(kind, customer, cols).sorted()
        observed = to_epoch(observed_at) if observed_at is not None else datetime.now(UTC).timestamp()
        return cls(ids, columns, built, observed)


def _with_text_signals(row: dict[str, Any]) -> dict[str, Any]:
    from hub import textsignals

    if row.get("sentiment") is None and (row.get("text") or row.get("subject")):
        row["sentiment"] = textsignals.sentiment(row.get("text") or row.get("subject") or "")
    if not row.get("topic") and row.get("subject"):
        row["topic"] = textsignals.topic_key(row["subject"])
    return row


class CustomerFacts:
    """One customer's facts: a one-customer `FactTable` with row-wise accessors for plugins."""

    def __init__(self, table: FactTable) -> None:
        if table.n != 1:
            raise ValueError("CustomerFacts wraps a one-customer table")
        self.table = table

    @property
    def customer_id(self) -> str:
        return str(self.table.ids[0])

    def value(self, column: str) -> Any:
        """A customer-level column (`name`, `created`, `last_login`, ...); times as datetimes."""
        raw = self.table.columns[column][0]
        if CUSTOMER_SCHEMA.get(column) == "t":
            return from_epoch(raw)
        return raw.item() if isinstance(raw, np.generic) else raw

    def rows(self, kind: str) -> list[dict[str, Any]]:
        """Rows of one kind as dicts; times as datetimes (None when unknown), NaN numbers as None."""
        frame = self.table.frame(kind)
        schema = FRAME_SCHEMA[kind]
        out = []
        for r in range(len(frame)):
            row: dict[str, Any] = {}
            for name, kind_ in schema.items():
                value = frame[name][r]
                if kind_ == "t":
                    row[name] = from_epoch(value)
                elif kind_ in ("f",):
                    row[name] = None if np.isnan(value) else float(value)
                elif kind_ == "i":
                    row[name] = int(value)
                else:
                    row[name] = value
            out.append(row)
        return out


# ---- vectorised helpers shared by factors, churn and metrics -------------------------------------

def count_by(frame: Frame, mask: np.ndarray, n: int) -> np.ndarray:
    """How many rows per customer satisfy `mask`."""
    return np.bincount(frame.customer[mask], minlength=n).astype(float)


def sum_by(frame: Frame, values: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(frame.customer[mask], weights=np.nan_to_num(values[mask]), minlength=n)


def max_by(frame: Frame, values: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Per-customer maximum of `values` over rows in `mask` (NaN values ignored); NaN when none."""
    keep = mask & ~np.isnan(values)
    out = np.full(n, -np.inf)
    np.maximum.at(out, frame.customer[keep], values[keep])
    out[np.isneginf(out)] = np.nan
    return out


def min_by(frame: Frame, values: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    return -max_by(frame, -values, mask, n)


def last_by(frame: Frame, order: np.ndarray, values: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Per customer, `values` of the row with the greatest `order` among rows in `mask`; NaN when none."""
    rows = np.nonzero(mask & ~np.isnan(order))[0]
    out = np.full(n, np.nan)
    if len(rows):
        ranked = rows[np.lexsort((order[rows], frame.customer[rows]))]
        customers = frame.customer[ranked]
        last = np.ones(len(ranked), dtype=bool)
        last[:-1] = customers[:-1] != customers[1:]
        out[customers[last]] = values[ranked[last]]
    return out


def curve(x: np.ndarray | float, points: Sequence[Sequence[float]]) -> np.ndarray:
    """Piecewise-linear interpolation through `points` [[x, y], ...], flat beyond the ends; NaN stays NaN."""
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    x = np.asarray(x, dtype=float)
    return np.where(np.isnan(x), np.nan, np.interp(np.nan_to_num(x, nan=0.0), xs, ys))


# ---- subscriptions: liveness and MRR as of a time -----------------------------------------------

def subscription_end(table: FactTable) -> np.ndarray:
    """When each subscription stopped counting (NaN: it has not).

    `ended_at` when known; else, for a canceled or expired subscription, `canceled_at`; for an
    `unpaid` one, the newest invoice of it left open or uncollectible (when it stopped paying);
    as a last resort the time the facts were read (it was over by then).
    """
    subs = table.frame("subscription")
    end = subs["ended_at"].copy()
    over = np.isin(subs["status"], ENDED_STATUSES) & np.isnan(end)
    if not over.any():
        return end
    unpaid = over & (subs["status"] == "unpaid")
    if unpaid.any():
        invoices = table.frame("invoice")
        failing = np.isin(invoices["status"], ("open", "uncollectible"))
        newest: dict[str, float] = {}
        for sub_id, created in zip(invoices["subscription_id"][failing], invoices["created"][failing], strict=True):
            if sub_id and not np.isnan(created):
                newest[sub_id] = max(created, newest.get(sub_id, -np.inf))
        for r in np.nonzero(unpaid)[0]:
            end[r] = newest.get(subs["id"][r], NAN)
    end = np.where(over & np.isnan(end), subs["canceled_at"], end)
    return np.where(over & np.isnan(end), table.observed_at, end)


def counted_subscriptions(table: FactTable, count_trials: bool = False) -> np.ndarray:
    """Subscriptions that count as a paying relationship: not a trial that ended unconverted."""
    subs = table.frame("subscription")
    if count_trials:
        return np.ones(len(subs), dtype=bool)
    end = subscription_end(table)
    unconverted = ~np.isnan(subs["trial_end"]) & ~np.isnan(end) & (end <= subs["trial_end"] + DAY)
    return ~unconverted & ~np.isnan(subs["start"])


def live_subscriptions(table: FactTable, at: float, *, end: np.ndarray | None = None,
                       counted: np.ndarray | None = None) -> np.ndarray:
    """Subscriptions live at `at`: started at or before it and not ended by then."""
    subs = table.frame("subscription")
    end = subscription_end(table) if end is None else end
    counted = counted_subscriptions(table) if counted is None else counted
    return counted & (subs["start"] <= at) & ~(end <= at)


def live_customers(table: FactTable, at: float, **kwargs: Any) -> np.ndarray:
    subs = table.frame("subscription")
    return count_by(subs, live_subscriptions(table, at, **kwargs), table.n) > 0


def subscription_mrr_at(table: FactTable, at: float) -> np.ndarray:
    """Each subscription's MRR at `at`: the newest snapshot at or before `at` (the oldest one if
    none is that old); from the time the facts were read on, the record's own value."""
    subs = table.frame("subscription")
    mrr = np.nan_to_num(subs["mrr"].copy())
    changes = table.frame("mrr_change")
    if not len(changes) or at >= table.observed_at:
        return mrr
    row_of = {sub_id: r for r, sub_id in enumerate(subs["id"])}
    pos = np.array([row_of.get(s, -1) for s in changes["subscription_id"]], dtype=np.int64)
    keep = pos >= 0
    pos, observed, values = pos[keep], changes["observed"][keep], changes["mrr"][keep]
    order = np.lexsort((observed, pos))
    pos, observed, values = pos[order], observed[order], values[order]
    first = np.ones(len(pos), dtype=bool)
    first[1:] = pos[1:] != pos[:-1]
    mrr[pos[first]] = values[first]
    upto = np.nonzero(observed <= at)[0]
    if len(upto):
        p = pos[upto]
        last = np.ones(len(upto), dtype=bool)
        last[:-1] = p[:-1] != p[1:]
        mrr[p[last]] = values[upto[last]]
    return mrr


def customer_mrr_at(table: FactTable, at: float, **kwargs: Any) -> np.ndarray:
    """Each customer's MRR at `at` (minor units; currencies are not converted)."""
    subs = table.frame("subscription")
    live = live_subscriptions(table, at, **kwargs)
    return sum_by(subs, subscription_mrr_at(table, at), live, table.n)


def customer_start(table: FactTable) -> np.ndarray:
    """When each customer relationship began: the earlier of the CRM/billing account's creation
    and the first subscription's start."""
    subs = table.frame("subscription")
    first_sub = min_by(subs, subs["start"], np.ones(len(subs), dtype=bool), table.n)
    return np.fmin(table.columns["created"], first_sub)


def snapshot_usable(table: FactTable, at: float, tolerance_days: float) -> np.ndarray:
    """CRM snapshot fields describe the moment they were read: usable only near that moment."""
    return np.abs(table.columns["observed"] - at) <= tolerance_days * DAY
