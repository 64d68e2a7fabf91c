"""Fixtures for the Stripe connector: sandboxes on loopback with a frozen clock, and fake time.

(pytest runs with `--import-mode=importlib`: test modules get helpers through fixtures.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.stripe.connector import StripeConnector
from connectors.stripe.sandbox import StripeSandbox, start_sandbox
from connectors.stripe.sandbox_dataset import demo_dataset
from connectors.stripe.settings import StripeSettings
from hub import RetryPolicy

START = 1_780_000_000          # 2026-05-28T20:26:40Z: the sandbox's "now" when a test begins
API_KEY = "sk_test_churnhub_0123456789"
EXAMPLES = json.loads((Path(__file__).parent / "fixtures" / "stripe_examples.json").read_text())["resources"]
FAST_RETRY = RetryPolicy(max_attempts=6, max_elapsed=600, base_delay=0.5, max_delay=5, jitter=0)


class FakeTime:
    """Monotonic time that moves only when something sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def stripe_example() -> Callable[[str], dict[str, Any]]:
    """A fresh copy of one of Stripe's own example objects (`resources.<name>`)."""
    return lambda name: json.loads(json.dumps(EXAMPLES[name]))


@pytest.fixture
def start_stripe() -> Iterator[Callable[..., StripeSandbox]]:
    """Start sandboxes (the demo account of 12 customers at START unless a dataset is given)."""
    running: list[StripeSandbox] = []

    def start(dataset: Any = None, **options: Any) -> StripeSandbox:
        options = {"api_key": API_KEY, "clock": lambda: START, "rate_limit": None, **options}
        sandbox = start_sandbox(dataset if dataset is not None else demo_dataset(12, now=START), **options)
        running.append(sandbox)
        return sandbox

    yield start
    for sandbox in running:
        sandbox.stop()


@pytest.fixture
def sandbox(start_stripe: Callable[..., StripeSandbox]) -> StripeSandbox:
    return start_stripe()


@pytest.fixture
def http(sandbox: StripeSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        yield client


@pytest.fixture
def make_connector() -> Iterator[Callable[..., StripeConnector]]:
    """`make_connector(sandbox, time_=None, **settings)`: a connector on the sandbox's clock whose
    retries and rate limit sleep on fake time."""
    made: list[StripeConnector] = []

    def make(sandbox: StripeSandbox, time_: FakeTime | None = None, **settings: Any) -> StripeConnector:
        time_ = time_ or FakeTime()
        connector = StripeConnector(StripeSettings(**{**sandbox.settings(), **settings}), clock=sandbox.clock,
                                    sleep=time_.sleep, monotonic=time_.clock, retry=FAST_RETRY)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture
def connector(sandbox: StripeSandbox, make_connector: Callable[..., StripeConnector]) -> StripeConnector:
    return make_connector(sandbox)
