"""End to end: the usage plugin's records become customers and drive the health score's usage factor."""

from __future__ import annotations

from importlib.metadata import entry_points

import yaml
from hub.app import Hub, Plugins, discover_plugins
from hub.health import factor_entries
from hub.pipeline import sync
from hub.plugins import DEFAULT_PLUGINS, build_registry, load_plugins, new_plugin_manager
from hub.views import customer_360, customer_list

from churnhub_usage.sandbox import start_sandbox
from churnhub_usage.sandbox_world import demo_dataset


def plugins() -> Plugins:
    """churnhub's plugins with this one: found through its entry point once installed, named here before."""
    if any(entry.name == "usage" for entry in entry_points(group="churnhub")):
        return discover_plugins()
    manager = new_plugin_manager()
    infos = load_plugins(manager, builtins=(*DEFAULT_PLUGINS, "churnhub_usage.plugin"))
    return Plugins(manager, build_registry(manager, infos))


def test_fading_accounts_score_lower_on_usage(tmp_path):
    sandbox = start_sandbox(demo_dataset(accounts=8, days=28))
    try:
        config = tmp_path / "churnhub.yaml"
        config.write_text(yaml.safe_dump({"database": f"sqlite:///{tmp_path / 'hub.db'}",
                                          "connectors": {"product": {"type": "usage", **sandbox.settings()}}}))
        hub = Hub.from_config(config, plugins=plugins())
        outcome = sync(hub)
        assert outcome.ok, [(run.stream, run.error) for run in outcome.runs]
        with hub.engine.connect() as connection:
            found = customer_list(connection)
            usage = {}
            for customer in found:
                factors = factor_entries(customer_360(connection, customer["id"])["health"]["factors"])
                usage[customer["domain"]] = factors["usage"]["points"]
        hub.close()
    finally:
        sandbox.stop()
    assert len(found) == 8
    fading = [usage[f"demo{n}.example"] for n in (3, 7)]          # every fourth demo account fades, then stops
    steady = [usage[f"demo{n}.example"] for n in (0, 1, 2, 4, 5, 6)]
    assert max(fading) < min(steady), usage
