"""What runs in a measured subprocess: one sync, one no-op sync, the floor or the peer.

    python -m benchmarks.child sync  --config DIR/churnhub.yaml [--profile OUT.txt]
    python -m benchmarks.child noop  --config DIR/churnhub.yaml
    python -m benchmarks.child process --config DIR/churnhub.yaml
    python -m benchmarks.child floor --systems DIR/systems.json
    python -m benchmarks.child dlt   --systems DIR/systems.json --database URL --workdir DIR

Each prints one JSON line with its figures, including this process's own peak RSS (`VmHWM`),
so the memory figure is the sync alone (the sandboxes run in processes of their own).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def run_sync(config: str, *, profile: str | None = None) -> dict[str, Any]:
    """Sync every connector once: the SyncEngine alone, connectors in parallel as in production."""
    from hub import db
    from hub.app import Hub
    from hub.pipeline import select_connectors
    from hub.sync import StreamSelection, SyncEngine

    hub = Hub.from_config(config)
    if not db.is_up_to_date(hub.engine):
        db.upgrade(hub.settings.database_url)
    connectors = select_connectors(hub, None)
    profiler = None
    if profile:
        profiler = _profiler()
        profiler.start()
    started = time.perf_counter()
    from hub.pipeline import reader_processes

    # as `churnhub sync` runs it: the connectors read in forked processes (in threads when profiled)
    engine = SyncEngine(hub.engine, reader_processes=0 if profile else reader_processes(len(connectors)))
    try:
        if profiler is None:
            runs = engine.run(StreamSelection(connectors))
        else:   # profilers see one thread: run the streams one after another in this one
            runs = [engine.run_stream(name, connector, stream)
                    for name, connector in connectors.items() for stream in connector.streams]
    finally:
        for connector in connectors.values():
            connector.close()
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.stop()
        _write_profile(profiler, profile or "")
    result: dict[str, Any] = {
        "seconds": seconds,
        "records": sum(r.records for r in runs),
        "requests": sum(r.requests for r in runs),
        "streams": {f"{r.connector}.{r.stream}": {"records": r.records, "requests": r.requests,
                                                   "status": r.status, "error": r.error,
                                                   "seconds": (r.finished_at - r.started_at).total_seconds()
                                                   if r.finished_at else None}
                    for r in runs},
        "ok": all(r.status == "succeeded" for r in runs),
        "reader_peak_rss_mb": engine.reader_peaks_mb,
        "reader_cpu_seconds": engine.reader_cpu_seconds,
    }
    hub.close()
    return result


def run_process(config: str) -> dict[str, Any]:
    """The processing steps after a sync (identity, churn, health), each timed."""
    from datetime import UTC, datetime

    from hub.app import Hub
    from hub.pipeline import process

    hub = Hub.from_config(config)
    now = datetime.now(UTC)
    steps: dict[str, Any] = {}
    started = time.perf_counter()
    for name in ("identity", "churn", "health"):
        began = time.perf_counter()
        outcome = process(hub, now=now, steps=[name])
        steps[name] = {"seconds": time.perf_counter() - began, "summary": json.loads(json.dumps(outcome[name], default=str))}
    hub.close()
    return {"seconds": time.perf_counter() - started, "steps": steps}


def _profiler() -> Any:
    try:
        from pyinstrument import Profiler

        return Profiler(interval=0.005, async_mode="disabled")
    except ImportError:
        import cProfile

        profile = cProfile.Profile()
        profile.start, profile.stop = profile.enable, profile.disable   # pyinstrument's names
        return profile


def _write_profile(profiler: Any, path: str) -> None:
    if hasattr(profiler, "output_text"):
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    import io
    import pstats

    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(60)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.child")
    parser.add_argument("mode", choices=("sync", "noop", "process", "floor", "dlt"))
    parser.add_argument("--config")
    parser.add_argument("--systems")
    parser.add_argument("--database")
    parser.add_argument("--profile")
    parser.add_argument("--workdir")
    args = parser.parse_args(argv)
    if args.mode in ("sync", "noop"):
        result = run_sync(args.config, profile=args.profile)
    elif args.mode == "process":
        result = run_process(args.config)
    elif args.mode == "floor":
        from benchmarks.floor import run_floor

        result = run_floor(json.loads(open(args.systems, encoding="utf-8").read()))
    else:
        from benchmarks.peer import run_dlt

        result = run_dlt(json.loads(open(args.systems, encoding="utf-8").read()), args.database, args.workdir)
    result["vm_hwm_mb"] = peak_rss_mb()
    sys.stdout.write(json.dumps(result, default=str) + "\n")


def peak_rss_mb() -> float | None:
    """This process's peak resident set (VmHWM). Unlike the parent's `ru_maxrss` of a child, it
    starts from zero at exec, so it is not inflated by the parent's size at fork time. (hub.readers
    has the same reader; importing hub here would add its modules to the floor's figure.)"""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


if __name__ == "__main__":
    main()
