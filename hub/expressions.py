"""A small, safe expression language for playbook triggers (no Python eval).

    health.score < 70 and health.band_changed_to == "red"
    days_since_last_login >= 14 and not churned
    tickets_opened(7d) >= 3 or ticket_open_longer_than(5d)
    churned_days_ago in [30, 60, 90]

Grammar (lowest precedence first): `or`, `and`, `not`, comparisons (`< <= > >= == != in`),
`+ -`, unary `-`, then literals (numbers, durations like `14d`/`12h`, "strings", true, false,
null, [lists]), signal names (dotted) and signal calls with literal arguments.

`parse(text)` gives an AST; `check(ast, catalog)` verifies every signal exists with the right
arguments; errors carry the 1-based column. `evaluate(ast, columns)` works on whole columns
(numpy arrays, one value per customer), so a trigger is evaluated for every customer at once;
missing values are NaN/None and compare false.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hub.errors import HubError


class ExpressionError(HubError):
    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} (at column {column})")
        self.message, self.column = message, column


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<duration>\d+(?:\.\d+)?(?:d|h|m|w)\b)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|==|!=|<|>|\+|-|\(|\)|\[|\]|,|\.)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)
_DURATION_DAYS = {"m": 1 / 1440, "h": 1 / 24, "d": 1.0, "w": 7.0}
KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    column: int


@dataclass(frozen=True)
class Literal:
    value: Any
    column: int


@dataclass(frozen=True)
class Signal:
    name: str
    args: tuple[Any, ...]
    column: int

    @property
    def key(self) -> str:
        """The column name: `tickets_opened(7d)` -> "tickets_opened(7)"."""
        return self.name if not self.args else f"{self.name}({','.join(_fmt(a) for a in self.args)})"


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node
    column: int


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node
    column: int


Node = Literal | Signal | Unary | Binary


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)


def tokenize(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise ExpressionError(f"unexpected character {text[position]!r}", position + 1)
        kind = match.lastgroup or ""
        if kind != "ws":
            value = match.group()
            if kind == "name" and value in KEYWORDS:
                kind = value
            tokens.append(Token(kind, value, position + 1))
        position = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def take(self, *kinds: str, texts: Sequence[str] = ()) -> Token | None:
        token = self.current
        if token.kind in kinds or (texts and token.text in texts and token.kind == "op"):
            self.index += 1
            return token
        return None

    def expect(self, text: str) -> Token:
        token = self.current
        if token.text != text:
            found = "the end" if token.kind == "end" else repr(token.text)
            raise ExpressionError(f"expected {text!r}, found {found}", token.column)
        self.index += 1
        return token

    def parse(self) -> Node:
        node = self.or_()
        if self.current.kind != "end":
            raise ExpressionError(f"unexpected {self.current.text!r}", self.current.column)
        return node

    def or_(self) -> Node:
        node = self.and_()
        while (token := self.take("or")) is not None:
            node = Binary("or", node, self.and_(), token.column)
        return node

    def and_(self) -> Node:
        node = self.not_()
        while (token := self.take("and")) is not None:
            node = Binary("and", node, self.not_(), token.column)
        return node

    def not_(self) -> Node:
        if (token := self.take("not")) is not None:
            return Unary("not", self.not_(), token.column)
        return self.comparison()

    def comparison(self) -> Node:
        node = self.sum_()
        token = self.take("in") or self.take(texts=("<", "<=", ">", ">=", "==", "!="))
        if token is not None:
            node = Binary(token.text, node, self.sum_(), token.column)
            if self.current.text in ("<", "<=", ">", ">=", "==", "!="):
                raise ExpressionError("comparisons cannot be chained; use `and`", self.current.column)
        return node

    def sum_(self) -> Node:
        node = self.unary()
        while (token := self.take(texts=("+", "-"))) is not None:
            node = Binary(token.text, node, self.unary(), token.column)
        return node

    def unary(self) -> Node:
        if (token := self.take(texts=("-",))) is not None:
            return Unary("-", self.unary(), token.column)
        return self.primary()

    def primary(self) -> Node:
        token = self.current
        if token.kind in ("number", "duration", "string", "true", "false", "null"):
            self.index += 1
            return Literal(_literal(token), token.column)
        if token.text == "(":
            self.index += 1
            node = self.or_()
            self.expect(")")
            return node
        if token.text == "[":
            self.index += 1
            items = []
            while self.current.text != "]":
                item = self.primary()
                if not isinstance(item, Literal):
                    raise ExpressionError("lists may hold only literals", item.column)
                items.append(item.value)
                if not self.take(texts=(",",)):
                    break
            self.expect("]")
            return Literal(tuple(items), token.column)
        if token.kind == "name":
            self.index += 1
            name = token.text
            while self.current.text == ".":
                self.index += 1
                part = self.current
                if part.kind != "name":
                    raise ExpressionError("expected a name after '.'", part.column)
                self.index += 1
                name += "." + part.text
            args: list[Any] = []
            if self.take(texts=("(",)):
                while self.current.text != ")":
                    arg = self.primary()
                    if not isinstance(arg, Literal):
                        raise ExpressionError("signal arguments must be literals like 7d or 3", arg.column)
                    args.append(arg.value)
                    if not self.take(texts=(",",)):
                        break
                self.expect(")")
            return Signal(name, tuple(args), token.column)
        found = "the end of the expression" if token.kind == "end" else repr(token.text)
        raise ExpressionError(f"expected a value or a signal, found {found}", token.column)


def _literal(token: Token) -> Any:
    if token.kind == "number":
        return float(token.text) if "." in token.text else int(token.text)
    if token.kind == "duration":
        return float(token.text[:-1]) * _DURATION_DAYS[token.text[-1]]
    if token.kind == "string":
        return bytes(token.text[1:-1], "utf-8").decode("unicode_escape")
    return {"true": True, "false": False, "null": None}[token.kind]


def parse(text: str) -> Node:
    if not text or not text.strip():
        raise ExpressionError("the expression is empty", 1)
    return _Parser(text).parse()


@dataclass(frozen=True)
class SignalSpec:
    """A signal the trigger language knows: its name, arguments (count) and meaning."""

    name: str
    description: str
    arity: int = 0
    example: str = ""


def signals_in(node: Node) -> list[Signal]:
    if isinstance(node, Signal):
        return [node]
    if isinstance(node, Unary):
        return signals_in(node.operand)
    if isinstance(node, Binary):
        return signals_in(node.left) + signals_in(node.right)
    return []


def check(node: Node, catalog: Mapping[str, SignalSpec]) -> None:
    """Every signal must exist in `catalog` and get the number of arguments it takes."""
    _check_lists(node)
    for signal in signals_in(node):
        spec = catalog.get(signal.name)
        if spec is None:
            close = [n for n in catalog if n.split(".")[-1] == signal.name.split(".")[-1] or n.startswith(signal.name[:4])]
            hint = f"; did you mean {', '.join(sorted(close)[:3])}?" if close else ""
            raise ExpressionError(f"unknown signal {signal.name!r}{hint}", signal.column)
        if len(signal.args) != spec.arity:
            usage = spec.example or spec.name
            raise ExpressionError(f"{signal.name} takes {spec.arity} argument(s), e.g. {usage}", signal.column)


def _check_lists(node: Node) -> None:
    if isinstance(node, Binary):
        if node.op == "in" and not (isinstance(node.right, Literal) and isinstance(node.right.value, tuple)):
            raise ExpressionError("`in` needs a list, e.g. x in [30, 60, 90]", node.column)
        _check_lists(node.left)
        _check_lists(node.right)
    elif isinstance(node, Unary):
        _check_lists(node.operand)


Columns = Callable[[Signal], np.ndarray]


def evaluate(node: Node, column: Columns, size: int) -> np.ndarray:
    """Evaluate over whole columns: `column(signal)` returns one value per customer."""
    if isinstance(node, Literal):
        return np.asarray(node.value)  # a scalar broadcasts; lists are read by `in` from the AST
    if isinstance(node, Signal):
        return column(node)
    if isinstance(node, Unary):
        operand = evaluate(node.operand, column, size)
        return ~_truthy(operand) if node.op == "not" else -_numeric(operand)
    left = evaluate(node.left, column, size)
    if node.op == "in":
        options = node.right.value if isinstance(node.right, Literal) else None
        if not isinstance(options, tuple):
            raise ExpressionError("`in` needs a list, e.g. x in [30, 60, 90]", node.column)
        values = np.asarray(left)
        if values.dtype.kind in "fiub" and all(isinstance(o, int | float) for o in options):
            return np.isin(values.astype(float), np.asarray(options, dtype=float))
        allowed = set(options)
        return np.array([v in allowed for v in values.astype(object).ravel()], dtype=bool)
    right = evaluate(node.right, column, size)
    if node.op == "and":
        return _truthy(left) & _truthy(right)
    if node.op == "or":
        return _truthy(left) | _truthy(right)
    if node.op in ("+", "-"):
        a, b = _numeric(left), _numeric(right)
        return a + b if node.op == "+" else a - b
    return _compare(node.op, left, right)


def _numeric(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == object:
        return np.array([np.nan if v is None else v for v in array.ravel()], dtype=float).reshape(array.shape)
    return array.astype(float)


def _truthy(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == bool:
        return array
    if array.dtype == object:
        return np.array([bool(v) and v == v for v in array.ravel()], dtype=bool).reshape(array.shape)
    return np.nan_to_num(array.astype(float), nan=0.0) != 0


_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def _compare(op: str, left: Any, right: Any) -> np.ndarray:
    a, b = np.asarray(left), np.asarray(right)
    if op in _COMPARE:
        with np.errstate(invalid="ignore"):
            return _COMPARE[op](_numeric(a), _numeric(b))
    if a.dtype.kind in "fiub" and b.dtype.kind in "fiub":
        with np.errstate(invalid="ignore"):
            equal = np.equal(a.astype(float), b.astype(float))
    else:
        equal = np.asarray(np.equal(a.astype(object), b.astype(object)), dtype=bool)
    return equal if op == "==" else ~equal & ~_missing(a)


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype == object:
        return np.array([v is None or v != v for v in values.ravel()], dtype=bool).reshape(values.shape)
    return np.zeros(values.shape, dtype=bool)
