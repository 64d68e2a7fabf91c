"""The conformance checks as plain functions: each takes a connector (and what it needs) and raises
`AssertionError` with a message that says what the contract wanted and what happened.

`ConnectorConformance` runs them as pytest tests; a plugin author can also call them directly.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, SecretStr

from hub.connector import CheckResult, Connector, ConnectorSettings, OperationResult, Stream
from hub.errors import AuthError, HubError, TransientError
from hub.records import Page, Record

Key = tuple[str, str]


def record_key(record: Record) -> Key:
    return (str(record.kind), record.external_id)


def keys(pages: Iterable[Page]) -> list[Key]:
    return [record_key(r) for page in pages for r in page.records]


def json_state(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The state as the core will store and give it back: through JSON."""
    if state is None:
        return None
    try:
        return json.loads(json.dumps(state))
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"Page.state must be JSON-serialisable (the core stores it as JSON): {exc}") from exc


def read_all(connector: Connector, stream: str, state: Mapping[str, Any] | None = None) -> list[Page]:
    """Every page of one read, each checked to be a `Page` of `Record`s."""
    pages = []
    for page in connector.read(stream, state):
        assert isinstance(page, Page), f"read({stream!r}) yielded {type(page).__name__}, not a Page"
        for record in page.records:
            assert isinstance(record, Record), f"{stream}: a page holds {type(record).__name__}, not a Record"
        pages.append(page)
    return pages


