"""docs/plugins.md documents every hook with its exact signature, the whole Connector contract and
every test of the conformance suite, so the plugin guide cannot drift from the code."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from hub import hookspecs
from hub.connector import Connector, ConnectorType
from hub.testing import ConnectorConformance

DOC = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
HOOK_HEADING = re.compile(r"^#### (\w+)\((.*)\)\s*$", re.MULTILINE)


def hook_specs() -> dict[str, str]:
    """Hook name -> its signature as documented: `name(arg, ...)`."""
    return {name: f"{name}({', '.join(inspect.signature(fn).parameters)})"
            for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "churnhub_spec")}


def test_the_hookspecs_module_has_hooks():
    assert {"register_connector_types", "sync_finished"} <= set(hook_specs())


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_is_documented_with_its_exact_signature(name):
    signature = hook_specs()[name]
    documented = {m.group(1): f"{m.group(1)}({m.group(2)})" for m in HOOK_HEADING.finditer(DOC)}
    assert name in documented, f"docs/plugins.md has no '#### {signature}' heading"
    assert documented[name] == signature, f"docs/plugins.md documents {documented[name]}, the spec is {signature}"


def test_no_hook_is_documented_that_does_not_exist():
    documented = {m.group(1) for m in HOOK_HEADING.finditer(DOC)}
    assert documented <= set(hook_specs()), f"documented but not in hookspecs: {documented - set(hook_specs())}"


def test_the_connector_contract_is_documented():
    members = {name for name, _ in inspect.getmembers(Connector) if not name.startswith("_")}
    fields = set(ConnectorType.__dataclass_fields__) - {"plugin"}
    missing = {name for name in members | fields if f"`{name}" not in DOC}
    assert not missing, f"docs/plugins.md does not mention {sorted(missing)}"


def test_every_conformance_test_is_documented():
    tests = {name for name in dir(ConnectorConformance) if name.startswith("test_")}
    missing = {name for name in tests if f"`{name}`" not in DOC}
    assert not missing, f"docs/plugins.md does not describe {sorted(missing)}"
