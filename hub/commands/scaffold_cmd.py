"""`churnhub connector new NAME`: start a connector plugin package with passing tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hub.commands.context import console, print_json
from hub.errors import ConfigError
from hub.scaffold import plugin_names, render_package


def new(name: Annotated[str, typer.Argument(help="Plugin name, e.g. acme-crm (type acme_crm).")],
        directory: Annotated[Path, typer.Option("--dir", "-d", help="Where to create churnhub-NAME/.")] = Path("."),
        force: Annotated[bool, typer.Option("--force", help="Overwrite an existing folder.")] = False,
        as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Write a new connector plugin package. Example: churnhub connector new acme-crm --dir plugins"""
    try:
        names = plugin_names(name)
        root, files = render_package(name, directory, force=force)
    except (ValueError, FileExistsError) as exc:
        raise ConfigError(str(exc)) from None
    if as_json:
        print_json({"name": names.type_name, "package": names.package, "path": str(root),
                    "files": [str(f.relative_to(root)) for f in files]})
        return
    console.print(f"[green]✓[/green] wrote {root} ({len(files)} files): connector type [bold]{names.type_name}[/bold], "
                  f"package {names.package}")
    console.print(f"  next: cd {root} && pip install -e '.[test]' && pytest")
