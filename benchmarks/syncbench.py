"""Sync benchmarks against the sandboxes: churnhub vs the floor and the peer, the no-op, memory.

    figures = sync_benchmark(SyncPlan(customers=2000, workdir=Path(tmp), cache=Path(".cache")))

One world, one set of sandbox processes, then in this order, each in its own measured process:
the churnhub sync into a fresh SQLite file (the SyncEngine alone), the floor over the same
endpoints, the no-op second sync, the processing steps (identity, churn, health), the peer (dlt)
and the PostgreSQL sync. The sandboxes' CPU time is read around each phase, so a phase in which
a sandbox was busy for most of the wall time is flagged as sandbox-bound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from benchmarks.datasets import dataset_files_in_subprocess
from benchmarks.processes import Sandboxes, measure

CONNECTOR_NAMES = {"stripe": "billing", "zendesk": "helpdesk", "salesforce": "crm"}


@dataclass
class SyncPlan:
    customers: int
    workdir: Path
    cache: Path
    floor: bool = True
    noop: bool = True
    process: bool = True
    peer: bool = True
    postgres_url: str | None = None
    profile: Path | None = None
    systems: list[str] | None = None
    notes: list[str] = field(default_factory=list)


def write_config(directory: Path, settings: dict[str, dict[str, Any]], database: str) -> Path:
    """A churnhub.yaml pointing every connector at its sandbox."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {"database": database,
              "connectors": {CONNECTOR_NAMES[system]: block for system, block in settings.items()}}
    path = directory / "churnhub.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def salesforce_queries(log: list[list[Any]]) -> list[str]:
    """The SOQL requests the connector opened its streams with (not the `nextRecordsUrl` pages)."""
    return [target for method, target, status in log
            if method == "GET" and status == 200 and "/query" in target and "?q=" in target]


def _phase(sandboxes: Sandboxes, args: list[str]) -> dict[str, Any]:
    before = sandboxes.cpu()
    result = measure(args)
    after = sandboxes.cpu()
    wall = result["wall_seconds"]
    result["sandbox_cpu_seconds"] = {s: round(after[s] - before[s], 3) for s in after}
    result["sandbox_busiest_share"] = round(max(after[s] - before[s] for s in after) / wall, 3) if wall else None
    return result


def sync_benchmark(plan: SyncPlan) -> dict[str, Any]:
    datasets = dataset_files_in_subprocess(plan.customers, plan.cache, systems=plan.systems)
    figures: dict[str, Any] = {"customers": plan.customers, "systems": sorted(datasets)}
    with Sandboxes(datasets) as sandboxes:
        figures["sandbox_objects"] = sandboxes.objects
        figures["systems"] = sorted(sandboxes.settings)
        for system, why in sandboxes.failed.items():
            plan.notes.append(f"{system} not benchmarked: its sandbox did not start ({why})")
        figures["skipped_systems"] = sandboxes.failed
        figures["sandbox_startup_seconds"] = round(sandboxes.startup_seconds, 2)
        sqlite = plan.workdir / "sqlite"
        config = write_config(sqlite, sandboxes.settings, f"sqlite:///{sqlite / 'churnhub.db'}")
        child = ["-m", "benchmarks.child"]
        figures["sync_sqlite"] = _phase(sandboxes, [*child, "sync", "--config", str(config)])
        systems = {system: dict(block) for system, block in sandboxes.settings.items()}
        if "salesforce" in systems:
            systems["salesforce"]["queries"] = salesforce_queries(sandboxes.request_log("salesforce"))
        systems_file = plan.workdir / "systems.json"
        systems_file.write_text(json.dumps(systems), encoding="utf-8")
        if plan.floor:
            figures["floor"] = _phase(sandboxes, [*child, "floor", "--systems", str(systems_file)])
        if plan.noop:
            figures["noop"] = _phase(sandboxes, [*child, "noop", "--config", str(config)])
        if plan.process:
            figures["process"] = _phase(sandboxes, [*child, "process", "--config", str(config)])
        if plan.peer:
            figures["peer_dlt"] = _optional(plan, "peer", lambda: _peer(sandboxes, child, systems_file, plan))
        if plan.postgres_url:
            figures["sync_postgres"] = _optional(plan, "PostgreSQL sync", lambda: _postgres(sandboxes, child, plan))
        if plan.profile:
            profiled = plan.workdir / "profiled"
            config = write_config(profiled, sandboxes.settings, f"sqlite:///{profiled / 'churnhub.db'}")
            figures["profiled_sync"] = _optional(plan, "profiled sync", lambda: _phase(
                sandboxes, [*child, "sync", "--config", str(config), "--profile", str(plan.profile)]))
    return figures


def _optional(plan: SyncPlan, name: str, work: Any) -> dict[str, Any]:
    """An extra that fails is reported; the main figures are kept."""
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - reported in the results
        plan.notes.append(f"{name} failed: {exc}")
        return {"error": str(exc)[-2000:]}


def _peer(sandboxes: Sandboxes, child: list[str], systems_file: Path, plan: SyncPlan) -> dict[str, Any]:
    try:
        import dlt  # noqa: F401
    except ImportError:
        return {"skipped": "dlt is not installed (pip install '.[bench]')"}
    database = f"sqlite:///{plan.workdir / 'dlt.db'}"
    return _phase(sandboxes, [*child, "dlt", "--systems", str(systems_file), "--database", database,
                              "--workdir", str(plan.workdir / "dlt")])


def _postgres(sandboxes: Sandboxes, child: list[str], plan: SyncPlan) -> dict[str, Any]:
    """A sync into a fresh database created next to the one `postgres_url` names, dropped after."""
    import psycopg

    assert plan.postgres_url is not None
    parts = urlsplit(plan.postgres_url)
    name = f"churnhub_bench_{plan.customers}"
    admin = plan.postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    url = parts._replace(path=f"/{name}").geturl()
    try:
        config = write_config(plan.workdir / "postgres", sandboxes.settings, url)
        return _phase(sandboxes, [*child, "sync", "--config", str(config)])
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
