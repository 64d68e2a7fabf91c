"""Helpdesk actions on the customer's Zendesk organization.

    - tag_helpdesk_org: {tags: [at-risk, "health-{{ health.band }}"]}
    - create_helpdesk_ticket:
        subject: "Check in with {{ customer.name }}"
        body: "Three tickets in a week; please call them."
        requester: primary_contact          # or owner, billing_email, an address, none
        priority: high

Tags are added (never replacing the organization's others). A ticket is created once per
action: the Zendesk connector stores the idempotency key as the ticket's `external_id`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from hub import ActionType

from .common import ActionParams, account_id, person


class TagHelpdeskOrg(ActionParams):
    tags: list[str] = Field(min_length=1)


def _organization_id(context: dict[str, Any]) -> int:
    value = account_id(context, "helpdesk organization")
    if not value.isdigit():
        raise ValueError(f"helpdesk organization id {value!r} is not numeric")
    return int(value)


def plan_tags(params: TagHelpdeskOrg, context: dict[str, Any]) -> dict[str, Any]:
    tags = sorted({t.strip() for t in params.tags if t.strip()})
    if not tags:
        raise ValueError("every tag rendered empty")
    return {"operation": "add_organization_tags",
            "params": {"organization_id": _organization_id(context), "tags": tags},
            "summary": f"tag organization: {', '.join(tags)}"}


class CreateHelpdeskTicket(ActionParams):
    subject: str = Field(min_length=1)
    body: str = Field(min_length=1)
    requester: str = "primary_contact"
    public: bool = False
    priority: Literal["urgent", "high", "normal", "low"] | None = None
    type: Literal["problem", "incident", "question", "task"] | None = None
    tags: list[str] = Field(default_factory=list)


def plan_ticket(params: CreateHelpdeskTicket, context: dict[str, Any]) -> dict[str, Any]:
    ticket: dict[str, Any] = {"subject": params.subject, "body": params.body, "public": params.public,
                              "organization_id": _organization_id(context), "tags": params.tags}
    if params.priority:
        ticket["priority"] = params.priority
    if params.type:
        ticket["type"] = params.type
    if params.requester != "none":
        who = person(params.requester, context)
        connector = (context.get("connector") or {}).get("name")
        if who.get("connector") == connector and str(who.get("id", "")).isdigit():
            ticket["requester_id"] = int(who["id"])   # already a user of this Zendesk
        else:
            ticket["requester"] = {"name": who.get("name") or who["email"], "email": who["email"]}
    return {"operation": "create_ticket", "params": ticket, "summary": f"ticket: {params.subject}"}


TAG_HELPDESK_ORG = ActionType(name="tag_helpdesk_org", params=TagHelpdeskOrg, connector_type="zendesk",
                              plan=plan_tags, description="Add tags to the customer's helpdesk organization.")
CREATE_HELPDESK_TICKET = ActionType(name="create_helpdesk_ticket", params=CreateHelpdeskTicket,
                                    connector_type="zendesk", plan=plan_ticket,
                                    description="Open a helpdesk ticket (internal note by default) once per action.")
