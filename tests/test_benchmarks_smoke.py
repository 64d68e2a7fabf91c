"""The benchmark harness at a tiny size, so it cannot rot: a sync and a no-op sync end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_run_at_a_tiny_size(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--customers", "30", "--only", "sync,noop",
         "--output", str(output), "--cache", str(tmp_path / "cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(output.read_text())
    sync = results["sync"]
    assert {"stripe", "zendesk"} <= set(sync["systems"])
    first = sync["sync_sqlite"]
    assert first["ok"] and first["records"] > 100
    assert first["records"] == sum(s["records"] for s in first["streams"].values())
    assert 0 < first["peak_rss_mb"] < 2000
    assert sync["floor"]["records"] > 100 and sync["floor"]["requests"] > 0
    noop = sync["noop"]
    assert noop["ok"] and noop["records"] == 0
    assert set(noop["streams"]) == set(first["streams"])
    figures = {row["figure"]: row for row in results["verdicts"]}
    assert figures["churnhub SQLite / floor"]["ratio"] > 0
    assert "churnhub SQLite / floor" in done.stdout


def test_the_merge_benchmark_merges_every_staged_row_and_leaves_the_index(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.merge", "--stored", "3000", "--staged", "1200", "--accounts", "50",
         "--workdir", str(tmp_path), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for variant in ("with_index", "deferred_index"):
        assert figures[variant]["merged"] == 1200 and figures[variant]["indexed"], figures[variant]
    assert figures["with_index"]["index_seconds"] == 0
