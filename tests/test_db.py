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


def test_the_fast_sqlite_stamp_writes_what_sqlalchemy_writes() -> None:
    """Records' timestamps are stamped by `hub.store` for SQLite itself; the text must stay SQLAlchemy's,
    or stored timestamps would not compare and parse as the rest of the schema's do."""
    from datetime import UTC, date, datetime, timedelta, timezone

    from sqlalchemy.dialects import sqlite

    from hub.models import SourceRecord
    from hub.store import Statements

    dialect = sqlite.dialect()
    slow = SourceRecord.__table__.c.synced_at.type.dialect_impl(dialect).bind_processor(dialect)
    engine = db.make_engine("sqlite://")
    with engine.connect() as connection:
        stamp = Statements.of(connection).stamp
    moments = [datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC), datetime(2026, 12, 8, 1, 2, 3, 45, tzinfo=UTC),
               datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999),
               datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=2))), date(2026, 12, 8)]
    assert [stamp(moment) for moment in moments] == [slow(moment) for moment in moments]
