"""Card scenarios: how a sandbox customer's card answers a payment attempt, and the charge it leaves.

Whether a customer's card pays is a side table, `Store.card_scenarios` (customer id -> scenario
name), so API objects stay exactly API-shaped. `ok` (the default) pays; the others decline with
Stripe's codes and messages: `insufficient_funds` and `card_velocity_exceeded` are soft declines
worth retrying later; `expired_card`, `lost_card`, `stolen_card`, `fraudulent` are hard ones;
`do_not_honor` and `generic_decline` say nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .sandbox_store import Store


@dataclass(frozen=True)
class Decline:
    code: str               # the error's and the charge's failure code
    decline_code: str
    message: str
    advice_code: str | None
    network_decline_code: str | None


SCENARIOS: dict[str, Decline | None] = {
    "ok": None,
    "insufficient_funds": Decline("card_declined", "insufficient_funds", "Your card has insufficient funds.",
                                  "try_again_later", "51"),
    "expired_card": Decline("expired_card", "expired_card", "Your card has expired.", "confirm_card_data", "54"),
    "lost_card": Decline("card_declined", "lost_card", "Your card was declined.", "do_not_try_again", "41"),
    "stolen_card": Decline("card_declined", "stolen_card", "Your card was declined.", "do_not_try_again", "43"),
    "fraudulent": Decline("card_declined", "fraudulent", "Your card was declined.", "do_not_try_again", "59"),
    "do_not_honor": Decline("card_declined", "do_not_honor", "Your card was declined.", None, "05"),
    "generic_decline": Decline("card_declined", "generic_decline", "Your card was declined.", None, "05"),
    "card_velocity_exceeded": Decline("card_declined", "card_velocity_exceeded",
                                      "Your card has exceeded its velocity limit.", "try_again_later", "61"),
}


def build_charge(store: Store, invoice: dict[str, Any], method: dict[str, Any], decline: Decline | None,
                 payment_intent: str) -> dict[str, Any]:
    """The charge of one payment attempt of `invoice` with `method`: succeeded, or failed with `decline`."""
    card = method.get("card") or {}
    failed = decline is not None
    amount = invoice["amount_remaining"]
    return {
        "id": store.new_id("ch"), "object": "charge", "amount": amount, "amount_captured": 0 if failed else amount,
        "amount_refunded": 0, "application": None, "application_fee": None, "application_fee_amount": None,
        "balance_transaction": None if failed else store.new_id("txn"),
        "billing_details": method.get("billing_details"), "calculated_statement_descriptor": "CHURNHUB SANDBOX",
        "captured": not failed, "created": store.now(), "currency": invoice["currency"],
        "customer": invoice["customer"], "description": "Subscription update", "disputed": False,
        "failure_balance_transaction": None, "failure_code": decline.code if failed else None,
        "failure_message": decline.message if failed else None, "fraud_details": {}, "livemode": False,
        "metadata": {}, "on_behalf_of": None,
        "outcome": {"advice_code": decline.advice_code if failed else None, "network_advice_code": None,
                    "network_decline_code": decline.network_decline_code if failed else None,
                    "network_status": "declined_by_network" if failed else "approved_by_network",
                    "reason": decline.decline_code if failed else None,
                    "risk_level": "highest" if failed and decline.decline_code == "fraudulent" else "normal",
                    "seller_message": ("The bank did not return any further details with this decline."
                                       if failed else "Payment complete."),
                    "type": "issuer_declined" if failed else "authorized"},
        "paid": not failed, "payment_intent": payment_intent, "payment_method": method["id"],
        "payment_method_details": {"type": "card", "card": {
            "brand": card.get("brand"), "country": card.get("country"), "exp_month": card.get("exp_month"),
            "exp_year": card.get("exp_year"), "funding": card.get("funding"), "last4": card.get("last4"),
            "network": card.get("brand")}},
        "receipt_email": None, "receipt_url": None, "refunded": False, "refunds": None, "review": None,
        "status": "failed" if failed else "succeeded",
    }
