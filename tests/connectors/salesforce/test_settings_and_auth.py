"""Settings validation, the JWT audience, and the auth flow sending calls to the token's instance_url."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from connectors.salesforce.client import SalesforceClient, error_parts, parse_api_usage
from connectors.salesforce.settings import SalesforceSettings

CREDENTIALS = {"grant": "client_credentials", "client_id": "app", "client_secret": "s3cret-value"}


def settings(**values: Any) -> SalesforceSettings:
    return SalesforceSettings(**{"auth": CREDENTIALS, **values})


@pytest.mark.parametrize("bad", [{"fields": {"Account": ["Name FROM User --"]}}, {"facts": {"nps": "NPS__c'"}},
                                 {"api_version": "61"}, {"login_url": "login.salesforce.com"},
                                 {"batch_size": 5000}, {"unknown": 1}])
def test_refused_settings(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings(**bad)


def test_normalised_settings() -> None:
    parsed = settings(api_version=62, login_url="https://acme.my.salesforce.com/some/path",
                      fields={"Account": ["Region__c", "NPS__c"]}, facts={"nps": "NPS__c"})
    assert parsed.api_version == "62.0" and parsed.login_url == "https://acme.my.salesforce.com"
    assert parsed.extra_fields("Account") == ["Region__c", "NPS__c"]
    assert parsed.secrets() == ["s3cret-value"]


@pytest.mark.parametrize("login_url, audience", [
    ("https://login.salesforce.com", "https://login.salesforce.com"),
    ("https://acme.my.salesforce.com", "https://login.salesforce.com"),
    ("https://test.salesforce.com", "https://test.salesforce.com"),
    ("https://acme--uat.sandbox.my.salesforce.com", "https://test.salesforce.com"),
    ("https://community.acme.com", "https://community.acme.com"),
])
def test_jwt_audience_is_the_authorization_server(login_url: str, audience: str) -> None:
    jwt = {"grant": "jwt", "client_id": "app", "username": "u@acme.com", "private_key_file": "sf.key"}
    assert SalesforceSettings(auth=jwt, login_url=login_url).auth.audience == audience   # type: ignore[union-attr]


def test_calls_go_to_the_instance_url_of_the_token() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.host} {request.url.path}")
        if request.url.path == "/services/oauth2/token":
            assert b"client_secret=s3cret-value" in request.content
            return httpx.Response(200, json={"access_token": "00D!tok", "instance_url": "https://acme.my.salesforce.com",
                                             "token_type": "Bearer"})
        assert request.headers["Authorization"] == "Bearer 00D!tok"
        return httpx.Response(200, json={"totalSize": 0, "done": True, "records": []},
                              headers={"Sforce-Limit-Info": "api-usage=18/5000"})

    client = SalesforceClient(settings(), transport=httpx.MockTransport(handler), sleep=lambda _: None)
    assert list(client.query_records("SELECT Id FROM Account")) == []
    assert seen == ["POST login.salesforce.com /services/oauth2/token",
                    "GET acme.my.salesforce.com /services/data/v61.0/query"]
    assert client.api_usage == (18, 5000) and client.request_count == 2


def test_login_errors_never_show_the_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "invalid_client",
                                         "error_description": "invalid client credentials s3cret-value"})

    client = SalesforceClient(settings(), transport=httpx.MockTransport(handler), sleep=lambda _: None)
    with pytest.raises(Exception) as refused:
        client.limits()
    assert "invalid_client" in str(refused.value) and "s3cret-value" not in str(refused.value)


def test_error_shapes_and_usage_header() -> None:
    request = httpx.Request("GET", "https://x/")
    array = httpx.Response(400, request=request, json=[{"message": "bad", "errorCode": "MALFORMED_QUERY",
                                                        "fields": ["Name"]}])
    assert error_parts(array) == ("MALFORMED_QUERY: bad (Name)", "MALFORMED_QUERY")
    oauth = httpx.Response(400, request=request, json={"error": "invalid_grant", "error_description": "expired"})
    assert error_parts(oauth) == ("expired", "invalid_grant")
    assert parse_api_usage("per-app-api-usage=2/250(appName=x); api-usage=18/5000") == (18, 5000)
    assert parse_api_usage(None) is None
