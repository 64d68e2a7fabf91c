"""The peer: dlt's `rest_api` source loading the same endpoints into SQLite (`pip install '.[bench]'`).

dlt is used as its documentation shows: one `rest_api_source` per system, a paginator per
endpoint, `dlt.pipeline(...).run(source)` into the `sqlalchemy` destination, with dlt's default
normalisation (nested lists become child tables). Stripe and Zendesk page in ways dlt has no
ready-made paginator for (Stripe's `starting_after=<last id>`, Zendesk's `end_of_stream`), so each
gets a small paginator in the style of dlt's own. Salesforce runs the connector's own SOQL
(taken from the sandbox's request log) with dlt's `JSONLinkPaginator` over `nextRecordsUrl`.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dlt
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from dlt.sources.rest_api import rest_api_source


class StripeListPaginator(BasePaginator):
    """Stripe lists: `{"data": [...], "has_more": true}` -> next page `starting_after=<last id>`."""

    def __init__(self) -> None:
        super().__init__()
        self.after: str | None = None

    def update_state(self, response: Any, data: list[Any] | None = None) -> None:
        body = response.json()
        items = body.get("data") or []
        self._has_next_page = bool(body.get("has_more")) and bool(items)
        self.after = items[-1]["id"] if items else None

    def update_request(self, request: Any) -> None:
        request.params["starting_after"] = self.after


class ZendeskExportPaginator(BasePaginator):
    """Cursor exports: `{"after_cursor": "...", "end_of_stream": false}` -> `cursor=<after_cursor>`."""

    def __init__(self) -> None:
        super().__init__()
        self.cursor: str | None = None

    def update_state(self, response: Any, data: list[Any] | None = None) -> None:
        body = response.json()
        self.cursor = body.get("after_cursor")
        self._has_next_page = not body.get("end_of_stream") and bool(self.cursor) and bool(data)

    def update_request(self, request: Any) -> None:
        request.params.pop("start_time", None)
        request.params["cursor"] = self.cursor


class ZendeskTimePaginator(BasePaginator):
    """The time-based organization export: follow `next_page` until `end_of_stream`."""

    def __init__(self) -> None:
        super().__init__()
        self.next_url: str | None = None

    def update_state(self, response: Any, data: list[Any] | None = None) -> None:
        body = response.json()
        self.next_url = body.get("next_page")
        self._has_next_page = not body.get("end_of_stream") and bool(self.next_url) and bool(data)

    def update_request(self, request: Any) -> None:
        request.url, request.params = self.next_url, {}


class ZendeskCursorPaginator(BasePaginator):
    """Cursor pagination: `{"meta": {"has_more": true, "after_cursor": "..."}}` -> `page[after]`."""

    def __init__(self) -> None:
        super().__init__()
        self.after: str | None = None

    def update_state(self, response: Any, data: list[Any] | None = None) -> None:
        meta = response.json().get("meta") or {}
        self.after = meta.get("after_cursor")
        self._has_next_page = bool(meta.get("has_more")) and bool(self.after)

    def update_request(self, request: Any) -> None:
        request.params["page[after]"] = self.after


def stripe_source(settings: dict[str, Any]) -> Any:
    def resource(name: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "endpoint": {"path": path, "params": {"limit": 100, **params}, "data_selector": "data",
                                           "paginator": StripeListPaginator()}}

    return rest_api_source({
        "client": {"base_url": settings["base_url"], "auth": {"type": "bearer", "token": settings["api_key"]},
                   "headers": {"Stripe-Version": "2026-06-24.dahlia"}},
        "resources": [resource("customers", "v1/customers", {}),
                      resource("subscriptions", "v1/subscriptions", {"status": "all"}),
                      resource("invoices", "v1/invoices", {}), resource("charges", "v1/charges", {}),
                      resource("customer_cards", "v1/customers",
                               {"expand[]": "data.invoice_settings.default_payment_method"})],
    }, name="stripe")


def zendesk_source(settings: dict[str, Any]) -> Any:
    pair = f"{settings['email']}/token:{settings['api_token']}".encode()
    export = {"start_time": 0}
    return rest_api_source({
        "client": {"base_url": settings["base_url"],
                   "headers": {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}},
        "resources": [
            {"name": "users", "endpoint": {"path": "api/v2/incremental/users/cursor.json", "params": export,
                                           "data_selector": "users", "paginator": ZendeskExportPaginator()}},
            {"name": "tickets", "endpoint": {"path": "api/v2/incremental/tickets/cursor.json", "params": export,
                                             "data_selector": "tickets", "paginator": ZendeskExportPaginator()}},
            {"name": "organizations", "endpoint": {"path": "api/v2/incremental/organizations.json", "params": export,
                                                   "data_selector": "organizations", "paginator": ZendeskTimePaginator()}},
            {"name": "satisfaction_ratings", "endpoint": {
                "path": "api/v2/satisfaction_ratings",
                "params": {"start_time": 0, "end_time": int(time.time()) - 60, "page[size]": 100},
                "data_selector": "satisfaction_ratings", "paginator": ZendeskCursorPaginator()}},
        ],
    }, name="zendesk")


def salesforce_source(settings: dict[str, Any]) -> Any:
    """The connector's own SOQL queries (from the sandbox's log), `nextRecordsUrl` pages."""
    import httpx
    from dlt.sources.helpers.rest_client.paginators import JSONLinkPaginator

    auth = settings["auth"]
    token = httpx.post(f"{settings['login_url']}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": auth["client_id"], "client_secret": auth["client_secret"]},
        timeout=60).raise_for_status().json()
    resources = []
    for target in settings.get("queries", ()):
        parts = urlsplit(target)
        soql = parse_qs(parts.query)["q"][0]
        name = soql.split(" FROM ", 1)[1].split()[0].lower()
        resources.append({"name": name, "endpoint": {"path": parts.path.lstrip("/"), "params": {"q": soql},
                                                     "data_selector": "records",
                                                     "paginator": JSONLinkPaginator(next_url_path="nextRecordsUrl")}})
    return rest_api_source({
        "client": {"base_url": token.get("instance_url") or settings["login_url"],
                   "auth": {"type": "bearer", "token": token["access_token"]}},
        "resources": resources,
    }, name="salesforce")


SOURCES = {"stripe": stripe_source, "zendesk": zendesk_source, "salesforce": salesforce_source}


def run_dlt(systems: dict[str, dict[str, Any]], database: str, workdir: str | None) -> dict[str, Any]:
    """Load every system dlt can read into `database`; seconds and top-level rows."""
    pipelines_dir = str(Path(workdir or ".dlt-bench"))
    started = time.perf_counter()
    rows: dict[str, int] = {}
    steps: dict[str, float] = {}
    for system, settings in systems.items():
        if system not in SOURCES:
            continue
        pipeline = dlt.pipeline(pipeline_name=f"bench_{system}", pipelines_dir=pipelines_dir,
                                destination=dlt.destinations.sqlalchemy(credentials=database),
                                dataset_name=system)
        pipeline.run(SOURCES[system](settings))
        trace = pipeline.last_trace
        for step in trace.steps:   # extract (HTTP + JSON), normalize, load
            if step.step != "run" and step.finished_at and step.started_at:
                steps[step.step] = steps.get(step.step, 0.0) + (step.finished_at - step.started_at).total_seconds()
        counts = trace.last_normalize_info.row_counts
        rows.update({f"{system}.{table}": count for table, count in counts.items() if not table.startswith("_dlt")})
    seconds = time.perf_counter() - started
    top_level = sum(count for table, count in rows.items() if "__" not in table.split(".", 1)[1])
    return {"seconds": seconds, "records": top_level, "step_seconds": steps, "rows_with_child_tables": sum(rows.values()), "tables": rows,
            "systems": sorted(s for s in systems if s in SOURCES)}
