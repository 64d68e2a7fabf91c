"""`churnhub connector check|read` with a churnhub.yaml pointing at a running sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from connectors.salesforce.sandbox import SalesforceSandbox
from hub.cli import app

from .conftest import sf_id, small_org


def write_config(tmp_path: Path, sandbox: SalesforceSandbox) -> Path:
    settings = sandbox.settings()
    settings["auth"]["client_secret"] = "${SF_CLIENT_SECRET}"   # secrets come from the environment
    block = {"type": "salesforce", **settings, "facts": {"nps": "NPS__c"}}
    path = tmp_path / "churnhub.yaml"
    path.write_text(f"database: sqlite:///{tmp_path / 'hub.db'}\nconnectors:\n  crm: {json.dumps(block)}\n")
    return path


def test_connector_read_and_check_against_the_sandbox(sandbox_factory: Callable[..., SalesforceSandbox],
                                                       tmp_path: Path) -> None:
    sandbox = sandbox_factory(small_org(), custom_fields={"Account": {"NPS__c": "double"}})
    sandbox.update("Account", sf_id("001", 2), {"NPS__c": 7})
    config = write_config(tmp_path, sandbox)
    env = {"SF_CLIENT_SECRET": sandbox.settings()["auth"]["client_secret"]}
    runner = CliRunner()

    read = runner.invoke(app, ["-c", str(config), "connector", "read", "crm", "accounts", "--json"], env=env)
    assert read.exit_code == 0, read.output
    rows = json.loads(read.stdout)
    assert [row["external_id"] for row in rows] == [sf_id("001", n) for n in (1, 3, 2)]   # by SystemModstamp
    assert {row["kind"] for row in rows} == {"account"}
    assert rows[-1]["fields"]["nps"] == 7.0 and rows[0]["fields"]["name"] == "Account 1"

    limited = runner.invoke(app, ["-c", str(config), "connector", "read", "crm", "contacts", "-n", "2", "--json"],
                            env=env)
    assert limited.exit_code == 0 and len(json.loads(limited.stdout)) == 2

    check = runner.invoke(app, ["-c", str(config), "connector", "check", "crm", "--json"], env=env)
    assert check.exit_code == 0 and json.loads(check.stdout)["ok"] is True

    refused = runner.invoke(app, ["-c", str(config), "connector", "check", "crm", "--json"],
                            env={"SF_CLIENT_SECRET": "wrong"})
    assert refused.exit_code == 1 and json.loads(refused.stdout)["ok"] is False
    assert "invalid_client" in json.loads(refused.stdout)["detail"]
