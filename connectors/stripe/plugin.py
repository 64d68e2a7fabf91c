"""Registers the `stripe` connector type (with its sandbox)."""

from __future__ import annotations

from typing import Any

from hub import ConnectorType, hookimpl

from .connector import StripeConnector
from .settings import StripeSettings


def start_sandbox(dataset: Any = None, **options: Any) -> Any:
    from .sandbox import start_sandbox as start  # the sandbox loads only when asked for

    return start(dataset, **options)


@hookimpl
def register_connector_types(register: Any) -> None:
    register(ConnectorType(
        name="stripe",
        settings=StripeSettings,
        factory=StripeConnector,
        description="Stripe billing: customers, subscriptions (MRR), invoices, charges, cards; dunning actions.",
        start_sandbox=start_sandbox,
    ))
