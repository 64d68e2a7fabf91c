"""The sandbox's SOQL parser: the subset the connector sends, and a `MALFORMED_QUERY` for the rest.

    SELECT field, ... FROM Object
      [WHERE condition]          comparisons (= != <> < <= > >=) and IN (...), joined by AND or OR,
                                 grouped with parentheses (AND and OR never mix unparenthesised)
      [ORDER BY field [ASC|DESC], ...]
      [LIMIT n]

Literals: 'strings' with SOQL's escapes (\\' \\" \\\\ \\n \\r \\t \\b \\f \\uXXXX, the letters also in
upper case), unquoted datetimes (2024-01-01T00:00:00Z, optional .fff, Z or +hh:mm), dates
(2024-01-01), numbers, TRUE/FALSE and null. Keywords and names are case-insensitive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\dT])
  | (?P<number>-?\d+(?:\.\d+)?)(?![\w.])
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<quote>')
""", re.VERBOSE)
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}
KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "ORDER", "BY", "ASC", "DESC", "LIMIT", "IN", "TRUE", "FALSE",
            "NULL", "NOT", "LIKE", "GROUP", "HAVING", "OFFSET", "NULLS", "FIRST", "LAST", "INCLUDES", "EXCLUDES"}
UNSUPPORTED = {"NOT", "LIKE", "GROUP", "HAVING", "OFFSET", "NULLS", "INCLUDES", "EXCLUDES"}


class SoqlError(ValueError):
    """A query the sandbox refuses: 400 MALFORMED_QUERY with this message."""


@dataclass(frozen=True)
class Literal:
    kind: str            # "string", "datetime", "date", "number", "boolean", "null"
    value: Any           # str, float (epoch seconds for datetimes), str (ISO date), float, bool, None
    text: str


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str              # = != < <= > >= IN
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class Junction:
    op: str              # AND / OR
    parts: tuple[Condition, ...]


Condition = Comparison | Junction


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    sobject: str
    where: Condition | None
    order_by: tuple[tuple[str, bool], ...]   # (field, descending)
    limit: int | None


@dataclass(frozen=True)
class Token:
    kind: str            # keyword, name, op, punct, or a literal kind
    text: str
    value: Any
    column: int


def unescape(body: str, column: int) -> str:
    out, i = [], 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt and (nxt in "'\"\\" or nxt.lower() in "nrtbf"):
            out.append(ESCAPES[nxt.lower()])
            i += 2
        elif nxt in ("u", "U") and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2:i + 6]):
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        else:
            raise SoqlError(f"Invalid string literal at column {column}: illegal escape sequence \\{nxt}")
    return "".join(out)


