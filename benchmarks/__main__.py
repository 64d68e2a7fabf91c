"""`python -m benchmarks`: run the benchmarks of issue 12, print a table, write results.json.

    python -m benchmarks                                   # everything, at the issue's sizes
    python -m benchmarks --customers 2000 --only sync,noop
    python -m benchmarks --postgres postgresql+psycopg://u:p@127.0.0.1:55432/db --only sync
    python -m benchmarks --only score --score-customers 1000000

Benchmarks (`--only`): sync (churnhub vs the floor, SQLite, and PostgreSQL with --postgres or
CHURNHUB_TEST_POSTGRES_URL), peer (dlt's rest_api into SQLite), noop (a second sync with no
upstream change), process (identity, churn, health after the sync), memory (peak RSS of a sync
at each of --memory-sizes), score (scoring + churn classification in memory), playbooks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import render_table, verdicts
from benchmarks.syncbench import SyncPlan, sync_benchmark

ALL = ("sync", "peer", "noop", "process", "memory", "score", "playbooks")
SYNC_GROUP = ("sync", "peer", "noop", "process")
HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000, help="world size of the sync benchmarks")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--postgres", default=os.environ.get("CHURNHUB_TEST_POSTGRES_URL"),
                        help="also sync into PostgreSQL (a scratch database is created beside this one)")
    parser.add_argument("--memory-sizes", default="10000,100000", help="world sizes of the memory benchmark")
    parser.add_argument("--score-customers", type=int, default=1_000_000)
    parser.add_argument("--score-base", type=int, default=5_000,
                        help="synthetic customers written and loaded for real, then tiled to --score-customers")
    parser.add_argument("--profile", type=Path, help="profile one more sync (pyinstrument, else cProfile) into this file")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "churnhub-bench-cache",
                        help="where generated sandbox datasets are kept between runs")
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = [x for x in args.only if x not in ALL]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)} (known: {', '.join(ALL)})")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "arguments": {"customers": args.customers, "only": args.only, "postgres": bool(args.postgres),
                      "memory_sizes": args.memory_sizes, "score_customers": args.score_customers},
        "notes": [],
    }
    with tempfile.TemporaryDirectory(prefix="churnhub-bench-") as tmp:
        workdir = Path(tmp)
        if any(x in args.only for x in SYNC_GROUP):
            plan = SyncPlan(customers=args.customers, workdir=workdir / f"sync-{args.customers}", cache=args.cache,
                            floor="sync" in args.only, noop="noop" in args.only, process="process" in args.only,
                            peer="peer" in args.only, postgres_url=args.postgres if "sync" in args.only else None,
                            profile=args.profile)
            results["sync"] = _guard(results, "sync", lambda: sync_benchmark(plan))
            results["notes"].extend(plan.notes)
            if "sync" in args.only and not args.postgres:
                results["notes"].append("PostgreSQL not measured: give --postgres URL or CHURNHUB_TEST_POSTGRES_URL")
        if "memory" in args.only:
            results["memory"] = {}
            for size in [int(x) for x in args.memory_sizes.split(",") if x.strip()]:
                done = results.get("sync", {})
                if done.get("customers") == size and "sync_sqlite" in done:   # the same sync, already measured
                    results["memory"][str(size)] = {"sync_sqlite": done["sync_sqlite"], "reused": "sync"}
                    continue
                plan = SyncPlan(customers=size, workdir=workdir / f"memory-{size}", cache=args.cache, floor=False,
                                noop=False, process=False, peer=False)
                results["memory"][str(size)] = _guard(results, f"memory {size}", lambda p=plan: sync_benchmark(p))
        if "score" in args.only:
            from benchmarks.compute import score_benchmark

            results["score"] = _guard(results, "score", lambda: score_benchmark(args.score_customers, args.score_base))
        if "playbooks" in args.only:
            from benchmarks.playbooks import playbook_benchmark

            results["playbooks"] = _guard(results, "playbooks", lambda: playbook_benchmark(args.score_customers))
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["verdicts"] = verdicts(results)
    return results


def _guard(results: dict[str, Any], name: str, work: Any) -> dict[str, Any]:
    """One benchmark failing must not lose the others' figures."""
    started = time.perf_counter()
    try:
        return work()
    except Exception as exc:  # report it and carry on
        results["notes"].append(f"{name} failed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:],
                "seconds_before_failure": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(render_table(results))
    for note in results["notes"]:
        print(f"note: {note}")
    print(f"results written to {args.output}")
    return 0 if not any("failed" in note for note in results["notes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
