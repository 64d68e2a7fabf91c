"""`churnhub run`'s scheduler: jobs per connector, a real run, clean shutdown."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import select

from hub import ConnectorType, hookimpl
from hub.app import Hub, Plugins
from hub.config import load_settings
from hub.connector import ConnectorSettings
from hub.models import SourceRecord
from hub.plugins import build_registry, new_plugin_manager
from hub.scheduler import HubScheduler, trigger_for
from hub.sections.schedule import Schedule

from .test_sync import ScriptedConnector


class ScriptedSettings(ConnectorSettings):
    accounts: int = 5


class ScriptedPlugin:
    @hookimpl
    def register_connector_types(self, register):
        def build(settings: ScriptedSettings) -> ScriptedConnector:
            connector = ScriptedConnector()
            for n in range(settings.accounts):
                connector.put(f"acct-{n}", name=f"Account {n}")
            return connector

        register(ConnectorType(name="scripted", settings=ScriptedSettings, factory=build))


def make_hub(tmp_path: Path, database_url: str) -> Hub:
    manager = new_plugin_manager()
    manager.register(ScriptedPlugin(), name="scripted-test")
    plugins = Plugins(manager, build_registry(manager, {}))
    config = tmp_path / "churnhub.yaml"
    config.write_text(f"database: {database_url}\nconnectors:\n"
                      "  crm:\n    type: scripted\n    accounts: 7\n    schedule: {every: 1h}\n"
                      "  other:\n    type: scripted\n    enabled: false\n")
    types = {n: t.settings for n, t in plugins.registry.connector_types.items()}
    return Hub(load_settings(config, types, env={}), plugins)


def test_triggers_from_schedule() -> None:
    assert trigger_for(Schedule(every="90s")).interval.total_seconds() == 90
    cron = trigger_for(Schedule(cron="*/5 * * * *"))
    assert "minute='*/5'" in str(cron)


def test_scheduler_runs_enabled_jobs_and_shuts_down_cleanly(tmp_path: Path, database_url: str) -> None:
    hub = make_hub(tmp_path, database_url)
    done = threading.Event()
    scheduler = HubScheduler(hub, on_sync=lambda name, outcome: done.set())
    scheduler.add_jobs(run_now=True)
    assert scheduler.job_ids() == ["sync:crm"]  # the disabled connector has no job
    scheduler.start()
    try:
        assert done.wait(20), "the scheduled sync did not run"
    finally:
        started = time.monotonic()
        scheduler.shutdown()
    assert time.monotonic() - started < 10
    assert not scheduler.scheduler.running
    with hub.engine.connect() as connection:
        ids = connection.execute(select(SourceRecord.external_id)).scalars().all()
    assert sorted(ids) == sorted(f"acct-{n}" for n in range(7))
    hub.close()


def test_cron_weekdays_follow_crontab_not_python() -> None:
    trigger = trigger_for(Schedule(cron="0 6 * * 1", jitter="30s"))  # Mondays at 06:00
    assert "day_of_week='mon'" in str(trigger) and trigger.jitter == 30


def test_crontab_weekday_numbers_become_names() -> None:
    from hub.scheduler import crontab_weekdays

    assert crontab_weekdays("1-5") == "mon-fri"
    assert crontab_weekdays("0,6") == "sun,sat"
    assert crontab_weekdays("7") == "sun"
    assert crontab_weekdays("*/2") == "*/2"
