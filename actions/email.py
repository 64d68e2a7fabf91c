"""`send_email`: a templated email to the customer's primary contact, owner or billing address.

    - send_email:
        template: reengagement            # an email template (hub/email_templates or `templates:`)
        to: primary_contact               # owner | billing_email | an address
        transactional: false              # true: billing notices, never suppressed, no unsubscribe
        variables: {links: {app: "https://app.acme.example"}}

Sent by the `smtp` connector's `send` operation, at most once: SMTP has no idempotency, so the
outbox records the attempt before handing the message over (see `hub.outbox.execute`). The
template context is the customer (with its plan), `contact` (the recipient), `owner`, and
`product`, `links`, `invoice`, `card` when the playbook or dunning provides them, then
`variables` on top. A non-transactional email to a suppressed address is skipped.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hub import ActionType

from .common import ActionParams, first_name, live_subscriptions, person

PASSED_THROUGH = ("product", "links", "invoice", "card")


class SendEmail(ActionParams):
    template: str = Field(min_length=1)
    to: str = "primary_contact"
    transactional: bool = False
    subject: str | None = Field(None, description="replaces the template's subject")
    variables: dict[str, Any] = Field(default_factory=dict)


def email_context(recipient: dict[str, Any], context: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    customer = dict(context.get("customer") or {})
    plans = [s.get("plan") for s in live_subscriptions(context) if s.get("plan")]
    if plans:
        customer.setdefault("plan", plans[0])
    result: dict[str, Any] = {"customer": customer,
                              "contact": {k: recipient.get(k) for k in ("name", "first_name", "email")}}
    owner = context.get("owner")
    if owner:
        result["owner"] = {**owner, "first_name": owner.get("first_name") or first_name(owner.get("name"))}
    result.update({k: context[k] for k in PASSED_THROUGH if context.get(k) is not None})
    result.update(variables)
    return result


def plan(params: SendEmail, context: dict[str, Any]) -> dict[str, Any]:
    recipient = person(params.to, context)
    send: dict[str, Any] = {"template": params.template, "to": recipient["email"],
                            "context": email_context(recipient, context, params.variables),
                            "transactional": params.transactional}
    if recipient.get("name"):
        send["to_name"] = recipient["name"]
    if params.subject:
        send["subject_override"] = params.subject
    return {"operation": "send", "params": send, "recipient": recipient["email"],
            "transactional": params.transactional, "summary": f"email {params.template} to {recipient['email']}"}


SEND_EMAIL = ActionType(name="send_email", params=SendEmail, connector_type="smtp", plan=plan, at_most_once=True,
                        description="Send a templated email (primary contact, owner, billing email or an address).")
