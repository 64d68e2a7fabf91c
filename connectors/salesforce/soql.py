"""Writing SOQL: every value that goes into a query passes through `soql_literal`/`soql_quote`.

    select("Account", ["Id", "Name"], where=f"Name = {soql_quote(name)}")
    -> "SELECT Id, Name FROM Account WHERE Name = 'O\\'Brien'"

String literals are single-quoted with backslash escapes (`\\' \\" \\\\ \\n \\r \\t \\b \\f`); datetimes
are unquoted ISO-8601 UTC (`2024-01-01T00:00:00Z`, milliseconds only when there are some: Salesforce
stores whole seconds). Field and object names cannot be escaped, so they are checked instead
(settings and operation parameters only accept `[A-Za-z][A-Za-z0-9_]*`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\b": "\\b", "\f": "\\f"}


def soql_quote(value: str) -> str:
    """A SOQL string literal for `value`: whatever it holds, the parser sees one literal.

    Other control characters become `\\uXXXX`, so a query never carries raw ones.
    """
    out = []
    for char in str(value):
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "'" + "".join(out) + "'"


def soql_datetime(moment: datetime) -> str:
    """`2024-01-01T00:00:00Z` (UTC; `.123Z` when the moment has milliseconds)."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def soql_literal(value: object) -> str:
    """Any Python value as a SOQL literal (strings quoted and escaped)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return soql_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return soql_quote(str(value))


def in_list(field: str, values: Iterable[object]) -> str:
    """`Id IN ('001...', '001...')`."""
    return f"{field} IN ({', '.join(soql_literal(v) for v in values)})"


def after_position(modstamp: datetime, record_id: str) -> str:
    """Strictly after (SystemModstamp, Id) in `ORDER BY SystemModstamp, Id`: the keyset condition
    that resumes a scan without skipping or repeating records that share one SystemModstamp."""
    stamp = soql_datetime(modstamp)
    return f"(SystemModstamp > {stamp}) OR (SystemModstamp = {stamp} AND Id > {soql_quote(record_id)})"


def select(sobject: str, fields: Sequence[str], *, where: str | None = None,
           order_by: Sequence[str] = (), limit: int | None = None) -> str:
    query = f"SELECT {', '.join(fields)} FROM {sobject}"
    if where:
        query += f" WHERE {where}"
    if order_by:
        query += f" ORDER BY {', '.join(order_by)}"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    return query
