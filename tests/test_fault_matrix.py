"""Under every fault profile a full sync ends with exactly the sandbox's data, or stops cleanly.

For each built-in HTTP connector and each fault the sandboxes can inject (5xx, 429, dropped
connections, truncated and non-JSON 200 bodies, a 500 in the middle of a page sequence, latency,
and a storm bad enough to exhaust the retries) a full sync into a fresh database must either
succeed with rows identical to a clean sync's, or fail with a clear error — and then, once the
API is healthy again, the next run must resume to exactly the same rows: no gap, no duplicate,
no state advanced past what was stored.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.sandbox import start_sandbox as start_salesforce
from connectors.salesforce.settings import SalesforceSettings
from connectors.stripe.connector import StripeConnector
from connectors.stripe.sandbox import start_sandbox as start_stripe
from connectors.stripe.settings import StripeSettings
from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.sandbox import start_sandbox as start_zendesk
from connectors.zendesk.settings import ZendeskSettings
from hub import Connector, FaultProfile
from hub.db import make_engine
from hub.demo.salesforce_data import CUSTOM_FIELDS, salesforce_dataset
from hub.demo.stripe_data import stripe_dataset
from hub.demo.world import World, generate_world
from hub.demo.zendesk_data import zendesk_dataset
from hub.models import SourceRecord
from hub.sync import StreamSelection, SyncEngine

PROFILES: dict[str, FaultProfile] = {
    "5xx": FaultProfile(error_rate=0.2, seed=1),
    "429": FaultProfile(rate_429=0.25, seed=2),
    "dropped": FaultProfile(drop_rate=0.15, seed=3),
    "truncated": FaultProfile(truncate_rate=0.15, seed=4),
    "non-json": FaultProfile(non_json_rate=0.15, seed=5),
    "500-mid-pages": FaultProfile(fail_request_numbers=frozenset({4, 5, 7}), seed=6),
    "slow-and-flaky": FaultProfile(latency=0.01, error_rate=0.1, drop_rate=0.05, seed=7),
    "storm": FaultProfile(error_rate=0.6, drop_rate=0.2, truncate_rate=0.1, seed=8),
}


def no_sleep(_seconds: float) -> None:
    """Retries wait for nothing: the faults are what is under test, not the clock."""


@dataclass
class System:
    start: Callable[[World, FaultProfile | None], Any]
    connect: Callable[[Any], Connector]


def _stripe(world: World, faults: FaultProfile | None) -> Any:
    return start_stripe(stripe_dataset(world), rate_limit=None, faults=faults)


def _zendesk(world: World, faults: FaultProfile | None) -> Any:
    return start_zendesk(zendesk_dataset(world), rate_limits=False, export_page_size=25, faults=faults)


def _salesforce(world: World, faults: FaultProfile | None) -> Any:
    return start_salesforce(salesforce_dataset(world), custom_fields=CUSTOM_FIELDS, max_batch_size=5, faults=faults)


SYSTEMS = {
    "stripe": System(_stripe, lambda sb: StripeConnector(StripeSettings(**sb.settings(), page_size=7),
                                                          sleep=no_sleep)),
    "zendesk": System(_zendesk, lambda sb: ZendeskConnector(
        ZendeskSettings(**{**sb.settings(), "requests_per_minute": 100_000, "export_requests_per_minute": 100_000}),
        sleep=no_sleep)),
    "salesforce": System(_salesforce, lambda sb: SalesforceConnector(SalesforceSettings(**sb.settings()),
                                                                      sleep=no_sleep)),
}


@pytest.fixture(scope="module")
def world() -> World:
    now = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    return generate_world(18, seed=11, now=now)


def fresh_engine(template: Path, directory: Path) -> Any:
    path = directory / "churnhub.db"
    shutil.copy(template, path)
    return make_engine(f"sqlite:///{path}")


def rows_of(engine: Any) -> dict[tuple[str, str], tuple[Any, bool]]:
    table = SourceRecord.__table__
    with engine.connect() as connection:
        found = connection.execute(select(table.c.kind, table.c.external_id, table.c.data, table.c.deleted)).all()
    rows = {(kind, external_id): (data, deleted) for kind, external_id, data, deleted in found}
    assert len(rows) == len(found)
    return rows


def sync(engine: Any, connector: Connector) -> list[Any]:
    try:
        return SyncEngine(engine).run(StreamSelection({"source": connector}, None))
    finally:
        connector.close()


@pytest.fixture(scope="module")
def truth(world: World, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """What a clean full sync of each system stores."""
    found = {}
    for name, system in SYSTEMS.items():
        sandbox = system.start(world, None)
        try:
            engine = fresh_engine(sqlite_template, tmp_path_factory.mktemp(f"truth-{name}"))
            runs = sync(engine, system.connect(sandbox))
            assert {run.status for run in runs} == {"succeeded"}, [(r.stream, r.error) for r in runs]
            found[name] = rows_of(engine)
            assert found[name], name
            engine.dispose()
        finally:
            sandbox.stop()
    yield found


@pytest.mark.parametrize("profile_name", sorted(PROFILES))
@pytest.mark.parametrize("system_name", sorted(SYSTEMS))
def test_a_faulty_api_never_leaves_a_gap_or_a_duplicate(system_name: str, profile_name: str, world: World,
                                                        truth: dict[str, Any], sqlite_template: Path,
                                                        tmp_path: Path) -> None:
    system = SYSTEMS[system_name]
    profile = FaultProfile(**vars(PROFILES[profile_name]))   # a copy: the healthy phase clears it
    sandbox = system.start(world, profile)
    engine = fresh_engine(sqlite_template, tmp_path)
    try:
        runs = sync(engine, system.connect(sandbox))
        assert sum(sandbox.server.faults.injected.values()) > 0 or profile.latency, "no fault was injected"
        failed = [run for run in runs if run.status != "succeeded"]
        for run in failed:
            assert run.error and "Traceback" not in run.error, run
        if profile_name != "storm":   # transient faults are absorbed by retries: the sync just succeeds
            assert not failed, [(r.stream, r.error) for r in failed]
            assert rows_of(engine) == truth[system_name]
        # The API heals; the next run resumes from what was committed and ends at the truth.
        for name in ("error_rate", "rate_429", "drop_rate", "truncate_rate", "non_json_rate", "latency"):
            setattr(profile, name, 0.0)
        profile.fail_request_numbers = frozenset()
        again = sync(engine, system.connect(sandbox))
        assert {run.status for run in again} == {"succeeded"}, [(r.stream, r.error) for r in again]
        assert rows_of(engine) == truth[system_name]
        if profile_name == "storm":
            assert failed, "the storm was expected to exhaust the retries of at least one stream"
    finally:
        sandbox.stop()
        engine.dispose()
