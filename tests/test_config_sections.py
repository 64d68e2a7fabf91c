"""`churnhub config validate` checks the capability sections (health, churn, dunning) too: a typo
fails at validate time with file:line and the dotted path, not at the first scheduled run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHURNHUB = str(Path(sys.executable).parent / "churnhub")


def validate(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "churnhub.yaml"
    config.write_text(f"database: sqlite:///{tmp_path / 'hub.db'}\n{text}", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CHURNHUB_CONFIG"}
    return subprocess.run([CHURNHUB, "-c", str(config), "config", "validate", "--json"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("text, expected", [
    ("dunning:\n  retires: [1, 3, 5]\n", "churnhub.yaml:3 dunning.retires: unknown key"),
    ("dunning:\n  retries: [1, 3]\n  final_action:\n    after_dayz: 21\n",
     "churnhub.yaml:5 dunning.final_action.after_dayz"),
    ("health:\n  bands:\n    gren: 75\n", "churnhub.yaml:4 health.bands.gren"),
    ("health:\n  missing_default: 150\n", "churnhub.yaml:3 health.missing_default"),
    ("churn:\n  voluntary_reason: [cancellation_requested]\n", "churnhub.yaml:3 churn.voluntary_reason"),
])
def test_a_typo_in_a_section_fails_validate_with_its_line_and_path(tmp_path: Path, text: str, expected: str) -> None:
    result = validate(tmp_path, text)
    assert result.returncode == 1, result.stdout
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_valid_sections_pass(tmp_path: Path) -> None:
    result = validate(tmp_path, "health:\n  bands: {green: 75}\nchurn:\n  voluntary_reasons: [cancellation_requested]\n"
                                "dunning:\n  retries: stripe\n  final_action: {after_days: 30, action: none}\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["valid"] is True
