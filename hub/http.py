"""The shared HTTP layer every HTTP connector uses.

`ApiClient` wraps one `httpx.Client` (connection reuse, timeouts, `User-Agent: churnhub/<version>`)
with three policies:

- retries (tenacity) on 429, 5xx and transport errors, honouring `Retry-After` (seconds or an
  HTTP date) and a connector's own hint (Stripe's `Stripe-Should-Retry`), with exponential backoff
  and jitter, bounded by attempts and total time; `sleep` is injectable so tests take no time;
- client-side rate limiting with token buckets (`RateLimiter`), so we stay under the API's limit
  instead of bouncing off 429s;
- errors mapped onto the hub's error tree with the API's own message, and secrets scrubbed.
"""

from __future__ import annotations

import collections
import email.utils
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

import httpx
import tenacity

from hub import jsontext
from hub.errors import (
    AuthError,
    ConnectorError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
)

try:
    __version__ = version("churnhub")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

USER_AGENT = f"churnhub/{__version__}"
Sleep = Callable[[float], None]
Clock = Callable[[], float]


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (longer than 3 characters) occurring in `text` with `***`."""
    for secret in secrets:
        if secret and len(secret) > 3:
            text = text.replace(secret, "***")
    return text


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


class Limiter(Protocol):
    """Anything that makes a request wait its turn: `acquire()` blocks, returns seconds slept."""

    def acquire(self) -> float: ...


class RateLimiter:
    """A token bucket: at most `rate` requests per `per` seconds, smooth bursts of `burst`."""

    def __init__(self, rate: float, per: float = 1.0, *, burst: float | None = None,
                 clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and per must be positive")
        self.capacity = burst if burst is not None else max(1.0, rate)
        self.fill_rate = rate / per
        self.tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the time slept."""
        with self._lock:
            now = self._clock()
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.fill_rate)
            self._last = now
            self.tokens -= 1
            wait = -self.tokens / self.fill_rate if self.tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


