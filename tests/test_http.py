"""The shared HTTP layer: retries, backoff, rate limiting, error mapping and secret scrubbing."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from importlib.metadata import version

import httpx
import pytest

from hub import (
    USER_AGENT,
    ApiClient,
    AuthError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RateLimiter,
    RetryPolicy,
    TransientError,
    WindowLimiter,
    parse_retry_after,
)
from hub.http import error_for_status

NO_JITTER = RetryPolicy(max_attempts=6, max_elapsed=120, base_delay=0.5, max_delay=30, jitter=0)


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(*responses: httpx.Response | Exception) -> tuple[Callable[[httpx.Request], httpx.Response], list]:
    """A handler answering with `responses` in turn (the last one repeats); records requests."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = responses[min(len(seen), len(responses)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


def client(handler: Callable[[httpx.Request], httpx.Response], time_: FakeTime, **kwargs) -> ApiClient:
    kwargs.setdefault("retry", NO_JITTER)
    return ApiClient(base_url="https://api.example.test", transport=httpx.MockTransport(handler),
                     sleep=time_.sleep, clock=time_.clock, **kwargs)


def error(status: int, message: str = "nope", headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message}}, headers=headers or {})


def test_user_agent_names_churnhub_and_its_version():
    handler, seen = scripted(httpx.Response(200, json={}))
    client(handler, FakeTime()).request("GET", "/ping")
    assert seen[0].headers["User-Agent"] == f"churnhub/{version('churnhub')}" == USER_AGENT


def test_429_waits_the_retry_after_seconds_then_succeeds():
    time_ = FakeTime()
    handler, seen = scripted(error(429, headers={"Retry-After": "7"}), httpx.Response(200, json={"ok": True}))
    api = client(handler, time_)
    assert api.request("GET", "/things").json() == {"ok": True}
    assert time_.sleeps == [7.0]
    assert len(seen) == api.request_count == 2


def test_429_honours_a_retry_after_http_date():
    time_ = FakeTime()
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    handler, _ = scripted(error(429, headers={"Retry-After": when}), httpx.Response(200, json={}))
    client(handler, time_).request("GET", "/things")
    assert len(time_.sleeps) == 1 and 27 <= time_.sleeps[0] <= 30.5


def test_5xx_is_retried_with_exponential_backoff():
    time_ = FakeTime()
    handler, seen = scripted(error(503), error(502), error(500), httpx.Response(200, json={}))
    client(handler, time_).request("GET", "/things")
    assert time_.sleeps == [0.5, 1.0, 2.0]
    assert len(seen) == 4


def test_transport_errors_are_retried_then_reported_as_transient():
    time_ = FakeTime()
    handler, seen = scripted(httpx.ConnectError("connection refused"))
    api = client(handler, time_, retry=RetryPolicy(max_attempts=4, jitter=0))
    with pytest.raises(TransientError, match="ConnectError: connection refused"):
        api.request("GET", "/things")
    assert len(seen) == 4 and len(time_.sleeps) == 3


def test_attempts_are_bounded_and_the_last_error_carries_the_api_message():
    handler, seen = scripted(error(500, "database on fire"))
    api = client(handler, FakeTime(), retry=RetryPolicy(max_attempts=3, jitter=0))
    with pytest.raises(TransientError, match="HTTP 500 from GET /things: database on fire") as caught:
        api.request("GET", "/things")
    assert len(seen) == 3
    assert caught.value.status == 500


def test_total_time_is_bounded_even_when_the_api_says_wait():
    time_ = FakeTime()
    handler, seen = scripted(error(429, "slow down", {"Retry-After": "20"}))
    api = client(handler, time_, retry=RetryPolicy(max_attempts=10, max_elapsed=50, jitter=0))
    with pytest.raises(RateLimitedError) as caught:
        api.request("GET", "/things")
    assert time_.sleeps == [20.0, 20.0]  # a third wait would pass 50 s
    assert len(seen) == 3
    assert caught.value.retry_after == 20.0


def test_the_wait_checked_against_the_budget_is_the_wait_slept(monkeypatch):
    # jitter is drawn once per attempt: the budget check and the sleep must agree
    draws = iter([-0.125, 0.125, -0.125, 0.125])
    monkeypatch.setattr(random, "uniform", lambda low, high: next(draws))
    time_ = FakeTime()
    handler, seen = scripted(error(503), httpx.Response(200, json={}))
    api = client(handler, time_, retry=RetryPolicy(max_attempts=5, max_elapsed=0.6, base_delay=0.5, jitter=0.25))
    api.request("GET", "/things")
    assert time_.sleeps == [0.375]
    assert len(seen) == 2


def test_backoff_is_capped_and_jittered():
    policy = RetryPolicy(base_delay=0.5, max_delay=5, jitter=0.25)
    rng = random.Random(1)
    for attempt, centre in ((1, 0.5), (3, 2.0), (10, 5.0)):
        delay = policy.backoff(attempt, rng)
        assert centre * 0.75 <= delay <= centre * 1.25


def stripe_hint(response: httpx.Response) -> bool | None:
    hint = response.headers.get("Stripe-Should-Retry")
    return None if hint is None else hint == "true"


