"""`churnhub init` and `churnhub config validate|show|schema`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from hub.commands.context import console, print_json, state
from hub.config import json_schema, redacted
from hub.dunning import DunningSettings
from hub.errors import ConfigError
from hub.playbooks import playbooks_settings
from hub.sections.churn import ChurnSettings
from hub.sections.health import HealthSettings
from hub.starter import STARTER_CONFIG

app = typer.Typer(help="Check and inspect churnhub.yaml.", no_args_is_help=True)


def init(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Where to write churnhub.yaml.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing churnhub.yaml.")] = False,
) -> None:
    """Write a commented starter churnhub.yaml.

    Example: churnhub init ./ops && churnhub -c ./ops/churnhub.yaml config validate
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "churnhub.yaml"
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists (use --force to overwrite)")
    target.write_text(STARTER_CONFIG, encoding="utf-8")
    console.print(f"Wrote {target}. Next: churnhub -c {target} config validate")


@app.command()
def validate(ctx: typer.Context,
             as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False) -> None:
    """Validate churnhub.yaml: every error names file, line and dotted path."""
    hub = state(ctx).hub(database=False)
    # sections are validated when their capability first reads them: read them all now, so a
    # typo fails here (file:line and dotted path) rather than at the first scheduled run
    hub.section("health", HealthSettings)
    hub.section("churn", ChurnSettings)
    hub.section("dunning", DunningSettings)
    playbooks = playbooks_settings(hub)   # triggers and actions: errors with line and column
    summary = {"config": str(hub.settings.path), "valid": True,
               "connectors": {n: c.type for n, c in hub.settings.connectors.items()},
               "playbooks": [p.name for p in playbooks.playbooks]}
    if as_json:
        print_json(summary)
    else:
        console.print(f"[green]✓[/green] {hub.settings.path} is valid "
                      f"({len(hub.settings.connectors)} connector(s))")


@app.command()
def show(ctx: typer.Context,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False) -> None:
    """Print the effective configuration with secrets redacted."""
    data = redacted(state(ctx).hub(database=False).settings)
    if as_json:
        print_json(data)
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())


@app.command()
def schema(ctx: typer.Context) -> None:
    """Print a JSON Schema of churnhub.yaml (for editor autocompletion)."""
    types = {n: t.settings for n, t in state(ctx).plugins().registry.connector_types.items()}
    print_json(json_schema(types))
