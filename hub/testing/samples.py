"""What a connector's test module tells the conformance suite about its streams and operations.

    StreamSample(expected=lambda sandbox: {"acc_1", "acc_2"}, min_pages=2, unchanged_requests=1)
    OperationSample("create_ticket", {"subject": "Hi", "body": "..."},
                    effects=lambda sandbox: len(sandbox.created_tickets()))
    ErrorSample("a 500 on every request", provoke=lambda sandbox: sandbox.fail_next(10),
                expected=TransientError, stream="customers")

Callables receive the running sandbox, so samples can name objects the dataset seeded and observe
what the provider did (a counter, a list of tags, the messages a mail sink holds).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.errors import HubError

Params = Mapping[str, Any] | Callable[[Any], Mapping[str, Any]]


@dataclass(frozen=True)
class StreamSample:
    """How to judge one stream's read.

    `expected(sandbox)` returns the external ids a full read must yield (None: not checked, only
    uniqueness and kinds are). `min_pages` makes sure the dataset and settings really exercise
    pagination (set a small page size in `settings_overrides`). `unchanged_requests`, when given,
    is the most requests an incremental re-read with no upstream change may make.
    """

    expected: Callable[[Any], set[str]] | None = None
    min_pages: int = 2
    unchanged_requests: int | None = None


@dataclass(frozen=True)
class OperationSample:
    """One call of an operation, and how to see what it did at the provider.

    `params` is a mapping validated by the operation's params model (or a callable building it
    from the sandbox); `prepare(sandbox)`, when given, runs first (say, a card that will pay).
    `effects(sandbox)` returns a snapshot of what the operation changes (a
    count, a list, a status): it must differ after the first call and stay the same after a second
    call with the same idempotency key. `repeatable=True` also checks that a *new* key acts again.

    `provider_idempotent=False` is for providers that cannot de-duplicate (SMTP): the suite then
    checks that the same key yields the same `external_id` (a Message-ID the recipient's systems
    can de-duplicate on) and leaves acting once to the hub's outbox (`ActionType.at_most_once`).
    """

    operation: str
    params: Params
    effects: Callable[[Any], Any]
    repeatable: bool = False
    provider_idempotent: bool = True
    id: str = ""
    prepare: Callable[[Any], None] | None = None

    @property
    def label(self) -> str:
        return self.id or self.operation

    def build_params(self, sandbox: Any) -> Mapping[str, Any]:
        return self.params(sandbox) if callable(self.params) else self.params


@dataclass(frozen=True)
class ErrorSample:
    """A failure the sandbox can be made to produce, and the hub error it must become.

    `provoke(sandbox)` arms the failure; then reading `stream` must raise `expected`, or running
    `operation` must raise `expected` or return `OperationResult(ok=False)` whose `retryable`
    says whether `expected` is a `TransientError`.
    """

    name: str
    provoke: Callable[[Any], None]
    expected: type[HubError]
    stream: str | None = None
    operation: OperationSample | None = None
