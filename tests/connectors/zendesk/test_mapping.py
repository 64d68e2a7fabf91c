"""Pure mapping: Zendesk JSON -> canonical records, and error bodies -> messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connectors.zendesk.client import error_message
from connectors.zendesk.mapping import (
    iso,
    map_organization,
    map_satisfaction_rating,
    map_ticket,
    map_user,
    nps_score,
    salesforce_account_id,
)
from connectors.zendesk.settings import NpsField

ORG = {
    "id": 361, "url": "https://acme.zendesk.com/api/v2/organizations/361.json", "name": "Acme Corp",
    "external_id": "001D000000IqhSL", "domain_names": ["acme.com", "acme.io"], "details": "HQ Berlin",
    "notes": None, "group_id": 7, "shared_tickets": False, "shared_comments": False, "tags": ["enterprise"],
    "organization_fields": {"nps_score": "9", "plan": "gold"}, "created_at": "2023-01-02T10:00:00Z",
    "updated_at": "2024-05-01T12:30:00Z", "deleted_at": None,
}


def test_organization_becomes_an_account_with_domains_and_salesforce_link() -> None:
    [record] = map_organization(ORG)
    assert (record.kind, record.external_id, record.deleted) == ("account", "361", False)
    assert record.updated_at == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert record.fields["name"] == "Acme Corp"
    assert record.fields["domains"] == ["acme.com", "acme.io"]
    # the 15-character id is linked in its 18-character form (Salesforce's documented example)
    assert record.fields["links"] == {"salesforce_account_id": "001D000000IqhSLIAZ"}
    assert record.fields["external_id"] == "001D000000IqhSL"
    assert record.fields["tags"] == ["enterprise"]
    assert record.fields["organization_fields"] == {"nps_score": "9", "plan": "gold"}
    assert record.fields["created_at"] == "2023-01-02T10:00:00Z"


@pytest.mark.parametrize("external_id", ["crm-42", "001D000000IqhSLAAA", "003D000000IqhSL", "", None, 12345])
def test_external_ids_that_are_not_salesforce_accounts_are_kept_raw_but_not_linked(external_id: object) -> None:
    [record] = map_organization({**ORG, "external_id": external_id})
    assert record.fields["links"] == {}
    assert record.fields["external_id"] == external_id


def test_salesforce_id_checksum() -> None:
    assert salesforce_account_id("001D000000IqhSLIAZ") == "001D000000IqhSLIAZ"
    assert salesforce_account_id(" 001D000000IqhSL ") == "001D000000IqhSLIAZ"
    assert salesforce_account_id("001d000000IqhSLIAZ") is None  # case changes the checksum


def test_deleted_organization_is_a_deletion() -> None:
    [record] = map_organization({**ORG, "deleted_at": "2024-05-02T00:00:00Z"})
    assert record.deleted


def test_organization_nps_field_gives_account_nps_and_a_satisfaction_record() -> None:
    nps = NpsField(object="organization", field="nps_score")
    account, survey = map_organization(ORG, nps)
    assert account.fields["nps"] == 9
    assert (survey.kind, survey.external_id) == ("satisfaction", "nps:organization:361")
    assert survey.fields["type"] == "nps"
    assert survey.fields["score"] == 9
    assert survey.fields["account_id"] == "361"
    assert survey.fields["created_at"] == "2024-05-01T12:30:00Z"
    assert len(map_organization({**ORG, "organization_fields": {"nps_score": None}}, nps)) == 1


def test_user_roles_pick_contact_or_user_and_inactive_is_deleted() -> None:
    end_user = {"id": 5, "name": "Ann", "email": "ann@acme.com", "role": "end-user", "organization_id": 361,
                "active": True, "suspended": False, "tags": [], "user_fields": {"nps": 3},
                "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-02-01T00:00:00Z"}
    [contact] = map_user(end_user)
    assert (contact.kind, contact.external_id) == ("contact", "5")
    assert (contact.fields["email"], contact.fields["account_id"], contact.fields["role"]) == \
        ("ann@acme.com", "361", "end-user")
    assert map_user({**end_user, "role": "agent"})[0].kind == "user"
    assert map_user({**end_user, "role": "admin"})[0].kind == "user"
    assert map_user({**end_user, "active": False})[0].deleted
    _, survey = map_user(end_user, NpsField(object="user", field="nps"))
    assert (survey.fields["score"], survey.fields["requester_id"], survey.fields["account_id"]) == (3, "5", "361")


TICKET = {
    "id": 35436, "external_id": None, "subject": "Export broken", "description": "It fails", "status": "open",
    "priority": "high", "type": "problem", "requester_id": 5, "submitter_id": 5, "assignee_id": 9,
    "organization_id": 361, "group_id": 2, "tags": ["bug"], "custom_fields": [{"id": 360001, "value": "nps_7"}],
    "due_at": None, "via": {"channel": "email"}, "satisfaction_rating": {"id": 8, "score": "bad", "comment": "slow"},
    "created_at": "2024-04-01T09:00:00Z", "updated_at": "2024-04-03T17:45:00Z", "generated_timestamp": 1712166300,
}


def test_ticket_fields() -> None:
    [record] = map_ticket(TICKET)
    assert (record.kind, record.external_id, record.deleted) == ("ticket", "35436", False)
    fields = record.fields
    assert (fields["status"], fields["priority"], fields["type"]) == ("open", "high", "problem")
    assert (fields["account_id"], fields["requester_id"], fields["assignee_id"]) == ("361", "5", "9")
    assert (fields["subject"], fields["description"], fields["tags"]) == ("Export broken", "It fails", ["bug"])
    assert (fields["satisfaction"], fields["satisfaction_comment"]) == ("bad", "slow")
    assert fields["solved_at"] is None
    assert fields["channel"] == "email"
    assert fields["custom_fields"] == {"360001": "nps_7"}


def test_solved_time_is_derived_from_updated_at_unless_given() -> None:
    assert map_ticket({**TICKET, "status": "solved"})[0].fields["solved_at"] == "2024-04-03T17:45:00Z"
    assert map_ticket({**TICKET, "status": "closed"})[0].fields["solved_at"] == "2024-04-03T17:45:00Z"
    with_metrics = {**TICKET, "status": "closed", "metric_set": {"solved_at": "2024-04-02T08:00:00Z"}}
    assert map_ticket(with_metrics)[0].fields["solved_at"] == "2024-04-02T08:00:00Z"


def test_deleted_ticket_is_a_deletion_and_nps_custom_field_is_read() -> None:
    assert map_ticket({**TICKET, "status": "deleted"})[0].deleted
    _, survey = map_ticket(TICKET, NpsField(object="ticket", field=360001))
    assert survey.external_id == "nps:ticket:35436"
    assert (survey.fields["score"], survey.fields["ticket_id"], survey.fields["account_id"]) == (7, "35436", "361")


def test_deleting_an_object_also_deletes_its_nps_response() -> None:
    nps = NpsField(object="organization", field="nps_score")
    account, survey = map_organization({**ORG, "deleted_at": "2024-05-02T00:00:00Z"}, nps)
    assert account.deleted and survey.deleted and survey.external_id == "nps:organization:361"


@pytest.mark.parametrize(("value", "score"), [(9, 9), (0, 0), ("10", 10), (8.0, 8), ("nps_6", 6),
                                              (11, None), (-1, None), ("n/a", None), (True, None), (7.5, None)])
def test_nps_score_values(value: object, score: int | None) -> None:
    assert nps_score(value) == score


def test_satisfaction_ratings_keep_answers_and_skip_open_surveys() -> None:
    good = {"id": 62, "score": "good", "comment": "Thanks", "reason": None, "ticket_id": 35436, "requester_id": 5,
            "assignee_id": 9, "group_id": 2, "created_at": "2024-04-04T10:00:00Z", "updated_at": "2024-04-04T10:05:00Z"}
    record = map_satisfaction_rating(good)
    assert record is not None
    assert (record.kind, record.external_id) == ("satisfaction", "62")
    assert record.fields["type"] == "csat"
    assert (record.fields["score"], record.fields["comment"], record.fields["ticket_id"]) == ("good", "Thanks", "35436")
    assert record.fields["requester_id"] == "5"
    assert record.fields["account_id"] is None
    assert map_satisfaction_rating({**good, "organization_id": 361}).fields["account_id"] == "361"
    bad = map_satisfaction_rating({**good, "score": "bad", "reason": "Took too long"})
    assert bad is not None and bad.fields["reason"] == "Took too long"
    assert map_satisfaction_rating({**good, "score": "offered"}) is None
    assert map_satisfaction_rating({**good, "score": "unoffered"}) is None


def _response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "https://acme.zendesk.com/api/v2/x"), **kwargs)


def test_error_messages_from_both_shapes_and_text() -> None:
    new = _response(400, json={"errors": [{"code": "InvalidPaginationParameter", "title": "Invalid pagination",
                                           "detail": "page[size] too big"}]})
    assert error_message(new) == ("Invalid pagination: page[size] too big", "InvalidPaginationParameter")
    classic = _response(422, json={"error": "RecordInvalid", "description": "Record validation errors",
                                   "details": {"name": [{"description": "Name: has already been taken",
                                                         "error": "DuplicateValue"}]}})
    assert error_message(classic) == ("Record validation errors (Name: has already been taken)", "RecordInvalid")
    assert error_message(_response(401, json={"error": "Couldn't authenticate you"})) == \
        ("Couldn't authenticate you", "Couldn't authenticate you")
    nested = _response(403, json={"error": {"title": "Forbidden", "message": "You do not have access"}})
    assert error_message(nested) == ("You do not have access", "Forbidden")
    assert error_message(_response(429, text="Too Many Requests")) == ("Too Many Requests", None)


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
    ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z"),          # a day above 28: the parsing path
    ("2024-05-01T12:00:00.987Z", "2024-05-01T12:00:00Z"),      # fractions are dropped, not rounded
    ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00Z"),
    ("2024-05-01T01:30:00.5-05:30", "2024-05-01T07:00:00Z"),
    ("2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00Z"),      # an offset that crosses the year
    ("2024-05-01T12:00:00+00:00", "2024-05-01T12:00:00Z"),
    ("0999-01-01T00:00:00Z", "999-01-01T00:00:00Z"),            # what strftime writes for year 999
    (None, None), ("", None), (0, None),
])
def test_iso_turns_any_zendesk_timestamp_into_the_canonical_form(value: object, expected: str | None) -> None:
    assert iso(value) == expected


@pytest.mark.parametrize("value", ["2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z", "2024-13-01T00:00:00Z",
                                   "2024-05-01T24:00:00Z", "2024-05-01T12:00:60Z", "not a time"])
def test_iso_rejects_impossible_timestamps(value: str) -> None:
    with pytest.raises(ValueError):
        iso(value)


def test_iso_of_canonical_text_is_what_parsing_and_formatting_give_for_every_day() -> None:
    # the fast path returns the text itself; it must agree with the parse-and-format path everywhere
    moment = datetime(2023, 1, 1, 23, 59, 58, tzinfo=UTC)
    while moment.year < 2025:   # a common year and a leap year
        text = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert iso(text) == text == iso(text.replace("Z", ".000+00:00"))
        moment += timedelta(days=1, seconds=1)
