"""Pieces shared by several sections: strict models and durations like `15m` or `14d`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Strict(BaseModel):
    """A config model where unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


def parse_duration(value: object) -> timedelta:
    """`90s`, `15m`, `2h`, `14d`, `1w` or a number of seconds -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError(f"expected a duration like 30s, 15m, 2h, 14d or 1w, got {value!r}")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
