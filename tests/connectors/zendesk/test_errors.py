"""check() and error mapping: the API's own words, and a clear message for agents on exports."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import httpx
import pytest

from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.sandbox import ZendeskSandbox
from connectors.zendesk.settings import ZendeskSettings
from hub import AuthError, NotFoundError, PermanentError, RetryPolicy

Start = Callable[..., ZendeskSandbox]
Connect = Callable[..., ZendeskConnector]


def test_check(sandboxes: Start, connect: Connect, zd: SimpleNamespace) -> None:
    sandbox = sandboxes(zd.small_world())
    good = connect(sandbox).check()
    assert good.ok and "admin" in good.detail
    assert connect(sandbox, auth="oauth").check().ok
    bad = connect(sandbox, api_token="not-the-token").check()
    assert not bad.ok and "Couldn't authenticate you" in bad.detail and "401" in bad.detail
    assert "not-the-token" not in bad.detail
    agent = connect(sandbox, "agent").check()
    assert not agent.ok and "admins only" in agent.detail


def test_agent_token_on_an_export_is_an_auth_error_saying_why(sandboxes: Start, connect: Connect,
                                                              zd: SimpleNamespace) -> None:
    sandbox = sandboxes(zd.small_world())
    connector = connect(sandbox, "agent")
    for stream in ("organizations", "users", "tickets"):
        with pytest.raises(AuthError, match="admins only") as caught:
            list(connector.read(stream, None))
        assert caught.value.status == 403


def test_unknown_credentials_on_read_are_an_auth_error(sandboxes: Start, connect: Connect,
                                                       zd: SimpleNamespace) -> None:
    sandbox = sandboxes(zd.small_world())
    with pytest.raises(AuthError, match="Couldn't authenticate you"):
        list(connect(sandbox, auth="oauth", oauth_token="expired").read("tickets", None))


def test_not_found_and_classic_validation_errors(sandboxes: Start, connect: Connect, zd: SimpleNamespace) -> None:
    sandbox = sandboxes(zd.small_world())
    client = connect(sandbox).client
    with pytest.raises(NotFoundError) as missing:
        client.get("/api/v2/organizations/404.json")
    assert (missing.value.status, missing.value.code) == (404, "RecordNotFound")
    with pytest.raises(PermanentError) as invalid:
        client.send("PUT", "/api/v2/organizations/2.json", {"organization": {"name": "Org 1"}})
    assert (invalid.value.status, invalid.value.code) == (422, "RecordInvalid")
    assert "Name: has already been taken" in str(invalid.value)


def _mock_connector(handler: Callable[[httpx.Request], httpx.Response], waits: list[float]) -> ZendeskConnector:
    return ZendeskConnector(ZendeskSettings(subdomain="acme", oauth_token="tok-secret-1"),
                            transport=httpx.MockTransport(handler), sleep=waits.append, retry=RetryPolicy(jitter=0))


def test_new_error_shape_and_secrets_scrubbed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"errors": [{"code": "InvalidValue", "title": "Bad start_time",
                                                     "detail": "tok-secret-1 is not a time"}]})

    connector = _mock_connector(handler, [])
    with pytest.raises(PermanentError) as caught:
        connector.client.get("/api/v2/anything")
    assert caught.value.code == "InvalidValue"
    assert "Bad start_time: *** is not a time" in str(caught.value)
    connector.close()


def test_server_errors_and_conflicts_are_retried() -> None:
    answers = iter([httpx.Response(503, text="Service Unavailable"), httpx.Response(409, json={"error": "Conflict"}),
                    httpx.Response(200, json={"tags": ["a"]})])
    waits: list[float] = []
    connector = _mock_connector(lambda request: next(answers), waits)
    assert connector.client.send("PUT", "/api/v2/organizations/1/tags", {"tags": ["a"]}) == {"tags": ["a"]}
    assert connector.request_count == 3
    connector.close()