class WindowLimiter:
    """At most `limit` requests in any `window` seconds: a sliding log of the last `limit` starts.

    For APIs that count per window (Zendesk: per minute): the first `limit` requests go at once,
    the next waits until the oldest leaves the window, so no window, sliding or fixed, ever sees
    more than the budget.
    """

    def __init__(self, limit: int, window: float, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be at least 1 and window positive")
        self.limit, self.window = int(limit), window
        self._starts: collections.deque[float] = collections.deque()
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()

    def acquire(self) -> float:
        with self._lock:
            now = self._clock()
            while self._starts and self._starts[0] <= now - self.window:
                self._starts.popleft()
            wait = 0.0
            if len(self._starts) >= self.limit:
                wait = self._starts[0] + self.window - now
                self._starts.popleft()
            self._starts.append(now + wait)
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    max_elapsed: float = 120.0
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.25        # +/- share of the computed delay

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        delay = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        spread = delay * self.jitter
        return max(0.0, delay + (rng or random).uniform(-spread, spread))


def default_error_message(response: httpx.Response) -> str:
    """The API's own words from a JSON error body, or the start of a text body."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("error_description", "message", "description", "detail", "title"):
            if isinstance(body.get(key), str):
                return body[key]
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
    return str(body)[:300]


def error_for_status(response: httpx.Response, message: str, code: str | None = None) -> ConnectorError:
    """Map an HTTP status onto the hub's error tree."""
    status = response.status_code
    request_id = response.headers.get("request-id") or response.headers.get("x-request-id")
    text = f"HTTP {status} from {response.request.method} {response.request.url.path}: {message}"
    kwargs: dict[str, Any] = {"status": status, "code": code, "request_id": request_id}
    if status in (401, 403):
        return AuthError(text, **kwargs)
    if status == 404:
        return NotFoundError(text, **kwargs)
    if status == 429:
        return RateLimitedError(text, retry_after=parse_retry_after(response.headers.get("Retry-After")), **kwargs)
    if status >= 500:
        return TransientError(text, **kwargs)
    return PermanentError(text, **kwargs)


class _Retry(Exception):
    """Internal: this attempt should be retried after `delay` (None: use backoff)."""

    def __init__(self, error: ConnectorError, delay: float | None) -> None:
        super().__init__(str(error))
        self.error, self.delay = error, delay


def _parse_json_once(response: httpx.Response, method: str, url: str) -> None:
    try:
        parsed = jsontext.loads(response.content)
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        error = TransientError(f"{method} {httpx.URL(url).path}: the API answered {response.status_code} "
                               f"with a body that is not JSON ({kind}, {len(response.content)} bytes)")
        raise _Retry(error, None) from None
    response.json = lambda **_: parsed   # type: ignore[method-assign]  # callers get this one parse


class ApiClient:
    """An httpx client with the hub's retry, rate-limit and error policies.

    `error_mapper(response)` turns a non-2xx response into a `ConnectorError` (default: by
    status with the body's message). `should_retry(response)` may return True/False to override
    the default decision (429, 5xx retried; everything else not).

    With `expect_json` (the default) a 2xx body that is not JSON — a proxy's HTML error page, a
    body cut short — is a transient failure and retried like a 5xx, never handed to a mapper
    half-read. The body is parsed once, here: `response.json()` returns that parse.
    """

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        limiters: Sequence[Limiter] = (),
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        transport: httpx.BaseTransport | None = None,
        error_mapper: Callable[[httpx.Response], ConnectorError] | None = None,
        should_retry: Callable[[httpx.Response], bool | None] | None = None,
        secrets: Iterable[str] = (),
        expect_json: bool = True,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.expect_json = expect_json
        self.limiters = list(limiters)
        self.secrets = [s for s in secrets if s]
        self._sleep, self._clock = sleep, clock
        self._map_error = error_mapper or (lambda r: error_for_status(r, default_error_message(r)))
        self._should_retry = should_retry
        self.request_count = 0
        self._counting = threading.Lock()
        self.http = httpx.Client(
            base_url=base_url,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            auth=auth,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, url: str, *, limiters: Sequence[Limiter] = (),
                retry: bool = True, **kwargs: Any) -> httpx.Response:
        """Send a request, retrying what is worth retrying; return a 2xx/3xx response or raise."""
        started = self._clock()
        attempts = self.retry.max_attempts if retry else 1
        delays: dict[int, float] = {}  # one draw of jitter per attempt: `stop` and tenacity both ask

        def wait(state: tenacity.RetryCallState) -> float:
            if state.attempt_number not in delays:
                outcome = state.outcome.exception() if state.outcome else None
                hinted = outcome.delay if isinstance(outcome, _Retry) else None
                delays[state.attempt_number] = (hinted if hinted is not None
                                                else self.retry.backoff(state.attempt_number))
            return delays[state.attempt_number]

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= attempts:
                return True
            upcoming = wait(state)
            return self._clock() - started + upcoming > self.retry.max_elapsed

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retry),
            wait=wait,
            stop=stop,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt, method, url, [*self.limiters, *limiters], kwargs)
        except _Retry as exhausted:
            raise exhausted.error from None

    def _attempt(self, method: str, url: str, limiters: list[Limiter],
                 kwargs: dict[str, Any]) -> httpx.Response:
        for limiter in limiters:
            limiter.acquire()
        with self._counting:   # a list's next page may be fetched on a thread of its own
            self.request_count += 1
        try:
            response = self.http.request(method, url, **kwargs)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            error = TransientError(redact(f"{method} {httpx.URL(url).path}: {type(exc).__name__}: {exc}", self.secrets))
            raise _Retry(error, None) from None
        except TransientError as exc:   # raised by an auth flow (a token endpoint answering 5xx)
            raise _Retry(exc, None) from None
        if response.status_code < 400:
            if self.expect_json and response.content and response.status_code != 204:
                _parse_json_once(response, method, url)
            return response
        error = self._map_error(response)
        error.args = (redact(str(error), self.secrets),)
        decision = self._should_retry(response) if self._should_retry else None
        if decision is None:
            decision = response.status_code == 429 or response.status_code >= 500
        if decision:
            raise _Retry(error, parse_retry_after(response.headers.get("Retry-After")))
        raise error

