"""`churnhub demo` and `churnhub sandbox` end to end, checked against the world's ground truth."""

from __future__ import annotations

import json

import pytest
import typer
import yaml
from typer.testing import CliRunner

from hub.commands import demo_cmd
from hub.config import load_settings
from hub.demo.run import demo_now
from hub.demo.truth import ground_truth
from hub.demo.world import generate_world

CUSTOMERS, SEED = 40, 5


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("demo")(demo_cmd.demo)
    app.command("sandbox")(demo_cmd.sandbox)
    return app


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo")
    now = demo_now()
    result = CliRunner().invoke(_cli(), ["demo", "--dir", str(directory), "--customers", str(CUSTOMERS),
                                         "--seed", str(SEED), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # the run generated its world at the same hour (the hour may turn between the two calls)
    truth = ground_truth(generate_world(CUSTOMERS, SEED, now=now)).as_dict()
    if summary["truth"] != truth:
        truth = ground_truth(generate_world(CUSTOMERS, SEED, now=demo_now())).as_dict()
    return directory, summary, truth


def test_demo_summary_carries_the_worlds_truth(demo_run):
    _directory, summary, truth = demo_run
    assert summary["ok"] is True
    assert summary["truth"] == truth


def test_demo_finds_the_worlds_customers(demo_run):
    _directory, summary, truth = demo_run
    records = summary["sources"]["records"]
    assert records["billing.account"] == records["crm.account"] == truth["customers"]
    assert summary["customers"]["total"] == truth["expected_customers"]


def test_demo_classifies_churn_as_the_world_has_it(demo_run):
    _directory, summary, truth = demo_run
    for kind in ("voluntary", "involuntary", "reactivation"):
        found = summary["churn"].get(kind, {}).get("customers", 0)
        assert found == truth["churned_by_type"][kind], kind
    involuntary = summary["churn"].get("involuntary", {}).get("reasons", {})
    assert involuntary == truth["decline_codes"]


def test_demo_sees_the_failed_invoices(demo_run):
    _directory, summary, truth = demo_run
    assert summary["sources"]["failed_invoices"] == truth["failed_invoices"]
    assert summary["sources"]["failed_invoice_amount"] == truth["failed_invoice_amount"]


def test_demo_scores_health_writes_the_report_and_a_valid_config(demo_run):
    directory, summary, _truth = demo_run
    assert summary["health"]["scored"] == sum(summary["health"]["bands"].values()) > 0
    report = directory / "report.html"
    assert report.exists() and report.stat().st_size == summary["report"]["bytes"]
    assert summary["paths"]["database"].endswith("churnhub.db") and (directory / "churnhub.db").exists()
    assert summary["backtest"] is not None and summary["backtest"]["customers"] > 0
    assert summary["emails"]["captured"] == len(list((directory / "mail" / "new").iterdir()))


def test_sandbox_prints_urls_and_a_config_that_validates(tmp_path):
    from hub.app import discover_plugins

    out = tmp_path / "churnhub.yaml"
    result = CliRunner().invoke(_cli(), ["sandbox", "--customers", "12", "--seed", "3", "--json",
                                         "--write", str(out), "--exit-after", "0"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed["urls"]) | set(printed["missing"]) == {"crm", "support", "billing", "mail", "product"}
    assert all(url.startswith(("http://127.0.0.1:", "smtp://127.0.0.1:")) for url in printed["urls"].values())
    assert yaml.safe_load(out.read_text())["connectors"] == printed["config"]["connectors"]
    types = {name: t.settings for name, t in discover_plugins().registry.connector_types.items()}
    settings = load_settings(out, types)
    assert set(settings.connectors) == set(printed["urls"])


def test_sandbox_prints_a_yaml_that_can_be_copied():
    result = CliRunner().invoke(_cli(), ["sandbox", "--customers", "8", "--exit-after", "0"])
    assert result.exit_code == 0, result.output
    text = result.stdout[result.stdout.index("# churnhub demo"):]
    config = yaml.safe_load(text)
    assert config["connectors"]["billing"]["type"] == "stripe"
    assert config["playbooks"]["variables"]["product"]["name"] == "Lumen Metrics"


def test_demo_feeds_product_usage_when_a_usage_connector_is_installed(demo_run):
    from hub.app import discover_plugins

    if "usage" not in discover_plugins().registry.connector_types:
        pytest.skip("the `usage` connector type is not installed (pip install -e examples/churnhub-usage)")
    directory, _summary, _truth = demo_run
    config = yaml.safe_load((directory / "churnhub.yaml").read_text())
    assert config["connectors"]["product"]["type"] == "usage"
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{directory / 'churnhub.db'}")
    with engine.connect() as connection:
        usage = connection.execute(sa.text(
            "select count(*) from source_records where connector = 'product' and kind = 'usage'")).scalar()
        linked = connection.execute(sa.text(
            "select count(*) from customer_links where connector = 'product' and kind = 'account'")).scalar()
    assert usage > 0
    assert linked == CUSTOMERS       # every product account resolved to its customer by domain
