"""Configuration: located errors, interpolation, redaction, schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from hub.config import json_schema, load_settings, redacted
from hub.connector import ConnectorSettings
from hub.errors import ConfigError


class BillingSettings(ConnectorSettings):
    api_key: SecretStr
    base_url: str = "https://api.example.com"
    requests_per_second: float = 20


TYPES = {"billing_api": BillingSettings}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "churnhub.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(path, TYPES, env=env or {})
    return info.value


def test_valid_config_with_env_interpolation_and_default(tmp_path: Path) -> None:
    path = write(tmp_path, """
connectors:
  billing:
    type: billing_api
    api_key: ${KEY}
    base_url: ${BASE:-http://127.0.0.1:9}
    schedule: {every: 15m}
""")
    settings = load_settings(path, TYPES, env={"KEY": "sk_live_abc"})
    billing = settings.connectors["billing"]
    assert billing.settings.api_key.get_secret_value() == "sk_live_abc"
    assert billing.settings.base_url == "http://127.0.0.1:9"
    assert billing.schedule is not None and billing.schedule.every.total_seconds() == 900
    assert settings.database_url == f"sqlite:///{tmp_path / 'churnhub.db'}"


def test_missing_field_names_file_line_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, "# comment\nconnectors:\n  billing:\n    type: billing_api\n    base_url: http://x\n")
    error = error_of(path)
    assert str(error) == f"{path}:3 connectors.billing.api_key: field required"


def test_unknown_key_is_an_error_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "connectors:\n  billing:\n    type: billing_api\n    api_key: k\n    api_keey: typo\n")
    error = error_of(path)
    assert error.line == 5 and error.path == "connectors.billing.api_keey"
    assert "unknown key" in str(error)


def test_wrong_type_and_unknown_top_level_section(tmp_path: Path) -> None:
    path = write(tmp_path, "connectors:\n  billing:\n    type: billing_api\n    api_key: k\n"
                           "    requests_per_second: lots\n")
    error = error_of(path)
    assert error.line == 5 and "requests_per_second" in str(error)
    assert error_of(write(tmp_path, "databse: x\n")).path == "databse"


def test_unknown_connector_type_lists_known_ones(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "connectors:\n  crm:\n    type: salesfarce\n"))
    assert error.line == 3 and "salesfarce" in str(error) and "billing_api" in str(error)


def test_unset_variable_is_named(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "connectors:\n  billing:\n    type: billing_api\n    api_key: ${STRIPE_KEY}\n"))
    assert "STRIPE_KEY" in str(error) and error.line == 4


def test_dotenv_file_next_to_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FROM_DOTENV", raising=False)
    (tmp_path / ".env").write_text("FROM_DOTENV=sk_from_file\n")
    path = write(tmp_path, "connectors:\n  billing:\n    type: billing_api\n    api_key: ${FROM_DOTENV}\n")
    settings = load_settings(path, TYPES)
    assert settings.connectors["billing"].settings.api_key.get_secret_value() == "sk_from_file"


def test_malformed_yaml_and_duplicate_keys_are_located(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "connectors:\n  billing: [unclosed\n"))
    assert "invalid YAML" in str(error) and error.line is not None
    error = error_of(write(tmp_path, "database: a\ndatabase: b\n"))
    assert error.line == 2 and "duplicate" in str(error)


def test_bad_schedule_is_located(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "connectors:\n  billing:\n    type: billing_api\n    api_key: k\n"
                                     "    schedule: {every: soon}\n"))
    assert error.path is not None and error.path.startswith("connectors.billing.schedule")


def test_redacted_config_hides_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, "database: postgresql://hub:pg-secret@db/hub\nconnectors:\n"
                           "  billing:\n    type: billing_api\n    api_key: sk_live_very_secret\n")
    shown = str(redacted(load_settings(path, TYPES, env={})))
    assert "sk_live_very_secret" not in shown and "pg-secret" not in shown
    assert "**********" in shown


def test_relative_sqlite_path_is_relative_to_the_config(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "database: sqlite:///data/hub.db\n"), TYPES, env={})
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'hub.db'}"


def test_json_schema_has_one_alternative_per_connector_type() -> None:
    schema = json_schema(TYPES)
    alternatives = schema["properties"]["connectors"]["additionalProperties"]["oneOf"]
    assert alternatives[0]["properties"]["type"] == {"const": "billing_api"}
    assert "api_key" in alternatives[0]["required"]
