"""`churnhub connector check|read`: the first tools to reach for when wiring a connector."""

from __future__ import annotations

import json
from dataclasses import asdict
from itertools import islice
from typing import Annotated, Any

import typer

from hub.commands.context import console, print_json, state
from hub.errors import ConfigError
from hub.records import Record

app = typer.Typer(help="Check and read one configured connector (touches no database).",
                  no_args_is_help=True)


@app.command()
def check(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Connector name in churnhub.yaml.")],
          as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Prove connectivity and credentials. Example: churnhub connector check billing"""
    with state(ctx).hub(database=False).connector(name) as connector:
        result = connector.check()
    if as_json:
        print_json({"connector": name, **asdict(result)})
    else:
        mark = "[green]✓[/green]" if result.ok else "[red]✗[/red]"
        console.print(f"{mark} {name}: {result.detail}")
    if not result.ok:
        raise typer.Exit(1)


def record_json(record: Record) -> dict[str, Any]:
    return {"kind": record.kind, "external_id": record.external_id, "deleted": record.deleted,
            "updated_at": record.updated_at, "fields": dict(record.fields)}


@app.command()
def read(ctx: typer.Context,
         name: Annotated[str, typer.Argument(help="Connector name in churnhub.yaml.")],
         stream: Annotated[str, typer.Argument(help="Stream name, e.g. subscriptions.")],
         limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Stop after N records.")] = 20,
         state_json: Annotated[str | None, typer.Option("--state", help="Resume from this JSON state.")] = None,
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print mapped records of one stream. Example: churnhub connector read billing subscriptions --json"""
    with state(ctx).hub(database=False).connector(name) as connector:
        if stream not in connector.streams:
            raise ConfigError(f"connector {name!r} has no stream {stream!r} "
                              f"(streams: {', '.join(connector.streams)})")
        resume = json.loads(state_json) if state_json else None
        records = islice((r for page in connector.read(stream, resume) for r in page.records), limit)
        rows = [record_json(r) for r in records]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        flag = " [red](deleted)[/red]" if row["deleted"] else ""
        console.print(f"[bold]{row['kind']}[/bold] {row['external_id']}{flag}")
        console.print_json(data=row["fields"], default=str)
    console.print(f"{len(rows)} record(s)")
