"""Fixtures for connector tests, served by the `churnhub` pytest plugin (`hub.testing.pytest_plugin`).

Without the plugin installed, a test module can ask for them: `pytest_plugins = ["hub.testing.fixtures"]`.

- `fake_time`: a `FakeTime` whose `sleep` moves its `clock` (retries and rate limits never wait);
- `start_connector_sandbox`: `start_connector_sandbox(connector_type, dataset=None, **options)`
  starts that type's sandbox and stops it after the test;
- `connect_to_sandbox`: `connect_to_sandbox(connector_type, sandbox, **overrides)` builds a
  connector from the sandbox's settings block and closes it after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hub.connector import Connector, ConnectorType, Sandbox
from hub.testing.faketime import FakeTime


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def start_connector_sandbox() -> Iterator[Callable[..., Sandbox]]:
    running: list[Sandbox] = []

    def start(connector_type: ConnectorType, dataset: Any = None, **options: Any) -> Sandbox:
        if connector_type.start_sandbox is None:
            raise AssertionError(f"connector type {connector_type.name!r} has no start_sandbox")
        sandbox = connector_type.start_sandbox(dataset, **options)
        running.append(sandbox)
        return sandbox

    yield start
    for sandbox in reversed(running):
        sandbox.stop()


@pytest.fixture
def connect_to_sandbox() -> Iterator[Callable[..., Connector]]:
    made: list[Connector] = []

    def connect(connector_type: ConnectorType, sandbox: Sandbox, **overrides: Any) -> Connector:
        settings = connector_type.settings.model_validate({**sandbox.settings(), **overrides})
        connector = connector_type.create(settings)
        made.append(connector)
        return connector

    yield connect
    for connector in made:
        connector.close()
