"""The plugin manager: built-ins and third-party plugins, registered the same way.

Built-in plugins are named in `DEFAULT_PLUGINS` (dotted module names); third-party ones are
found through the `churnhub` entry-point group. `CHURNHUB_PLUGINS=a,b` allow-lists plugins by
name (built-ins included). Each `Hub` owns its own manager: there is no module-global state.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import Any, TypeVar

import pluggy

from hub import hookspecs
from hub.connector import ConnectorType
from hub.errors import PluginError
from hub.extensions import ActionType, HealthFactor

ENTRY_POINT_GROUP = "churnhub"

# Built-in plugins, registered exactly like third-party ones (the core never imports them by name
# anywhere else). Each connector is added here when it lands.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "connectors.stripe.plugin",
    "connectors.zendesk.plugin",
    "connectors.salesforce.plugin",
    "connectors.email.plugin",
    "actions.plugin",
    "hub.default_factors",
)

T = TypeVar("T", ConnectorType, ActionType, HealthFactor)


@dataclass
class PluginInfo:
    name: str
    version: str | None
    source: str                       # "builtin" or "entry point <dist>"
    connector_types: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    health_factors: list[str] = field(default_factory=list)


@dataclass
class Registry:
    connector_types: dict[str, ConnectorType] = field(default_factory=dict)
    actions: dict[str, ActionType] = field(default_factory=dict)
    health_factors: dict[str, HealthFactor] = field(default_factory=dict)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("churnhub")
    pm.add_hookspecs(hookspecs)
    return pm


def _allowed(name: str, allow_list: set[str] | None) -> bool:
    return allow_list is None or name in allow_list


def load_plugins(pm: pluggy.PluginManager, *, allow: Iterable[str] | None = None,
                 builtins: Iterable[str] = DEFAULT_PLUGINS) -> dict[str, PluginInfo]:
    """Register built-ins, then entry-point plugins; return what was loaded, by plugin name."""
    allow_list = {a.strip() for a in allow if a.strip()} if allow is not None else None
    infos: dict[str, PluginInfo] = {}
    from hub.http import __version__

    for dotted in builtins:
        if not _allowed(dotted, allow_list):
            continue
        try:
            module = importlib.import_module(dotted)
        except ImportError as exc:
            raise PluginError(f"built-in plugin {dotted} failed to import: {exc}") from exc
        pm.register(module, name=dotted)
        infos[dotted] = PluginInfo(dotted, __version__, "builtin")
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if not _allowed(entry.name, allow_list) or pm.has_plugin(entry.name):
            continue
        try:
            plugin = entry.load()
        except Exception as exc:  # a broken third-party plugin must say which one it is
            raise PluginError(f"plugin {entry.name!r} ({entry.value}) failed to load: {exc}") from exc
        try:
            pm.register(plugin, name=entry.name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {entry.name!r} is invalid: {exc}") from None
        dist = entry.dist
        infos[entry.name] = PluginInfo(entry.name, dist.version if dist else None,
                                       f"entry point {dist.name if dist else entry.value}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(f"plugin {name!r} implements a hook churnhub does not have: {exc}") from None
    return infos


def _collector(kind: str, store: dict[str, T], infos: dict[str, PluginInfo],
               plugin_name: str, listing: Callable[[PluginInfo], list[str]]) -> Callable[[T], None]:
    def register(item: T) -> None:
        if not getattr(item, "name", None):
            raise PluginError(f"plugin {plugin_name!r} registered a {kind} without a name")
        if item.name in store:
            other = store[item.name].plugin
            raise PluginError(f"{kind} {item.name!r} is registered twice: by {other!r} and by {plugin_name!r}")
        store[item.name] = replace(item, plugin=plugin_name)
        if plugin_name in infos:
            listing(infos[plugin_name]).append(item.name)

    return register


def build_registry(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> Registry:
    """Ask every plugin, one at a time, what it registers (so duplicates name both plugins)."""
    registry = Registry(plugins=infos)
    hooks: list[tuple[str, dict[str, Any], Callable[[PluginInfo], list[str]]]] = [
        ("register_connector_types", registry.connector_types, lambda i: i.connector_types),
        ("register_actions", registry.actions, lambda i: i.actions),
        ("register_health_factors", registry.health_factors, lambda i: i.health_factors),
    ]
    for hook_name, store, listing in hooks:
        kind = hook_name.removeprefix("register_").rstrip("s").replace("_", " ")
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            name = pm.get_name(impl.plugin) or repr(impl.plugin)
            impl.function(register=_collector(kind, store, infos, name, listing))
    return registry
