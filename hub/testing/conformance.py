"""`ConnectorConformance`: the pytest tests every connector plugin inherits and passes.

    from hub.testing import ConnectorConformance, OperationSample, StreamSample
    from churnhub_usage.plugin import USAGE

    class TestUsageConformance(ConnectorConformance):
        connector_type = USAGE
        settings_overrides = {"page_size": 2}
        stream_samples = {"accounts": StreamSample(expected=lambda sandbox: set(sandbox.account_ids()))}

Each test starts a fresh sandbox (`start_sandbox`) and builds connectors with `connect` (override
it to inject a fake `sleep`, so retries never wait). The checks themselves live in
`hub.testing.checks`; the messages they fail with say which rule of the contract was broken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import pytest

from hub.connector import Connector, ConnectorType, Sandbox
from hub.errors import AuthError
from hub.testing import checks
from hub.testing.samples import ErrorSample, OperationSample, StreamSample


class ConnectorConformance:
    """Subclass as `Test<Name>Conformance` and set `connector_type` (and samples)."""

    connector_type: ClassVar[ConnectorType]
    dataset: ClassVar[Any] = None                      # given to start_sandbox
    sandbox_options: ClassVar[Mapping[str, Any]] = {}  # keyword options of start_sandbox
    settings_overrides: ClassVar[Mapping[str, Any]] = {}  # e.g. a small page size
    stream_samples: ClassVar[Mapping[str, StreamSample]] = {}
    operation_samples: ClassVar[Sequence[OperationSample]] = ()
    untested_operations: ClassVar[Mapping[str, str]] = {}  # operation -> why it has no sample
    error_samples: ClassVar[Sequence[ErrorSample]] = ()
    plugin_module: ClassVar[str | None] = None         # dotted module with the @hookimpl, if checked

    # --- what a subclass may override ---------------------------------------------------------

    def start_sandbox(self) -> Sandbox:
        start = self.connector_type.start_sandbox
        assert start is not None, f"connector type {self.connector_type.name!r} has no start_sandbox"
        return start(self.dataset, **self.sandbox_options)

    def connect(self, settings: Mapping[str, Any], sandbox: Sandbox) -> Connector:
        """Build a connector from a settings block (override to inject fake time)."""
        return self.connector_type.create(self.connector_type.settings.model_validate(dict(settings)))

    def bad_credentials(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The settings with credentials the sandbox refuses (default: every secret spoiled)."""
        return checks.spoil_secrets(settings, self.connector_type.settings)

    # --- parametrisation and fixtures ---------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "stream_name" in metafunc.fixturenames:
            names = list(self.stream_samples) or [pytest.param(None, marks=pytest.mark.skip(
                reason=f"{self.connector_type.name} has no stream samples (no streams)"))]
            metafunc.parametrize("stream_name", names)
        if "operation_sample" in metafunc.fixturenames:
            samples = [pytest.param(s, id=s.label) for s in self.operation_samples] or [pytest.param(
                None, marks=pytest.mark.skip(reason=f"{self.connector_type.name} has no operation samples"))]
            metafunc.parametrize("operation_sample", samples)
        if "error_sample" in metafunc.fixturenames:
            errors = [pytest.param(s, id=s.name) for s in self.error_samples] or [pytest.param(
                None, marks=pytest.mark.skip(reason="no error samples given"))]
            metafunc.parametrize("error_sample", errors)

    @pytest.fixture
    def sandbox(self) -> Iterator[Sandbox]:
        running = self.start_sandbox()
        self._sandbox_stopped = False
        try:
            yield running
        finally:
            if not self._sandbox_stopped:
                running.stop()

    @pytest.fixture
    def settings(self, sandbox: Sandbox) -> dict[str, Any]:
        return {**sandbox.settings(), **self.settings_overrides}

    @pytest.fixture
    def make_connector(self, sandbox: Sandbox) -> Iterator[Callable[[Mapping[str, Any]], Connector]]:
        made: list[Connector] = []

        def make(settings: Mapping[str, Any]) -> Connector:
            connector = self.connect(settings, sandbox)
            made.append(connector)
            return connector

        yield make
        for connector in made:
            connector.close()

    @pytest.fixture
    def connector(self, make_connector: Callable[[Mapping[str, Any]], Connector],
                  settings: dict[str, Any]) -> Connector:
        return make_connector(settings)

    def _secrets(self, settings: Mapping[str, Any]) -> list[str]:
        return checks.secret_values(settings, self.connector_type.settings)

    def _params(self, connector: Connector, sample: OperationSample, sandbox: Sandbox) -> Any:
        return checks.validate_params(connector, sample.operation, sample.build_params(sandbox))

    # --- the contract -------------------------------------------------------------------------

    def test_every_stream_and_operation_has_a_sample(self, connector: Connector) -> None:
        assert set(self.stream_samples) == set(connector.streams), (
            f"stream_samples covers {sorted(self.stream_samples)}; the connector has {sorted(connector.streams)}")
        covered = {s.operation for s in self.operation_samples} | set(self.untested_operations)
        missing = set(connector.operations) - covered
        assert not missing, (f"operations without a sample: {sorted(missing)} (add an OperationSample, or "
                             "name them in untested_operations with the reason)")
        for name, operation in connector.operations.items():
            assert operation.name == name, f"operations[{name!r}] is named {operation.name!r}"

    def test_plugin_registers_the_connector_type(self) -> None:
        if self.plugin_module is None:
            pytest.skip("plugin_module not set")
        from hub.plugins import build_registry, load_plugins, new_plugin_manager

        manager = new_plugin_manager()
        infos = load_plugins(manager, allow=[self.plugin_module], builtins=[self.plugin_module])
        registry = build_registry(manager, infos)
        registered = registry.connector_types.get(self.connector_type.name)
        assert registered is not None, f"{self.plugin_module} does not register {self.connector_type.name!r}"
        assert registered.factory is self.connector_type.factory, (
            f"{self.plugin_module} registers another factory for {self.connector_type.name!r}")

    def test_check_succeeds(self, connector: Connector) -> None:
        checks.check_succeeds(connector)

    def test_bad_credentials_fail_cleanly_with_auth_error(self, sandbox: Sandbox, settings: dict[str, Any],
                                                          make_connector: Callable[..., Connector]) -> None:
        bad_settings = self.bad_credentials(settings)
        secrets = self._secrets(settings) + self._secrets(bad_settings)
        bad = make_connector(bad_settings)
        checks.check_fails_cleanly(bad, secrets, "refused credentials")
        for stream in list(bad.streams)[:1]:
            checks.expect_error(lambda stream=stream: bad.read(stream, None), AuthError,
                                f"read({stream!r}) with refused credentials", secrets)
        for sample in self.operation_samples[:1]:
            checks.expect_operation_failure(bad, sample.operation, self._params(bad, sample, sandbox),
                                            "conformance-bad-credentials", AuthError, "refused credentials", secrets)

    def test_stream_reads_all_pages(self, connector: Connector, sandbox: Sandbox, stream_name: str) -> None:
        sample = self.stream_samples[stream_name]
        expected = sample.expected(sandbox) if sample.expected else None
        checks.check_reads_all_pages(connector, connector.streams[stream_name], expected=expected,
                                     min_pages=sample.min_pages)

    def test_stream_resumes_from_every_page(self, connector: Connector, stream_name: str) -> None:
        stream = connector.streams[stream_name]
        pages = checks.read_all(connector, stream_name)
        checks.check_resumes_from_every_page(connector, stream, pages)

    def test_stream_reread_without_change_yields_nothing_new(self, connector: Connector, stream_name: str) -> None:
        stream = connector.streams[stream_name]
        pages = checks.read_all(connector, stream_name)
        checks.check_rereads_nothing_new(connector, stream, pages,
                                         self.stream_samples[stream_name].unchanged_requests)

    def test_operation_acts_once_per_idempotency_key(self, connector: Connector, sandbox: Sandbox,
                                                     operation_sample: OperationSample) -> None:
        if operation_sample.prepare is not None:
            operation_sample.prepare(sandbox)
        params = self._params(connector, operation_sample, sandbox)
        checks.check_acts_once(connector, operation_sample.operation, params, lambda: operation_sample.effects(sandbox),
                               key=f"conformance-{operation_sample.label}",
                               provider_idempotent=operation_sample.provider_idempotent,
                               repeatable=operation_sample.repeatable)

    def test_errors_map_to_the_hub_error_tree(self, connector: Connector, sandbox: Sandbox, settings: dict[str, Any],
                                              error_sample: ErrorSample) -> None:
        error_sample.provoke(sandbox)
        secrets = self._secrets(settings)
        if error_sample.stream is not None:
            checks.expect_error(lambda: connector.read(error_sample.stream, None), error_sample.expected,
                                f"{error_sample.name}: read({error_sample.stream!r})", secrets)
        if error_sample.operation is not None:
            sample = error_sample.operation
            checks.expect_operation_failure(connector, sample.operation, self._params(connector, sample, sandbox),
                                            f"conformance-error-{sample.label}", error_sample.expected,
                                            error_sample.name, secrets)

    def test_an_unreachable_api_is_a_transient_error(self, make_connector: Callable[..., Connector],
                                                     sandbox: Sandbox, settings: dict[str, Any]) -> None:
        connector = make_connector(settings)
        operation = None
        if self.operation_samples:
            sample = self.operation_samples[0]
            operation = (sample.operation, self._params(connector, sample, sandbox))
        sandbox.stop()
        self._sandbox_stopped = True
        checks.check_unreachable(connector, list(connector.streams), operation, self._secrets(settings))
