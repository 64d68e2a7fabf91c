"""`churnhub connector new NAME`: write a new connector plugin package from the templates here.

    render_package("acme-crm", Path("."))   # -> ./churnhub-acme-crm/ with pyproject, package, tests

The package (`churnhub_acme_crm`, connector type `acme_crm`) holds a working connector for an
example API (accounts in change order, notes with an idempotency key), its sandbox, and tests that
run the conformance suite: they pass as generated, and keep the author honest while they replace
the example API with theirs.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).parent / "templates"
_NAME = re.compile(r"^[a-z][a-z0-9]*([-_][a-z0-9]+)*$")


@dataclass(frozen=True)
class PluginNames:
    """Every spelling of a plugin's name the templates need."""

    name: str            # as given: acme-crm
    type_name: str       # connector type and entry point name: acme_crm
    package: str         # import name: churnhub_acme_crm
    dist_name: str       # distribution and folder: churnhub-acme-crm
    class_prefix: str    # AcmeCrm (AcmeCrmConnector, AcmeCrmSettings, ...)
    title: str           # Acme Crm
    env_var: str         # ACME_CRM_API_TOKEN


def plugin_names(name: str) -> PluginNames:
    """Names for `name` (lowercase letters, digits, `-` or `_` between words); ValueError otherwise."""
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a plugin name: use lowercase letters and digits, words joined "
                         "by - or _ (for example acme-crm)")
    words = re.split(r"[-_]", name)
    type_name = "_".join(words)
    return PluginNames(name=name, type_name=type_name, package=f"churnhub_{type_name}",
                       dist_name=f"churnhub-{'-'.join(words)}", class_prefix="".join(w.capitalize() for w in words),
                       title=" ".join(w.capitalize() for w in words), env_var=f"{type_name.upper()}_API_TOKEN")


def planned_files(names: PluginNames) -> dict[str, Path]:
    """Template path (relative to TEMPLATES) -> output path (relative to the package folder)."""
    planned = {}
    for template in sorted(TEMPLATES.rglob("*.j2")):
        relative = template.relative_to(TEMPLATES)
        parts = [names.package if part == "package" else part for part in relative.parts]
        planned[relative.as_posix()] = Path(*parts).with_suffix("")
    return planned


def render_package(name: str, directory: Path, *, force: bool = False) -> tuple[Path, list[Path]]:
    """Write the plugin package `churnhub-<name>` into `directory`; returns its folder and files.

    Refuses (FileExistsError) to write into a folder that exists unless `force`.
    """
    names = plugin_names(name)
    root = Path(directory) / names.dist_name
    if root.exists() and not force:
        raise FileExistsError(f"{root} already exists (choose another --dir, or --force to overwrite)")
    environment = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)
    written = []
    for template, output in planned_files(names).items():
        target = root / output
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(environment.get_template(template).render(**asdict(names)), encoding="utf-8")
        written.append(target)
    return root, written