def test_should_retry_false_stops_a_5xx_retry():
    handler, seen = scripted(error(500, "charged already", {"Stripe-Should-Retry": "false"}))
    with pytest.raises(TransientError, match="charged already"):
        client(handler, FakeTime(), should_retry=stripe_hint).request("POST", "/v1/charges")
    assert len(seen) == 1


def test_should_retry_true_retries_a_4xx():
    time_ = FakeTime()
    handler, seen = scripted(error(409, "in progress", {"Stripe-Should-Retry": "true"}), httpx.Response(200, json={}))
    client(handler, time_, should_retry=stripe_hint).request("POST", "/v1/charges")
    assert len(seen) == 2 and time_.sleeps == [0.5]


@pytest.mark.parametrize(("status", "kind"), [(400, PermanentError), (401, AuthError), (403, AuthError),
                                              (404, NotFoundError), (422, PermanentError)])
def test_4xx_is_not_retried_and_maps_onto_the_error_tree(status, kind):
    handler, seen = scripted(httpx.Response(status, json={"error": {"message": "the API's words"}},
                                            headers={"request-id": "req_123"}))
    with pytest.raises(kind, match="the API's words") as caught:
        client(handler, FakeTime()).request("GET", "/things")
    assert len(seen) == 1
    assert (caught.value.status, caught.value.request_id) == (status, "req_123")


def test_error_mapper_hook_decides_the_error():
    def mapper(response: httpx.Response):
        return error_for_status(response, "mapped: " + response.json()["errors"][0]["title"], code="X1")

    handler, _ = scripted(httpx.Response(400, json={"errors": [{"title": "bad field"}]}))
    with pytest.raises(PermanentError, match="mapped: bad field") as caught:
        client(handler, FakeTime(), error_mapper=mapper).request("GET", "/things")
    assert caught.value.code == "X1"


def test_secrets_never_appear_in_error_text():
    secret = "sk_live_SuperSecret123"
    handler, _ = scripted(error(401, f"Invalid API Key provided: {secret}"))
    with pytest.raises(AuthError) as caught:
        client(handler, FakeTime(), secrets=[secret]).request("GET", "/things")
    assert secret not in str(caught.value) and "***" in str(caught.value)

    handler, _ = scripted(httpx.ConnectError(f"cannot reach https://x/?key={secret}"))
    with pytest.raises(TransientError) as caught:
        client(handler, FakeTime(), secrets=[secret], retry=RetryPolicy(max_attempts=1)).request("GET", "/x")
    assert secret not in str(caught.value)


def test_retry_false_makes_exactly_one_attempt():
    handler, seen = scripted(error(503))
    with pytest.raises(TransientError):
        client(handler, FakeTime()).request("GET", "/things", retry=False)
    assert len(seen) == 1


def test_rate_limiter_spaces_requests_with_the_injected_clock():
    time_ = FakeTime()
    limiter = RateLimiter(2, 1.0, burst=1, clock=time_.clock, sleep=time_.sleep)
    waits = [limiter.acquire() for _ in range(4)]
    assert waits == [0.0, 0.5, 0.5, 0.5]
    assert time_.now == 1001.5


def test_rate_limiter_allows_a_burst_then_refills():
    time_ = FakeTime()
    limiter = RateLimiter(5, 1.0, clock=time_.clock, sleep=time_.sleep)
    assert [limiter.acquire() for _ in range(5)] == [0.0] * 5
    assert limiter.acquire() == pytest.approx(0.2)
    time_.now += 10  # idle time refills only up to the burst
    assert [limiter.acquire() for _ in range(5)] == [0.0] * 5
    assert limiter.acquire() > 0


def test_client_takes_a_token_for_every_attempt():
    time_ = FakeTime()
    limiter = RateLimiter(1, 1.0, burst=1, clock=time_.clock, sleep=time_.sleep)
    handler, seen = scripted(error(503), httpx.Response(200, json={}))
    client(handler, time_, limiters=[limiter], retry=RetryPolicy(base_delay=0.1, jitter=0)).request("GET", "/x")
    # the retry waits 0.1 s of backoff, then 0.9 s more for the limiter's next token
    assert time_.sleeps == [pytest.approx(0.1), pytest.approx(0.9)]
    assert len(seen) == 2


@pytest.mark.parametrize(("value", "expected"), [("5", 5.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None),
                                                 ("", None), (None, None)])
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_is_relative_to_now():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0


def test_window_limiter_lets_the_budget_through_at_once_then_waits_for_the_oldest() -> None:
    time_ = FakeTime()
    limiter = WindowLimiter(3, 60.0, clock=time_.clock, sleep=time_.sleep)
    starts = []
    for _ in range(3):
        assert limiter.acquire() == 0.0
        starts.append(time_.now)
    time_.now += 10
    assert limiter.acquire() == pytest.approx(50.0)      # the first start leaves the window at +60
    starts.append(time_.now)
    for _ in range(6):
        limiter.acquire()
        starts.append(time_.now)
    # no 60-second window ever holds more than 3 starts
    assert all(sum(1 for t in starts if w <= t < w + 60) <= 3 for w in starts)
    assert starts[-1] - starts[0] == pytest.approx(180.0)