def read_string(text: str, start: int) -> tuple[str, int]:
    """The literal opening at `start` (a quote): its value and the index after its closing quote."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "'":
            return unescape(text[start + 1:i], start + 1), i + 1
        i += 1
    raise SoqlError(f"unterminated string literal starting at column {start + 1}")


def parse_datetime_literal(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def tokenize(text: str) -> list[Token]:
    tokens, i = [], 0
    while i < len(text):
        found = TOKEN.match(text, i)
        if not found:
            raise SoqlError(f"unexpected token: {text[i:i + 10]!r} at column {i + 1}")
        kind, lexeme = found.lastgroup or "", found.group()
        if kind == "quote":
            value, end = read_string(text, i)
            tokens.append(Token("string", text[i:end], value, i + 1))
            i = end
            continue
        i = found.end()
        if kind == "space":
            continue
        if kind == "datetime":
            try:
                tokens.append(Token("datetime", lexeme, parse_datetime_literal(lexeme), found.start() + 1))
            except ValueError:
                raise SoqlError(f"invalid datetime {lexeme} at column {found.start() + 1}") from None
        elif kind == "date":
            try:
                tokens.append(Token("date", lexeme, date.fromisoformat(lexeme).isoformat(), found.start() + 1))
            except ValueError:
                raise SoqlError(f"invalid date {lexeme} at column {found.start() + 1}") from None
        elif kind == "number":
            tokens.append(Token("number", lexeme, float(lexeme), found.start() + 1))
        elif kind == "name" and lexeme.upper() in KEYWORDS:
            tokens.append(Token("keyword", lexeme.upper(), lexeme.upper(), found.start() + 1))
        else:
            tokens.append(Token(kind, lexeme, lexeme, found.start() + 1))
    return tokens


class Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def fail(self, expected: str) -> SoqlError:
        token = self.peek()
        if token is None:
            return SoqlError(f"unexpected end of query, expected {expected}")
        if token.kind == "keyword" and token.text in UNSUPPORTED:
            return SoqlError(f"{token.text} at column {token.column} is not supported by this sandbox")
        return SoqlError(f"unexpected token: '{token.text}' at column {token.column}, expected {expected}")

    def take(self, kind: str, text: str | None = None) -> Token:
        token = self.peek()
        if token is None or token.kind != kind or (text is not None and token.text != text):
            raise self.fail(text or kind)
        self.i += 1
        return token

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        token = self.peek()
        if token is not None and token.kind == kind and (text is None or token.text == text):
            self.i += 1
            return token
        return None

    def query(self) -> Query:
        self.take("keyword", "SELECT")
        fields = [self.take("name").text]
        while self.accept("punct", ","):
            fields.append(self.take("name").text)
        self.take("keyword", "FROM")
        sobject = self.take("name").text
        where = self.condition() if self.accept("keyword", "WHERE") else None
        order_by: list[tuple[str, bool]] = []
        if self.accept("keyword", "ORDER"):
            self.take("keyword", "BY")
            while True:
                name = self.take("name").text
                descending = bool(self.accept("keyword", "DESC"))
                if not descending:
                    self.accept("keyword", "ASC")
                order_by.append((name, descending))
                if not self.accept("punct", ","):
                    break
        limit = None
        if self.accept("keyword", "LIMIT"):
            token = self.take("number")
            if not token.text.isdigit():
                raise SoqlError(f"LIMIT must be a non-negative integer, not {token.text}")
            limit = int(token.text)
        if self.peek() is not None:
            raise self.fail("the end of the query")
        return Query(tuple(fields), sobject, where, tuple(order_by), limit)

    def condition(self) -> Condition:
        parts = [self.term()]
        joiner = None
        while (token := self.peek()) is not None and token.kind == "keyword" and token.text in ("AND", "OR"):
            if joiner is not None and token.text != joiner:
                raise SoqlError(f"unexpected token: '{token.text}' at column {token.column}: "
                                "use parentheses to combine AND with OR")
            joiner = token.text
            self.i += 1
            parts.append(self.term())
        return parts[0] if joiner is None else Junction(joiner, tuple(parts))

    def term(self) -> Condition:
        if self.accept("punct", "("):
            inner = self.condition()
            self.take("punct", ")")
            return inner
        field = self.take("name").text
        if self.accept("keyword", "IN"):
            self.take("punct", "(")
            values = [self.literal()]
            while self.accept("punct", ","):
                values.append(self.literal())
            self.take("punct", ")")
            return Comparison(field, "IN", tuple(values))
        op = self.take("op").text
        return Comparison(field, "!=" if op == "<>" else op, self.literal())

    def literal(self) -> Literal:
        token = self.peek()
        if token is None:
            raise self.fail("a value")
        if token.kind in ("string", "datetime", "date", "number"):
            self.i += 1
            return Literal(token.kind, token.value, token.text)
        if token.kind == "keyword" and token.text in ("TRUE", "FALSE"):
            self.i += 1
            return Literal("boolean", token.text == "TRUE", token.text)
        if token.kind == "keyword" and token.text == "NULL":
            self.i += 1
            return Literal("null", None, "null")
        raise self.fail("a value")


def parse(text: str) -> Query:
    """Parse one SOQL query or raise `SoqlError` (the sandbox answers 400 MALFORMED_QUERY)."""
    if not text or not text.strip():
        raise SoqlError("empty query")
    return Parser(text).query()
