"""Outbound operations: organization tags and fields, tickets and internal notes.

Tags use Zendesk's add (PUT) and remove (DELETE) endpoints and never POST, which would replace
the whole list. Tickets are idempotent through `external_id`; notes through a reference line
(see `add_ticket_note`). A refusal the API will repeat (404, 422) is returned as
`OperationResult(ok=False)`; auth, rate-limit and transient errors are raised for a later retry.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub import OperationResult

from .client import ZendeskClient

Tag = str


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddOrganizationTags(_Params):
    organization_id: int
    tags: list[Tag] = Field(min_length=1)


class RemoveOrganizationTags(_Params):
    organization_id: int
    tags: list[Tag] = Field(min_length=1)


class SetOrganizationFields(_Params):
    organization_id: int
    fields: dict[str, Any] = Field(min_length=1, description="organization_fields keys to set; others are kept")


class Requester(_Params):
    name: str
    email: str


class CreateTicket(_Params):
    subject: str = Field(min_length=1)
    body: str = Field(min_length=1, description="the first comment")
    public: bool = Field(False, description="False: an internal note the customer does not see")
    requester_id: int | None = None
    requester: Requester | None = Field(None, description="found by email, or created as an end-user")
    organization_id: int | None = None
    priority: Literal["urgent", "high", "normal", "low"] | None = None
    type: Literal["problem", "incident", "question", "task"] | None = None
    tags: list[Tag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_requester(self) -> CreateTicket:
        if self.requester_id is not None and self.requester is not None:
            raise ValueError("give requester_id or requester, not both")
        return self


class AddTicketNote(_Params):
    ticket_id: int
    body: str = Field(min_length=1)


def _tags_result(organization_id: int, body: dict[str, Any]) -> OperationResult:
    return OperationResult(ok=True, external_id=str(organization_id), data={"tags": body.get("tags", [])})


def add_organization_tags(client: ZendeskClient, params: AddOrganizationTags, key: str) -> OperationResult:
    """Adding is naturally idempotent: a tag already there stays once."""
    body = client.send("PUT", f"/api/v2/organizations/{params.organization_id}/tags", {"tags": params.tags})
    return _tags_result(params.organization_id, body)


def remove_organization_tags(client: ZendeskClient, params: RemoveOrganizationTags, key: str) -> OperationResult:
    body = client.send("DELETE", f"/api/v2/organizations/{params.organization_id}/tags", {"tags": params.tags})
    return _tags_result(params.organization_id, body)


def set_organization_fields(client: ZendeskClient, params: SetOrganizationFields, key: str) -> OperationResult:
    """Zendesk merges `organization_fields`: keys not named keep their values."""
    body = client.send("PUT", f"/api/v2/organizations/{params.organization_id}",
                       {"organization": {"organization_fields": params.fields}})
    fields = (body.get("organization") or {}).get("organization_fields", {})
    return OperationResult(ok=True, external_id=str(params.organization_id), data={"organization_fields": fields})


def ticket_external_id(key: str) -> str:
    """The idempotency key as a ticket `external_id` (hashed past Zendesk's 255 characters)."""
    return key if len(key) <= 255 else "churnhub:" + hashlib.sha256(key.encode()).hexdigest()


def create_ticket(client: ZendeskClient, params: CreateTicket, key: str) -> OperationResult:
    """Create a ticket once per key: the key becomes its `external_id`, looked up before creating.

    A retry after a lost response finds the ticket and does not create a second one. Two
    executions of one key at the same instant could both miss it; the outbox never runs a key twice
    at once. A ticket deleted in Zendesk no longer matches, so a retry after that creates anew.
    """
    external_id = ticket_external_id(key)
    found = client.get("/api/v2/tickets", {"external_id": external_id}).get("tickets") or []
    if found:
        return OperationResult(ok=True, external_id=str(found[0]["id"]),
                               data={"ticket_id": found[0]["id"], "created": False, "external_id": external_id})
    ticket: dict[str, Any] = {
        "subject": params.subject,
        "comment": {"body": params.body, "public": params.public},  # Zendesk's own default is public
        "external_id": external_id,
        "tags": params.tags,
    }
    if params.requester_id is not None:
        ticket["requester_id"] = params.requester_id
    elif params.requester is not None:
        ticket["requester"] = params.requester.model_dump()
    optional = {"organization_id": params.organization_id, "priority": params.priority, "type": params.type}
    ticket.update({name: value for name, value in optional.items() if value is not None})
    created = client.send("POST", "/api/v2/tickets", {"ticket": ticket}, retry=False)["ticket"]
    return OperationResult(ok=True, external_id=str(created["id"]),
                           data={"ticket_id": created["id"], "created": True, "external_id": external_id})


def note_reference(key: str) -> str:
    return f"[churnhub ref {hashlib.sha256(key.encode()).hexdigest()[:16]}]"


def add_ticket_note(client: ZendeskClient, params: AddTicketNote, key: str) -> OperationResult:
    """Add an internal note once per key.

    Zendesk comments have no external id, so the note ends with a visible reference line derived
    from the key, and the ticket's comments are searched for it before adding. Limits: an agent who
    edits or redacts that line makes a retry add the note again; the check reads every comment page
    of the ticket; two executions of one key at the same instant could both add it.
    """
    reference = note_reference(key)
    path = f"/api/v2/tickets/{params.ticket_id}"
    for body, _ in client.cursor_pages(f"{path}/comments"):
        for comment in body.get("comments") or ():
            if reference in (comment.get("body") or "") or reference in (comment.get("plain_body") or ""):
                return OperationResult(ok=True, external_id=str(params.ticket_id),
                                       data={"ticket_id": params.ticket_id, "added": False,
                                             "comment_id": comment.get("id"), "reference": reference})
    note = {"ticket": {"comment": {"body": f"{params.body}\n\n{reference}", "public": False}}}
    answer = client.send("PUT", path, note, retry=False)
    events = (answer.get("audit") or {}).get("events") or ()
    comment_id = next((e.get("id") for e in events if e.get("type") == "Comment"), None)
    return OperationResult(ok=True, external_id=str(params.ticket_id),
                           data={"ticket_id": params.ticket_id, "added": True, "comment_id": comment_id,
                                 "reference": reference})
