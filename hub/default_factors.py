"""Built-in plugin: registers the built-in health factors exactly like a third-party plugin would."""

from __future__ import annotations

from typing import Any

from hub.factors import BUILTIN_FACTORS
from hub.hookspecs import hookimpl


@hookimpl(trylast=True)
def register_health_factors(register: Any) -> None:
    for factor in BUILTIN_FACTORS:
        register(factor)
