"""Rendering email templates and playbook parameters with Jinja2: sandboxed, strict, escaped where HTML.

An email template is one file, `<name>.j2`, holding its three parts as blocks:

    {% block subject %}Your {{ product.name }} invoice could not be paid{% endblock %}
    {% block text %}Hi {{ contact.first_name }}, ...{% endblock %}
    {% block html %}<p>Hi {{ contact.first_name }}, ...</p>{% endblock %}

The subject and text blocks are rendered without escaping and the html block with HTML
autoescaping: each template is compiled twice, by an environment per mode, so a customer named
`<script>` stays text in the HTML part and reads verbatim in the text part. `html` may be left
out for a plain-text email. A template may `{% extends %}` a layout or import macros from a
partial; files whose name starts with `_` are partials, not emails.

`TemplateLibrary` loads the built-in templates (`hub/email_templates/`, whose README lists the
context variables) and an optional override directory: a file there with a built-in's name
replaces it, any other name adds a template, and `{% extends "builtin/<name>.j2" %}` reaches the
original (to change only a subject, say). Every environment is a sandbox with `StrictUndefined`:
a misspelt variable is an error naming file and line, never an empty string in a customer's inbox.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PrefixLoader,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hub.errors import HubError

BUILTIN_TEMPLATES_DIR = Path(__file__).resolve().parent / "email_templates"
TEMPLATE_SUFFIX = ".j2"

# Currencies whose minor unit is not a hundredth (ISO 4217, as Stripe lists them).
_ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                 "vuv", "xaf", "xof", "xpf"}
_THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "inr": "₹", "aud": "A$", "cad": "CA$"}


class TemplateRenderError(HubError):
    """A template failed to compile or render; the message names the file (or parameter) and line."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.file, self.line, self.detail = file, line, message
        where = f"{file}, line {line}" if file and line else file or ""
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str | None


@dataclass(frozen=True)
class TemplateProblem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


def format_money(amount: object, currency: str) -> str:
    """`49900, "usd"` -> `$499.00`; amounts are integer minor units, as every connector stores them."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"money expects an integer amount in minor units, got {amount!r}")
    code = currency.lower()
    decimals = 0 if code in _ZERO_DECIMAL else 3 if code in _THREE_DECIMAL else 2
    number = f"{abs(amount) / 10 ** decimals:,.{decimals}f}"
    sign = "-" if amount < 0 else ""
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {code.upper()}"


def format_date(value: object) -> str:
    """An ISO-8601 string, date or datetime -> `March 4, 2025`."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, date):
        raise TypeError(f"date expects an ISO-8601 string, a date or a datetime, got {value!r}")
    return f"{value:%B} {value.day}, {value.year}"


