"""What runs after data arrives: the hub's jobs in order, shared by `sync`, `run` and `demo`.

Each capability adds its step here (identity resolution, churn, health, playbooks, dunning);
the CLI and the scheduler call `sync_and_process` so they never drift apart.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from hub.app import Hub
from hub.churnrun import run_churn
from hub.config import Environment
from hub.connector import Connector
from hub.dunning import run_dunning
from hub.errors import ConfigError
from hub.health import plain_error
from hub.identity_store import connector_types_of, resolve_identities
from hub.playbooks import run_playbooks
from hub.scoring import score_all
from hub.sections.churn import ChurnSettings
from hub.sections.health import HealthSettings
from hub.sync import StreamSelection, SyncEngine, SyncProgress, SyncRunSummary


@dataclass
class SyncOutcome:
    runs: list[SyncRunSummary] = field(default_factory=list)
    steps: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(run.status == "succeeded" for run in self.runs)


def select_connectors(hub: Hub, names: Sequence[str] | None) -> dict[str, Connector]:
    """Build the named connectors (or every enabled one that has inbound streams)."""
    configured = hub.settings.connectors
    if names:
        unknown = [n for n in names if n not in configured]
        if unknown:
            raise ConfigError(f"no connector named {', '.join(map(repr, unknown))} "
                              f"(configured: {', '.join(sorted(configured)) or 'none'})")
        chosen = list(names)
    else:
        chosen = [n for n, c in configured.items() if c.enabled]
    connectors = {name: hub.connector(name) for name in chosen}
    return {name: c for name, c in connectors.items() if c.streams or names}


def reader_processes(connectors: int) -> int:
    """How many reader processes a sync of `connectors` forks at most: CHURNHUB_READER_PROCESSES, else
    one per connector up to one fewer than the CPUs (the writer needs one; on two CPUs one reader
    process was as fast as three and took 65 MB less). Which connectors they read, and which are
    read in the writer's own threads, is `hub.readers.place_connectors`."""
    try:
        limit = Environment().reader_processes
    except ValidationError:
        raise ConfigError("CHURNHUB_READER_PROCESSES: expected a whole number, 0 or more (0: read in threads), "
                          f"not {os.environ.get('CHURNHUB_READER_PROCESSES')!r}") from None
    if limit is None:
        limit = max(1, (os.cpu_count() or 2) - 1)
    return min(limit, connectors)


def sync(hub: Hub, names: Sequence[str] | None = None, *, streams: Sequence[str] | None = None,
         full: bool = False, progress: SyncProgress | None = None,
         stop: threading.Event | None = None) -> SyncOutcome:
    """Sync the selected streams, then run the processing steps."""
    hub.ensure_database()
    connectors = select_connectors(hub, names)
    if streams:
        missing = [s for s in streams if not any(s in c.streams for c in connectors.values())]
        if missing:
            raise ConfigError(f"no selected connector has stream(s) {', '.join(missing)}")
    engine = SyncEngine(hub.engine, progress=progress, stop=stop,
                        on_finished=lambda run: hub.hook.sync_finished(run=run),
                        reader_processes=reader_processes(len(connectors)))
    try:
        runs = engine.run(StreamSelection(connectors, streams), full=full)
    finally:
        for connector in connectors.values():
            connector.close()
    outcome = SyncOutcome(runs)
    if stop is None or not stop.is_set():
        outcome.steps.update(process(hub))
    return outcome


Step = Callable[[Hub, datetime], Any]


def resolve_step(hub: Hub, now: datetime) -> Any:
    return resolve_identities(hub.engine, hub.settings.file.identity, connector_types_of(hub.settings), now=now)


def churn_step(hub: Hub, now: datetime) -> Any:
    return run_churn(hub.engine, hub.section("churn", ChurnSettings), now=now)


def score_step(hub: Hub, now: datetime) -> Any:
    if not hub.registry.health_factors:   # plugins allow-listed without any factor: nothing to score
        return {"skipped": "no health factors are registered"}
    locate = hub.settings.source.error if hub.settings.source is not None else plain_error
    return score_all(hub.engine, hub.section("health", HealthSettings), hub.registry.health_factors,
                     now=now, locate=locate)


def playbooks_step(hub: Hub, now: datetime) -> Any:
    return run_playbooks(hub, now=now)


def dunning_step(hub: Hub, now: datetime) -> Any:
    return run_dunning(hub, now=now)


# In order: customers must exist before churn is classified, churn states before scoring
# (churned customers are not scored), and scores before playbooks read them.
STEPS: tuple[tuple[str, Step], ...] = (
    ("identity", resolve_step),
    ("churn", churn_step),
    ("health", score_step),
    ("playbooks", playbooks_step),
    ("dunning", dunning_step),
)


def process(hub: Hub, *, now: datetime | None = None, steps: Sequence[str] | None = None) -> dict[str, Any]:
    """Derived work after a sync, every step from the same `now`; returns each step's summary."""
    now = now or datetime.now(UTC)
    results: dict[str, Any] = {}
    for name, step in STEPS:
        if steps is None or name in steps:
            outcome = step(hub, now)
            results[name] = outcome.as_dict() if hasattr(outcome, "as_dict") else outcome
    return results
