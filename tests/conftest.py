"""Shared fixtures: databases on SQLite and (when CHURNHUB_TEST_POSTGRES_URL is set) PostgreSQL."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine, text

from hub import db
from hub.models import Base

POSTGRES_URL = os.environ.get("CHURNHUB_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head; each test gets a copy (migrations run once)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    db.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test process, migrated to head, dropped at the end."""
    if not POSTGRES_URL:
        pytest.skip("CHURNHUB_TEST_POSTGRES_URL is not set")
    admin = db.make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"churnhub_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    db.upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(url: str) -> None:
    engine = db.make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database: every database test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "churnhub.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    _truncate_all(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def hub_cli(tmp_path: Path, database_url: str) -> Callable[..., tuple[typer.Typer, list[str]]]:
    """The real `churnhub` CLI and the arguments that point it at a config for `database_url`.

        app, args = hub_cli("health:\\n  bands: {green: 75}\\n")
        CliRunner().invoke(app, [*args, "score", "--json"])
    """
    from hub import cli

    def make(extra_yaml: str = "") -> tuple[typer.Typer, list[str]]:
        config = tmp_path / "churnhub.yaml"
        config.write_text(f"database: {database_url}\n{extra_yaml}", encoding="utf-8")
        return cli.app, ["--config", str(config)]

    return make
