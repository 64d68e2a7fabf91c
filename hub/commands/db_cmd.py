"""`churnhub db upgrade|current`."""

from __future__ import annotations

from typing import Annotated

import typer

from hub import db
from hub.commands.context import console, print_json, state
from hub.config import redact_url

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command()
def upgrade(ctx: typer.Context,
            revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations (PostgreSQL needs this once per release; SQLite upgrades itself)."""
    hub = state(ctx).hub(database=False)
    db.upgrade(hub.settings.database_url, revision)
    console.print(f"Database {redact_url(hub.settings.database_url)} is at {db.current_revision(hub.engine)}")


@app.command()
def current(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the schema revision of the configured database and the newest one."""
    hub = state(ctx).hub(database=False)
    info = {"database": redact_url(hub.settings.database_url), "current": db.current_revision(hub.engine),
            "head": db.head_revision()}
    if as_json:
        print_json(info)
    else:
        console.print(f"{info['database']}: {info['current'] or 'empty'} (head {info['head']})")
