"""The connector contract: what a plugin implements to bring a system into the hub.

A `ConnectorType` is registered by a plugin; the hub builds one `Connector` per configured
instance from its validated settings. Reading is `Connector.read(stream, state)`, an iterator of
`Page`s; writing is `Connector.execute(operation, params, idempotency_key=...)`. A connector knows
its API, never the hub's database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from hub.records import Page, Record


class ConnectorSettings(BaseModel):
    """Base for every connector type's settings block; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Stream:
    """An inbound stream: a named sequence of records of some kinds."""

    name: str
    kinds: tuple[str, ...]
    description: str = ""
    incremental: bool = True


@dataclass(frozen=True)
class Operation:
    """An outbound operation with a pydantic model for its parameters."""

    name: str
    params: type[BaseModel]
    description: str = ""


@dataclass(frozen=True)
class OperationResult:
    """What happened when an operation ran.

    `ok=False` with `retryable=False` is a final refusal (a card decline, a validation error),
    reported with the provider's own words in `error` and, where it has one, `code`.
    """

    ok: bool
    external_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    code: str | None = None
    retryable: bool = False


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook delivery: the provider's event id, type and payload."""

    id: str
    type: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


class Connector(ABC):
    """One configured instance of a connector type."""

    streams: Mapping[str, Stream] = {}
    operations: Mapping[str, Operation] = {}

    @abstractmethod
    def check(self) -> CheckResult:
        """Prove connectivity and credentials with one cheap request."""

    @abstractmethod
    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[Page]:
        """Yield pages of `stream` starting after `state` (None: from the beginning)."""

    def execute(self, operation: str, params: BaseModel, *, idempotency_key: str) -> OperationResult:
        """Run one outbound operation; the same key must never act twice at the provider."""
        raise NotImplementedError(f"{type(self).__name__} has no operations")

    def execute_many(self, operation: str, items: Sequence[tuple[BaseModel, str]]) -> list[OperationResult]:
        """Run several operations of one kind; connectors with batch APIs override this."""
        return [self.execute(operation, params, idempotency_key=key) for params, key in items]

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Check a delivery's signature and parse it; raise AuthError when forged or stale,
        PermanentError when malformed. Connectors without webhooks keep this default."""
        raise NotImplementedError(f"{type(self).__name__} does not receive webhooks")

    def webhook_records(self, event: WebhookEvent) -> Sequence[Record]:
        """The records an event changes (the object as it is now), mapped like a stream's."""
        return ()

    @property
    def request_count(self) -> int:
        """HTTP requests made so far (for sync statistics)."""
        return 0

    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Sandbox(Protocol):
    """A running local emulator of a connector's API."""

    url: str

    def settings(self) -> dict[str, Any]:
        """The YAML settings block (minus `type`) that points a connector at this sandbox."""

    def stop(self) -> None: ...


@dataclass(frozen=True)
class ConnectorType:
    """What a plugin registers: a name, a settings model, a factory and optionally a sandbox.

    `start_sandbox(dataset, **options)` starts the emulator on 127.0.0.1 seeded with a
    connector-specific data set and returns a running `Sandbox`.
    """

    name: str
    settings: type[ConnectorSettings]
    factory: Callable[[Any], Connector]
    description: str = ""
    start_sandbox: Callable[..., Sandbox] | None = None
    plugin: str = ""

    def create(self, settings: ConnectorSettings) -> Connector:
        return self.factory(settings)
