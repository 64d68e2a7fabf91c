"""Email templates and playbook parameters: sandboxed, strict, HTML-escaped only where HTML."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.templating import (
    BUILTIN_TEMPLATES_DIR,
    RenderedEmail,
    TemplateLibrary,
    TemplateProblem,
    TemplateRenderError,
    format_date,
    format_money,
    render_string,
    sample_context,
)

BUILTINS = ["card_expiring", "checkin", "detractor_checkin", "onboarding_nudge", "payment_failed_1",
            "payment_failed_2", "payment_failed_3", "payment_failed_final", "payment_recovered",
            "reengagement", "winback"]


def test_the_builtin_templates_are_the_documented_ones() -> None:
    assert TemplateLibrary().names() == BUILTINS
    readme = (BUILTIN_TEMPLATES_DIR / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in BUILTINS)


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("unsubscribe", [True, False], ids=["marketing", "transactional"])
def test_every_builtin_renders_with_the_sample_context(name: str, unsubscribe: bool) -> None:
    context = sample_context()
    if not unsubscribe:
        context["unsubscribe_url"] = None
    email = TemplateLibrary().render(name, context)

    assert email.subject and "\n" not in email.subject and len(email.subject) < 90
    assert email.text.startswith("Hi Dana,") and email.text.endswith("\n")
    assert email.html is not None and email.html.startswith("<!DOCTYPE html>") and "<p>Hi Dana,</p>" in email.html
    for part in (email.subject, email.text, email.html):
        assert "None" not in part and "{{" not in part and "{%" not in part
    assert ("Unsubscribe" in email.text) is unsubscribe and ("Unsubscribe" in email.html) is unsubscribe


def test_the_builtins_pass_their_own_check() -> None:
    assert TemplateLibrary().check() == []


def test_money_shows_in_dunning_emails() -> None:
    email = TemplateLibrary().render("payment_failed_2", sample_context())
    assert "$499.00" in email.text and "ACME-2025-0042" in email.subject
    assert "https://invoice.stripe.com/i/acct_1Acme/test_YWNjdF8x" in email.text


def test_autoescape_applies_to_the_html_part_only() -> None:
    context = sample_context()
    context["customer"]["name"] = "<script>alert('x')</script> & Sons"
    email = TemplateLibrary().render("checkin", context)

    assert email.subject == "How is Acme Analytics working for <script>alert('x')</script> & Sons?"
    assert "at <script>alert('x')</script> & Sons." in email.text
    assert email.html is not None and "<script>" not in email.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Sons" in email.html
    # the subject reused as the HTML <title> is escaped too
    assert "<title>How is Acme Analytics working for &lt;script&gt;" in email.html


def test_an_override_directory_replaces_and_adds_templates(tmp_path: Path) -> None:
    (tmp_path / "winback.j2").write_text(
        '{% extends "builtin/winback.j2" %}\n{% block subject %}Come back, {{ contact.first_name }}!{% endblock %}\n')
    (tmp_path / "renewal.j2").write_text(
        "{% block subject %}Renewal for {{ customer.name }}{% endblock %}\n"
        "{% block text %}\nHi {{ contact.first_name }},\nyour plan renews soon.\n{% endblock %}\n")
    library = TemplateLibrary(tmp_path)

    assert library.names() == sorted([*BUILTINS, "renewal"])
    assert library.path("winback") == tmp_path / "winback.j2"
    winback = library.render("winback", sample_context())
    assert winback.subject == "Come back, Dana!"
    assert "the door is open" in winback.text                    # the rest of the built-in stays
    renewal = library.render("renewal", sample_context())
    assert renewal == RenderedEmail("Renewal for Northwind Traders", "Hi Dana,\nyour plan renews soon.\n", None)
    assert library.check() == []


def test_check_reports_file_and_line_of_broken_templates(tmp_path: Path) -> None:
    (tmp_path / "typo.j2").write_text(
        "{% block subject %}Hello{% endblock %}\n"
        "{% block text %}\n"
        "Hi {{ contact.first_name }},\n"
        "{{ customer.nmae }} is misspelt.\n"
        "{% endblock %}\n")
    (tmp_path / "syntax.j2").write_text(
        "{% block subject %}Hello{% endblock %}\n"
        "{% block text %}\n"
        "{% if customer.plan %}\n"
        "no endif\n"
        "{% endblock %}\n")
    (tmp_path / "two_lines.j2").write_text("{% block subject %}Hello\nthere{% endblock %}{% block text %}x{% endblock %}")

    problems = TemplateLibrary(tmp_path).check()

    by_file = {Path(p.file).name: p for p in problems}
    assert set(by_file) == {"typo.j2", "syntax.j2", "two_lines.j2"}
    assert by_file["typo.j2"] == TemplateProblem(str(tmp_path / "typo.j2"), 4, by_file["typo.j2"].message)
    assert "nmae" in by_file["typo.j2"].message
    assert by_file["syntax.j2"].line == 5 and "endif" in by_file["syntax.j2"].message
    assert "one line" in by_file["two_lines.j2"].message
    assert str(by_file["typo.j2"]).startswith(f"{tmp_path / 'typo.j2'}:4: ")


def test_a_broken_partial_is_reported_at_its_own_line(tmp_path: Path) -> None:
    (tmp_path / "_footer.j2").write_text("Thanks,\n{{ owner.name }\n")
    (tmp_path / "note.j2").write_text(
        "{% block subject %}Note{% endblock %}{% block text %}Hi\n{% include '_footer.j2' %}{% endblock %}")
    problems = TemplateLibrary(tmp_path).check()
    assert [(Path(p.file).name, p.line) for p in problems] == [("_footer.j2", 2)]


def test_render_errors_name_file_and_line_and_unknown_names_list_the_known_ones() -> None:
    context = sample_context()
    del context["invoice"]["hosted_invoice_url"]
    with pytest.raises(TemplateRenderError) as error:
        TemplateLibrary().render("payment_failed_3", context)
    assert error.value.file == str(BUILTIN_TEMPLATES_DIR / "payment_failed_3.j2")
    assert error.value.line == 12 and "hosted_invoice_url" in str(error.value)

    with pytest.raises(TemplateRenderError, match="no email template named 'winbak'.*winback"):
        TemplateLibrary().render("winbak", context)
    with pytest.raises(TemplateRenderError, match="no email template named '_layout'"):
        TemplateLibrary().render("_layout", context)
    with pytest.raises(TemplateRenderError, match="does not exist"):
        TemplateLibrary("/nonexistent/emails")


def test_render_string_is_strict_and_names_the_parameter() -> None:
    context = {"customer": {"name": "Northwind"}, "contact": {"first_name": "Dana"}}
    assert render_string("Hi {{ contact.first_name }} at {{ customer.name }}", context) == "Hi Dana at Northwind"
    assert render_string("{{ '<b>' }}", {}) == "<b>"          # parameters are not HTML

    with pytest.raises(TemplateRenderError) as undefined:
        render_string("line one\n{{ customer.plan }}", context, name="playbooks[0].actions[1].subject")
    assert (undefined.value.file, undefined.value.line) == ("playbooks[0].actions[1].subject", 2)
    assert str(undefined.value).startswith("playbooks[0].actions[1].subject, line 2: ")
    assert "plan" in str(undefined.value)

    with pytest.raises(TemplateRenderError, match="note, line 1: .*"):
        render_string("{% if %}", context, name="note")


def test_templates_are_sandboxed() -> None:
    with pytest.raises(TemplateRenderError, match="unsafe|not safely|access"):
        render_string("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})
    with pytest.raises(TemplateRenderError):
        render_string("{{ items.append(4) }}", {"items": [1, 2, 3]})   # immutable: no side effects


def test_money_and_date_filters() -> None:
    assert format_money(49900, "usd") == "$499.00"
    assert format_money(123456789, "EUR") == "€1,234,567.89"
    assert format_money(1200, "jpy") == "¥1,200"
    assert format_money(1000, "chf") == "10.00 CHF"
    assert format_money(12345, "kwd") == "12.345 KWD"
    assert format_money(-500, "gbp") == "-£5.00"
    with pytest.raises(TypeError):
        format_money(4.99, "usd")
    assert format_date("2025-03-06T09:00:00+00:00") == "March 6, 2025"
    assert format_date("2025-12-25") == "December 25, 2025"
    assert render_string("{{ 49900 | money('usd') }} due {{ '2025-03-01' | date }}", {}) == "$499.00 due March 1, 2025"


@pytest.mark.parametrize("name", ["reengagement", "checkin", "payment_failed_1"])
def test_a_contact_without_first_name_and_an_account_without_owner_still_read_well(name: str) -> None:
    context = sample_context()
    del context["owner"]
    context["contact"]["first_name"] = None
    email = TemplateLibrary().render(name, context)
    assert email.text.startswith("Hi there,") and "None" not in email.text
    assert email.html is not None and "<p>Hi there,</p>" in email.html
    assert "The Acme Analytics" in email.text and "Sam Ortega" not in email.text
