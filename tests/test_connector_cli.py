"""`churnhub connector read|check` for Stripe and Zendesk against their running sandboxes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from connectors.stripe.sandbox import start_sandbox as start_stripe
from connectors.zendesk.sandbox import start_sandbox as start_zendesk
from hub.cli import app
from hub.demo.world import generate_world
from hub.demo.zendesk_data import zendesk_dataset


def plain(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.get_secret_value() if hasattr(v, "get_secret_value") else v) for k, v in settings.items()}


@pytest.fixture
def config(tmp_path: Path) -> Iterator[tuple[Path, Any, Any]]:
    stripe = start_stripe(None, rate_limit=None)            # the small demo account
    zendesk = start_zendesk(zendesk_dataset(generate_world(12, seed=4)), rate_limits=False)
    path = tmp_path / "churnhub.yaml"
    path.write_text(yaml.safe_dump({"connectors": {
        "billing": {"type": "stripe", **plain(stripe.settings())},
        "support": {"type": "zendesk", **plain(zendesk.settings())}}}))
    try:
        yield path, stripe, zendesk
    finally:
        stripe.stop()
        zendesk.stop()


def test_read_billing_subscriptions_as_json(config: tuple[Path, Any, Any]) -> None:
    path, stripe, _ = config
    result = CliRunner().invoke(app, ["-c", str(path), "connector", "read", "billing", "subscriptions", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and {row["kind"] for row in rows} == {"subscription"}
    assert all(stripe.get(row["external_id"])["object"] == "subscription" for row in rows)
    first = rows[0]["fields"]
    assert isinstance(first["mrr"], int) and first["currency"] and first["status"]


def test_read_support_tickets_with_a_limit(config: tuple[Path, Any, Any]) -> None:
    path, _, _ = config
    result = CliRunner().invoke(app, ["-c", str(path), "connector", "read", "support", "tickets", "--limit", "5"])
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("5 record(s)")
    assert "ticket" in result.output


def test_check_both_and_an_unknown_stream_is_one_clear_line(config: tuple[Path, Any, Any]) -> None:
    path, _, _ = config
    runner = CliRunner()
    for name in ("billing", "support"):
        check = runner.invoke(app, ["-c", str(path), "connector", "check", name, "--json"])
        assert check.exit_code == 0 and json.loads(check.stdout)["ok"] is True, check.output
    wrong = runner.invoke(app, ["-c", str(path), "connector", "read", "billing", "tickets"])
    assert wrong.exit_code != 0 and "has no stream 'tickets'" in str(wrong.exception)
