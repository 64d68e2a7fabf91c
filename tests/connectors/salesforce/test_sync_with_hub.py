"""The Salesforce connector under the hub's sync engine: a spent API budget stops a run, the next one resumes."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select

from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.sandbox import SalesforceSandbox
from hub import store
from hub.models import SourceRecord
from hub.sync import SyncEngine

from .conftest import DAY, NOW, FakeClock, account, sf_id


def stored_accounts(engine: Engine) -> dict[str, bool]:
    with engine.connect() as connection:
        rows = connection.execute(select(SourceRecord.__table__).where(SourceRecord.kind == "account")).all()
    return {row.external_id: row.deleted for row in rows}


def test_quota_stops_the_run_with_its_state_and_the_next_day_resumes(
        engine: Engine, sandbox_factory: Callable[..., SalesforceSandbox],
        connect: Callable[..., SalesforceConnector], clock: FakeClock) -> None:
    rows = [account(n, NOW - DAY + n // 3) for n in range(1, 31)]
    sandbox = sandbox_factory({"Account": rows}, max_batch_size=5, daily_api_limit=4)
    sync = SyncEngine(engine)

    stopped = sync.run_stream("crm", connect(sandbox, api_usage_limit_percent=100), "accounts")
    assert stopped.status == "stopped" and "REQUEST_LIMIT_EXCEEDED" in (stopped.error or "")
    assert stopped.inserted == 20 and len(stored_accounts(engine)) == 20
    with engine.connect() as connection:
        state = store.load_state(connection, "crm", "accounts")
    assert state is not None and state["scan_open"] is True

    clock.advance(DAY)                                  # a new day, a fresh budget
    connector = connect(sandbox, api_usage_limit_percent=100)
    resumed = sync.run_stream("crm", connector, "accounts")
    assert resumed.status == "succeeded" and resumed.inserted == 10 and resumed.updated == 0
    assert len(stored_accounts(engine)) == 30

    sandbox.delete("Account", sf_id("001", 2))
    clock.advance(120)
    again = sync.run_stream("crm", connector, "accounts")
    assert again.status == "succeeded" and again.deleted == 1 and again.requests == 1
    assert stored_accounts(engine)[sf_id("001", 2)] is True
