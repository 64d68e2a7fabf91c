"""`churnhub playbooks plan|run|stats` end to end, and playbook config errors at `config validate` with their position."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy import insert, select
from typer.testing import CliRunner

from hub import Record, db
from hub.cli import app as cli_app
from hub.commands import playbooks_cmd
from hub.commands.context import CliState
from hub.errors import ConfigError
from hub.models import Customer, CustomerLink
from hub.store import write_records

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

CONFIG = """\
database: sqlite:///{db}
playbooks:
  variables: {{product: {{name: Acme Analytics}}}}
  playbooks:
    - name: three-tickets
      owner: csm
      trigger: tickets_opened(7d) >= 3
      actions:
        - set_status: {{status: "At risk ({{{{ trigger['tickets_opened(7)'] }}}} tickets)"}}
      metric: repeat_tickets
"""


@pytest.mark.parametrize("trigger, expected, column", [
    ("health.score < 70 and tickets_opend(7d) >= 3", "unknown signal 'tickets_opend'", 23),
    ("health.score < < 70", "expected a value or a signal", 16),
    ("tickets_opened >= 3", "tickets_opened takes 1 argument(s)", 1),
])
def test_a_bad_trigger_fails_validate_with_line_and_column(tmp_path: Path, trigger: str, expected: str,
                                                           column: int) -> None:
    (tmp_path / "churnhub.yaml").write_text(
        "identity: {}\nplaybooks:\n  - name: broken\n    trigger: " + trigger + "\n"
        "    actions:\n      - set_status: {status: At risk}\n")
    message = validate(tmp_path)
    assert ":4 playbooks.0.trigger:" in message and expected in message
    assert f"(at column {column})" in message


def test_unknown_action_and_bad_template_are_located(tmp_path: Path) -> None:
    (tmp_path / "churnhub.yaml").write_text(
        "playbooks:\n  playbooks:\n    - name: p\n      trigger: nps < 7\n      actions:\n"
        "        - send_email: {template: checkin}\n        - create_crm_task: {subject: \"{{ customer.name \"}\n")
    assert ":7 playbooks.playbooks.0.actions.1" in validate(tmp_path)


def validate(directory: Path) -> str:
    """`churnhub config validate` in process: the ConfigError the CLI prints as one line."""
    result = CliRunner().invoke(cli_app, ["-c", str(directory / "churnhub.yaml"), "config", "validate"])
    assert isinstance(result.exception, ConfigError), result.output
    return str(result.exception)


@pytest.fixture
def cli(tmp_path: Path, sqlite_template: Path) -> tuple[typer.Typer, Path]:
    path = tmp_path / "churnhub.db"
    shutil.copy(sqlite_template, path)
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        write_records(connection, "helpdesk", [Record("account", "7", {"name": "Acme"})] + [
            Record("ticket", f"t{k}", {"account_id": "7", "status": "open",
                                       "created_at": (T0 - timedelta(days=k + 1)).isoformat()}) for k in range(3)],
                      now=T0)
        connection.execute(insert(Customer.__table__).values(id="c1", name="Acme", status="Active"))
        connection.execute(insert(CustomerLink.__table__).values(customer_id="c1", connector="helpdesk", kind="account",
                                                                 external_id="7", rule="seed"))
    engine.dispose()
    config = tmp_path / "churnhub.yaml"
    config.write_text(CONFIG.format(db=path))
    root = typer.Typer()

    @root.callback()
    def main(ctx: typer.Context) -> None:
        ctx.obj = CliState(config=str(config))

    root.add_typer(playbooks_cmd.app, name="playbooks")
    return root, path


def test_plan_run_stats_end_to_end(cli: tuple[typer.Typer, Path]) -> None:
    root, path = cli
    runner = CliRunner()
    now = T0.isoformat()
    planned = runner.invoke(root, ["playbooks", "plan", "--json", "--now", now])
    assert planned.exit_code == 0, planned.output
    data = json.loads(planned.stdout)
    [entry] = data["entries"]
    assert entry["customer_id"] == "c1" and entry["trigger"] == {"tickets_opened(7)": 3}
    assert entry["actions"][0]["params"] == {"customer_id": "c1", "status": "At risk (3 tickets)"}
    ran = runner.invoke(root, ["playbooks", "run", "--json", "--now", now])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["executed"] == {"succeeded": 1}
    again = json.loads(runner.invoke(root, ["playbooks", "run", "--json", "--now", now]).stdout)
    assert (again["entries_written"], again["actions_enqueued"], again["executed"]) == (0, 0, {})
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        assert connection.execute(select(Customer.status)).scalar() == "At risk (3 tickets)"
    engine.dispose()
    stats = json.loads(runner.invoke(root, ["playbooks", "stats", "--json"]).stdout)
    assert stats[0]["playbook"] == "three-tickets" and stats[0]["treated"]["entries"] == 1
    assert stats[0]["actions"] == {"succeeded": 1}
    text = runner.invoke(root, ["playbooks", "plan", "--now", (T0 + timedelta(days=30)).isoformat()])
    assert text.exit_code == 0 and "three-tickets" in text.stdout
