"""The HTML report: one self-contained file with every section, from a full or an empty database."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from typer.testing import CliRunner

from hub import synthetic
from hub.factors import BUILTIN_FACTORS
from hub.models import DunningCase, PlaybookEntry
from hub.report import gather, render
from hub.sections.churn import ChurnSettings
from hub.sections.health import HealthSettings

NOW = datetime(2025, 6, 1, tzinfo=UTC)
FACTORS = {f.name: f for f in BUILTIN_FACTORS}
SECTIONS = {"churn-trend": "Churn rate trend", "churn-reasons": "Churn by type and reason",
            "health": "Health distribution and movement", "nps": "NPS distribution", "cohorts": "Cohort retention",
            "revenue-at-risk": "Revenue at risk", "dunning": "Dunning funnel", "playbooks": "Playbook outcomes"}
EXTERNAL = re.compile(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.IGNORECASE)


def assert_self_contained(html: str) -> None:
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert "@import" not in html and "url(http" not in html
    assert "<script src" not in html.replace(" ", "").lower()
    assert "Plotly.newPlot" in html or "No data yet" in html


def seed(engine: Engine) -> None:
    world = synthetic.generate(150, now=NOW, seed=4)
    with engine.begin() as connection:
        synthetic.write(connection, world)
        customers = [c["id"] for c in world.customers[:12]]
        connection.execute(insert(DunningCase.__table__), [
            {"connector": "billing", "invoice_id": f"in_d{k}", "customer_id": customers[k], "status": status,
             "amount_due": 9900, "currency": "usd", "opened_at": NOW - timedelta(days=40 - k), "step": step,
             "closed_at": None if status == "open" else NOW - timedelta(days=20 - k),
             "recovered_by": "retry" if status == "recovered" else None, "details": {}}
            for k, (status, step) in enumerate([("recovered", 1), ("recovered", 2), ("exhausted", 3), ("open", 0)])])
        connection.execute(insert(PlaybookEntry.__table__), [
            {"playbook": "save-at-risk", "version": "1", "customer_id": customer, "occurrence": f"o{k}",
             "entered_at": NOW - timedelta(days=60), "control": k % 4 == 0, "metric": "health",
             "metric_at_entry": 40.0, "metric_after": 55.0 if k % 4 else 42.0, "measured_at": NOW, "details": {}}
            for k, customer in enumerate(customers)])


def test_the_report_has_every_section_and_loads_nothing_from_the_network(engine: Engine) -> None:
    seed(engine)
    data = gather(engine, HealthSettings(), ChurnSettings(), FACTORS, now=NOW)
    html = render(data)
    assert_self_contained(html)
    for anchor, title in SECTIONS.items():
        assert f'id="{anchor}"' in html and title in html
    assert html.count('class="plotly-graph-div"') == 8            # every chart has data
    assert "No data yet" not in html and "No playbook has run yet" not in html
    assert data.dunning == {"opened": 4, "retried": 3, "recovered": 2, "failed": 1, "open": 1, "recovery_rate": 66.7,
                            "recovered_amount": 19800, "recovered_by": {"retry": 2}}
    playbook = data.playbooks[0]
    assert (playbook["playbook"], playbook["treated"]["entries"], playbook["control"]["entries"]) == ("save-at-risk", 9, 3)
    assert playbook["uplift"] == pytest.approx(13.0)               # +15 treated vs +2 control
    assert data.at_risk and all(row["band"] in ("red", "yellow") for row in data.at_risk)
    assert data.at_risk[0]["reasons"][0].startswith("-")
    assert data.at_risk[0]["name"] in html
    assert sum(data.health_bands.values()) == len(data.health_scores) > 0


def test_an_empty_database_still_renders(engine: Engine) -> None:
    html = render(gather(engine, HealthSettings(), ChurnSettings(), FACTORS, now=NOW))
    assert_self_contained(html)
    assert all(f'id="{anchor}"' in html for anchor in SECTIONS)
    assert "No data yet" in html and "No playbook has run yet" in html


def test_report_command_writes_the_file(hub_cli, engine: Engine, database_url: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    world = synthetic.generate(60, now=datetime.now(UTC), seed=8)
    with engine.begin() as connection:
        synthetic.write(connection, world)
    app, args = hub_cli()
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(app, [*args, "report", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["out"] == str(out) and summary["bytes"] == len(out.read_bytes()) and summary["customers"] > 0
    html = out.read_text(encoding="utf-8")
    assert_self_contained(html)
    assert all(f'id="{anchor}"' in html for anchor in SECTIONS)
