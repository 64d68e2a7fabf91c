"""The benchmark world: the demo world exported for each sandbox, cached as JSON files.

    paths = dataset_files_in_subprocess(10_000, Path("/tmp/churnhub-bench-cache"))
    # {"stripe": Path(...stripe.json), "zendesk": ..., "salesforce": ...}  (salesforce when its exporter exists)

Generating the Stripe export is the slow part (about 3.5 ms a customer), so each file is written
once per (size, seed, hour) and reused. The world's `now` is the current hour, so the sandboxes
(which run on the real clock) see a history that ends just before the sync.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.demo.world import World, generate_world

SEED = 7


def exporters() -> dict[str, Callable[[World], Any]]:
    """The dataset exporters present in this checkout (Salesforce's may not have landed)."""
    found: dict[str, Callable[[World], Any]] = {}
    for system, module, function in (("salesforce", "hub.demo.salesforce_data", "salesforce_dataset"),
                                     ("zendesk", "hub.demo.zendesk_data", "zendesk_dataset"),
                                     ("stripe", "hub.demo.stripe_data", "stripe_dataset")):
        try:
            found[system] = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError):
            continue
    return found


def has_sandbox(system: str) -> bool:
    try:
        importlib.import_module(f"connectors.{system}.sandbox")
    except ImportError:
        return False
    return True


def world_now() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def dataset_files(customers: int, cache: Path, *, seed: int = SEED, now: datetime | None = None,
                  systems: list[str] | None = None) -> dict[str, Path]:
    """One JSON dataset per system, generated unless cached; returns the files by system."""
    now = now or world_now()
    cache.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H")
    wanted = {s: f for s, f in exporters().items() if has_sandbox(s) and (systems is None or s in systems)}
    paths = {system: cache / f"{system}-{customers}-{seed}-{stamp}.json" for system in wanted}
    missing = [s for s, p in paths.items() if not p.exists()]
    if missing:
        world = generate_world(customers, seed=seed, now=now)
        for system in missing:
            data = wanted[system](world)
            partial = paths[system].with_suffix(".part")
            partial.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
            partial.replace(paths[system])
    return paths


def dataset_files_in_subprocess(customers: int, cache: Path, *, systems: list[str] | None = None) -> dict[str, Path]:
    """`dataset_files` in a child process: a big world's gigabytes never enter the harness, whose
    size at fork time would otherwise inflate every later child's `ru_maxrss`."""
    args = [sys.executable, "-m", "benchmarks.datasets", str(customers), str(cache), *(systems or [])]
    done = subprocess.run(args, capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"generating the {customers:,}-customer world failed:\n{done.stderr[-3000:]}")
    return {system: Path(path) for system, path in json.loads(done.stdout.splitlines()[-1]).items()}


if __name__ == "__main__":
    size, directory, *only = sys.argv[1:]
    files = dataset_files(int(size), Path(directory), systems=only or None)
    print(json.dumps({system: str(path) for system, path in files.items()}))
