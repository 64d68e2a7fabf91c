"""Shared pieces: a fake clock both sides share, API-shaped object builders, sandbox fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.sandbox import ZendeskSandbox, start_sandbox
from connectors.zendesk.settings import ZendeskSettings
from hub import Page, Record
from hub.testing.faketime import FakeTime

NOW = 1_700_000_000          # the fake clock's start (2023-11-14T22:13:20Z)
DAY = 86_400


FakeClock = FakeTime   # the shared fake clock of hub.testing: moves only when slept on or advanced


def iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def org(org_id: int, updated: float, **extra: Any) -> dict[str, Any]:
    return {"id": org_id, "name": f"Org {org_id}", "domain_names": [f"org{org_id}.example"], "tags": [],
            "organization_fields": {}, "created_at": iso(updated - DAY), "updated_at": iso(updated), **extra}


def user(user_id: int, updated: float, **extra: Any) -> dict[str, Any]:
    return {"id": user_id, "name": f"User {user_id}", "email": f"user{user_id}@example.com", "role": "end-user",
            "created_at": iso(updated - DAY), "updated_at": iso(updated), **extra}


def ticket(ticket_id: int, updated: float, **extra: Any) -> dict[str, Any]:
    return {"id": ticket_id, "subject": f"Ticket {ticket_id}", "description": f"Help with {ticket_id}",
            "status": "open", "priority": "normal", "created_at": iso(updated - DAY), "updated_at": iso(updated),
            **extra}


def rating(rating_id: int, ticket_id: int, score: str, updated: float, **extra: Any) -> dict[str, Any]:
    return {"id": rating_id, "ticket_id": ticket_id, "score": score, "created_at": iso(updated),
            "updated_at": iso(updated), **extra}


def small_world() -> dict[str, Any]:
    """A few of everything, all older than a day, with one NPS field and a Salesforce link."""
    base = NOW - 10 * DAY
    return {
        "organizations": [
            org(1, base + 10, external_id="001D000000IqhSLIAZ", organization_fields={"nps_score": 9}, tags=["vip"]),
            org(2, base + 20, external_id="crm-42", organization_fields={"nps_score": None}),
            org(3, base + 30),
        ],
        "users": [
            user(11, base + 10, organization_id=1),
            user(12, base + 11, organization_id=2),
            user(13, base + 12, role="agent"),
        ],
        "tickets": [
            ticket(101, base + 40, requester_id=11, organization_id=1, tags=["billing"]),
            ticket(102, base + 50, requester_id=12, organization_id=2, status="solved"),
            ticket(103, base + 60, requester_id=11, organization_id=1, status="pending", external_id="old-key"),
        ],
        "satisfaction_ratings": [
            rating(501, 102, "good", base + 55, requester_id=12, comment="Quick!"),
            rating(502, 101, "offered", base + 45, requester_id=11),
        ],
    }


def read_all(connector: ZendeskConnector, stream: str, state: Any = None,
             max_pages: int = 500) -> tuple[list[Record], list[Page]]:
    """Every page of a read; a read that does not end fails instead of hanging."""
    pages: list[Page] = []
    for page in connector.read(stream, state):
        pages.append(page)
        assert len(pages) <= max_pages, f"{stream}: the read does not end"
    return [record for page in pages for record in page.records], pages


@pytest.fixture
def zd() -> SimpleNamespace:
    """The builders above, for test modules (importlib mode does not let them import conftest)."""
    return SimpleNamespace(NOW=NOW, DAY=DAY, FakeClock=FakeClock, iso=iso, org=org, user=user, ticket=ticket,
                           rating=rating, small_world=small_world, read_all=read_all)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def sandboxes(clock: FakeClock) -> Iterator[Callable[..., ZendeskSandbox]]:
    """`sandboxes(dataset, **options)` starts a sandbox on the shared fake clock; all stop at the end."""
    started: list[ZendeskSandbox] = []

    def start(dataset: Any = None, **options: Any) -> ZendeskSandbox:
        sandbox = start_sandbox(dataset, clock=clock, **options)
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def connect(clock: FakeClock) -> Iterator[Callable[..., ZendeskConnector]]:
    """`connect(sandbox, role="admin", **settings)`: a connector on the fake clock (sleep moves it)."""
    made: list[ZendeskConnector] = []

    def make(sandbox: ZendeskSandbox, role: str = "admin", auth: str = "token", **overrides: Any) -> ZendeskConnector:
        settings = ZendeskSettings(**{**sandbox.settings(role, auth), **overrides})
        connector = ZendeskConnector(settings, sleep=clock.sleep, clock=clock, now=clock)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()
