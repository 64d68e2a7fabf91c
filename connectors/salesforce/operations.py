"""Outbound operations, batched through sObject Collections (up to 200 records a call).

    create_task     PATCH /composite/sobjects/Task/{task_idempotency_field}   upsert on the action's key
    update_account  PATCH /composite/sobjects                                 update by Id
    upsert          PATCH /composite/sobjects/{SObject}/{ExternalIdField}     upsert by an external id

Every call is `allOrNone: false`, so each record succeeds or fails on its own; its result
(`{"id", "success", "errors": [{"statusCode", "message", "fields"}], "created"}`) becomes that
action's `OperationResult`, with Salesforce's own words and status code.

Idempotency: a task carries the hub's idempotency key in an External ID field on Task and is
written by upsert on that field, so a retried action finds and updates its task instead of creating
a second one (the retry writes the same values again). With `task_idempotency_field: null` tasks are
created by POST, sent once and never retried automatically. Account updates and upserts are
idempotent by nature.

A task without `owner_id` is assigned to the owner of its `what_id` (an Account or Opportunity),
looked up in one query per 200 tasks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub import AuthError, ConnectorError, OperationResult, PermanentError

from .client import SalesforceClient
from .settings import SalesforceSettings, field_name
from .soql import in_list, select

COLLECTION_LIMIT = 200
KEY_FIELD_LENGTH = 255            # a Text External ID field holds at most 255 characters
# Per-record codes worth another try later (row locks, the daily quota, an org under maintenance).
RETRYABLE_CODES = {"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE",
                   "ALL_OR_NONE_OPERATION_ROLLED_BACK"}
OWNER_OBJECTS = {"001": "Account", "006": "Opportunity"}   # key prefixes of what a task may be about
READ_ONLY_FIELDS = {"Id", "IsDeleted", "SystemModstamp", "CreatedDate", "CreatedById", "LastModifiedDate",
                    "LastModifiedById"}

SalesforceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$",
                                    description="a 15- or 18-character record id")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=80)]


def _field_values(value: dict[str, Any]) -> dict[str, Any]:
    for name in value:
        field_name(name)
        if name in READ_ONLY_FIELDS:
            raise ValueError(f"{name} cannot be written")
    return value


class CreateTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=255)
    what_id: SalesforceId = Field(description="the Account (or Opportunity) the task is about")
    owner_id: SalesforceId | None = Field(None, description="a User id; default: the owner of what_id")
    activity_date: date | None = None
    priority: Literal["High", "Normal", "Low"] = "Normal"
    status: str = Field("Not Started", min_length=1)
    description: str | None = Field(None, max_length=32000)


class UpdateAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: SalesforceId
    fields: dict[str, Any] = Field(min_length=1, description="API field names to values")

    @field_validator("fields")
    @classmethod
    def _writable(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _field_values(value)


class Upsert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sobject: Name
    external_id_field: Name
    external_id: str = Field(min_length=1, max_length=255)
    fields: dict[str, Any] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _writable(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _field_values(value)


@dataclass
class Call:
    """One collections endpoint and the records for it, each with the index of its action."""

    method: str
    resource: str
    retry: bool = True
    records: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def key_value(idempotency_key: str) -> str:
    """The key as stored in the External ID field (hashed when longer than the field)."""
    if len(idempotency_key) <= KEY_FIELD_LENGTH:
        return idempotency_key
    return "sha256:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


def result_of(item: dict[str, Any]) -> OperationResult:
    """One record's collection result -> its action's result."""
    if item.get("success"):
        data = {"created": bool(item["created"])} if "created" in item else {}
        return OperationResult(ok=True, external_id=item.get("id"), data=data)
    errors = [e for e in item.get("errors") or [] if isinstance(e, dict)]
    code = errors[0].get("statusCode") if errors else None
    words = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" + (f" ({', '.join(e['fields'])})"
                      if e.get("fields") else "") for e in errors) or "refused without a reason"
    return OperationResult(ok=False, external_id=item.get("id"), error=words, code=code,
                           retryable=code in RETRYABLE_CODES)


def failure_of(error: ConnectorError) -> OperationResult:
    """A whole call failed: permanent refusals are final, anything else is tried again later."""
    return OperationResult(ok=False, error=str(error), code=error.code,
                           retryable=not isinstance(error, PermanentError))


def chunks(items: Sequence[Any], size: int = COLLECTION_LIMIT) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def default_owners(client: SalesforceClient, what_ids: Iterable[str]) -> dict[str, str]:
    """Owner of each Account/Opportunity id (keyed by its 15-character form)."""
    owners: dict[str, str] = {}
    wanted = sorted({w for w in what_ids})
    for prefix, sobject in OWNER_OBJECTS.items():
        ids = [w for w in wanted if w.startswith(prefix)]
        for chunk in chunks(ids):
            for raw in client.query_records(select(sobject, ["Id", "OwnerId"], where=in_list("Id", chunk))):
                if raw.get("OwnerId"):
                    owners[str(raw["Id"])[:15]] = str(raw["OwnerId"])
    return owners


def task_record(params: CreateTask, owner_id: str | None, key_field: str | None, key: str) -> dict[str, Any]:
    record: dict[str, Any] = {"attributes": {"type": "Task"}, "Subject": params.subject, "WhatId": params.what_id,
                              "Priority": params.priority, "Status": params.status}
    if owner_id:
        record["OwnerId"] = owner_id
    if params.activity_date:
        record["ActivityDate"] = params.activity_date.isoformat()
    if params.description:
        record["Description"] = params.description
    if key_field:
        record[key_field] = key_value(key)
    return record


def plan_tasks(client: SalesforceClient, settings: SalesforceSettings, items: Sequence[tuple[CreateTask, str]],
               results: list[OperationResult | None]) -> list[Call]:
    key_field = settings.task_idempotency_field
    call = (Call("PATCH", f"/composite/sobjects/Task/{key_field}") if key_field
            else Call("POST", "/composite/sobjects", retry=False))   # no key: never send twice blindly
    lookups = [p.what_id for p, _ in items if p.owner_id is None]
    owners: dict[str, str] = {}
    lookup_failure: OperationResult | None = None
    if lookups:
        try:
            owners = default_owners(client, lookups)
        except AuthError:
            raise   # refused credentials fail the whole call, not each record: nothing can succeed
        except ConnectorError as error:
            lookup_failure = failure_of(error)
    for index, (params, key) in enumerate(items):
        if params.owner_id is None and lookup_failure is not None:
            results[index] = lookup_failure
            continue
        owner = params.owner_id or owners.get(params.what_id[:15])   # unknown: Salesforce decides
        call.records.append((index, task_record(params, owner, key_field, key)))
    return [call]


def plan_updates(items: Sequence[tuple[UpdateAccount, str]]) -> list[Call]:
    call = Call("PATCH", "/composite/sobjects")
    for index, (params, _) in enumerate(items):
        call.records.append((index, {"attributes": {"type": "Account"}, "id": params.account_id, **params.fields}))
    return [call]


def plan_upserts(items: Sequence[tuple[Upsert, str]]) -> list[Call]:
    calls: dict[tuple[str, str], Call] = {}
    for index, (params, _) in enumerate(items):
        target = (params.sobject, params.external_id_field)
        call = calls.setdefault(target, Call("PATCH", f"/composite/sobjects/{target[0]}/{target[1]}"))
        call.records.append((index, {"attributes": {"type": params.sobject}, **params.fields,
                                     params.external_id_field: params.external_id}))
    return list(calls.values())


def run_calls(client: SalesforceClient, calls: Sequence[Call], results: list[OperationResult | None]) -> None:
    """Send each call in chunks of 200 and put every record's result at its action's index.
    A chunk that fails as a whole fails its own actions only."""
    for call in calls:
        for chunk in chunks(call.records):
            try:
                answers = client.collection(call.method, call.resource, [record for _, record in chunk],
                                            retry=call.retry)
            except AuthError:
                raise
            except ConnectorError as error:
                for index, _ in chunk:
                    results[index] = failure_of(error)
                continue
            for (index, _), answer in zip(chunk, answers, strict=True):
                results[index] = result_of(answer if isinstance(answer, dict) else {})


def execute_batch(client: SalesforceClient, settings: SalesforceSettings, operation: str,
                  items: Sequence[tuple[BaseModel, str]]) -> list[OperationResult]:
    results: list[OperationResult | None] = [None] * len(items)
    if operation == "create_task":
        calls = plan_tasks(client, settings, items, results)  # type: ignore[arg-type]
    elif operation == "update_account":
        calls = plan_updates(items)  # type: ignore[arg-type]
    elif operation == "upsert":
        calls = plan_upserts(items)  # type: ignore[arg-type]
    else:
        raise ValueError(f"salesforce has no operation {operation!r}")
    run_calls(client, calls, results)
    return [r if r is not None else OperationResult(ok=False, error="not sent", retryable=True) for r in results]
