"""Every outbound operation against the sandbox, including retries with the same idempotency key."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from connectors.zendesk import operations as ops
from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.sandbox import ZendeskSandbox
from connectors.zendesk.settings import ZendeskSettings
from hub import AuthError, TransientError

Start = Callable[..., ZendeskSandbox]
Connect = Callable[..., ZendeskConnector]


@pytest.fixture
def sandbox(sandboxes: Start, zd: SimpleNamespace) -> ZendeskSandbox:
    return sandboxes(zd.small_world())


def test_tag_operations_add_and_remove_without_replacing(sandbox: ZendeskSandbox, connect: Connect) -> None:
    connector = connect(sandbox)
    added = connector.execute("add_organization_tags", ops.AddOrganizationTags(organization_id=1,
                              tags=["at_risk", "vip"]), idempotency_key="k1")
    assert added.ok and added.data["tags"] == ["vip", "at_risk"]
    again = connector.execute("add_organization_tags", ops.AddOrganizationTags(organization_id=1,
                              tags=["at_risk"]), idempotency_key="k1")
    assert again.ok and sandbox.organization_tags(1) == ["vip", "at_risk"]
    removed = connector.execute("remove_organization_tags", ops.RemoveOrganizationTags(organization_id=1,
                                tags=["vip", "never_there"]), idempotency_key="k2")
    assert removed.ok and sandbox.organization_tags(1) == ["at_risk"]
    assert not any(method == "POST" and "/tags" in path for method, path, _ in sandbox.request_log)


def test_set_organization_fields_keeps_other_fields(sandbox: ZendeskSandbox, connect: Connect) -> None:
    connector = connect(sandbox)
    result = connector.execute("set_organization_fields", ops.SetOrganizationFields(
        organization_id=1, fields={"health": "red", "churn_risk": 0.8}), idempotency_key="k")
    assert result.ok
    assert sandbox.world.organization(1)["organization_fields"] == {"nps_score": 9, "health": "red",
                                                                    "churn_risk": 0.8}
    assert result.data["organization_fields"]["health"] == "red"


def test_create_ticket_twice_with_one_key_creates_one_ticket(sandbox: ZendeskSandbox, connect: Connect) -> None:
    connector = connect(sandbox)
    params = ops.CreateTicket(subject="Renewal risk", body="Usage dropped 40%", requester_id=12,
                              organization_id=2, priority="high", tags=["churnhub", "at_risk"])
    first = connector.execute("create_ticket", params, idempotency_key="playbook:7:org2")
    second = connector.execute("create_ticket", params, idempotency_key="playbook:7:org2")
    assert first.ok and second.ok and first.external_id == second.external_id
    assert (first.data["created"], second.data["created"]) == (True, False)
    [ticket] = sandbox.created_tickets()
    assert str(ticket["id"]) == first.external_id
    assert (ticket["subject"], ticket["requester_id"], ticket["organization_id"]) == ("Renewal risk", 12, 2)
    assert (ticket["priority"], ticket["tags"], ticket["external_id"]) == ("high", ["churnhub", "at_risk"],
                                                                         "playbook:7:org2")
    [comment] = sandbox.comments(ticket["id"])
    assert comment["body"] == "Usage dropped 40%" and comment["public"] is False  # internal by default
    other = connector.execute("create_ticket", params, idempotency_key="playbook:7:org2:again")
    assert other.data["created"] and len(sandbox.created_tickets()) == 2


def test_create_ticket_for_a_new_requester_and_public(sandbox: ZendeskSandbox, connect: Connect) -> None:
    connector = connect(sandbox)
    result = connector.execute("create_ticket", ops.CreateTicket(
        subject="Welcome back", body="We miss you", public=True, requester={"name": "Zoe", "email": "zoe@new.io"}),
        idempotency_key="k-zoe")
    assert result.ok
    ticket = sandbox.created_tickets()[0]
    requester = sandbox.world.users.objects[ticket["requester_id"]]
    assert (requester["email"], requester["role"]) == ("zoe@new.io", "end-user")
    assert sandbox.comments(ticket["id"])[0]["public"] is True


class DropFirstResponse(httpx.BaseTransport):
    """Forwards every request; the first matching one's response is lost on the way back."""

    def __init__(self, method: str) -> None:
        self.inner, self.method, self.dropped = httpx.HTTPTransport(), method, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == self.method and not self.dropped:
            response.read()
            self.dropped = True
            raise httpx.ReadTimeout("response lost", request=request)
        return response


