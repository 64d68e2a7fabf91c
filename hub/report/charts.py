"""The report's charts as HTML fragments (plotly; its JavaScript is inlined once by the page)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from hub.report.data import ReportData

BAND_COLORS = {"green": "#2e9e5b", "yellow": "#e0a800", "red": "#d64541"}
TYPE_COLORS = {"voluntary": "#4a6fa5", "involuntary": "#d64541", "contraction": "#e0a800"}
CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}
LAYOUT: dict[str, Any] = {"margin": {"l": 50, "r": 20, "t": 30, "b": 40}, "height": 320,
                          "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
                          "plot_bgcolor": "#fff", "paper_bgcolor": "#fff",
                          "legend": {"orientation": "h", "y": -0.2}}


def _html(figure: go.Figure, **layout: Any) -> str:
    figure.update_layout(**{**LAYOUT, **layout})
    figure.update_xaxes(gridcolor="#eee")
    figure.update_yaxes(gridcolor="#eee", zerolinecolor="#ccc")
    return figure.to_html(include_plotlyjs=False, full_html=False, config=CONFIG)


def churn_trend(data: ReportData) -> str | None:
    periods = data.metrics["periods"]
    if not periods:
        return None
    labels = [p["period"] for p in periods]
    figure = go.Figure()
    figure.add_scatter(x=labels, y=[p["churn_rate"] for p in periods], name="customer churn %", mode="lines+markers",
                       line={"color": "#333", "width": 3})
    for kind in ("voluntary", "involuntary"):
        figure.add_scatter(x=labels, y=[p["churn_rate_by_type"][kind] for p in periods], name=f"{kind} %",
                           mode="lines+markers", line={"color": TYPE_COLORS[kind], "dash": "dot"})
    figure.add_scatter(x=labels, y=[p["mrr_churn_rate"] for p in periods], name="MRR churn %", mode="lines+markers",
                       line={"color": "#8e44ad"})
    return _html(figure, yaxis_title="% per period", yaxis_rangemode="tozero")


def retention_trend(data: ReportData) -> str | None:
    periods = data.metrics["periods"]
    if not periods:
        return None
    labels = [p["period"] for p in periods]
    figure = go.Figure()
    figure.add_scatter(x=labels, y=[p["grr"] for p in periods], name="GRR %", mode="lines+markers",
                       line={"color": "#4a6fa5", "width": 4, "dash": "dash"})
    figure.add_scatter(x=labels, y=[p["nrr"] for p in periods], name="NRR %", mode="lines+markers",
                       line={"color": "#2e9e5b"})
    return _html(figure, yaxis_title="% of MRR at period start")


def churn_reasons(data: ReportData) -> str | None:
    if not any(data.churn_by_reason.values()):
        return None
    reasons = sorted({r for counts in data.churn_by_reason.values() for r in counts},
                     key=lambda r: -sum(c.get(r, 0) for c in data.churn_by_reason.values()))
    figure = go.Figure()
    for kind, counts in data.churn_by_reason.items():
        if counts:
            figure.add_bar(y=reasons, x=[counts.get(r, 0) for r in reasons], name=kind, orientation="h",
                           marker_color=TYPE_COLORS[kind])
    return _html(figure, barmode="stack", xaxis_title="events", yaxis={"autorange": "reversed"},
                 height=max(260, 28 * len(reasons) + 90))


def health_distribution(data: ReportData) -> str | None:
    if not data.health_scores:
        return None
    figure = go.Figure()
    for band, low, high in (("red", 0, 40), ("yellow", 40, 70), ("green", 70, 100.01)):
        values = [s for s in data.health_scores if low <= s < high]
        figure.add_histogram(x=values, name=band, marker_color=BAND_COLORS[band], xbins={"start": 0, "end": 100, "size": 5})
    return _html(figure, barmode="overlay", xaxis_title="health score", yaxis_title="customers",
                 xaxis_range=[0, 100])


def health_movement(data: ReportData) -> str | None:
    if not data.movement:
        return None
    order = ["green", "yellow", "red", "new", ""]
    before = [b for b in order if b in data.movement]
    after = ["green", "yellow", "red"]
    z = [[data.movement[b].get(a, 0) for a in after] for b in before]
    figure = go.Figure(go.Heatmap(z=z, x=[f"now {a}" for a in after], y=[f"30 days ago {b or 'unscored'}" for b in before],
                                  colorscale="Blues", text=z, texttemplate="%{text}", showscale=False))
    return _html(figure, height=80 + 55 * len(before), yaxis={"autorange": "reversed"})


def nps_distribution(data: ReportData) -> str | None:
    if not sum(data.nps_histogram):
        return None
    colors = [BAND_COLORS["red"]] * 7 + [BAND_COLORS["yellow"]] * 2 + [BAND_COLORS["green"]] * 2
    figure = go.Figure(go.Bar(x=list(range(11)), y=data.nps_histogram, marker_color=colors))
    return _html(figure, xaxis={"title": "NPS answer (0-6 detractor, 7-8 passive, 9-10 promoter)", "dtick": 1},
                 yaxis_title="answers")


def cohort_heatmap(data: ReportData) -> str | None:
    cohorts = data.metrics["cohorts"]
    if not cohorts:
        return None
    width = max(len(c["retention"]) for c in cohorts)
    z = [c["retention"] + [None] * (width - len(c["retention"])) for c in cohorts]
    text = [[f"{v:.0f}%" if v is not None else "" for v in row] for row in z]
    figure = go.Figure(go.Heatmap(z=z, x=[f"M{k}" for k in range(width)],
                                  y=[f"{c['cohort']} ({c['customers']})" for c in cohorts],
                                  colorscale="RdYlGn", zmin=0, zmax=100, text=text, texttemplate="%{text}",
                                  colorbar={"title": "% live"}, hoverongaps=False))
    return _html(figure, height=90 + 26 * len(cohorts), yaxis={"autorange": "reversed"},
                 xaxis_title="months since start")


def dunning_funnel(data: ReportData) -> str | None:
    funnel = data.dunning
    if not funnel["opened"]:
        return None
    figure = go.Figure(go.Funnel(y=["failed invoices (cases)", "retried / reminded", "recovered"],
                                 x=[funnel["opened"], funnel["retried"], funnel["recovered"]],
                                 marker={"color": ["#4a6fa5", "#e0a800", "#2e9e5b"]}, textinfo="value+percent initial"))
    return _html(figure, height=260)


def all_charts(data: ReportData) -> dict[str, str | None]:
    return {"churn_trend": churn_trend(data), "retention_trend": retention_trend(data),
            "churn_reasons": churn_reasons(data), "health_distribution": health_distribution(data),
            "health_movement": health_movement(data), "nps": nps_distribution(data),
            "cohorts": cohort_heatmap(data), "dunning": dunning_funnel(data)}
