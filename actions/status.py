"""`set_status`: the hub's own lifecycle status of a customer (`customers.status`), e.g. "At risk".

    - set_status: {status: At risk}

Carried out by the hub in the database, in the transaction that records the action.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hub import ActionType

from .common import ActionParams


class SetStatus(ActionParams):
    status: str = Field(min_length=1, max_length=60)


def plan(params: SetStatus, context: dict[str, Any]) -> dict[str, Any]:
    customer_id = (context.get("customer") or {}).get("id")
    if not customer_id:
        raise ValueError("set_status needs a customer")
    return {"operation": "set_status", "params": {"customer_id": customer_id, "status": params.status},
            "summary": f"status -> {params.status}"}


SET_STATUS = ActionType(name="set_status", params=SetStatus, plan=plan,
                        description="Set the customer's lifecycle status in the hub (e.g. At risk).")
