"""`churnhub plugins`: what is installed and what each plugin registers."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from hub.commands.context import console, print_json, state


def plugins(ctx: typer.Context,
            as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List plugins with their versions and the connector types, actions and health factors each adds."""
    infos = state(ctx).plugins().registry.plugins
    if as_json:
        print_json([asdict(info) for info in infos.values()])
        return
    table = Table("plugin", "version", "source", "connector types", "actions", "health factors")
    for info in infos.values():
        table.add_row(info.name, info.version or "-", info.source, ", ".join(info.connector_types) or "-",
                      ", ".join(info.actions) or "-", ", ".join(info.health_factors) or "-")
    console.print(table)
