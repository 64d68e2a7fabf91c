"""`churnhub.yaml`: loading, environment interpolation and validation with located errors.

    database: sqlite:///churnhub.db        # default: churnhub.db next to this file
    connectors:
      billing:
        type: stripe                       # chooses the connector type and its settings model
        api_key: ${STRIPE_API_KEY}
        schedule: {every: 15m}

Validation happens in two steps: the file's own shape (`HubFile`), then each connector block
against its type's settings model. Every error names file, line and dotted path:
`churnhub.yaml:14 connectors.billing.api_key: field required`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.connector import ConnectorSettings
from hub.errors import ConfigError
from hub.sections.identity import IdentitySettings
from hub.sections.schedule import Schedule
from hub.yamlsource import SourceMap, load_yaml

DEFAULT_CONFIG_NAME = "churnhub.yaml"
CONNECTOR_COMMON_KEYS = ("type", "schedule", "enabled")


class Environment(BaseSettings):
    """Process-level settings read from the environment (never from the YAML file)."""

    model_config = SettingsConfigDict(env_prefix="CHURNHUB_", extra="ignore")

    config: str | None = None      # CHURNHUB_CONFIG: path of churnhub.yaml
    plugins: str | None = None     # CHURNHUB_PLUGINS: comma-separated allow-list of plugin names
    debug: bool = False
    # CHURNHUB_READER_PROCESSES: at most this many forked reader processes for `churnhub sync`
    # (hub.readers); unset: one fewer than the CPUs; 0: read in threads of the writing process
    reader_processes: int | None = Field(default=None, ge=0)


class HubFile(BaseModel):
    """The top-level shape of churnhub.yaml (connector blocks are checked per type afterwards)."""

    model_config = ConfigDict(extra="forbid")

    database: str | None = None
    connectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    health: dict[str, Any] = Field(default_factory=dict)
    churn: dict[str, Any] = Field(default_factory=dict)
    playbooks: list[dict[str, Any]] | dict[str, Any] = Field(default_factory=list)  # hub.playbooks.config
    dunning: dict[str, Any] = Field(default_factory=dict)
    schedule: dict[str, Any] = Field(default_factory=dict)
    templates: str | None = None


@dataclass(frozen=True)
class ConnectorConfig:
    name: str
    type: str
    settings: ConnectorSettings
    schedule: Schedule | None = None
    enabled: bool = True


@dataclass
class Settings:
    """The validated, effective configuration."""

    path: Path
    database_url: str
    file: HubFile
    connectors: dict[str, ConnectorConfig] = field(default_factory=dict)
    source: SourceMap | None = None

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def templates_dir(self) -> Path | None:
        return (self.base_dir / self.file.templates) if self.file.templates else None


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """`--config`, else `CHURNHUB_CONFIG`, else `./churnhub.yaml`."""
    chosen = explicit or Environment().config or DEFAULT_CONFIG_NAME
    return Path(chosen).expanduser().resolve()


def read_environment(config_path: Path) -> dict[str, str]:
    """The process environment over a `.env` file next to the config (the environment wins)."""
    dotenv_file = config_path.parent / ".env"
    values = {k: v for k, v in dotenv_values(dotenv_file).items() if v is not None} if dotenv_file.exists() else {}
    return {**values, **os.environ}


def default_database_url(config_path: Path) -> str:
    return f"sqlite:///{config_path.parent / 'churnhub.db'}"


def normalise_database_url(url: str, base_dir: Path) -> str:
    """Relative SQLite paths are relative to the config file, not the working directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((base_dir / url[len(prefix):]).resolve())
    return url


def located_errors(exc: ValidationError, source: SourceMap, prefix: str = "") -> ConfigError:
    """Turn pydantic's errors into one ConfigError naming file, line and dotted path for each."""
    lines = []
    first: ConfigError | None = None
    for error in exc.errors():
        path = ".".join(str(p) for p in (*([prefix] if prefix else []), *error["loc"]))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see `churnhub config schema`)"
        elif error["type"] == "missing":
            message = "field required"
        located = source.error(path, message)
        first = first or located
        lines.append(str(located))
    assert first is not None
    combined = ConfigError("\n".join(lines))
    combined.file, combined.line, combined.path = first.file, first.line, first.path
    return combined


