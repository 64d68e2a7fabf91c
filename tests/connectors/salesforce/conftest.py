"""Shared pieces: a fake clock both sides share, API-shaped record builders, sandbox + connector fixtures."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import pytest

from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.sandbox import SalesforceSandbox, start_sandbox
from connectors.salesforce.sandbox_schema import make_id
from connectors.salesforce.settings import SalesforceSettings
from hub import Page, Record, RetryPolicy
from hub.testing.faketime import FakeTime

NOW = 1_717_200_000          # the fake clock's start: 2024-06-01T00:00:00Z
HOUR, DAY = 3_600, 86_400


FakeClock = FakeTime   # the shared fake clock of hub.testing: moves only when slept on or advanced


@lru_cache(maxsize=1 << 16)
def sf_time(ts: float) -> str:
    """REST's datetime shape."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def sf_id(prefix: str, number: int) -> str:
    return make_id(prefix, number)


def user(number: int, stamp: float, **extra: Any) -> dict[str, Any]:
    return {"Id": sf_id("005", number), "FirstName": "Owner", "LastName": str(number), "Name": f"Owner {number}",
            "Email": f"owner{number}@corp.example", "Username": f"owner{number}@corp.example", "IsActive": True,
            "CreatedDate": sf_time(stamp - DAY), "SystemModstamp": sf_time(stamp), **extra}


def account(number: int, stamp: float, **extra: Any) -> dict[str, Any]:
    return {"Id": sf_id("001", number), "Name": f"Account {number}", "Website": f"account{number}.example",
            "Industry": "Technology", "AnnualRevenue": 1000.0 * number, "Type": "Customer",
            "CreatedDate": sf_time(stamp - DAY), "SystemModstamp": sf_time(stamp), **extra}


def contact(number: int, account_number: int, stamp: float, **extra: Any) -> dict[str, Any]:
    return {"Id": sf_id("003", number), "AccountId": sf_id("001", account_number), "FirstName": "Jo",
            "LastName": f"Doe{number}", "Email": f"jo{number}@account{account_number}.example", "Title": "CTO",
            "CreatedDate": sf_time(stamp - DAY), "SystemModstamp": sf_time(stamp), **extra}


def opportunity(number: int, account_number: int, stamp: float, **extra: Any) -> dict[str, Any]:
    return {"Id": sf_id("006", number), "AccountId": sf_id("001", account_number), "Name": f"Deal {number}",
            "Amount": 1200.5, "StageName": "Closed Won", "CloseDate": "2024-05-01", "Type": "Renewal",
            "CreatedDate": sf_time(stamp - DAY), "SystemModstamp": sf_time(stamp), **extra}


def small_org(stamp: float = NOW - DAY) -> dict[str, list[dict[str, Any]]]:
    """2 users, 3 accounts, 4 contacts, 2 opportunities, each a second apart."""
    return {
        "User": [user(1, stamp), user(2, stamp + 1)],
        "Account": [account(n, stamp + n, OwnerId=sf_id("005", 1 + n % 2)) for n in (1, 2, 3)],
        "Contact": [contact(n, 1 + n % 3, stamp + 10 + n) for n in (1, 2, 3, 4)],
        "Opportunity": [opportunity(1, 1, stamp + 20, Type="New Business", StageName="Prospecting", Amount=500.0),
                        opportunity(2, 2, stamp + 21)],
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture(scope="session")
def stop_later() -> Iterator[Callable[[SalesforceSandbox], None]]:
    """Stop sandboxes in the background (a uvicorn shutdown takes ~0.2 s) and wait for all at the end."""
    stopping: list[threading.Thread] = []

    def stop(sandbox: SalesforceSandbox) -> None:
        thread = threading.Thread(target=sandbox.stop, daemon=True)
        thread.start()
        stopping.append(thread)

    yield stop
    for thread in stopping:
        thread.join(timeout=15)


@pytest.fixture
def sandbox_factory(clock: FakeClock, stop_later: Callable[[SalesforceSandbox], None],
                    ) -> Iterator[Callable[..., SalesforceSandbox]]:
    started: list[SalesforceSandbox] = []

    def start(dataset: Any = None, **options: Any) -> SalesforceSandbox:
        options.setdefault("clock", clock)
        sandbox = start_sandbox(dataset, **options)
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        stop_later(sandbox)


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[SalesforceSandbox]:
    """One sandbox for a module's tests that only read it (starting a server costs a few 100 ms)."""
    sandbox = start_sandbox(small_org(), clock=FakeClock(NOW))
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., SalesforceSandbox]) -> SalesforceSandbox:
    return sandbox_factory(small_org())


@pytest.fixture
def connect(clock: FakeClock) -> Iterator[Callable[..., SalesforceConnector]]:
    """A connector on the sandbox, sharing its clock; `connect(sandbox, grant=..., **settings)`."""
    made: list[SalesforceConnector] = []

    def build(sandbox: SalesforceSandbox, grant: str = "client_credentials", **settings: Any) -> SalesforceConnector:
        key = settings.pop("private_key_file", None)
        config = SalesforceSettings(**sandbox.settings(grant, private_key_file=key, **settings))
        connector = SalesforceConnector(config, sleep=clock.sleep, clock=clock, now=clock,
                                        retry=RetryPolicy(max_attempts=3))
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


def records_of(pages: Sequence[Page]) -> list[Record]:
    return [record for page in pages for record in page.records]


def ids_of(pages: Sequence[Page]) -> list[str]:
    return [record.external_id for record in records_of(pages)]


def read_pages(connector: SalesforceConnector, stream: str, state: Any = None) -> list[Page]:
    return list(connector.read(stream, state))
