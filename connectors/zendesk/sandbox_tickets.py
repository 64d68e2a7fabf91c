"""Tickets, their comments and CSAT ratings in the Zendesk sandbox (a part of `ZendeskWorld`).

Every ticket change moves `generated_timestamp` (what the ticket export follows); a change a
person makes also moves `updated_at`. Deleted tickets stay in the export with `status: "deleted"`
and answer 404 everywhere else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from .sandbox_store import Collection, invalid, normalise_tags, not_found, rating_summary

TICKET_STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = (None, "urgent", "high", "normal", "low")
TYPES = (None, "problem", "incident", "question", "task")
TICKET_EDITABLE = ("subject", "status", "priority", "type", "assignee_id", "group_id", "organization_id",
                   "requester_id", "external_id", "due_at", "tags", "custom_fields")


class TicketDesk:
    # provided by ZendeskWorld
    lock: threading.RLock
    tickets: Collection
    users: Collection
    organizations: Collection
    ratings: Collection
    comments: dict[int, list[dict[str, Any]]]
    tickets_by_external_id: dict[str, list[int]]
    created_ticket_ids: list[int]
    _next_comment_id: int
    now: Callable[[], int]
    now_iso: Callable[[], str]
    url: Callable[[str, int], str]
    find_or_create_end_user: Callable[..., dict[str, Any]]
    _ticket_defaults: Callable[..., dict[str, Any]]
    _rating_defaults: Callable[..., dict[str, Any]]

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        ticket = self.tickets.objects.get(ticket_id)
        if ticket is None or ticket["status"] == "deleted":
            raise not_found()
        return ticket

    def tickets_with_external_id(self, external_id: str) -> list[int]:
        return [i for i in self.tickets_by_external_id.get(external_id, ())
                if self.tickets.objects[i]["status"] != "deleted"]

    def create_ticket(self, data: Mapping[str, Any], author_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """POST /api/v2/tickets: validate like Zendesk, create, return the ticket and its first comment."""
        with self.lock:
            comment = data.get("comment") or {}
            body = str(comment.get("body") or data.get("description") or "").strip()
            if not body:
                raise invalid("description", "Description: cannot be blank", "BlankValue")
            self._check_choices(data)
            requester_id = data.get("requester_id")
            organization_id = data.get("organization_id")
            if requester_id is None and isinstance(data.get("requester"), Mapping):
                requester = data["requester"]
                if not requester.get("email"):
                    raise invalid("requester", "Requester: Email: cannot be blank", "BlankValue")
                requester_id = self.find_or_create_end_user(requester.get("name") or requester["email"],
                                                            requester["email"], organization_id)["id"]
            requester_id = requester_id if requester_id is not None else author_id
            if requester_id not in self.users.objects or not self.users.objects[requester_id]["active"]:
                raise invalid("requester", "Requester: is invalid")
            if organization_id is None:
                organization_id = self.users.objects[requester_id]["organization_id"]
            org = self.organizations.objects.get(organization_id) if organization_id is not None else None
            if organization_id is not None and (org is None or org["deleted_at"]):
                raise invalid("organization_id", "Organization: is invalid")
            now = self.now_iso()
            fields = {k: data[k] for k in TICKET_EDITABLE if k in data}
            ticket = self._ticket_defaults({
                **fields, "id": self.tickets.allocate_id(), "subject": data.get("subject") or body[:80],
                "description": body, "status": data.get("status") or ("open" if data.get("assignee_id") else "new"),
                "requester_id": requester_id, "submitter_id": author_id, "organization_id": organization_id,
                "tags": normalise_tags(data.get("tags") or ()), "via": {"channel": "api"},
                "created_at": now, "updated_at": now, "generated_timestamp": self.now()}, now, None)
            self.tickets.add(ticket)
            if ticket["external_id"]:
                self.tickets_by_external_id.setdefault(ticket["external_id"], []).append(ticket["id"])
            self.created_ticket_ids.append(ticket["id"])
            self.comments[ticket["id"]] = []
            first = self._add_comment(ticket, body, comment.get("public", True), author_id)
            return ticket, first

    def update_ticket(self, ticket_id: int, changes: Mapping[str, Any],
                      author_id: int | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """PUT /api/v2/tickets/{id}: attributes, `comment`, `additional_tags`, `remove_tags`."""
        with self.lock:
            ticket = self.ticket(ticket_id)
            self._check_choices(changes)
            for key in TICKET_EDITABLE:
                if key in changes:
                    ticket[key] = normalise_tags(changes[key]) if key == "tags" else changes[key]
            if "subject" in changes:
                ticket["raw_subject"] = ticket["subject"]
            if "external_id" in changes:
                self.tickets_by_external_id.setdefault(changes["external_id"], []).append(ticket_id)
            added = normalise_tags(changes.get("additional_tags") or ())
            ticket["tags"] = ticket["tags"] + [t for t in added if t not in ticket["tags"]]
            removed = normalise_tags(changes.get("remove_tags") or ())
            ticket["tags"] = [t for t in ticket["tags"] if t not in removed]
            comment = None
            if isinstance(changes.get("comment"), Mapping) and str(changes["comment"].get("body") or "").strip():
                comment = self._add_comment(ticket, str(changes["comment"]["body"]),
                                            changes["comment"].get("public", True), author_id)
            ticket["updated_at"] = self.now_iso()
            return self._regenerate(ticket), comment

    def touch_ticket(self, ticket_id: int) -> dict[str, Any]:
        """A system update (an SLA timer, a metric): only `generated_timestamp` moves."""
        with self.lock:
            return self._regenerate(self.ticket(ticket_id))

    def delete_ticket(self, ticket_id: int) -> None:
        with self.lock:
            ticket = self.ticket(ticket_id)
            ticket["status"] = "deleted"
            ticket["updated_at"] = self.now_iso()
            self.tickets.unlist(ticket_id)
            self._regenerate(ticket)

    def rate_ticket(self, ticket_id: int, score: str, comment: str | None = None,
                    reason: str | None = None) -> dict[str, Any]:
        """The requester answers (or changes) the CSAT survey of a ticket."""
        with self.lock:
            ticket = self.ticket(ticket_id)
            now = self.now_iso()
            rating_id = (ticket["satisfaction_rating"] or {}).get("id")
            if rating_id in self.ratings.objects:
                rating = self.ratings.objects[rating_id]
                rating.update(score=score, comment=comment, reason=reason, updated_at=now)
                self.ratings.changed(rating_id)
            else:
                rating = self._rating_defaults({
                    "id": self.ratings.allocate_id(), "score": score, "comment": comment, "reason": reason,
                    "ticket_id": ticket_id, "requester_id": ticket["requester_id"],
                    "assignee_id": ticket["assignee_id"], "group_id": ticket["group_id"], "created_at": now}, now)
                self.ratings.add(rating)
            ticket["satisfaction_rating"] = rating_summary(rating)
            ticket["updated_at"] = now
            self._regenerate(ticket)
            return rating

    def _regenerate(self, ticket: dict[str, Any]) -> dict[str, Any]:
        ticket["generated_timestamp"] = self.now()
        self.tickets.changed(ticket["id"])
        return ticket

    def _check_choices(self, data: Mapping[str, Any]) -> None:
        for field, allowed in (("status", TICKET_STATUSES), ("priority", PRIORITIES), ("type", TYPES)):
            if field in data and data[field] not in allowed and not (field == "status" and data[field] is None):
                raise invalid(field, f"{field.capitalize()}: {data[field]!r} is not a valid value")

    def comments_of(self, ticket_id: int) -> list[dict[str, Any]]:
        """A ticket's comments, oldest first; a seeded ticket's description is its first comment."""
        comments = self.comments.get(ticket_id)
        if comments is None:
            ticket = self.tickets.objects[ticket_id]
            comments = self.comments[ticket_id] = []
            if ticket["description"]:
                self._add_comment(ticket, ticket["description"], True, ticket["requester_id"], ticket["created_at"])
        return comments

    def _add_comment(self, ticket: dict[str, Any], body: str, public: bool, author_id: int | None,
                     created_at: str | None = None) -> dict[str, Any]:
        comment = {"id": self._next_comment_id, "type": "Comment", "author_id": author_id, "body": body,
                   "html_body": f"<p>{body}</p>", "plain_body": body, "public": bool(public), "attachments": [],
                   "via": {"channel": "api"}, "created_at": created_at or self.now_iso()}
        self._next_comment_id += 1
        self.comments_of(ticket["id"]).append(comment)
        return comment
