"""The demo world as a Zendesk sandbox dataset (API-shaped objects, see `connectors/zendesk/sandbox.py`).

    dataset = zendesk_dataset(world)
    # {"organizations": [...], "users": [...], "tickets": [...], "satisfaction_ratings": [...]}

Organizations carry `external_id` (the Salesforce account id, 15 or 18 characters) for some
companies, one or two `domain_names` for most, and the latest NPS answer in
`organization_fields.nps_score` (configure the connector with
`nps_field: {object: organization, field: nps_score}`). Users are each company's people plus the
vendor's support agents; tickets and CSAT ratings come from `activity.support_tickets`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from hub.demo import vocabulary as V
from hub.demo.activity import people, support_tickets
from hub.demo.world import DAY, Company, World

NPS_FIELD = {"object": "organization", "field": "nps_score"}
ORGANIZATION_ID_BASE = 360_000_000_000
USER_ID_BASE = 370_000_000_000
RATING_ID_BASE = 380_000_000_000
AGENT_ID_BASE = 369_000_000_000


def iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def organization_id(company: Company) -> int | None:
    """The company's Zendesk organization id (None: it never had one)."""
    return ORGANIZATION_ID_BASE + company.index if company.zendesk else None


def agents() -> list[dict[str, Any]]:
    """The vendor's support team (agents and one admin)."""
    team = [{"id": AGENT_ID_BASE + n, "name": name, "role": "agent",
             "email": f"{name.lower().replace(' ', '.')}@{V.VENDOR_DOMAIN}"} for n, name in enumerate(V.SUPPORT_AGENTS)]
    team.append({"id": AGENT_ID_BASE + len(V.SUPPORT_AGENTS), "name": "Support Admin", "role": "admin",
                 "email": f"support-admin@{V.VENDOR_DOMAIN}"})
    return team


COLLECTIONS = ("organizations", "users", "tickets", "satisfaction_ratings")


def zendesk_dataset(world: World) -> dict[str, Any]:
    data: dict[str, Any] = {name: [] for name in COLLECTIONS}
    for collection, obj in iter_zendesk(world):
        data[collection].append(obj)
    return data


def iter_zendesk(world: World) -> Iterator[tuple[str, dict[str, Any]]]:
    """`(collection, object)` one company at a time, for worlds too big to hold as one dict."""
    staff = agents()
    created = iso(world.start - 1000 * DAY)
    for agent in staff:
        yield "users", {**agent, "organization_id": None, "active": True, "created_at": created, "updated_at": created}
    counters = {"user": USER_ID_BASE, "ticket": 1, "rating": RATING_ID_BASE}
    for company in world.companies:
        if company.zendesk:
            part: dict[str, Any] = {name: [] for name in COLLECTIONS}
            _export_company(world, company, part, counters, staff)
            for collection in COLLECTIONS:
                for obj in part[collection]:
                    yield collection, obj


def _export_company(world: World, company: Company, data: dict[str, Any], counters: dict[str, int],
                    staff: list[dict[str, Any]]) -> None:
    rng = world.rng(company, "zendesk")
    org_id = organization_id(company)
    joined = company.created + rng.randrange(DAY, 20 * DAY)
    fields: dict[str, Any] = {"plan": company.plan, "billing_interval": company.interval}
    updated = joined
    if company.nps is not None and company.nps_at is not None:
        fields["nps_score"] = company.nps
        updated = max(updated, company.nps_at)
    tags = [f"plan_{company.plan}", "annual" if company.interval == "year" else "monthly"]
    if company.seats >= 50:
        tags.append("enterprise")
    data["organizations"].append({
        "id": org_id, "name": company.name, "external_id": company.zendesk_external_id,
        "domain_names": list(company.zendesk_domains), "tags": tags, "organization_fields": fields,
        "details": f"{company.industry}, {company.employees} employees", "notes": None,
        "created_at": iso(min(joined, world.now - DAY)), "updated_at": iso(min(updated, world.now - DAY))})
    user_ids = []
    for person in people(world, company):
        counters["user"] += 1
        user_ids.append(counters["user"])
        since = iso(min(joined + rng.randrange(0, 30 * DAY), world.now - DAY))
        data["users"].append({"id": counters["user"], "name": person.name, "email": person.email, "role": "end-user",
                              "organization_id": org_id, "active": True, "created_at": since, "updated_at": since,
                              "user_fields": {"title": person.title}})
    latest = world.now - 120   # Zendesk's exports leave out the last minute
    for plan in support_tickets(world, company):
        ticket_id = counters["ticket"]
        counters["ticket"] += 1
        requester = user_ids[plan.requester % len(user_ids)]
        agent = None if plan.status == "new" else staff[plan.agent]["id"]
        ticket: dict[str, Any] = {
            "id": ticket_id, "subject": plan.subject, "description": plan.description, "status": plan.status,
            "priority": plan.priority, "type": plan.type, "requester_id": requester, "submitter_id": requester,
            "assignee_id": agent, "organization_id": org_id, "tags": plan.tags, "custom_fields": [],
            "via": {"channel": "email" if rng.random() < 0.6 else "web"},
            "created_at": iso(min(plan.created, latest)), "updated_at": iso(min(plan.updated, latest)),
            "generated_timestamp": min(plan.updated, latest)}
        if plan.csat is not None and plan.solved is not None:
            counters["rating"] += 1
            rated = min(latest, plan.solved + rng.randrange(3600, 3 * DAY))
            rating = {"id": counters["rating"], "score": plan.csat, "comment": plan.csat_comment, "reason": None,
                      "ticket_id": ticket_id, "requester_id": requester, "assignee_id": agent,
                      "created_at": iso(rated), "updated_at": iso(rated)}
            data["satisfaction_ratings"].append(rating)
            ticket["satisfaction_rating"] = {"id": rating["id"], "score": plan.csat, "comment": plan.csat_comment}
            if rated > plan.updated:
                ticket["updated_at"], ticket["generated_timestamp"] = iso(rated), rated
        data["tickets"].append(ticket)
