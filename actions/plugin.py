"""Registers the built-in playbook actions (listed in `hub.plugins.DEFAULT_PLUGINS` as `actions.plugin`)."""

from __future__ import annotations

from typing import Any

from hub import hookimpl

from .billing import STRIPE_APPLY_COUPON, STRIPE_PAUSE_COLLECTION
from .crm import CREATE_CRM_TASK, UPDATE_CRM_FIELDS
from .email import SEND_EMAIL
from .helpdesk import CREATE_HELPDESK_TICKET, TAG_HELPDESK_ORG
from .status import SET_STATUS
from .webhook import WEBHOOK

BUILTIN_ACTIONS = (SEND_EMAIL, CREATE_CRM_TASK, UPDATE_CRM_FIELDS, TAG_HELPDESK_ORG, CREATE_HELPDESK_TICKET,
                   STRIPE_PAUSE_COLLECTION, STRIPE_APPLY_COUPON, WEBHOOK, SET_STATUS)


@hookimpl(trylast=True)
def register_actions(register: Any) -> None:
    for action in BUILTIN_ACTIONS:
        register(action)
