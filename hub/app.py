"""The `Hub`: settings, database and plugins wired together for one configuration."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import pluggy
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hub import db
from hub.config import Environment, Settings, load_settings, located_errors
from hub.connector import Connector
from hub.errors import ConfigError
from hub.plugins import Registry, build_registry, load_plugins, new_plugin_manager

SectionModel = TypeVar("SectionModel", bound=BaseModel)


@dataclass
class Plugins:
    manager: pluggy.PluginManager
    registry: Registry


def discover_plugins(allow: str | None = None) -> Plugins:
    """A fresh plugin manager with built-ins and entry-point plugins loaded."""
    allow = allow if allow is not None else Environment().plugins
    manager = new_plugin_manager()
    infos = load_plugins(manager, allow=allow.split(",") if allow else None)
    return Plugins(manager, build_registry(manager, infos))


class Hub:
    """Everything a command needs: validated settings, a database, plugins and connectors."""

    def __init__(self, settings: Settings, plugins: Plugins) -> None:
        self.settings = settings
        self.plugins = plugins

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, *,
                    plugins: Plugins | None = None) -> Hub:
        plugins = plugins or discover_plugins()
        types = {name: t.settings for name, t in plugins.registry.connector_types.items()}
        return cls(load_settings(path, types), plugins)

    @property
    def registry(self) -> Registry:
        return self.plugins.registry

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.plugins.manager.hook

    @cached_property
    def engine(self) -> Engine:
        return db.make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return db.session_factory(self.engine)

    def ensure_database(self) -> None:
        """Bring an embedded SQLite database to head automatically; ask for PostgreSQL."""
        if db.is_up_to_date(self.engine):
            return
        if self.engine.dialect.name == "sqlite":
            db.upgrade(self.settings.database_url)
            return
        raise ConfigError("the database schema is not up to date: run `churnhub db upgrade`")

    def connector(self, name: str) -> Connector:
        config = self.settings.connectors.get(name)
        if config is None:
            known = ", ".join(sorted(self.settings.connectors)) or "none configured"
            raise ConfigError(f"no connector named {name!r} in {self.settings.path.name} (configured: {known})")
        return self.registry.connector_types[config.type].create(config.settings)

    def section(self, name: str, model: type[SectionModel]) -> SectionModel:
        """A config section (`health`, `churn`, `dunning`, ...) validated as its capability's model.

        Sections are owned by the capability that reads them, so they are validated here on first
        use, with the same located errors as the rest of the file.
        """
        value: Any = getattr(self.settings.file, name)
        if isinstance(value, model):
            return value
        try:
            return model.model_validate(value or {})
        except ValidationError as exc:
            if self.settings.source is None:
                raise ConfigError(f"{name}: {exc}") from None
            raise located_errors(exc, self.settings.source, name) from None

    @property
    def base_dir(self) -> Path:
        return self.settings.base_dir

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
