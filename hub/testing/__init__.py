"""Testing kit for connector plugins: the conformance suite, its checks, fixtures and fake time.

    from hub.testing import ConnectorConformance, StreamSample

    class TestMyConnectorConformance(ConnectorConformance):
        connector_type = MY_CONNECTOR_TYPE
        stream_samples = {"accounts": StreamSample()}

See docs/plugins.md for the tutorial and the rules each check enforces.
"""

import pytest

# Plain `assert`s in the checks then explain themselves; must run before they are imported.
pytest.register_assert_rewrite("hub.testing.checks", "hub.testing.conformance", "hub.testing.fixtures")

from hub.testing import checks  # noqa: E402
from hub.testing.conformance import ConnectorConformance  # noqa: E402
from hub.testing.faketime import FakeTime  # noqa: E402
from hub.testing.samples import ErrorSample, OperationSample, StreamSample  # noqa: E402

__all__ = ["ConnectorConformance", "ErrorSample", "FakeTime", "OperationSample", "StreamSample", "checks"]
