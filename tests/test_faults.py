"""Sandbox fault injection, observed through the shared HTTP client over real loopback HTTP."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub import ApiClient, FaultProfile, RetryPolicy, TransientError, serve_in_thread


def items(request):  # noqa: ANN001, ANN201 - a Starlette endpoint
    return JSONResponse({"data": [{"id": n} for n in range(3)], "has_more": False})


APP = Starlette(routes=[Route("/v1/items", items)])


@pytest.fixture
def served():
    servers = []

    def start(profile: FaultProfile):
        server = serve_in_thread(APP, faults=profile)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def client(url: str, attempts: int = 6) -> ApiClient:
    return ApiClient(base_url=url, retry=RetryPolicy(max_attempts=attempts, base_delay=0), sleep=lambda s: None)


def test_numbered_failure_hits_exactly_that_request_and_retry_recovers(served) -> None:
    server = served(FaultProfile(fail_request_numbers=frozenset({2})))
    api = client(server.url)
    assert api.request("GET", "/v1/items").json()["data"][0]["id"] == 0
    assert api.request("GET", "/v1/items").status_code == 200  # request 2 failed, 3 succeeded
    assert server.faults.injected == {"numbered": 1} and api.request_count == 3


@pytest.mark.parametrize("profile, kind", [
    (FaultProfile(drop_rate=1.0), "drop"),
    (FaultProfile(error_rate=1.0), "error"),
    (FaultProfile(rate_429=1.0), "429"),
])
def test_persistent_faults_surface_as_transient_errors(served, profile: FaultProfile, kind: str) -> None:
    server = served(profile)
    with pytest.raises((TransientError, httpx.HTTPError)) as info:
        client(server.url, attempts=3).request("GET", "/v1/items")
    assert server.faults.injected[kind] == 3
    assert "Traceback" not in str(info.value)


@pytest.mark.parametrize("profile", [FaultProfile(truncate_rate=1.0), FaultProfile(non_json_rate=1.0)])
def test_garbage_bodies_are_retried_then_a_transient_error(served, profile: FaultProfile) -> None:
    server = served(profile)
    with pytest.raises(TransientError, match="not JSON") as info:
        client(server.url, attempts=3).request("GET", "/v1/items")
    assert sum(server.faults.injected.values()) == 3      # every attempt got garbage: retried, not parsed
    assert "Traceback" not in str(info.value)


def test_same_seed_same_faults(served) -> None:
    logs = []
    for _ in range(2):
        server = served(FaultProfile(error_rate=0.3, rate_429=0.2, seed=7))
        api = client(server.url, attempts=1)
        for _ in range(30):
            try:
                api.request("GET", "/v1/items")
            except Exception:  # noqa: BLE001 - counting outcomes only
                pass
        logs.append(dict(server.faults.injected))
    assert logs[0] == logs[1] and sum(logs[0].values()) > 0
