"""One sandbox in its own process, so the sandboxes and the sync never share a GIL.

    python -m benchmarks.serve stripe /tmp/stripe-10000.json
    -> prints one JSON line: {"settings": {...}, "objects": N, "pid": ...}
    stdin "log\\n"  -> one JSON line: the request log [[method, path?query, status], ...]
    stdin EOF       -> stops

Rate limits are off, and every object's JSON is rendered before serving (the sandboxes cache it
lazily, which would bill the first reader, sync or floor, for the sandbox's serialisation).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def start(system: str, dataset: str) -> tuple[Any, dict[str, Any], int]:
    """Start the sandbox; returns it, the connector settings block (with `type`) and its object count."""
    if system == "stripe":
        from connectors.stripe.sandbox import start_sandbox as start_stripe

        sandbox = start_stripe(dataset, rate_limit=None)
        store = sandbox.store
        for object_id in list(store.objects):
            store.json_of(object_id)
        return sandbox, {"type": "stripe", **sandbox.settings()}, len(store.objects)
    if system == "zendesk":
        from connectors.zendesk.sandbox import start_sandbox as start_zendesk
        from hub.demo.zendesk_data import NPS_FIELD

        sandbox = start_zendesk(dataset, rate_limits=False)
        world = sandbox.world
        count = 0
        for collection in (world.organizations, world.users, world.tickets, world.ratings):
            for object_id in list(collection.objects):
                collection.json(object_id)
            count += len(collection.objects)
        return sandbox, {"type": "zendesk", **sandbox.settings(), "nps_field": NPS_FIELD}, count
    if system == "salesforce":
        from connectors.salesforce.sandbox import start_sandbox as start_salesforce
        from hub.demo import salesforce_data

        custom = getattr(salesforce_data, "CUSTOM_FIELDS", None)   # the exporter's field types, when it says them
        sandbox = start_salesforce(dataset, daily_api_limit=10_000_000, custom_fields=custom)
        settings = {"type": "salesforce", **sandbox.settings(), "facts": salesforce_data.CRM_FACTS,
                    "fields": salesforce_data.CRM_FIELDS}
        return sandbox, settings, -1
    raise SystemExit(f"unknown system {system!r}")


def request_log(sandbox: Any) -> list[Any]:
    for name in ("request_log", "requests"):
        log = getattr(sandbox, name, None)
        if log is not None:
            return [list(entry) if isinstance(entry, tuple) else [entry.method, entry.path, entry.status]
                    for entry in log]
    api = getattr(sandbox, "api", None)
    return [list(entry) for entry in getattr(api, "log", [])]


def main() -> None:
    system, dataset = sys.argv[1], sys.argv[2]
    sandbox, settings, objects = start(system, dataset)
    print(json.dumps({"settings": settings, "objects": objects}), flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "log":
                print(json.dumps(request_log(sandbox)), flush=True)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
