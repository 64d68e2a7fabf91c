"""The CLI end to end, as a user runs it (a real `churnhub` process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHURNHUB = str(Path(sys.executable).parent / "churnhub")


def churnhub(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if k != "CHURNHUB_CONFIG"}
    full_env = {**inherited, **(env or {})}
    return subprocess.run([CHURNHUB, *args], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=60)


def test_version(tmp_path: Path) -> None:
    result = churnhub("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("churnhub ")


def test_init_then_validate_show_schema_and_plugins(tmp_path: Path) -> None:
    assert churnhub("init", "ops", cwd=tmp_path).returncode == 0
    config = tmp_path / "ops" / "churnhub.yaml"
    assert config.exists()
    validated = churnhub("-c", str(config), "config", "validate", "--json", cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr
    assert json.loads(validated.stdout)["valid"] is True
    shown = churnhub("-c", str(config), "config", "show", "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["database"].endswith("churnhub.db")
    schema = json.loads(churnhub("config", "schema", cwd=tmp_path).stdout)
    assert schema["title"] == "churnhub.yaml"
    listed = json.loads(churnhub("plugins", "--json", cwd=tmp_path).stdout)
    assert isinstance(listed, list)
    again = churnhub("init", "ops", cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_config_from_environment_variable(tmp_path: Path) -> None:
    churnhub("init", cwd=tmp_path)
    result = churnhub("config", "validate", cwd=Path("/"), env={"CHURNHUB_CONFIG": str(tmp_path / "churnhub.yaml")})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("text, expected", [
    ("connectors:\n  billing:\n    type: no_such_type\n", ":3 connectors.billing.type: unknown connector type"),
    ("identity:\n  name_matching: maybe\n", ":2 identity.name_matching:"),
    ("database: [\n", "invalid YAML"),
])
def test_bad_config_is_one_clear_line_without_traceback(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "churnhub.yaml").write_text(text)
    result = churnhub("config", "validate", cwd=tmp_path)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    debug = churnhub("--debug", "config", "validate", cwd=tmp_path)
    assert "Traceback" in debug.stderr


def test_missing_config_file_says_how_to_create_one(tmp_path: Path) -> None:
    result = churnhub("config", "validate", cwd=tmp_path)
    assert result.returncode == 1 and "churnhub init" in result.stderr


def test_unknown_connector_name(tmp_path: Path) -> None:
    churnhub("init", cwd=tmp_path)
    result = churnhub("connector", "check", "nope", cwd=tmp_path)
    assert result.returncode == 1 and "no connector named 'nope'" in result.stderr


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    churnhub("init", cwd=tmp_path)
    assert churnhub("db", "upgrade", cwd=tmp_path).returncode == 0
    current = json.loads(churnhub("db", "current", "--json", cwd=tmp_path).stdout)
    assert current["current"] == current["head"] is not None
