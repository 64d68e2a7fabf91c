"""The Zendesk sandbox's account: organizations, users, tickets, comments and CSAT ratings.

Everything that changes an object goes through here, both for the HTTP API and for tests and the
demo (`ZendeskSandbox.world`), so `updated_at` and a ticket's `generated_timestamp` move the way
Zendesk moves them and the export indexes stay right.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .sandbox_store import Collection, invalid, normalise_tags, not_found, rating_summary, to_iso, to_unix
from .sandbox_tickets import TicketDesk

ORG_EDITABLE = ("name", "external_id", "domain_names", "details", "notes", "group_id", "tags",
                "shared_tickets", "shared_comments")


def updated_second(obj: Mapping[str, Any]) -> int:
    return to_unix(obj["updated_at"])


class ZendeskWorld(TicketDesk):
    def __init__(self, clock: Callable[[], float], base_url: str = "") -> None:
        self.clock, self.base_url = clock, base_url
        self.lock = threading.RLock()
        self.organizations = Collection("organizations", updated_second)
        self.users = Collection("users", updated_second)
        self.tickets = Collection("tickets", lambda t: t["generated_timestamp"])
        self.ratings = Collection("satisfaction_ratings", updated_second)
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.org_by_name: dict[str, int] = {}
        self.user_by_email: dict[str, int] = {}
        self.tickets_by_external_id: dict[str, list[int]] = {}
        self.created_ticket_ids: list[int] = []
        self._next_comment_id = 1

    # -- seeding ---------------------------------------------------------------------------------

    def seed(self, dataset: Mapping[str, Any]) -> None:
        now = self.now_iso()
        raw = {name: list(dataset.get(name) or ()) for name in
               ("organizations", "users", "tickets", "satisfaction_ratings")}
        for name, collection in (("organizations", self.organizations), ("users", self.users),
                                 ("tickets", self.tickets), ("satisfaction_ratings", self.ratings)):
            collection.next_id = max((o.get("id") or 0 for o in raw[name]), default=0) + 1  # for objects without id
        self.organizations.load([self._org_defaults(o, now) for o in raw["organizations"]],
                                lambda o: not o["deleted_at"])
        self.users.load([self._user_defaults(u, now) for u in raw["users"]], lambda u: u["active"])
        ratings = [self._rating_defaults(r, now) for r in raw["satisfaction_ratings"]]
        self.ratings.load(ratings, lambda r: True)
        by_ticket = {r["ticket_id"]: r for r in ratings}
        self.tickets.load([self._ticket_defaults(t, now, by_ticket.get(t.get("id"))) for t in raw["tickets"]],
                          lambda t: t["status"] != "deleted")
        for org in self.organizations.objects.values():
            self.org_by_name[org["name"].lower()] = org["id"]
        for user in self.users.objects.values():
            if user["email"]:
                self.user_by_email[user["email"].lower()] = user["id"]
        given_comments = dataset.get("ticket_comments") or {}
        for ticket in self.tickets.objects.values():
            if ticket["external_id"]:
                self.tickets_by_external_id.setdefault(ticket["external_id"], []).append(ticket["id"])
            comments = given_comments.get(str(ticket["id"])) or given_comments.get(ticket["id"])
            if comments:  # otherwise the description becomes the first comment when first asked for
                self.comments[ticket["id"]] = []
                for c in comments:
                    self._add_comment(ticket, c["body"], c.get("public", True), c.get("author_id"), c.get("created_at"))

    def url(self, collection: str, object_id: int) -> str:
        return f"{self.base_url}/api/v2/{collection}/{object_id}.json"

    def _org_defaults(self, org: Mapping[str, Any], now: str) -> dict[str, Any]:
        obj = {"id": None, "name": None, "external_id": None, "domain_names": [], "details": None, "notes": None,
               "group_id": None, "shared_tickets": False, "shared_comments": False, "tags": [],
               "organization_fields": {}, "created_at": now, "updated_at": None, "deleted_at": None, **org}
        obj["id"] = obj["id"] or self.organizations.allocate_id()
        obj["name"] = obj["name"] or f"Organization {obj['id']}"
        obj["updated_at"] = obj["updated_at"] or obj["created_at"]
        obj["url"] = self.url("organizations", obj["id"])
        return obj

    def _user_defaults(self, user: Mapping[str, Any], now: str) -> dict[str, Any]:
        obj = {"id": None, "name": None, "email": None, "role": "end-user", "organization_id": None,
               "external_id": None, "phone": None, "tags": [], "user_fields": {}, "active": True,
               "suspended": False, "time_zone": "UTC", "locale": "en-US", "created_at": now, "updated_at": None,
               **user}
        obj["id"] = obj["id"] or self.users.allocate_id()
        obj["name"] = obj["name"] or (obj["email"] or f"User {obj['id']}")
        obj["updated_at"] = obj["updated_at"] or obj["created_at"]
        obj["url"] = self.url("users", obj["id"])
        return obj

    def _ticket_defaults(self, ticket: Mapping[str, Any], now: str, rating: dict[str, Any] | None) -> dict[str, Any]:
        obj = {"id": None, "external_id": None, "subject": "", "description": "", "status": "open",
               "priority": None, "type": None, "requester_id": None, "submitter_id": None, "assignee_id": None,
               "organization_id": None, "group_id": None, "tags": [], "custom_fields": [], "due_at": None,
               "via": {"channel": "web"}, "satisfaction_rating": None, "created_at": now, "updated_at": None,
               "generated_timestamp": None, **ticket}
        obj["id"] = obj["id"] or self.tickets.allocate_id()
        obj["raw_subject"] = obj["subject"]
        obj["submitter_id"] = obj["submitter_id"] or obj["requester_id"]
        obj["updated_at"] = obj["updated_at"] or obj["created_at"]
        obj["generated_timestamp"] = obj["generated_timestamp"] or to_unix(obj["updated_at"])
        if rating is not None and obj["satisfaction_rating"] is None:
            obj["satisfaction_rating"] = rating_summary(rating)
        obj["url"] = self.url("tickets", obj["id"])
        return obj

    def _rating_defaults(self, rating: Mapping[str, Any], now: str) -> dict[str, Any]:
        obj = {"id": None, "score": "offered", "comment": None, "reason": None, "ticket_id": None,
               "requester_id": None, "assignee_id": None, "group_id": None, "created_at": now, "updated_at": None,
               **rating}
        obj["id"] = obj["id"] or self.ratings.allocate_id()
        obj["updated_at"] = obj["updated_at"] or obj["created_at"]
        obj["url"] = self.url("satisfaction_ratings", obj["id"])
        return obj

    # -- time ------------------------------------------------------------------------------------

    def now(self) -> int:
        return int(self.clock())

    def now_iso(self) -> str:
        return to_iso(self.clock())

    # -- organizations ---------------------------------------------------------------------------

    def organization(self, org_id: int) -> dict[str, Any]:
        org = self.organizations.objects.get(org_id)
        if org is None or org["deleted_at"]:
            raise not_found()
        return org

    def create_organization(self, data: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            name = str(data.get("name") or "").strip()
            if not name:
                raise invalid("name", "Name: cannot be blank", "BlankValue")
            if name.lower() in self.org_by_name:
                raise invalid("name", "Name: has already been taken", "DuplicateValue")
            now = self.now_iso()
            org = self._org_defaults({**data, "id": self.organizations.allocate_id(), "created_at": now,
                                      "updated_at": now, "tags": normalise_tags(data.get("tags", ()))}, now)
            self.organizations.add(org)
            self.org_by_name[name.lower()] = org["id"]
            return org

    def update_organization(self, org_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Set the given attributes; `organization_fields` merge key by key, lists are replaced."""
        with self.lock:
            org = self.organization(org_id)
            unknown = set(changes) - {*ORG_EDITABLE, "organization_fields"}
            if unknown:
                raise invalid(sorted(unknown)[0], f"{sorted(unknown)[0]}: is not an editable attribute")
            if "name" in changes:
                name = str(changes["name"] or "").strip()
                owner = self.org_by_name.get(name.lower())
                if not name or (owner is not None and owner != org_id):
                    raise invalid("name", "Name: has already been taken" if name else "Name: cannot be blank",
                                  "DuplicateValue" if name else "BlankValue")
                del self.org_by_name[org["name"].lower()]
                self.org_by_name[name.lower()] = org_id
            for key, value in changes.items():
                if key == "organization_fields":
                    org["organization_fields"] = {**org["organization_fields"], **value}
                else:
                    org[key] = normalise_tags(value) if key == "tags" else copy.deepcopy(value)
            return self._touch_org(org)

    def change_organization_tags(self, org_id: int, tags: Iterable[Any], how: str) -> list[str]:
        """`how`: "add" (PUT), "set" (POST, replaces), "remove" (DELETE)."""
        with self.lock:
            org = self.organization(org_id)
            given = normalise_tags(tags)
            if how == "add":
                org["tags"] = org["tags"] + [t for t in given if t not in org["tags"]]
            elif how == "set":
                org["tags"] = given
            else:
                org["tags"] = [t for t in org["tags"] if t not in given]
            self._touch_org(org)
            return list(org["tags"])

    def delete_organization(self, org_id: int) -> None:
        with self.lock:
            org = self.organization(org_id)
            org["deleted_at"] = self.now_iso()
            self.org_by_name.pop(org["name"].lower(), None)
            self.organizations.unlist(org_id)
            self._touch_org(org)

    def _touch_org(self, org: dict[str, Any]) -> dict[str, Any]:
        org["updated_at"] = self.now_iso()
        self.organizations.changed(org["id"])
        return org

    # -- users -----------------------------------------------------------------------------------

    def user(self, user_id: int) -> dict[str, Any]:
        user = self.users.objects.get(user_id)
        if user is None or not user["active"]:
            raise not_found()
        return user

    def update_user(self, user_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            user = self.user(user_id)
            for key, value in changes.items():
                if key == "user_fields":
                    user["user_fields"] = {**user["user_fields"], **value}
                else:
                    user[key] = copy.deepcopy(value)
            return self._touch(self.users, user)

    def delete_user(self, user_id: int) -> None:
        """Zendesk keeps deleted users, inactive, in the users export."""
        with self.lock:
            user = self.user(user_id)
            user["active"] = False
            self.users.unlist(user_id)
            self._touch(self.users, user)

    def ensure_user(self, email: str, name: str, role: str, *, at: str | None = None) -> dict[str, Any]:
        """The user with this email, created with `role` if there is none (the sandbox's staff),
        stamped `at` (default: now)."""
        with self.lock:
            existing = self.user_by_email.get(email.lower())
            if existing is not None:
                return self.users.objects[existing]
            now = at or self.now_iso()
            user = self._user_defaults({"id": self.users.allocate_id(), "name": name, "email": email, "role": role,
                                        "created_at": now}, now)
            self.users.add(user)
            self.user_by_email[email.lower()] = user["id"]
            return user

    def find_or_create_end_user(self, name: str, email: str, organization_id: int | None) -> dict[str, Any]:
        """How a ticket's `requester: {name, email}` resolves: by email, else a new end-user."""
        with self.lock:
            user = self.ensure_user(email, name, "end-user")
            if user["organization_id"] is None and organization_id is not None and user["role"] == "end-user":
                self.update_user(user["id"], {"organization_id": organization_id})
            return user

    def _touch(self, collection: Collection, obj: dict[str, Any]) -> dict[str, Any]:
        obj["updated_at"] = self.now_iso()
        collection.changed(obj["id"])
        return obj
