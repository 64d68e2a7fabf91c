"""Running a parsed SOQL query against the sandbox store, and the query locators of its batches.

Every condition is compiled to a Python predicate and evaluated on each candidate record. Which
records are candidates comes from `lower_bound`: when the WHERE clause implies a minimum
(SystemModstamp, Id) — the connector's incremental and keyset shapes do — the scan bisects to it
in the table's sorted `order` instead of starting at the first record; when the ORDER BY is
`SystemModstamp, Id` too, the records come out sorted and a LIMIT stops the scan early.
Text comparisons ignore case (Salesforce's collation); ids compare exactly, and a 15-character
id literal equals the 18-character id it abbreviates.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .sandbox_schema import ID_TYPES, TEXT_TYPES, SObject, epoch_of
from .sandbox_soql import Comparison, Condition, Junction, Literal, Query
from .sandbox_store import OrgStore

Predicate = Callable[[dict[str, Any]], bool]
Key = tuple[float, str]
HIGHEST = "\U0010ffff"
NATURAL_ORDER = (("SystemModstamp", False), ("Id", False))
LITERAL_KINDS = {"datetime": {"datetime"}, "date": {"date"}, "boolean": {"boolean"},
                 "double": {"number"}, "currency": {"number"}, "int": {"number"}}


class QueryError(ValueError):
    """400 with `code` (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE) and this message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def resolve(obj: SObject, name: str) -> str:
    found = obj.resolve(name)
    if found is None:
        raise QueryError("INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'. If you are attempting "
                         "to use a custom field, be sure to append the '__c' after the custom field name.")
    return found


def comparable(kind: str, value: Any) -> Any:
    """A stored value in the form comparisons use."""
    if value is None:
        return None
    if kind == "datetime":
        return epoch_of(str(value))
    if kind in TEXT_TYPES:
        return str(value).casefold()
    return value


def literal_value(obj: SObject, name: str, kind: str, literal: Literal) -> Any:
    """The literal in the field's comparison form, or MALFORMED_QUERY when the types disagree."""
    if literal.kind == "null":
        return None
    allowed = LITERAL_KINDS.get(kind, {"string"})
    if literal.kind not in allowed:
        want = {"datetime": "dateTime", "double": "number", "currency": "number"}.get(kind, kind)
        quoted = "should be enclosed in quotes" if allowed == {"string"} else "should not be enclosed in quotes"
        raise QueryError("MALFORMED_QUERY", f"value of filter criterion for field '{name}' must be of type "
                         f"{want} and {quoted}")
    return comparable(kind, literal.value) if kind != "datetime" else literal.value


def compare(op: str, left: Any, right: Any) -> bool:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if left is None or right is None:
        return False
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def compile_condition(obj: SObject, condition: Condition) -> Predicate:
    if isinstance(condition, Junction):
        parts = [compile_condition(obj, part) for part in condition.parts]
        if condition.op == "AND":
            return lambda record: all(part(record) for part in parts)
        return lambda record: any(part(record) for part in parts)
    name = resolve(obj, condition.field)
    kind = obj.fields[name]
    literals = condition.value if isinstance(condition.value, tuple) else (condition.value,)
    values = [literal_value(obj, name, kind, lit) for lit in literals]

    def get(record: dict[str, Any], short: bool) -> Any:
        value = comparable(kind, record.get(name))
        return value[:15] if short and isinstance(value, str) else value

    if condition.op == "IN":
        exact = {v for v in values if not (kind in ID_TYPES and isinstance(v, str) and len(v) == 15)}
        short = {v for v in values if kind in ID_TYPES and isinstance(v, str) and len(v) == 15}
        return lambda record: get(record, False) in exact or (bool(short) and get(record, True) in short)
    op, right = condition.op, values[0]
    short = kind in ID_TYPES and isinstance(right, str) and len(right) == 15 and op in ("=", "!=")
    return lambda record: compare(op, get(record, short), right)


