"""Canonical records: what a connector yields and the core stores.

A connector maps its API's JSON into `Record`s with pure functions. `kind` says what the record
is in the hub's vocabulary (see `Kind`); `fields` holds the canonical fields documented by the
TypedDicts below (a connector may add more: unknown fields are kept, not interpreted).
Timestamps are timezone-aware `datetime`s in UTC or ISO-8601 strings; money is integer minor units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypedDict


class Kind(StrEnum):
    """The kinds of source record the unified model understands."""

    ACCOUNT = "account"            # a company: Salesforce Account, Zendesk org, Stripe customer
    CONTACT = "contact"            # a person at a company
    USER = "user"                  # a person on our side (CRM owner, helpdesk agent)
    OPPORTUNITY = "opportunity"
    SUBSCRIPTION = "subscription"
    INVOICE = "invoice"
    CHARGE = "charge"
    PAYMENT_METHOD = "payment_method"
    TICKET = "ticket"
    SATISFACTION = "satisfaction"  # CSAT rating or NPS response
    USAGE = "usage"                # a product-usage fact for one account and day


class AccountFields(TypedDict, total=False):
    name: str
    domains: list[str]             # raw websites / domain names / email domains, unnormalised
    email: str | None
    website: str | None
    links: dict[str, str]          # explicit cross-system ids, e.g. {"salesforce_account_id": "001..."}
    owner_id: str | None
    industry: str | None
    created_at: str | None
    usage: dict[str, Any]          # canonical usage facts mapped from CRM fields
    lifecycle_stage: str | None
    nps: float | None


class SubscriptionFields(TypedDict, total=False):
    account_id: str
    status: str
    plan: str | None
    quantity: int
    interval: str
    mrr: int                       # normalised to one month, minor units
    currency: str
    cancel_at_period_end: bool
    canceled_at: str | None
    ended_at: str | None
    cancellation_reason: str | None
    cancellation_feedback: str | None
    paused: bool


class InvoiceFields(TypedDict, total=False):
    account_id: str
    subscription_id: str | None
    status: str
    amount_due: int
    amount_paid: int
    currency: str
    attempt_count: int
    next_payment_attempt: str | None
    hosted_invoice_url: str | None
    created_at: str


class TicketFields(TypedDict, total=False):
    account_id: str | None
    requester_id: str | None
    status: str
    priority: str | None
    subject: str
    description: str
    created_at: str
    updated_at: str
    solved_at: str | None
    tags: list[str]
    satisfaction: str | None


@dataclass(frozen=True, slots=True)
class Record:
    """One object as a source system describes it, in the hub's vocabulary."""

    kind: str
    external_id: str
    fields: Mapping[str, Any]
    deleted: bool = False
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """A batch of records plus the opaque state that resumes the stream right after it.

    The core commits `records` and `state` in one transaction, so a crash between pages
    neither loses nor repeats anything. `notes` are human-readable remarks for the sync log
    (for example "events cursor older than 30 days: full re-read").
    """

    records: Sequence[Record]
    state: Mapping[str, Any] | None
    notes: Sequence[str] = field(default_factory=tuple)
    requests: int = 1
    full_refresh: bool = False   # the stream restarted from scratch: unseen records may be gone
