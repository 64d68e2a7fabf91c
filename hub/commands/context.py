"""What every command shares: the config path, a lazily built `Hub`, and output helpers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import typer
from rich.console import Console

from hub.app import Hub, Plugins, discover_plugins

console = Console()
err_console = Console(stderr=True)


@dataclass
class CliState:
    config: str | None = None
    debug: bool = False
    _hub: Hub | None = field(default=None, repr=False)
    _plugins: Plugins | None = field(default=None, repr=False)

    def plugins(self) -> Plugins:
        if self._plugins is None:
            self._plugins = discover_plugins()
        return self._plugins

    def hub(self, *, database: bool = True) -> Hub:
        """The Hub for this invocation; with `database`, an embedded SQLite is brought to head."""
        if self._hub is None:
            self._hub = Hub.from_config(self.config, plugins=self.plugins())
        if database:
            self._hub.ensure_database()
        return self._hub


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = CliState()
    return root.obj


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, one document."""
    sys.stdout.write(json.dumps(data, default=_default, indent=2, ensure_ascii=False) + "\n")
