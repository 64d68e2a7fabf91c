"""`churnhub serve`: webhooks, one-click unsubscribe, health and Prometheus metrics.

    POST /webhooks/stripe/{connector}   verified by the connector (its webhook_secret), stored, then 200;
                                        processed in the background
    POST /unsubscribe/{token}           RFC 8058 one-click (no redirect, no cookies)
    GET  /unsubscribe/{token}           a confirmation page with a button that POSTs
    GET  /healthz                       liveness + database reachability
    GET  /metrics                       Prometheus text: sync lag, actions by status, dunning cases
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hub import webhooks
from hub.app import Hub
from hub.errors import AuthError, PermanentError
from hub.models import Action, DunningCase, Suppression, SyncRun, utcnow
from hub.unsubscribe import verify_token

log = logging.getLogger(__name__)
MAX_BODY = 1_000_000  # Stripe events are a few KB; anything this large is not one


class EventProcessor:
    """Processes stored webhook events in a background thread; `wake()` after each delivery."""

    def __init__(self, hub: Hub, *, after: Callable[[webhooks.ProcessedEvent], None] | None = None,
                 interval: float = 1.0) -> None:
        self.hub, self.after, self.interval = hub, after, interval
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="webhook-processor", daemon=True)
        self._connectors: dict[str, Any] = {}

    def connector(self, name: str) -> Any:
        if name not in self._connectors:
            self._connectors[name] = self.hub.connector(name)
        return self._connectors[name]

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def run_once(self) -> int:
        return webhooks.process_pending(self.hub.engine, self.connector, after=self.after)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep serving; the event stays pending and is retried
                log.exception("processing webhook events failed")
            self._wake.wait(self.interval)
            self._wake.clear()


def unsubscribe_secrets(hub: Hub) -> list[str]:
    """The unsubscribe secrets of every email connector (settings carry `unsubscribe_secret`)."""
    secrets = []
    for config in hub.settings.connectors.values():
        secret = getattr(config.settings, "unsubscribe_secret", None)
        if secret is not None:
            secrets.append(secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret))
    return secrets


def suppress(hub: Hub, email: str, reason: str, detail: str | None = None) -> None:
    table = Suppression.__table__
    with hub.engine.begin() as connection:
        insert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(table)
        connection.execute(insert.values(email=email.lower(), reason=reason, detail=detail, created_at=utcnow())
                           .on_conflict_do_nothing(index_elements=["email"]))


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` bytes: a huge upload is refused, never buffered."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(hub: Hub, processor: EventProcessor) -> Starlette:
    """Webhook signatures are checked by each connector (its `webhook_secret` setting)."""
    secrets = unsubscribe_secrets(hub)

    async def stripe_webhook(request: Request) -> Response:
        name = request.path_params["connector"]
        config = hub.settings.connectors.get(name)
        if config is None or config.type != "stripe":
            return JSONResponse({"error": f"no Stripe connector named {name!r}"}, status_code=404)
        body = await read_capped(request, MAX_BODY)
        if body is None:
            return JSONResponse({"error": f"payload too large (at most {MAX_BODY:,} bytes)"}, status_code=413)
        try:
            received = webhooks.receive(hub.engine, name, processor.connector(name), dict(request.headers), body)
        except AuthError as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        except (PermanentError, NotImplementedError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        processor.wake()
        return JSONResponse({"received": received.event_id, "duplicate": received.duplicate})

    def address_of(token: str) -> str | None:
        for secret in secrets:
            email = verify_token(token, secret)
            if email:
                return email
        return None

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        email = address_of(token)
        if email is None:
            return PlainTextResponse("This unsubscribe link is not valid.", status_code=400)
        if request.method == "POST":
            suppress(hub, email, "unsubscribed", "one-click" if b"One-Click" in await request.body() else "form")
            return PlainTextResponse(f"{email} is unsubscribed. You will not receive these emails again.")
        safe = html.escape(email)
        return HTMLResponse(
            f"<!doctype html><title>Unsubscribe</title><main style='font-family:sans-serif;max-width:32em;"
            f"margin:4em auto'><h1>Unsubscribe</h1><p>Stop emails to <b>{safe}</b>?</p>"
            f"<form method='post'><input type='hidden' name='List-Unsubscribe' value='One-Click'>"
            f"<button type='submit'>Unsubscribe</button></form></main>")

    async def healthz(request: Request) -> Response:
        try:
            with hub.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - report, do not crash the probe
            return JSONResponse({"ok": False, "database": str(exc)[:200]}, status_code=503)
        return JSONResponse({"ok": True})

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(prometheus_metrics(hub), media_type="text/plain; version=0.0.4")

    return Starlette(routes=[
        Route("/webhooks/stripe/{connector}", stripe_webhook, methods=["POST"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
    ])


def prometheus_metrics(hub: Hub) -> str:
    now = datetime.now(UTC)
    lines = ["# HELP churnhub_sync_lag_seconds Seconds since the stream's last successful sync.",
             "# TYPE churnhub_sync_lag_seconds gauge"]
    with hub.engine.connect() as connection:
        for connector, stream, finished in connection.execute(
                select(SyncRun.connector, SyncRun.stream, func.max(SyncRun.finished_at))
                .where(SyncRun.status == "succeeded").group_by(SyncRun.connector, SyncRun.stream)):
            finished = finished if finished.tzinfo else finished.replace(tzinfo=UTC)
            lines.append(f'churnhub_sync_lag_seconds{{connector="{connector}",stream="{stream}"}} '
                         f"{(now - finished).total_seconds():.0f}")
        lines += ["# HELP churnhub_actions Outbox actions by status.", "# TYPE churnhub_actions gauge"]
        for status, count in connection.execute(select(Action.status, func.count()).group_by(Action.status)):
            lines.append(f'churnhub_actions{{status="{status}"}} {count}')
        lines += ["# HELP churnhub_dunning_cases Dunning cases by status.", "# TYPE churnhub_dunning_cases gauge"]
        for status, count in connection.execute(
                select(DunningCase.status, func.count()).group_by(DunningCase.status)):
            lines.append(f'churnhub_dunning_cases{{status="{status}"}} {count}')
        lines += ["# HELP churnhub_dunning_recovered Recovered dunning cases by what recovered them.",
                  "# TYPE churnhub_dunning_recovered gauge"]
        for recovered_by, count in connection.execute(
                select(DunningCase.recovered_by, func.count()).where(DunningCase.status == "recovered")
                .group_by(DunningCase.recovered_by)):
            lines.append(f'churnhub_dunning_recovered{{recovered_by="{recovered_by or "unknown"}"}} {count}')
    return "\n".join(lines) + "\n"
