"""The floor: page through the same endpoints with plain httpx and parse the JSON, storing nothing.

No retries, no rate limiter, no mapping, no database: what any sync of these endpoints must at
least pay (the sandbox's time to answer plus the JSON parsing). One thread per system, streams one
after another, exactly like the SyncEngine. `systems` maps a system to its connector settings
(as `benchmarks.serve` printed them); Salesforce's also carries the SOQL the connector sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx

STRIPE_LISTS = (("/v1/customers", {}), ("/v1/subscriptions", {"status": "all"}), ("/v1/invoices", {}),
                ("/v1/charges", {}),
                ("/v1/customers", {"expand[]": "data.invoice_settings.default_payment_method"}))


def stripe_floor(settings: dict[str, Any]) -> tuple[int, int]:
    """(objects, requests) for every list the Stripe connector reads, 100 a page."""
    headers = {"Authorization": f"Bearer {settings['api_key']}", "Stripe-Version": "2026-06-24.dahlia"}
    objects = requests = 0
    with httpx.Client(base_url=settings["base_url"], headers=headers, timeout=60) as client:
        for path, params in STRIPE_LISTS:
            after = None
            while True:
                query = {**params, "limit": 100, **({"starting_after": after} if after else {})}
                body = client.get(path, params=query).raise_for_status().json()
                requests += 1
                objects += len(body["data"])
                if not body["has_more"] or not body["data"]:
                    break
                after = body["data"][-1]["id"]
    return objects, requests


def zendesk_floor(settings: dict[str, Any]) -> tuple[int, int]:
    """(objects, requests): the three incremental exports and the CSAT list, as the connector reads them."""
    import base64

    pair = f"{settings['email']}/token:{settings['api_token']}".encode()
    headers = {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
    objects = requests = 0
    with httpx.Client(base_url=settings["base_url"], headers=headers, timeout=60) as client:
        for resource in ("users", "tickets"):
            params: dict[str, Any] = {"start_time": 0}
            while True:
                body = client.get(f"/api/v2/incremental/{resource}/cursor.json", params=params).raise_for_status().json()
                requests += 1
                objects += len(body[resource])
                if body.get("end_of_stream") or not body[resource]:
                    break
                params = {"cursor": body["after_cursor"]}
        url = "/api/v2/incremental/organizations.json?start_time=0"
        while True:
            body = client.get(url).raise_for_status().json()
            requests += 1
            objects += len(body["organizations"])
            following = body.get("next_page")
            if body.get("end_of_stream") or not body["organizations"] or not following:
                break
            url = _relative(following)
        query: dict[str, Any] = {"start_time": 0, "end_time": int(time.time()) - 60, "page[size]": 100}
        while True:
            body = client.get("/api/v2/satisfaction_ratings", params=query).raise_for_status().json()
            requests += 1
            objects += len(body["satisfaction_ratings"])
            if not body["meta"]["has_more"]:
                break
            query = {**query, "page[after]": body["meta"]["after_cursor"]}
    return objects, requests


def salesforce_floor(settings: dict[str, Any]) -> tuple[int, int]:
    """(objects, requests): the connector's own SOQL queries, following `nextRecordsUrl`."""
    auth = settings["auth"]
    with httpx.Client(base_url=settings["login_url"], timeout=60) as client:
        token = client.post("/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": auth["client_id"],
            "client_secret": auth["client_secret"]}).raise_for_status().json()
        client.headers["Authorization"] = f"Bearer {token['access_token']}"
        objects, requests = 0, 1
        for target in settings.get("queries", ()):
            url = target
            while url:
                body = client.get(url).raise_for_status().json()
                requests += 1
                objects += len(body.get("records") or ())
                url = body.get("nextRecordsUrl") if not body.get("done", True) else None
    return objects, requests


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


FLOORS: dict[str, Callable[[dict[str, Any]], tuple[int, int]]] = {
    "stripe": stripe_floor, "zendesk": zendesk_floor, "salesforce": salesforce_floor}


def run_floor(systems: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def one(item: tuple[str, dict[str, Any]]) -> tuple[str, int, int, float]:
        system, settings = item
        started = time.perf_counter()
        objects, requests = FLOORS[system](settings)
        return system, objects, requests, time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, len(systems))) as pool:
        results = list(pool.map(one, systems.items()))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": sum(r[1] for r in results), "requests": sum(r[2] for r in results),
            "systems": {s: {"objects": o, "requests": q, "seconds": t} for s, o, q, t in results}}
