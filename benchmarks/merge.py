"""The merge of a large first load into a large SQLite table, with and without the account index.

    python -m benchmarks.merge                      # 2,650,000 stored rows, a 1,000,000-row first load
    python -m benchmarks.merge --stored 265000 --staged 100000 --json

Shaped like the Stripe invoices of a 100,000-customer sync: the other kinds are stored (in key
order, as merges leave them), the invoices are staged with random ids and random accounts, and
the merge is timed twice on copies of that database: as it runs with the account index in
place, and as `SyncEngine` runs a large first load on SQLite (the index dropped first, built
after the merge; `hub.staging.DEFERRED_INDEX`). Rows carry 450 bytes of data, about what a
synced record stores. The database is built once into --workdir (about 3 GB at the default sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import inspect

from hub import db, staging
from hub.models import Base

STORED_KINDS = (("charge", 0.415), ("ticket", 0.264), ("contact", 0.17), ("account", 0.113), ("subscription", 0.038))
COLUMNS = ("connector, kind, external_id, account_ref, data, checksum, deleted, source_updated_at, "
           "first_seen_at, synced_at, seen_run_id")
STAGED_COLUMNS = ", ".join(staging.STAGED_COLUMNS)
MOMENT = "2026-12-07 22:00:00.000000"
DATA = '{"a":"' + "x" * 440 + '"}'


def _rows(kind: str, count: int, accounts: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(kind)
    for _ in range(count):
        yield ("billing", kind, f"{kind[:2]}_{rng.getrandbits(64):016x}", f"cus_{rng.randrange(accounts):06d}",
               DATA, "0" * 32, 0, None, MOMENT, MOMENT, 1)


def build(path: Path, stored: int, staged: int, accounts: int) -> None:
    """A fresh database at `path` with the schema, `stored` rows merged and `staged` rows waiting."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = db.make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")   # building the fixture, not measuring it
    for kind, share in STORED_KINDS:
        connection.execute("BEGIN")
        connection.executemany(f"INSERT INTO source_records ({COLUMNS}) VALUES ({', '.join('?' * 11)})",
                               sorted(_rows(kind, int(stored * share), accounts), key=lambda row: row[2]))
        connection.execute("COMMIT")
    connection.execute("BEGIN")
    connection.executemany(f"INSERT INTO staged_records ({STAGED_COLUMNS}) VALUES ({', '.join('?' * 11)})",
                           ((r[0], "invoices", *r[1:8], r[9], r[10]) for r in _rows("invoice", staged, accounts)))
    connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def merge(source: Path, copy: Path, *, deferred: bool) -> dict[str, float]:
    """Merge the staged load of a copy of `source`, chunk by chunk as the engine does; seconds and CPU."""
    shutil.copyfile(source, copy)
    for suffix in ("-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    engine = db.make_engine(f"sqlite:///{copy}")
    try:
        started, cpu = time.perf_counter(), _cpu()
        if deferred:
            with engine.begin() as connection:
                staging.defer_account_index(connection)
        rows = 0
        while True:
            with engine.begin() as connection:
                chunk = staging.merge_chunk(connection, "billing", "invoices")
            rows += chunk.rows
            if chunk.rows < staging.MERGE_CHUNK:
                break
        merged = time.perf_counter()
        if deferred:
            with engine.begin() as connection:
                staging.build_account_index(connection)
        finished = time.perf_counter()
        # what the measurement leaves: every row merged, the index in place
        indexed = any(i["name"] == staging.DEFERRED_INDEX for i in inspect(engine).get_indexes("source_records"))
        return {"merged": rows, "indexed": indexed, "merge_seconds": round(merged - started, 2), "index_seconds": round(finished - merged, 2),
                "seconds": round(finished - started, 2), "cpu_seconds": round(_cpu() - cpu, 2)}
    finally:
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.merge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stored", type=int, default=2_650_000, help="rows already in source_records")
    parser.add_argument("--staged", type=int, default=1_000_000, help="rows of the first load to merge")
    parser.add_argument("--accounts", type=int, default=100_000, help="distinct account_ref values")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "churnhub-bench-merge")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = args.workdir / "base.db"
    built = time.perf_counter()
    build(source, args.stored, args.staged, args.accounts)
    figures: dict[str, Any] = {"stored": args.stored, "staged": args.staged,
                               "build_seconds": round(time.perf_counter() - built, 1)}
    for name, deferred in (("with_index", False), ("deferred_index", True)):
        figures[name] = merge(source, args.workdir / f"{name}.db", deferred=deferred)
        if not args.json:
            f = figures[name]
            print(f"{name:15} merge {f['merge_seconds']:7.1f} s  index {f['index_seconds']:6.1f} s  "
                  f"total {f['seconds']:7.1f} s  CPU {f['cpu_seconds']:7.1f} s", flush=True)
    source.unlink()
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
