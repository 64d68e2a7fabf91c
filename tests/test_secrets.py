"""No configured secret ever leaves the config file: every output of a full demo is searched for them.

The demo writes a real churnhub.yaml with API keys, tokens, client secrets and the unsubscribe
secret of its sandboxes. Then every command a user would run afterwards — and the report, the
captured emails and the logs of a `--debug` run — must not contain any of those values.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

SECRET_KEYS = {"api_key", "api_token", "oauth_token", "client_secret", "password", "unsubscribe_secret",
               "webhook_secret"}


def churnhub(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("churnhub")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def secret_values(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SECRET_KEYS and isinstance(value, str) and value:
                yield value
            else:
                yield from secret_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from secret_values(item)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    directory = tmp_path_factory.mktemp("secrets-demo")
    result = churnhub("demo", "--dir", str(directory), "--customers", "25", "--seed", "3", cwd=directory)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((directory / "churnhub.yaml").read_text())
    secrets = sorted(set(secret_values(config)))
    assert len(secrets) >= 4, secrets        # Stripe key, Zendesk token, Salesforce secret, unsubscribe secret
    return directory, [result.stdout + result.stderr]


def test_no_output_of_a_full_demo_contains_a_configured_secret(demo: tuple[Path, list[str]]) -> None:
    directory, outputs = demo
    config = yaml.safe_load((directory / "churnhub.yaml").read_text())
    secrets = sorted(set(secret_values(config)))
    commands = [("config", "show"), ("config", "show", "--json"), ("config", "validate", "--json"),
                ("status", "--json"), ("customers", "--json"), ("actions", "--json", "--limit", "500"),
                ("dunning", "--json"), ("churn", "--since", "900d", "--json"), ("playbooks", "plan", "--json"),
                ("metrics", "--json"), ("identity", "report", "--json"),
                # the sandboxes are gone: the errors of an unreachable API, with tracebacks
                ("--debug", "connector", "check", "billing"), ("--debug", "connector", "check", "crm"),
                ("--debug", "connector", "read", "support", "tickets", "--limit", "1"),
                ("--debug", "sync", "billing")]
    for command in commands:
        result = churnhub("-c", str(directory / "churnhub.yaml"), *command, cwd=directory)
        outputs.append(result.stdout + result.stderr)
    files = [directory / "report.html", *sorted((directory / "mail").rglob("*"))]
    outputs += [path.read_text(errors="replace") for path in files if path.is_file()]
    for secret in secrets:
        leaks = [i for i, text in enumerate(outputs) if secret in text]
        assert not leaks, f"a configured secret appears in output(s) {leaks}"


def test_config_show_redacts_but_names_every_secret(demo: tuple[Path, list[str]]) -> None:
    directory, _ = demo
    shown = churnhub("-c", str(directory / "churnhub.yaml"), "config", "show", cwd=directory).stdout
    assert shown.count("**********") >= 4
