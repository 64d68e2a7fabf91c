"""The plugin machinery, exercised through real entry points of a test distribution."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.app import discover_plugins
from hub.errors import PluginError
from hub.plugins import build_registry, load_plugins, new_plugin_manager

PLUGIN_SOURCE = '''
from pydantic import BaseModel
from hub import ConnectorSettings, ConnectorType, ActionType, HealthFactor, hookimpl


class Settings(ConnectorSettings):
    url: str


class Params(BaseModel):
    text: str


@hookimpl
def register_connector_types(register):
    register(ConnectorType(name="{type_name}", settings=Settings, factory=lambda s: None))


@hookimpl
def register_actions(register):
    register(ActionType(name="say", params=Params))


@hookimpl
def register_health_factors(register):
    register(HealthFactor(name="mood", description="how they feel", compute=lambda *a: None))
'''


def install_distribution(root: Path, dist: str, module: str, source: str, version: str = "1.2.3") -> None:
    """Write an importable module plus a dist-info with a `churnhub` entry point onto sys.path."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[churnhub]\n{dist} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("churnhub_")]:
        del sys.modules[name]  # the next test writes different code under the same module name


def test_entry_point_plugin_registers_everything(site: Path) -> None:
    install_distribution(site, "churnhub-example", "churnhub_example", PLUGIN_SOURCE.format(type_name="example"))
    pm = new_plugin_manager()
    infos = load_plugins(pm, builtins=())
    registry = build_registry(pm, infos)
    info = registry.plugins["churnhub-example"]
    assert (info.version, info.connector_types, info.actions, info.health_factors) == \
        ("1.2.3", ["example"], ["say"], ["mood"])
    assert registry.connector_types["example"].plugin == "churnhub-example"


def test_duplicate_type_names_name_both_plugins(site: Path) -> None:
    install_distribution(site, "churnhub-one", "churnhub_one", PLUGIN_SOURCE.format(type_name="same"))
    install_distribution(site, "churnhub-two", "churnhub_two", PLUGIN_SOURCE.format(type_name="same"))
    pm = new_plugin_manager()
    infos = load_plugins(pm, builtins=())
    with pytest.raises(PluginError, match="connector type 'same' is registered twice") as info:
        build_registry(pm, infos)
    assert "'churnhub-one'" in str(info.value) and "'churnhub-two'" in str(info.value)


def test_allow_list_keeps_other_plugins_out(site: Path) -> None:
    install_distribution(site, "churnhub-one", "churnhub_one", PLUGIN_SOURCE.format(type_name="one"))
    install_distribution(site, "churnhub-two", "churnhub_two", PLUGIN_SOURCE.format(type_name="two"))
    plugins = discover_plugins(allow="churnhub-two")
    assert set(plugins.registry.connector_types) == {"two"}


def test_misspelled_hook_is_a_startup_error(site: Path) -> None:
    install_distribution(site, "churnhub-typo", "churnhub_typo",
                         "from hub import hookimpl\n\n@hookimpl\ndef register_conector_types(register):\n    pass\n")
    with pytest.raises(PluginError, match="churnhub-typo"):
        load_plugins(new_plugin_manager(), builtins=())


def test_broken_plugin_says_which_one(site: Path) -> None:
    install_distribution(site, "churnhub-broken", "churnhub_broken", "raise RuntimeError('kaput')\n")
    with pytest.raises(PluginError, match="churnhub-broken.*kaput"):
        load_plugins(new_plugin_manager(), builtins=())


def test_each_hub_gets_its_own_manager() -> None:
    assert discover_plugins(allow="none").manager is not discover_plugins(allow="none").manager
