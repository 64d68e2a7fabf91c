"""`churnhub templates check` and `churnhub templates preview NAME [--customer REF]`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from hub.commands.context import console, err_console, print_json, state
from hub.context import load_contexts
from hub.errors import HubError
from hub.templating import TemplateLibrary, sample_context
from hub.views import find_customer

app = typer.Typer(help="Email templates: check them all, preview one.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


class TemplatesInvalid(HubError):
    """At least one template fails to compile or render (each problem was printed)."""


def library(ctx: typer.Context) -> TemplateLibrary:
    hub = state(ctx).hub(database=False)
    return TemplateLibrary(hub.settings.templates_dir)


@app.command()
def check(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Compile every template and render every email with a sample context; report file and line.

    Example: churnhub templates check
    """
    templates = library(ctx)
    problems = templates.check()
    if as_json:
        print_json({"templates": templates.names(),
                    "problems": [{"file": p.file, "line": p.line, "message": p.message} for p in problems]})
    else:
        for problem in problems:
            where = f"{problem.file}:{problem.line}" if problem.line else problem.file
            err_console.print(f"[red]{escape(where)}[/red] {escape(problem.message)}", highlight=False, soft_wrap=True)
        if not problems:
            console.print(f"{len(templates.names())} templates render cleanly: {', '.join(templates.names())}")
    if problems:
        raise TemplatesInvalid(f"{len(problems)} template problem(s)")


def customer_context(ctx: typer.Context, ref: str) -> dict[str, Any]:
    """The sample context with this customer's own name, plan, contact and owner in place."""
    hub = state(ctx).hub()
    types = {name: c.type for name, c in hub.settings.connectors.items()}
    with hub.engine.connect() as connection:
        customer_id = find_customer(connection, ref)
        loaded = load_contexts(connection, [customer_id], types)[customer_id]
    context = sample_context()
    customer = {**context["customer"], **{k: v for k, v in loaded["customer"].items() if v is not None}}
    plans = [s.get("plan") for s in loaded.get("subscriptions", []) if s.get("plan")]
    if plans:
        customer["plan"] = plans[0]
    context["customer"] = customer
    for role, key in (("contact", "primary_contact"), ("owner", "owner")):
        found = loaded.get(key)
        if found and found.get("email"):
            name = found.get("name") or found["email"]
            context[role] = {**context[role], "name": name, "first_name": name.split()[0], "email": found["email"]}
    return context


@app.command()
def preview(ctx: typer.Context,
            name: Annotated[str, typer.Argument(help="Template name, e.g. payment_failed_1.")],
            customer: Annotated[str | None, typer.Option("--customer", help="Render for this customer "
                                                         "(id, domain or connector:external_id).")] = None,
            as_json: JsonOption = False) -> None:
    """Print one rendered email: subject, text and HTML parts.

    Example: churnhub templates preview payment_failed_1 --customer acme.com
    """
    templates = library(ctx)
    context = customer_context(ctx, customer) if customer else sample_context()
    email = templates.render(name, context)
    if as_json:
        print_json({"template": name, "subject": email.subject, "text": email.text, "html": email.html})
        return
    console.print(f"[bold]Subject:[/bold] {escape(email.subject)}\n", highlight=False)
    console.print(escape(email.text), highlight=False)
    if email.html:
        console.print("[dim]--- html ---[/dim]")
        console.print(escape(email.html), highlight=False)
