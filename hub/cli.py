"""The `churnhub` command line: thin commands over the library.

User mistakes (bad config, unknown connector, unreachable API) print one clear line on stderr
and exit 1; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from hub.commands import (
    actions_cmd,
    churn_cmd,
    config_cmd,
    connector_cmd,
    customers_cmd,
    db_cmd,
    demo_cmd,
    dunning_cmd,
    health_cmd,
    identity_cmd,
    metrics_cmd,
    playbooks_cmd,
    plugins_cmd,
    run_cmd,
    scaffold_cmd,
    serve_cmd,
    sync_cmd,
    templates_cmd,
    worker_cmd,
)
from hub.commands.context import CliState, err_console
from hub.errors import HubError
from hub.http import __version__

app = typer.Typer(
    name="churnhub",
    help="Code-first connector hub that stops customer churn before it happens.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"churnhub {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option("--config", "-c", envvar="CHURNHUB_CONFIG",
                                               help="Path of churnhub.yaml (default ./churnhub.yaml).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    ctx.obj = CliState(config=config, debug=debug)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


app.command("init")(config_cmd.init)
app.command("plugins")(plugins_cmd.plugins)
app.command("sync")(sync_cmd.sync)
app.command("status")(sync_cmd.status)
app.command("run")(run_cmd.run)
app.command("worker")(worker_cmd.worker)
app.command("serve")(serve_cmd.serve)
app.add_typer(config_cmd.app, name="config")
connector_cmd.app.command("new")(scaffold_cmd.new)
app.add_typer(connector_cmd.app, name="connector")
app.add_typer(db_cmd.app, name="db")
app.command("customers")(customers_cmd.customers)
app.command("customer")(customers_cmd.customer)
app.add_typer(identity_cmd.app, name="identity")
app.command("churn")(churn_cmd.churn)
app.command("score")(health_cmd.score)
app.add_typer(health_cmd.app, name="health")
app.command("metrics")(metrics_cmd.metrics)
app.command("report")(metrics_cmd.report)
app.add_typer(playbooks_cmd.app, name="playbooks")
app.add_typer(dunning_cmd.app, name="dunning")
app.add_typer(actions_cmd.app, name="actions")
app.command("sandbox")(demo_cmd.sandbox)
app.command("demo")(demo_cmd.demo)
app.add_typer(templates_cmd.app, name="templates")


def _mount_plugin_commands() -> None:
    """Let plugins add commands (`register_commands`); a broken plugin must not hide the CLI."""
    from hub.app import discover_plugins

    try:
        plugins = discover_plugins()
    except HubError:
        return  # reported properly by the first command that needs plugins
    plugins.manager.hook.register_commands(cli=app)


def main() -> None:
    debug = "--debug" in sys.argv or os.environ.get("CHURNHUB_DEBUG", "").lower() in ("1", "true", "yes")
    try:
        _mount_plugin_commands()
        app()
    except HubError as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
