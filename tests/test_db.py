"""Migrations: `alembic upgrade head` then `alembic check` on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

from alembic import command
from hub import db
from hub.models import Base


def test_migrations_reach_head_and_match_the_models(database_url: str, engine: Engine) -> None:
    db.upgrade(database_url)  # idempotent on an up-to-date database
    assert db.is_up_to_date(engine)
    command.check(db.alembic_config(database_url))  # raises if models and migrations drift
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())


def test_timestamps_are_timezone_aware() -> None:
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if column.type.__class__.__name__ == "DateTime":
                assert column.type.timezone, f"{table.name}.{column.name} must be timezone-aware"
