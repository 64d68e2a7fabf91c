"""A local, stateful emulator of the Zendesk Support API for tests and the demo.

    sandbox = start_sandbox(dataset, clock=fake_clock)     # serves on 127.0.0.1
    connector = ZendeskConnector(ZendeskSettings(**sandbox.settings()))
    sandbox.world.update_organization(7, {"notes": "renewal at risk"})
    sandbox.advance_clock(120)                             # only with a clock that can advance
    sandbox.stop()

Dataset (a dict, or the path of a JSON file holding one): lists of objects shaped like the API's,
each optional and each object's missing attributes filled with Zendesk's defaults.

    {"organizations": [{"id": 1, "name": "Acme", "external_id": "0015g00000AbCdEAAV",
                        "domain_names": ["acme.com"], "tags": ["enterprise"],
                        "organization_fields": {"nps_score": 9}, "created_at": "2024-01-05T09:00:00Z",
                        "updated_at": "2024-05-01T12:00:00Z", "deleted_at": null}],
     "users": [{"id": 10, "name": "Ann", "email": "ann@acme.com", "role": "end-user",     # or agent, admin
                "organization_id": 1, "active": true, "user_fields": {}, "updated_at": "..."}],
     "tickets": [{"id": 100, "subject": "Export fails", "description": "first comment",
                  "status": "open", "priority": "high", "type": "problem", "requester_id": 10,
                  "organization_id": 1, "assignee_id": null, "tags": [], "custom_fields": [{"id": 360001, "value": 8}],
                  "created_at": "...", "updated_at": "...", "generated_timestamp": 1714564800}],
     "satisfaction_ratings": [{"id": 1000, "score": "good", "comment": "quick!", "reason": null,
                               "ticket_id": 100, "requester_id": 10, "created_at": "...", "updated_at": "..."}],
     "ticket_comments": {"100": [{"body": "...", "public": true, "author_id": 10, "created_at": "..."}]}}

Timestamps are ISO-8601 UTC; `updated_at` defaults to `created_at`, which defaults to the sandbox's
now; a ticket's `generated_timestamp` defaults to its `updated_at`, and its `satisfaction_rating`
to the rating naming it; without `ticket_comments` a ticket's description is its first comment;
objects without `id` get one after the largest given. Ids are integers.

Credentials: `ADMIN` and `AGENT` below (API token and OAuth token each); users with their emails
are added unless the dataset has them. Rate limits (per clock minute, `Retry-After` on 429) are
configurable and can be switched off for benchmarks: `start_sandbox(rate_limits=False)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hub import AdjustableClock, FaultProfile, RunningServer, serve_in_thread

from .sandbox_http import Credential, Limits, ZendeskApi
from .sandbox_routes import build_app
from .sandbox_world import ZendeskWorld

ADMIN = Credential("admin@sandbox.zendesk.test", "sandbox-admin-api-token", "sandbox-admin-oauth-token", "admin")
AGENT = Credential("agent@sandbox.zendesk.test", "sandbox-agent-api-token", "sandbox-agent-oauth-token", "agent")
UNLIMITED = 1_000_000


@dataclass
class ZendeskSandbox:
    world: ZendeskWorld
    api: ZendeskApi
    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.url

    def settings(self, role: str = "admin", auth: str = "token") -> dict[str, Any]:
        """The connector settings (minus `type`) for this sandbox as `role` with `auth` token|oauth."""
        who = next(c for c in self.api.credentials if c.role == role)
        credentials = {"oauth_token": who.oauth_token} if auth == "oauth" else \
            {"email": who.email, "api_token": who.api_token}
        limits = self.api.limits
        return {"base_url": self.url, **credentials,
                "requests_per_minute": limits.plan_per_minute if limits.enabled else UNLIMITED,
                "export_requests_per_minute": limits.export_per_minute if limits.enabled else UNLIMITED}

    def stop(self) -> None:
        self.server.stop()

    # -- for tests and the demo: changes move updated_at / generated_timestamp like Zendesk ------

    def update_organization(self, org_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        return self.world.update_organization(org_id, changes)

    def delete_organization(self, org_id: int) -> None:
        self.world.delete_organization(org_id)

    def update_ticket(self, ticket_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        return self.world.update_ticket(ticket_id, changes)[0]

    def delete_ticket(self, ticket_id: int) -> None:
        self.world.delete_ticket(ticket_id)

    def rate_ticket(self, ticket_id: int, score: str, comment: str | None = None) -> dict[str, Any]:
        return self.world.rate_ticket(ticket_id, score, comment)

    def advance_clock(self, seconds: float) -> None:
        advance = getattr(self.world.clock, "advance", None)
        if advance is None:
            raise TypeError("this sandbox's clock cannot be advanced; pass a clock with .advance()")
        advance(seconds)

    @property
    def request_log(self) -> list[tuple[str, str, int]]:
        """(method, path?query, status) of every request served, oldest first."""
        return self.api.log

    def created_tickets(self) -> list[dict[str, Any]]:
        return [self.world.tickets.objects[i] for i in self.world.created_ticket_ids]

    def organization_tags(self, org_id: int) -> list[str]:
        return list(self.world.organizations.objects[org_id]["tags"])

    def comments(self, ticket_id: int) -> list[dict[str, Any]]:
        with self.world.lock:
            return list(self.world.comments_of(ticket_id))


def load_dataset(dataset: Mapping[str, Any] | str | Path | None) -> Mapping[str, Any]:
    if dataset is None:
        return {}
    if isinstance(dataset, str | Path):
        return json.loads(Path(dataset).read_text(encoding="utf-8"))
    return dataset


def _account_opened(world: ZendeskWorld) -> str | None:
    """When the seeded account began: its staff existed before any seeded object, as in a real
    account, not since the sandbox started (else every first export would miss them, and the next
    run would find them "new")."""
    stamps = [obj["created_at"] for collection in (world.organizations, world.users, world.tickets)
              for obj in collection.objects.values() if obj.get("created_at")]
    return min(stamps) if stamps else None


def start_sandbox(dataset: Mapping[str, Any] | str | Path | None = None, *, clock: Callable[[], float] | None = None,
                  rate_limits: bool = True, plan_per_minute: int = 200, export_per_minute: int = 10,
                  export_page_size: int = 1000, faults: FaultProfile | None = None) -> ZendeskSandbox:
    """Seed a Zendesk account from `dataset` and serve it on 127.0.0.1 (see the module docstring);
    `faults` injects the failures of `hub.FaultProfile` in front of the API."""
    world = ZendeskWorld(clock or AdjustableClock())
    world.seed(load_dataset(dataset))
    opened = _account_opened(world)
    credentials = [replace(c, user_id=world.ensure_user(c.email, f"Sandbox {c.role}", c.role, at=opened)["id"])
                   for c in (ADMIN, AGENT)]
    api = ZendeskApi(world, credentials, Limits(rate_limits, plan_per_minute, export_per_minute, export_page_size))
    server = serve_in_thread(build_app(api), name="zendesk", faults=faults)
    world.base_url = server.url
    return ZendeskSandbox(world, api, server)
