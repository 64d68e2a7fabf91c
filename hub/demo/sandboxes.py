"""The demo world served by local emulators: Salesforce, Zendesk, Stripe and an SMTP sink on 127.0.0.1.

    world = generate_world(500, seed=7, now=datetime.now(UTC))
    with start_sandboxes(world, registry, mail_dir="var/mail") as running:
        running.urls()            # {"crm": "http://127.0.0.1:...", ..., "mail": "smtp://127.0.0.1:..."}
        running.config(database="sqlite:///churnhub.db")   # a ready churnhub.yaml, as a dict

Each sandbox comes from its connector type's `start_sandbox` (found in the plugin registry, so the
core never imports a connector), seeded with the world's dataset for that system. Connector names
in the config: `crm`, `support`, `billing`, `mail`, and `product` when a `usage` connector type
(e.g. examples/churnhub-usage) is installed; without it `missing` says no product-usage source is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml

from hub.demo import vocabulary as V
from hub.demo.activity import people
from hub.demo.salesforce_data import CRM_FACTS, CRM_FIELDS, CUSTOM_FIELDS, salesforce_dataset
from hub.demo.stripe_data import stripe_dataset
from hub.demo.usage_data import usage_dataset
from hub.demo.world import World
from hub.demo.zendesk_data import NPS_FIELD, zendesk_dataset
from hub.errors import ConfigError
from hub.plugins import Registry
from hub.starter import STARTER_CONFIG

# connector name -> connector type
CONNECTORS = {"crm": "salesforce", "support": "zendesk", "billing": "stripe", "mail": "smtp", "product": "usage"}
VENDOR_PRODUCT = "Lumen Metrics"
VENDOR_SENDER = f"Lumen Customer Success <success@{V.VENDOR_DOMAIN}>"
BOUNCE_EVERY = 40                  # one company in 40 has a contact whose mailbox is gone


def bounced_addresses(world: World) -> list[str]:
    """Addresses the SMTP sink refuses (550 5.1.1), so suppression can be seen at work."""
    return [people(world, company)[-1].email for company in world.companies[::BOUNCE_EVERY]]


def datasets(world: World) -> dict[str, Callable[[], Any]]:
    """Per connector name, how to build its sandbox's dataset (lazily: one system at a time)."""
    return {"crm": lambda: salesforce_dataset(world), "support": lambda: zendesk_dataset(world),
            "billing": lambda: stripe_dataset(world), "mail": lambda: {"reject_recipients": bounced_addresses(world)},
            "product": lambda: usage_dataset(world)}


def sandbox_options(world: World, name: str, mail_dir: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Options for a fast, faithful demo: no rate limits, the billing clock starting at the world's now."""
    if name == "billing":
        return {"start_time": world.now, "rate_limit": None}
    if name == "support":
        return {"rate_limits": False}
    if name == "mail":
        return {"from_address": VENDOR_SENDER, **({"directory": mail_dir} if mail_dir is not None else {})}
    if name == "product":
        return {}
    return {"custom_fields": CUSTOM_FIELDS}


@dataclass
class RunningSandboxes:
    world: World
    servers: dict[str, Any] = field(default_factory=dict)     # connector name -> running sandbox
    missing: dict[str, str] = field(default_factory=dict)     # connector name -> why it did not start

    def urls(self) -> dict[str, str]:
        return {name: server.url for name, server in self.servers.items()}

    def connector_settings(self) -> dict[str, dict[str, Any]]:
        blocks: dict[str, dict[str, Any]] = {}
        for name, server in self.servers.items():
            block: dict[str, Any] = {"type": CONNECTORS[name], **server.settings()}
            if name == "crm":
                block.update(fields=CRM_FIELDS, facts=CRM_FACTS)
            if name == "support":
                block["nps_field"] = dict(NPS_FIELD)
            blocks[name] = block
        return blocks

    def config(self, database: str | None = None) -> dict[str, Any]:
        """A churnhub.yaml (as a dict): the starter's identity and playbooks, these connectors."""
        config = yaml.safe_load(STARTER_CONFIG)
        if database is not None:
            config["database"] = database
        config["connectors"] = self.connector_settings()
        variables = config.get("playbooks", {}).get("variables", {})
        if isinstance(variables.get("product"), dict):
            variables["product"]["name"] = VENDOR_PRODUCT
        return config

    def config_yaml(self, database: str | None = None) -> str:
        header = (f"# churnhub demo: {len(self.world):,} customers (seed {self.world.seed}) in local sandboxes.\n"
                  "# The sandboxes live only while `churnhub sandbox` / `churnhub demo` runs.\n")
        return header + yaml.safe_dump(self.config(database), sort_keys=False, allow_unicode=True)

    def mail(self) -> Any | None:
        return self.servers.get("mail")

    def stop(self) -> None:
        for server in reversed(list(self.servers.values())):
            server.stop()
        self.servers.clear()


@contextmanager
def start_sandboxes(world: World, registry: Registry, *,
                    mail_dir: str | os.PathLike[str] | None = None) -> Iterator[RunningSandboxes]:
    """Start every sandbox there is (a connector type without one is listed in `missing`)."""
    running = RunningSandboxes(world)
    try:
        for name, build in datasets(world).items():
            kind = registry.connector_types.get(CONNECTORS[name])
            if kind is None or kind.start_sandbox is None:
                running.missing[name] = (f"no {CONNECTORS[name]} connector type with a sandbox is installed"
                                         + (" (no product-usage source)" if name == "product" else ""))
                continue
            try:
                running.servers[name] = kind.start_sandbox(build(), **sandbox_options(world, name, mail_dir))
            except ImportError as exc:   # a sandbox module not written yet, or an optional dependency
                running.missing[name] = f"the {CONNECTORS[name]} sandbox is not available: {exc}"
        if not running.servers:
            raise ConfigError("no sandbox could be started: " + "; ".join(running.missing.values()))
        yield running
    finally:
        running.stop()
