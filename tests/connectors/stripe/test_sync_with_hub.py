"""The Stripe connector under the hub's sync engine: pages and states go into the database as is."""

from __future__ import annotations

from sqlalchemy import select

from hub.models import SourceRecord
from hub.sync import SyncEngine

DAY = 86400
STREAMS = ("customers", "subscriptions", "invoices", "charges", "payment_methods")


def stored(engine, kind: str) -> dict[str, SourceRecord]:
    with engine.connect() as connection:
        rows = connection.execute(select(SourceRecord.__table__).where(SourceRecord.kind == kind)).all()
    return {row.external_id: row for row in rows}


def test_backfill_incremental_and_window_fallback_through_the_sync_engine(engine, sandbox, make_connector):
    connector = make_connector(sandbox, page_size=5)
    sync = SyncEngine(engine)
    first = {s: sync.run_stream("billing", connector, s) for s in STREAMS}
    assert all(run.status == "succeeded" for run in first.values())
    assert first["customers"].inserted == 12 and first["customers"].pages >= 3
    assert stored(engine, "subscription")["sub_demo0000005"].data["status"] == "past_due"

    quiet = {s: sync.run_stream("billing", connector, s) for s in STREAMS}
    assert all(run.records == 0 and run.requests == 1 for run in quiet.values())

    sandbox.delete_customer("cus_demo0000003")
    sandbox.cancel_subscription("sub_demo0000002", feedback="unused")
    changed = sync.run_stream("billing", connector, "customers")
    assert (changed.deleted, changed.requests) == (1, 1)
    assert stored(engine, "account")["cus_demo0000003"].deleted
    subscriptions = sync.run_stream("billing", connector, "subscriptions")
    assert subscriptions.updated == 2  # sub 2 canceled; sub 3 canceled with its customer
    assert stored(engine, "subscription")["sub_demo0000002"].data["cancellation_feedback"] == "unused"

    # away for more than Stripe's 30 days of events: a full re-read that reconciles what vanished
    sandbox.store.delete(sandbox.store.objects["cus_demo0000004"])  # gone without an event we could see
    sandbox.advance_clock(31 * DAY)
    reread = sync.run_stream("billing", connector, "customers")
    assert reread.status == "succeeded" and any("30 days" in note for note in reread.notes)
    assert reread.deleted == 1 and stored(engine, "account")["cus_demo0000004"].deleted
