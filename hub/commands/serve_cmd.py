"""`churnhub serve`: the webhook / unsubscribe / metrics HTTP server."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from hub.commands.context import console, state
from hub.web import EventProcessor, create_app


def serve(ctx: typer.Context,
          host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080) -> None:
    """Receive Stripe webhooks, one-click unsubscribes, and serve /healthz and /metrics.

    Example: churnhub serve --port 8080   # then point Stripe at /webhooks/stripe/<connector>
    """
    hub = state(ctx).hub()
    processor = EventProcessor(hub)
    processor.start()
    console.print(f"churnhub serve on http://{host}:{port} (webhooks: /webhooks/stripe/<connector>)")
    try:
        uvicorn.run(create_app(hub, processor), host=host, port=port, log_level="warning")
    finally:
        processor.stop()