def _connector_with(transport: httpx.BaseTransport, sandbox: ZendeskSandbox, clock: Any) -> ZendeskConnector:
    return ZendeskConnector(ZendeskSettings(**sandbox.settings()), transport=transport, sleep=clock.sleep,
                            clock=clock, now=clock)


def test_a_lost_create_response_never_makes_a_second_ticket(sandbox: ZendeskSandbox, clock: Any) -> None:
    connector = _connector_with(DropFirstResponse("POST"), sandbox, clock)
    params = ops.CreateTicket(subject="Risk", body="Call", requester_id=11)
    with pytest.raises(TransientError):  # the ticket was created, but we never heard so
        connector.execute("create_ticket", params, idempotency_key="lost-1")
    retried = connector.execute("create_ticket", params, idempotency_key="lost-1")
    assert retried.ok and retried.data["created"] is False
    assert len(sandbox.created_tickets()) == 1
    connector.close()


def test_add_ticket_note_is_internal_and_once_per_key(sandbox: ZendeskSandbox, clock: Any) -> None:
    connector = _connector_with(DropFirstResponse("PUT"), sandbox, clock)
    params = ops.AddTicketNote(ticket_id=101, body="Health dropped to 31")
    with pytest.raises(TransientError):
        connector.execute("add_ticket_note", params, idempotency_key="note-1")
    retried = connector.execute("add_ticket_note", params, idempotency_key="note-1")
    assert retried.ok and retried.data["added"] is False
    notes = [c for c in sandbox.comments(101) if "Health dropped" in c["body"]]
    assert len(notes) == 1 and notes[0]["public"] is False
    assert ops.note_reference("note-1") in notes[0]["body"]
    second = connector.execute("add_ticket_note", params, idempotency_key="note-2")
    assert second.ok and second.data["added"] is True
    assert len([c for c in sandbox.comments(101) if "Health dropped" in c["body"]]) == 2
    connector.close()


def test_refusals_come_back_as_results_with_the_api_words(sandbox: ZendeskSandbox, connect: Connect) -> None:
    connector = connect(sandbox)
    missing = connector.execute("add_organization_tags", ops.AddOrganizationTags(organization_id=999,
                                tags=["x"]), idempotency_key="k")
    assert (missing.ok, missing.code, missing.retryable) == (False, "RecordNotFound", False)
    assert "404" in (missing.error or "")
    invalid = connector.execute("create_ticket", ops.CreateTicket(subject="x", body="y", requester_id=424242),
                                idempotency_key="k-invalid")
    assert (invalid.ok, invalid.code) == (False, "RecordInvalid")
    assert "Requester: is invalid" in (invalid.error or "")
    gone = connector.execute("add_ticket_note", ops.AddTicketNote(ticket_id=999, body="x"), idempotency_key="k")
    assert (gone.ok, gone.code) == (False, "RecordNotFound")


def test_params_are_validated_and_dicts_accepted(sandbox: ZendeskSandbox, connect: Connect) -> None:
    connector = connect(sandbox)
    with pytest.raises(ValueError):
        ops.CreateTicket(subject="x", body="y", requester_id=1, requester={"name": "a", "email": "a@b.c"})
    with pytest.raises(ValueError):
        ops.AddOrganizationTags(organization_id=1, tags=[])
    result = connector.execute("add_organization_tags", {"organization_id": "2", "tags": ["from_dict"]},  # type: ignore[arg-type]
                               idempotency_key="k")
    assert result.ok and sandbox.organization_tags(2) == ["from_dict"]


def test_bad_credentials_raise_for_a_later_retry(sandbox: ZendeskSandbox, connect: Connect) -> None:
    connector = connect(sandbox, api_token="wrong")
    with pytest.raises(AuthError, match="Couldn't authenticate you"):
        connector.execute("add_organization_tags", ops.AddOrganizationTags(organization_id=1, tags=["x"]),
                          idempotency_key="k")