def _secret_paths(value: BaseModel, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path, secret) for every `SecretStr` set in a settings model, nested models included."""
    for name in type(value).model_fields:
        item = getattr(value, name)
        if isinstance(item, SecretStr):
            yield (*path, name), item.get_secret_value()
        elif isinstance(item, BaseModel):
            yield from _secret_paths(item, (*path, name))


def secret_values(settings: Mapping[str, Any], model: type[ConnectorSettings]) -> list[str]:
    """The values of the `SecretStr` fields of a settings block (what must never be printed)."""
    parsed = model.model_validate(dict(settings))
    return [secret for _, secret in _secret_paths(parsed) if len(secret) > 3]


def spoil_secrets(settings: Mapping[str, Any], model: type[ConnectorSettings]) -> dict[str, Any]:
    """The settings with every secret (in nested blocks too) replaced by a wrong one."""
    spoiled = json.loads(json.dumps(dict(settings), default=str))
    paths = list(_secret_paths(model.model_validate(dict(settings))))
    if not paths:
        raise AssertionError(f"{model.__name__} has no SecretStr field set by the sandbox: override "
                             "bad_credentials() to say how to spoil the credentials")
    for path, secret in paths:
        block = spoiled
        for name in path[:-1]:
            block = block[name]
        block[path[-1]] = secret[:8] + "-wrong-churnhub-conformance"
    return spoiled


def assert_no_secret(text: str, secrets: Sequence[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{where} shows a secret: {text!r}"


# --- check ---------------------------------------------------------------------------------------

def check_succeeds(connector: Connector) -> CheckResult:
    result = connector.check()
    assert isinstance(result, CheckResult), f"check() returned {type(result).__name__}, not a CheckResult"
    assert result.ok, f"check() failed against the sandbox: {result.detail}"
    assert result.detail.strip(), "check() should say what it proved in `detail`"
    return result


def check_fails_cleanly(connector: Connector, secrets: Sequence[str], what: str) -> CheckResult:
    """`check()` must answer ok=False with a printable reason, never raise."""
    try:
        result = connector.check()
    except Exception as exc:  # noqa: BLE001 - the point is to catch anything
        raise AssertionError(f"check() with {what} raised {type(exc).__name__}: {exc}; it should return "
                             "CheckResult(ok=False, detail=...)") from exc
    assert isinstance(result, CheckResult), f"check() returned {type(result).__name__}, not a CheckResult"
    assert not result.ok, f"check() with {what} reported ok: {result.detail}"
    assert result.detail.strip(), f"check() with {what} should say why it failed"
    assert_no_secret(result.detail, secrets, "check().detail")
    return result


def expect_error(call: Callable[[], Any], expected: type[HubError], what: str,
                 secrets: Sequence[str] = ()) -> HubError:
    """Run `call` (drained if it is an iterator) and demand it raises `expected`."""
    try:
        result = call()
        if hasattr(result, "__next__"):
            for _ in result:
                pass
    except expected as exc:
        assert_no_secret(str(exc), secrets, f"the {type(exc).__name__} message")
        return exc
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{what} raised {type(exc).__module__}.{type(exc).__name__} ({exc}); the hub "
                             f"expects {expected.__name__} from hub.errors") from exc
    raise AssertionError(f"{what} raised nothing; the hub expects {expected.__name__}")


def expect_operation_failure(connector: Connector, operation: str, params: BaseModel, key: str,
                             expected: type[HubError], what: str, secrets: Sequence[str] = ()) -> None:
    """An operation that cannot succeed raises `expected`, or returns ok=False with the right `retryable`."""
    try:
        result = connector.execute(operation, params, idempotency_key=key)
    except expected as exc:
        assert_no_secret(str(exc), secrets, f"the {type(exc).__name__} message")
        return
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{what}: execute({operation!r}) raised {type(exc).__name__} ({exc}); the hub "
                             f"expects {expected.__name__} or OperationResult(ok=False)") from exc
    assert isinstance(result, OperationResult), f"execute() returned {type(result).__name__}"
    assert not result.ok, f"{what}: execute({operation!r}) reported success: {result}"
    if issubclass(expected, AuthError):
        raise AssertionError(f"{what}: execute({operation!r}) returned {result}; refused credentials must "
                             "raise AuthError: nothing was delivered, and the credentials are at fault, not the action")
    transient = issubclass(expected, TransientError)
    assert result.retryable == transient, (
        f"{what}: execute({operation!r}) returned retryable={result.retryable}, expected {transient} "
        f"(like {expected.__name__}): {result}")
    assert_no_secret(result.error or "", secrets, "OperationResult.error")


# --- streams -------------------------------------------------------------------------------------

def check_reads_all_pages(connector: Connector, stream: Stream, *, expected: set[str] | None,
                          min_pages: int) -> list[Page]:
    """A full read: records of the stream's kinds, each once, aware timestamps, JSON state."""
    pages = read_all(connector, stream.name)
    assert pages, f"{stream.name}: a read yielded no page at all (yield a Page with no records and a state)"
    found = keys(pages)
    twice = [k for k, n in Counter(found).items() if n > 1]
    assert not twice, f"{stream.name}: a full read yielded these records more than once: {twice[:10]}"
    wrong_kinds = {k for k, _ in found} - set(stream.kinds)
    assert not wrong_kinds, f"{stream.name}: records of kinds {wrong_kinds} not declared in Stream.kinds {stream.kinds}"
    for page in pages:
        json_state(page.state)
        for record in page.records:
            if record.updated_at is not None:
                assert record.updated_at.tzinfo is not None, (
                    f"{stream.name}: {record.external_id} has a naive updated_at ({record.updated_at})")
    for index, page in enumerate(pages[:-1]):
        assert page.state is not None, f"{stream.name}: page {index} has no state, so a crash after it restarts"
    if expected is not None:
        ids = {external_id for _, external_id in found}
        assert ids == expected, (f"{stream.name}: missing {sorted(expected - ids)[:10]}, "
                                 f"unexpected {sorted(ids - expected)[:10]}")
    assert len(pages) >= min_pages, (
        f"{stream.name}: only {len(pages)} page(s); make the sandbox data and page size give at least "
        f"{min_pages} so resuming is really tested (settings_overrides / dataset)")
    return pages


def check_resumes_from_every_page(connector: Connector, stream: Stream, pages: Sequence[Page]) -> None:
    """Resuming from page i's state yields exactly the records after page i: none lost, none twice."""
    everything = Counter(keys(pages))
    last = len(pages) - 1
    for index, page in enumerate(pages):
        if index == last and not stream.incremental:
            continue  # a full-refresh stream starts over after its last page, by design
        resumed = keys(read_all(connector, stream.name, json_state(page.state)))
        combined = Counter(keys(pages[:index + 1])) + Counter(resumed)
        missing = sorted((everything - combined).elements())
        repeated = sorted((combined - everything).elements())
        assert not missing and not repeated, (
            f"{stream.name}: resuming from page {index} of {len(pages)} (state {page.state!r}) "
            f"lost {missing[:10]} and repeated {repeated[:10]}")