def load_settings(path: str | os.PathLike[str] | None,
                  connector_settings: Mapping[str, type[ConnectorSettings]],
                  *, env: Mapping[str, str] | None = None) -> Settings:
    """Read, interpolate and validate a config file against the registered connector types."""
    config_path = resolve_config_path(path)
    if not config_path.exists():
        raise ConfigError(f"config file not found: {config_path} (create one with `churnhub init`)")
    try:
        text = config_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError("the file is not valid UTF-8", file=str(config_path)) from None
    data, source = load_yaml(text, str(config_path), env if env is not None else read_environment(config_path))
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of sections (database, connectors, ...)", file=str(config_path), line=1)
    try:
        hub_file = HubFile.model_validate(data)
    except ValidationError as exc:
        raise located_errors(exc, source) from None
    connectors = {name: validate_connector(name, block, connector_settings, source)
                  for name, block in hub_file.connectors.items()}
    database_url = normalise_database_url(hub_file.database or default_database_url(config_path), config_path.parent)
    return Settings(config_path, database_url, hub_file, connectors, source)


def validate_connector(name: str, block: Any, types: Mapping[str, type[ConnectorSettings]],
                       source: SourceMap) -> ConnectorConfig:
    where = f"connectors.{name}"
    if not isinstance(block, dict):
        raise source.error(where, "expected a mapping with at least 'type'")
    type_name = block.get("type")
    if not type_name:
        raise source.error(where, "field required: type (one of: " + ", ".join(sorted(types)) + ")")
    if type_name not in types:
        known = ", ".join(sorted(types)) or "none registered"
        raise source.error(f"{where}.type", f"unknown connector type {type_name!r} (known: {known})")
    own = {k: v for k, v in block.items() if k not in CONNECTOR_COMMON_KEYS}
    try:
        settings = types[type_name].model_validate(own)
    except ValidationError as exc:
        raise located_errors(exc, source, where) from None
    schedule = None
    if block.get("schedule") is not None:
        try:
            schedule = Schedule.model_validate(block["schedule"])
        except ValidationError as exc:
            raise located_errors(exc, source, f"{where}.schedule") from None
    enabled = block.get("enabled", True)
    if not isinstance(enabled, bool):
        raise source.error(f"{where}.enabled", "expected true or false")
    return ConnectorConfig(name, type_name, settings, schedule, enabled)


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective configuration with every secret replaced by `**********`."""
    data = settings.file.model_dump(mode="json", exclude={"connectors"})
    data["database"] = redact_url(settings.database_url)
    data["connectors"] = {
        name: {"type": c.type, **c.settings.model_dump(mode="json"),
               **({"schedule": c.schedule.model_dump(mode="json", exclude_none=True)} if c.schedule else {}),
               **({} if c.enabled else {"enabled": False})}
        for name, c in settings.connectors.items()
    }
    return data


def redact_url(url: str) -> str:
    """Hide a password in a database URL: postgresql://u:secret@h/db -> postgresql://u:***@h/db."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def json_schema(connector_settings: Mapping[str, type[ConnectorSettings]]) -> dict[str, Any]:
    """A JSON Schema of churnhub.yaml, with one alternative per connector type."""
    schema = HubFile.model_json_schema()
    alternatives = []
    for type_name, model in sorted(connector_settings.items()):
        sub = model.model_json_schema()
        defs = sub.pop("$defs", {})
        schema.setdefault("$defs", {}).update(defs)
        sub.setdefault("properties", {}).update({
            "type": {"const": type_name},
            "schedule": {"$ref": "#/$defs/Schedule"},
            "enabled": {"type": "boolean"},
        })
        sub["required"] = ["type", *sub.get("required", [])]
        sub["additionalProperties"] = False
        alternatives.append(sub)
    schema.setdefault("$defs", {})["Schedule"] = Schedule.model_json_schema()
    if alternatives:
        schema["properties"]["connectors"] = {"type": "object", "additionalProperties": {"oneOf": alternatives}}
    schema["title"] = "churnhub.yaml"
    return schema
