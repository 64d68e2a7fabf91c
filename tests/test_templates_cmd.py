"""`churnhub templates check` and `templates preview` through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def churnhub(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("churnhub")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_every_builtin_template_checks_clean(tmp_path: Path) -> None:
    churnhub("init", cwd=tmp_path)
    result = churnhub("templates", "check", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["problems"] == []
    assert {"payment_failed_1", "reengagement", "winback", "card_expiring"} <= set(report["templates"])


def test_a_broken_override_is_reported_with_file_and_line(tmp_path: Path) -> None:
    churnhub("init", cwd=tmp_path)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "winback.j2").write_text(
        "{% block subject %}Come back{% endblock %}\n{% block text %}\nHi {{ contact.nickname }}\n{% endblock %}\n")
    config = tmp_path / "churnhub.yaml"
    config.write_text(config.read_text().replace("templates: null", "templates: templates")
                      if "templates: null" in config.read_text() else config.read_text() + "\ntemplates: templates\n")
    result = churnhub("templates", "check", cwd=tmp_path)
    assert result.returncode == 1
    assert "winback.j2:3" in result.stderr and "nickname" in result.stderr


def test_preview_renders_the_three_parts_and_escapes_html(tmp_path: Path) -> None:
    churnhub("init", cwd=tmp_path)
    result = churnhub("templates", "preview", "payment_failed_1", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    email = json.loads(result.stdout)
    assert email["subject"] and "invoice.stripe.com" in email["text"]
    assert email["html"].lstrip().startswith("<")


def test_preview_of_an_unknown_template_names_the_known_ones(tmp_path: Path) -> None:
    churnhub("init", cwd=tmp_path)
    result = churnhub("templates", "preview", "nope", cwd=tmp_path)
    assert result.returncode == 1 and "no email template named 'nope'" in result.stderr
    assert "Traceback" not in result.stderr