def check_rereads_nothing_new(connector: Connector, stream: Stream, pages: Sequence[Page],
                              max_requests: int | None) -> None:
    """A re-read from the final state with no upstream change yields nothing new."""
    before = connector.request_count
    again = read_all(connector, stream.name, json_state(pages[-1].state))
    spent = connector.request_count - before
    if stream.incremental:
        assert not keys(again), (f"{stream.name}: nothing changed upstream, yet a re-read from the last "
                                 f"state yielded {keys(again)[:10]}")
    else:
        first = {record_key(r): r.fields for p in pages for r in p.records}
        second = {record_key(r): r.fields for p in again for r in p.records}
        assert second == first, f"{stream.name}: a full-refresh re-read with no change differs from the first read"
    if max_requests is not None:
        assert spent <= max_requests, (f"{stream.name}: an unchanged re-read made {spent} requests, "
                                       f"at most {max_requests} expected")


# --- operations ----------------------------------------------------------------------------------

def check_acts_once(connector: Connector, operation: str, params: BaseModel, effects: Callable[[], Any], *,
                    key: str, provider_idempotent: bool = True, repeatable: bool = False) -> None:
    """The same idempotency key twice acts once at the provider (see `OperationSample`)."""
    before = effects()
    first = connector.execute(operation, params, idempotency_key=key)
    assert isinstance(first, OperationResult), f"execute() returned {type(first).__name__}, not an OperationResult"
    assert first.ok, f"{operation}: the sample should succeed against the sandbox: {first}"
    after_first = effects()
    assert after_first != before, f"{operation}: the first call changed nothing the sample's effects() can see"
    second = connector.execute(operation, params, idempotency_key=key)
    assert second.ok, f"{operation}: replaying key {key!r} failed: {second}"
    if provider_idempotent:
        after_second = effects()
        assert after_second == after_first, (f"{operation}: the same idempotency key acted twice: effects went "
                                             f"{before!r} -> {after_first!r} -> {after_second!r}")
    assert second.external_id == first.external_id, (
        f"{operation}: the same key gave {first.external_id!r} then {second.external_id!r}")
    if repeatable:
        third = connector.execute(operation, params, idempotency_key=key + "-another")
        assert third.ok, f"{operation}: a new idempotency key failed: {third}"
        assert effects() != after_first, f"{operation}: a new idempotency key should act again, it did not"


def validate_params(connector: Connector, operation: str, params: Mapping[str, Any]) -> BaseModel:
    assert operation in connector.operations, (
        f"the sample names operation {operation!r}; the connector has {sorted(connector.operations)}")
    return connector.operations[operation].params.model_validate(dict(params))


def check_unreachable(connector: Connector, streams: Sequence[str], operation: tuple[str, BaseModel] | None,
                      secrets: Sequence[str]) -> None:
    """With the API gone: check() says so, reads raise TransientError, operations are retryable."""
    check_fails_cleanly(connector, secrets, "the API unreachable")
    for stream in streams[:1]:
        expect_error(lambda stream=stream: connector.read(stream, None), TransientError,
                     f"read({stream!r}) with the API unreachable", secrets)
    if operation is not None:
        name, params = operation
        expect_operation_failure(connector, name, params, "conformance-unreachable", TransientError,
                                 "the API unreachable", secrets)


__all__ = [
    "check_acts_once", "check_fails_cleanly", "check_reads_all_pages",
    "check_rereads_nothing_new", "check_resumes_from_every_page", "check_succeeds", "check_unreachable",
    "expect_error", "expect_operation_failure", "json_state", "keys", "read_all", "record_key",
    "secret_values", "spoil_secrets", "validate_params",
]
