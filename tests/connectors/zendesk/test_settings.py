"""The settings block: one host, one auth scheme, secrets kept secret; the plugin registers the type."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from connectors.zendesk import plugin
from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.settings import ZendeskSettings
from hub.plugins import build_registry, load_plugins, new_plugin_manager

TOKEN = {"email": "ops@acme.com", "api_token": "s3cr3t-token"}


def test_token_auth_header_and_defaults() -> None:
    settings = ZendeskSettings(subdomain="acme", **TOKEN)
    assert settings.url == "https://acme.zendesk.com"
    expected = base64.b64encode(b"ops@acme.com/token:s3cr3t-token").decode()
    assert settings.authorization() == f"Basic {expected}"
    assert (settings.requests_per_minute, settings.export_requests_per_minute) == (200, 10)
    assert "s3cr3t-token" not in repr(settings) and "s3cr3t-token" not in settings.model_dump_json()


def test_oauth_and_base_url() -> None:
    settings = ZendeskSettings(base_url="http://127.0.0.1:8080/", oauth_token="oauth-abc")
    assert settings.url == "http://127.0.0.1:8080"
    assert settings.authorization() == "Bearer oauth-abc"


@pytest.mark.parametrize("block", [
    {**TOKEN},                                                           # no host
    {"subdomain": "acme", "base_url": "http://127.0.0.1:1", **TOKEN},    # two hosts
    {"subdomain": "acme.zendesk.com", **TOKEN},                          # not a subdomain
    {"base_url": "127.0.0.1:8080", **TOKEN},                             # no scheme
    {"subdomain": "acme"},                                               # no auth
    {"subdomain": "acme", "api_token": "t"},                             # token without email
    {"subdomain": "acme", "oauth_token": "o", **TOKEN},                  # two schemes
    {"subdomain": "acme", "requests_per_minute": 0, **TOKEN},
    {"subdomain": "acme", "nps_field": {"object": "account", "field": "nps"}, **TOKEN},
    {"subdomain": "acme", "nps_field": {"object": "user", "field": "nps", "scale": 10}, **TOKEN},
    {"subdomain": "acme", "password": "x", **TOKEN},                     # unknown key
])
def test_invalid_blocks_are_refused(block: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ZendeskSettings(**block)


def test_nps_field_ticket_ids_are_text() -> None:
    settings = ZendeskSettings(subdomain="acme", nps_field={"object": "ticket", "field": 360001}, **TOKEN)
    assert settings.nps_field is not None and settings.nps_field.field == "360001"


def test_plugin_registers_the_zendesk_type() -> None:
    pm = new_plugin_manager()
    infos = load_plugins(pm, builtins=["connectors.zendesk.plugin"], allow=["connectors.zendesk.plugin"])
    registry = build_registry(pm, infos)
    zendesk = registry.connector_types["zendesk"]
    assert zendesk.settings is ZendeskSettings
    assert zendesk.start_sandbox is plugin.start_sandbox
    connector = zendesk.create(ZendeskSettings(subdomain="acme", **TOKEN))
    assert isinstance(connector, ZendeskConnector)
    assert set(connector.streams) == {"organizations", "users", "tickets", "satisfaction_ratings"}
    assert set(connector.operations) == {"add_organization_tags", "remove_organization_tags",
                                         "set_organization_fields", "create_ticket", "add_ticket_note"}
    connector.close()