def _environment(loader: BaseLoader | None, *, autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(loader=loader, autoescape=autoescape, undefined=StrictUndefined,
                                        trim_blocks=True, lstrip_blocks=True)
    env.filters["money"] = format_money
    env.filters["date"] = format_date
    return env


def _location(exc: BaseException) -> tuple[str | None, int | None]:
    """The template file and line an exception came from (the innermost template frame).

    Jinja marks the module of every compiled template with `__jinja_template__`; its
    `get_corresponding_lineno` maps a line of generated Python back to the template source.
    """
    if isinstance(exc, TemplateSyntaxError):
        return exc.filename or exc.name, exc.lineno
    found: tuple[str | None, int | None] = (None, None)
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        template = frame.f_globals.get("__jinja_template__")   # a compiled template's own frame
        if isinstance(template, Template):
            found = (template.filename, template.get_corresponding_lineno(lineno))
    return found


def _message(exc: BaseException) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return exc.message or str(exc)
    return str(exc) or type(exc).__name__


@functools.lru_cache(maxsize=1)
def _string_environment() -> ImmutableSandboxedEnvironment:
    return _environment(None, autoescape=False)


@functools.lru_cache(maxsize=1024)
def _compile_string(source: str) -> Template:
    # Playbook parameters are rendered once per customer: compile each distinct string once.
    return _string_environment().from_string(source)


def render_string(source: str, context: Mapping[str, Any], *, name: str = "template") -> str:
    """Render one playbook action parameter; errors name the parameter and line.

        >>> render_string("Hi {{ contact.first_name }}", {"contact": {"first_name": "Dana"}})
        'Hi Dana'
    """
    try:
        template = _compile_string(source)
        # root_render_func rather than render(): render() rewrites the traceback we read the line from
        return "".join(template.root_render_func(template.new_context(dict(context))))
    except Exception as exc:  # a user's template can fail in any way; report where, not how
        _, line = _location(exc)
        raise TemplateRenderError(_message(exc), file=name, line=line or 1) from exc


class TemplateLibrary:
    """The email templates: built-ins plus an optional override directory."""

    def __init__(self, override_dir: str | Path | None = None, *,
                 builtin_dir: str | Path = BUILTIN_TEMPLATES_DIR) -> None:
        self.builtin_dir = Path(builtin_dir)
        self.override_dir = Path(override_dir) if override_dir is not None else None
        if self.override_dir is not None and not self.override_dir.is_dir():
            raise TemplateRenderError("the email templates directory does not exist", file=str(self.override_dir))
        builtin = FileSystemLoader(self.builtin_dir)
        first = [FileSystemLoader(self.override_dir)] if self.override_dir is not None else []
        loader = ChoiceLoader([*first, builtin, PrefixLoader({"builtin": builtin})])
        self._text_env = _environment(loader, autoescape=False)
        self._html_env = _environment(loader, autoescape=True)

    def _files(self) -> dict[str, Path]:
        """Every `.j2` file by name (partials included); an override shadows a built-in."""
        found: dict[str, Path] = {}
        for folder in (self.override_dir, self.builtin_dir):
            if folder is not None:
                for path in sorted(folder.glob(f"*{TEMPLATE_SUFFIX}")):
                    found.setdefault(path.name.removesuffix(TEMPLATE_SUFFIX), path)
        return found

    def names(self) -> list[str]:
        """The emails that can be sent (partials, named `_*`, excluded)."""
        return sorted(name for name in self._files() if not name.startswith("_"))

    def path(self, name: str) -> Path:
        """The file email template `name` is loaded from."""
        files = self._files()
        if name.startswith("_") or name not in files:
            raise TemplateRenderError(f"no email template named {name!r}; there are: {', '.join(self.names())}")
        return files[name]

    def render(self, name: str, context: Mapping[str, Any]) -> RenderedEmail:
        """Render the subject, text and HTML parts of template `name`."""
        self.path(name)   # an unknown name is an error listing the known ones
        plain = self._render_blocks(self._text_env, name, context, ("subject", "text"))
        html = self._render_blocks(self._html_env, name, context, ("html",))["html"]
        subject, text = (plain["subject"] or "").strip(), (plain["text"] or "").strip()
        if not subject or not text:
            missing = "subject" if not subject else "text"
            raise TemplateRenderError(f"the {missing} block is missing or renders empty", file=str(self.path(name)))
        return RenderedEmail(subject=subject, text=text + "\n", html=html.strip() if html and html.strip() else None)

    def _render_blocks(self, env: ImmutableSandboxedEnvironment, name: str, context: Mapping[str, Any],
                       blocks: tuple[str, ...]) -> dict[str, str | None]:
        try:
            template = env.get_template(name + TEMPLATE_SUFFIX)
            ctx = template.new_context(dict(context))
            # Running the body once resolves {% extends %} and top-level imports/sets; only the
            # blocks' own output is kept.
            for _ in template.root_render_func(ctx):
                pass
            return {block: "".join(ctx.blocks[block][0](ctx)) if block in ctx.blocks else None
                    for block in blocks}
        except Exception as exc:  # a user's template can fail in any way; report where, not how
            file, line = _location(exc)
            raise TemplateRenderError(_message(exc), file=file or str(self.path(name)), line=line) from exc

    def check(self, context: Mapping[str, Any] | None = None) -> list[TemplateProblem]:
        """Compile every file and render every email (with and without an unsubscribe link)."""
        context = dict(sample_context() if context is None else context)
        problems: list[TemplateProblem] = []
        broken: set[str] = set()
        for name, path in self._files().items():
            try:
                self._text_env.get_template(name + TEMPLATE_SUFFIX)
            except TemplateSyntaxError as exc:
                broken.add(name)
                problems.append(TemplateProblem(exc.filename or str(path), exc.lineno, _message(exc)))
        for name in self.names():
            if name in broken:
                continue
            for variant in (context, {**context, "unsubscribe_url": None}):
                try:
                    email = self.render(name, variant)
                except TemplateRenderError as exc:
                    problems.append(TemplateProblem(exc.file or str(self.path(name)), exc.line, exc.detail))
                    break
                if any(ch in email.subject for ch in "\r\n"):
                    problems.append(TemplateProblem(str(self.path(name)), None,
                                                    "the subject spans several lines; a subject is one line"))
                    break
        return list(dict.fromkeys(problems))   # a broken partial is reported once, not per user


def sample_context() -> dict[str, Any]:
    """A realistic context carrying every variable the built-in templates use (see the README)."""
    return {
        "customer": {"id": "cus_R2x9sLq0", "name": "Northwind Traders", "plan": "Growth", "mrr": 49900,
                     "currency": "usd", "health_score": 38, "days_inactive": 24, "nps_score": 4,
                     "last_seen_at": "2025-02-06T14:12:00+00:00"},
        "contact": {"name": "Dana Whitfield", "first_name": "Dana", "email": "dana@northwind.example"},
        "owner": {"name": "Sam Ortega", "first_name": "Sam", "email": "sam@acme.example",
                  "title": "Customer Success Manager"},
        "product": {"name": "Acme Analytics"},
        "invoice": {"id": "in_1PqR7sKz", "number": "ACME-2025-0042", "amount_due": 49900, "currency": "usd",
                    "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1Acme/test_YWNjdF8x",
                    "due_date": "2025-03-01", "attempt_count": 2,
                    "next_payment_attempt": "2025-03-06T09:00:00+00:00"},
        "card": {"brand": "Visa", "last4": "4242", "exp_month": 3, "exp_year": 2025},
        "links": {"app": "https://app.acme.example", "billing": "https://app.acme.example/settings/billing",
                  "help": "https://help.acme.example", "book_call": "https://cal.acme.example/sam-ortega"},
        "unsubscribe_url": "https://hub.acme.example/unsubscribe/ZGFuYUBub3J0aHdpbmQuZXhhbXBsZQ.c2FtcGxl",
    }
