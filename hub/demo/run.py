"""`churnhub demo` as a library call: the whole main job on an embedded SQLite, against local sandboxes.

    result = run_demo(Path(".demo"), customers=500, seed=7)
    result.summary["health"]["bands"], result.summary["truth"]["failed_invoices"]

Steps: generate the world, start the four sandboxes with it, write `churnhub.yaml`, bring the
database to head, sync everything and run the processing steps (`hub.pipeline.sync`: identity,
churn, health, playbooks, dunning as they are wired there), backtest the health score, write
`report.html`, and read a summary back from the database and the SMTP sink (`hub.demo.summary`).
Each run starts from a clean slate in `directory` (the database, report and mail it made before
are removed), because the sandboxes are new each time.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub import pipeline
from hub.app import Hub, discover_plugins
from hub.backtest import backtest
from hub.demo.sandboxes import RunningSandboxes, start_sandboxes
from hub.demo.summary import summarise
from hub.demo.truth import ground_truth
from hub.demo.world import DEFAULT_CUSTOMERS, DEFAULT_SEED, World, generate_world
from hub.health import plain_error
from hub.report import gather, render
from hub.sections.churn import ChurnSettings
from hub.sections.health import HealthSettings
from hub.sync import NoProgress, SyncProgress

CONFIG_NAME = "churnhub.yaml"
DATABASE_NAME = "churnhub.db"
REPORT_NAME = "report.html"
MAIL_DIR = "mail"
BACKTEST_HORIZON = timedelta(days=90)


@dataclass
class DemoResult:
    directory: Path
    summary: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    ok: bool = True


def demo_now() -> datetime:
    """The world ends now (to the hour), so health and churn, which look at the clock, see it as current."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def clean_directory(directory: Path) -> None:
    """Remove what an earlier demo run wrote there (and nothing else)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in (DATABASE_NAME, f"{DATABASE_NAME}-wal", f"{DATABASE_NAME}-shm", f"{DATABASE_NAME}-journal",
                 REPORT_NAME, CONFIG_NAME):
        (directory / name).unlink(missing_ok=True)
    shutil.rmtree(directory / MAIL_DIR, ignore_errors=True)


def run_demo(directory: Path, *, customers: int = DEFAULT_CUSTOMERS, seed: int = DEFAULT_SEED,
             now: datetime | None = None, progress: SyncProgress | None = None,
             say: Callable[[str], None] = lambda _text: None) -> DemoResult:
    directory = directory.resolve()
    timings: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    clean_directory(directory)
    world = generate_world(customers, seed, now=now or demo_now())
    lap("world")
    say(f"world: {len(world):,} customers (seed {seed}), history to {world.now_datetime:%Y-%m-%d %H:%M} UTC")
    plugins = discover_plugins()
    with start_sandboxes(world, plugins.registry, mail_dir=directory / MAIL_DIR) as running:
        lap("sandboxes")
        for name, url in running.urls().items():
            say(f"sandbox {name}: {url}")
        for name, why in running.missing.items():
            say(f"sandbox {name}: not started ({why})")
        config_path = directory / CONFIG_NAME
        config_path.write_text(running.config_yaml(f"sqlite:///{DATABASE_NAME}"), encoding="utf-8")
        hub = Hub.from_config(config_path, plugins=plugins)
        try:
            hub.ensure_database()
            lap("database")
            say("syncing every stream")
            outcome = pipeline.sync(hub, progress=progress or NoProgress())
            lap("sync_and_process")
            notes = [f"{run.connector}.{run.stream} {run.status}: {run.error}" for run in outcome.runs if run.error]
            notes += [f"sandbox {name} not started: {why}" for name, why in running.missing.items()]
            say("backtesting the health score")
            evaluation, problem = _backtest(hub, world)
            if problem:
                notes.append(f"backtest: {problem}")
            lap("backtest")
            say("writing the report")
            report = _report(hub, directory / REPORT_NAME)
            lap("report")
            summary = summarise(hub.engine, running, ground_truth(world), outcome)
            summary["backtest"] = evaluation
            summary["report"] = report
            summary["paths"] = _paths(hub, directory, running)
            summary["notes"] = notes
            lap("summary")
        finally:
            hub.close()
    timings["total"] = round(time.perf_counter() - started, 2)
    summary["timings"] = timings
    return DemoResult(directory, summary, timings, ok=outcome.ok)


def _backtest(hub: Hub, world: World) -> tuple[dict[str, Any] | None, str | None]:
    """Score everyone as they looked 90 days ago and check against who churned since."""
    as_of = world.now_datetime - BACKTEST_HORIZON
    try:
        result = backtest(hub.engine, hub.section("health", HealthSettings), hub.section("churn", ChurnSettings),
                          hub.registry.health_factors, as_of=as_of, horizon=BACKTEST_HORIZON, locate=plain_error)
    except ValueError as exc:
        return None, str(exc)
    data = result.as_dict()
    return {"as_of": as_of.isoformat(), "horizon_days": BACKTEST_HORIZON.days, **data.get("current", {}),
            "warnings": data.get("warnings", [])}, None


def _report(hub: Hub, out: Path) -> dict[str, Any]:
    data = gather(hub.engine, hub.section("health", HealthSettings), hub.section("churn", ChurnSettings),
                  hub.registry.health_factors, locate=plain_error)
    html = render(data)
    out.write_text(html, encoding="utf-8")
    return {"path": str(out), "bytes": len(html.encode()), "live_customers": data.kpis["customers"],
            "at_risk_listed": len(data.at_risk)}


def _paths(hub: Hub, directory: Path, running: RunningSandboxes) -> dict[str, str | None]:
    mail = running.mail()
    return {"directory": str(directory), "config": str(directory / CONFIG_NAME),
            "database": hub.settings.database_url, "report": str(directory / REPORT_NAME),
            "mail": str(mail.directory) if mail is not None and getattr(mail, "directory", None) else None}
