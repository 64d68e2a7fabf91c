"""The HTML report: one self-contained file (charts' JavaScript inlined) that opens offline.

    html = render(gather(engine, health_settings, churn_settings, factors))
    Path("report.html").write_text(html, encoding="utf-8")
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from hub.report.charts import all_charts
from hub.report.data import ReportData, gather

__all__ = ["ReportData", "gather", "render"]
TEMPLATE = "report.html.j2"


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _money(currency: str | None):  # noqa: ANN202 - a Jinja filter
    def money(minor: Any) -> str:
        if minor is None:
            return "—"
        symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get((currency or "").lower(), "")
        return f"{symbol}{minor / 100:,.0f}" if symbol else f"{minor / 100:,.0f}"
    return money


def _pct(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}%"


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:+.2f}"


def render(data: ReportData) -> str:
    environment = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["j2"]))
    charts = all_charts(data)

    def chart(name: str) -> Markup:
        html = charts.get(name)
        return Markup(html) if html else Markup('<div class="empty">No data yet.</div>')

    return environment.get_template(TEMPLATE).render(
        data=data, chart=chart, plotly_js=_plotly_js(), money=_money(data.currency), pct=_pct, num=_num)
