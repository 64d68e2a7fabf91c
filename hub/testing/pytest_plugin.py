"""The `churnhub` pytest plugin (entry point group `pytest11`): connector-testing fixtures and a
`conformance` marker. See `hub.testing.fixtures` for the fixtures and `hub.testing` for the suite."""

from __future__ import annotations

import pytest

from hub.testing.fixtures import connect_to_sandbox, fake_time, start_connector_sandbox

__all__ = ["connect_to_sandbox", "fake_time", "start_connector_sandbox"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: the churnhub connector conformance suite")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of a `ConnectorConformance` subclass, so `-m conformance` selects them."""
    from hub.testing.conformance import ConnectorConformance

    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and issubclass(cls, ConnectorConformance):
            item.add_marker(pytest.mark.conformance)
