"""The trigger language: parsing, located errors, whole-column evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.expressions import ExpressionError, Signal, SignalSpec, check, evaluate, parse

CATALOG = {spec.name: spec for spec in [
    SignalSpec("health.score", "score"),
    SignalSpec("health.band", "band"),
    SignalSpec("days_since_last_login", "days"),
    SignalSpec("tickets_opened", "tickets opened within a window", 1, "tickets_opened(7d)"),
    SignalSpec("churned_days_ago", "days since churn"),
    SignalSpec("churned", "churned"),
]}

COLUMNS = {
    "health.score": np.array([55.0, 82.0, np.nan, 69.9]),
    "health.band": np.array(["red", "green", None, "yellow"], dtype=object),
    "days_since_last_login": np.array([20.0, 1.0, np.nan, 14.0]),
    "tickets_opened(7)": np.array([3, 0, 5, 1]),
    "churned_days_ago": np.array([np.nan, np.nan, 45.0, 60.0]),
    "churned": np.array([False, False, True, True]),
}


def run(text: str) -> list[bool]:
    node = parse(text)
    check(node, CATALOG)
    result = evaluate(node, lambda s: COLUMNS[s.key], 4)
    return [bool(v) for v in np.broadcast_to(result, (4,))]


@pytest.mark.parametrize("text, expected", [
    ("health.score < 70", [True, False, False, True]),
    ('health.band == "red"', [True, False, False, False]),
    ('health.band != "red"', [False, True, False, True]),  # a missing band is neither
    ("days_since_last_login >= 14d and not churned", [True, False, False, False]),
    ("tickets_opened(7d) >= 3", [True, False, True, False]),
    ("churned_days_ago in [30, 60, 90]", [False, False, False, True]),
    ("churned_days_ago == 45 or health.score > 80", [False, True, True, False]),
    ("(health.score + 10) >= 79", [False, True, False, True]),
    ("churned", [False, False, True, True]),
])
def test_triggers_evaluate_over_whole_columns(text: str, expected: list[bool]) -> None:
    assert run(text) == expected


@pytest.mark.parametrize("text, message, column", [
    ("helth.score < 70", "unknown signal 'helth.score'", 1),
    ("health.score <", "expected a value or a signal", 15),
    ("tickets_opened >= 3", "takes 1 argument", 1),
    ("health.score < 70 and", "expected a value", 22),
    ("health.score < 70 < 80", "cannot be chained", 19),
    ("__import__('os')", "unknown signal", 1),
    ("health.score ; 1", "unexpected character ';'", 14),
    ("", "empty", 1),
    ("churned_days_ago in 30", "needs a list", 18),
])
def test_errors_name_the_position(text: str, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as info:
        check(parse(text), CATALOG)
    assert message in str(info.value) and info.value.column == column


def test_signal_keys_carry_their_arguments() -> None:
    node = parse("tickets_opened(7d) > 2")
    assert isinstance(node.left, Signal) and node.left.key == "tickets_opened(7)"
    assert parse("tickets_opened(12h) > 2").left.key == "tickets_opened(0.5)"


@given(st.text(max_size=40))
def test_parser_never_crashes_on_garbage(text: str) -> None:
    try:
        parse(text)
    except ExpressionError:
        pass