def lower_bound(obj: SObject, condition: Condition | None) -> Key | None:
    """A (SystemModstamp, Id) that every record matching `condition` is at or after (None: unknown)."""
    if condition is None:
        return None
    if isinstance(condition, Comparison):
        if obj.resolve(condition.field) != "SystemModstamp" or not isinstance(condition.value, Literal) \
                or condition.value.kind != "datetime":
            return None
        stamp = condition.value.value
        return {">=": (stamp, ""), "=": (stamp, ""), ">": (stamp, HIGHEST)}.get(condition.op)
    bounds = [lower_bound(obj, part) for part in condition.parts]
    if condition.op == "OR":
        return None if any(b is None for b in bounds) else min(bounds)  # type: ignore[type-var]
    known = [b for b in bounds if b is not None]
    equal = [p for p in condition.parts if isinstance(p, Comparison) and p.op == "="
             and obj.resolve(p.field) == "SystemModstamp" and isinstance(p.value, Literal)]
    after_id = [p for p in condition.parts if isinstance(p, Comparison) and p.op in (">", ">=")
                and obj.resolve(p.field) == "Id" and isinstance(p.value, Literal) and p.value.kind == "string"]
    if equal and after_id:   # SystemModstamp = t AND Id > 'x': the keyset condition
        literal = after_id[0].value
        assert isinstance(literal, Literal)
        known.append((equal[0].value.value, literal.value + ("\0" if after_id[0].op == ">" else "")))  # type: ignore[union-attr]
    return max(known) if known else None


def sort_key(obj: SObject, name: str) -> Callable[[dict[str, Any]], Any]:
    """Nulls first when ascending (and so last when descending), as Salesforce sorts by default."""
    kind = obj.fields[name]

    def key(record: dict[str, Any]) -> tuple[bool, Any]:
        value = comparable(kind, record.get(name))
        return value is not None, value

    return key


def run(store: OrgStore, query: Query, *, include_deleted: bool) -> tuple[str, list[str], list[dict[str, Any]]]:
    """(object, selected fields, matching records in order). Callers hold the store's lock."""
    sobject = next((name for name in store.objects if name.lower() == query.sobject.lower()), None)
    if sobject is None:
        raise QueryError("INVALID_TYPE", f"sObject type '{query.sobject}' is not supported.")
    obj = store.objects[sobject]
    fields = [resolve(obj, name) for name in query.fields]
    order = tuple((resolve(obj, name), descending) for name, descending in query.order_by)
    matches = compile_condition(obj, query.where) if query.where is not None else None
    table = store.table(sobject)
    bound = lower_bound(obj, query.where)
    start = bisect.bisect_left(table.order, bound) if bound is not None else 0
    natural = order == NATURAL_ORDER or not order
    found = (table.records[record_id] for _, record_id in itertools.islice(table.order, start, None))
    selected = (r for r in found if (include_deleted or not r.get("IsDeleted")) and (matches is None or matches(r)))
    if natural and query.limit is not None:
        return sobject, fields, list(itertools.islice(selected, query.limit))
    records = list(selected)
    for name, descending in reversed(order if not natural else ()):
        records.sort(key=sort_key(obj, name), reverse=descending)
    return sobject, fields, records[:query.limit] if query.limit is not None else records


def serialize(sobject: str, fields: Sequence[str], record: dict[str, Any], version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/"
                                                                  f"{record['Id']}"}}
    for name in fields:
        out[name] = record.get(name)
    return out


@dataclass
class Cursor:
    sobject: str
    fields: list[str]
    records: list[dict[str, Any]]
    touched: float


@dataclass
class Cursors:
    """Open query locators (`01g...-2000`): they expire after `ttl` idle seconds, and past
    `limit` open ones the oldest is dropped, as Salesforce does."""

    clock: Callable[[], float]
    ttl: float = 900.0
    limit: int = 50
    open: dict[str, Cursor] = field(default_factory=dict)
    counter: int = 0

    def add(self, cursor: Cursor) -> str:
        self.counter += 1
        locator = f"01gSB{self.counter:010d}"
        self.open[locator] = cursor
        while len(self.open) > self.limit:
            self.open.pop(next(iter(self.open)))
        return locator

    def get(self, locator: str) -> Cursor | None:
        cursor = self.open.get(locator)
        if cursor is None or self.clock() - cursor.touched > self.ttl:
            self.open.pop(locator, None)
            return None
        cursor.touched = self.clock()
        return cursor

    def expire_all(self) -> None:
        self.open.clear()


def batch(cursors: Cursors, cursor: Cursor, locator: str | None, offset: int, size: int,
          version: str, resource: str = "query") -> dict[str, Any]:
    """One batch of a query result: `{"totalSize", "done", "nextRecordsUrl"?, "records"}`
    (`resource` is `query` or `queryAll`, the path the next batch is asked for on)."""
    rows = cursor.records[offset:offset + size]
    end = offset + len(rows)
    done = end >= len(cursor.records)
    body: dict[str, Any] = {"totalSize": len(cursor.records), "done": done,
                            "records": [serialize(cursor.sobject, cursor.fields, r, version) for r in rows]}
    if not done:
        locator = locator or cursors.add(cursor)
        body["nextRecordsUrl"] = f"/services/data/v{version}/{resource}/{locator}-{end}"
    elif locator:
        cursors.open.pop(locator, None)
    return body
