"""CRM actions on the customer's Salesforce Account.

    - create_crm_task:
        subject: "Call {{ customer.name }}: health {{ health.score }}"
        description: "Health fell below 70."
        due_in_days: 2
        priority: High
    - update_crm_fields: {fields: {Churn_Risk__c: "true", Health_Score__c: "{{ health.score }}"}}

The task is related to the Account (WhatId) and assigned to its owner unless `owner_id` says
otherwise. The Salesforce connector makes both idempotent by the action's key (upsert on its key
field) and batches many in one sObject Collections call.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from hub import ActionType

from .common import ActionParams, account_id


class CreateCrmTask(ActionParams):
    subject: str = Field(min_length=1, max_length=255)
    description: str | None = Field(None, max_length=32000)
    due_in_days: int | None = Field(None, ge=0)
    due_date: date | None = None
    priority: Literal["High", "Normal", "Low"] = "Normal"
    status: str = "Not Started"
    owner_id: str | None = Field(None, description="a Salesforce User id; default: the account owner")


def plan_task(params: CreateCrmTask, context: dict[str, Any]) -> dict[str, Any]:
    if params.due_in_days is not None and params.due_date is not None:
        raise ValueError("give due_in_days or due_date, not both")
    due = params.due_date
    if params.due_in_days is not None:
        due = datetime.fromisoformat(context["now"]).date() + timedelta(days=params.due_in_days)
    task: dict[str, Any] = {"subject": params.subject, "what_id": account_id(context, "CRM account"),
                            "priority": params.priority, "status": params.status}
    if params.description:
        task["description"] = params.description
    if due:
        task["activity_date"] = due.isoformat()
    if params.owner_id:
        task["owner_id"] = params.owner_id
    return {"operation": "create_task", "params": task, "summary": f"CRM task: {params.subject}"}


class UpdateCrmFields(ActionParams):
    fields: dict[str, Any] = Field(min_length=1, description="Account fields to set, e.g. Health_Score__c")


def plan_update(params: UpdateCrmFields, context: dict[str, Any]) -> dict[str, Any]:
    return {"operation": "update_account",
            "params": {"account_id": account_id(context, "CRM account"), "fields": params.fields},
            "summary": f"CRM fields: {', '.join(sorted(params.fields))}"}


CREATE_CRM_TASK = ActionType(name="create_crm_task", params=CreateCrmTask, connector_type="salesforce",
                             plan=plan_task, description="Create a CRM task on the account, for its owner by default.")
UPDATE_CRM_FIELDS = ActionType(name="update_crm_fields", params=UpdateCrmFields, connector_type="salesforce",
                               plan=plan_update, description="Set fields on the customer's CRM account.")
