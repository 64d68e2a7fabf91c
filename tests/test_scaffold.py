"""`churnhub connector new`: the generated plugin package passes its own tests as written, and those
tests (the conformance suite) catch a broken connector. The example usage plugin passes them too.

The generated package runs in a subprocess with PYTHONPATH (nothing is pip-installed): churnhub's
pytest plugin is loaded with `-p` and entry-point plugins are switched off, so the run is the same
whether or not churnhub's `pytest11` entry point is installed yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hub.commands import scaffold_cmd
from hub.errors import ConfigError
from hub.scaffold import plugin_names, render_package

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "churnhub-usage"


def run_pytest(package_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_dir), str(ROOT)]),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "hub.testing.pytest_plugin", "-q", "-rA",
                           "--rootdir", str(package_dir), *args],
                          cwd=package_dir, env=env, capture_output=True, text=True, timeout=300)


def cli() -> typer.Typer:
    app = typer.Typer()
    connector = typer.Typer()
    connector.command("new")(scaffold_cmd.new)
    app.add_typer(connector, name="connector")
    return app


def test_names_are_derived_from_one_plugin_name():
    names = plugin_names("acme-crm")
    assert (names.type_name, names.package, names.dist_name, names.class_prefix) == (
        "acme_crm", "churnhub_acme_crm", "churnhub-acme-crm", "AcmeCrm")


@pytest.mark.parametrize("bad", ["Acme", "1crm", "acme crm", "acme--crm", "acme-", ""])
def test_a_name_that_cannot_be_a_package_is_refused(bad):
    with pytest.raises(ValueError, match="is not a plugin name"):
        plugin_names(bad)


def test_the_command_writes_the_package_and_refuses_to_overwrite_it(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli(), ["connector", "new", "acme-crm", "--dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    root = tmp_path / "churnhub-acme-crm"
    assert report["path"] == str(root) and report["name"] == "acme_crm"
    assert {"pyproject.toml", "churnhub_acme_crm/plugin.py", "churnhub_acme_crm/sandbox.py",
            "churnhub_acme_crm/settings.py", "churnhub_acme_crm/connector.py",
            "tests/test_conformance.py"} <= set(report["files"])
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points.churnhub]\nacme_crm = "churnhub_acme_crm.plugin"' in pyproject
    again = runner.invoke(cli(), ["connector", "new", "acme-crm", "--dir", str(tmp_path)])
    assert isinstance(again.exception, ConfigError) and "already exists" in str(again.exception)


def test_the_generated_package_passes_its_tests_out_of_the_box(tmp_path):
    root, _ = render_package("acme-crm", tmp_path)
    result = run_pytest(root)
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("test_check_succeeds", "test_bad_credentials_fail_cleanly_with_auth_error",
                  "test_stream_resumes_from_every_page[accounts]", "test_operation_acts_once_per_idempotency_key",
                  "test_errors_map_to_the_hub_error_tree", "test_plugin_registers_the_connector_type",
                  "test_changes_after_a_full_read_come_in_the_next_incremental_read"):
        assert "PASSED tests/" in result.stdout and check in result.stdout, check
    assert " failed" not in result.stdout and " skipped" not in result.stdout


def test_the_suite_catches_a_connector_that_repeats_records_and_ignores_idempotency_keys(tmp_path):
    root, _ = render_package("acme-crm", tmp_path)
    connector = root / "churnhub_acme_crm" / "connector.py"
    source = connector.read_text()
    # Two classic bugs: the state points at the page's first item, and the key is not sent.
    broken = source.replace('after = items[-1]["cursor"]', 'after = items[0]["cursor"]')
    broken = broken.replace("idempotency_key=idempotency_key)", 'idempotency_key="")')
    assert broken.count("items[0]") == 1 and 'idempotency_key="")' in broken
    connector.write_text(broken)
    result = run_pytest(root, "tests/test_conformance.py", "-k", "resumes or idempotency")
    assert result.returncode == 1, result.stdout
    assert "FAILED tests/test_conformance.py::TestAcmeCrmConformance::test_stream_resumes_from_every_page" in result.stdout
    assert "repeated [('account', 'acc_" in result.stdout
    assert "the same idempotency key acted twice" in result.stdout


@pytest.mark.skipif(not EXAMPLE.exists(), reason="examples/churnhub-usage is not in this checkout")
def test_the_example_usage_plugin_passes_the_conformance_suite():
    result = run_pytest(EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TestUsageConformance::test_stream_resumes_from_every_page[daily_usage]" in result.stdout
    assert " failed" not in result.stdout
