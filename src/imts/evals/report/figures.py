"""The report's plotly figures, and their HTML fragments (plotly.js itself is embedded once by the page)."""

from __future__ import annotations

import html

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from imts.evals.report.i18n import Lang, t
from imts.evals.report.model import ALL, CategoryRow, ComparisonReport, ReportExtras, TrainingCurves

__all__ = [
    "BASELINE_COLOR",
    "TUNED_COLOR",
    "capability_figure",
    "clusters_figure",
    "curves_figure",
    "fig_html",
    "rgba",
    "win_rate_figure",
]

BASELINE_COLOR = "#1f77b4"
TUNED_COLOR = "#d62728"


def rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def fig_html(fig: go.Figure, div_id: str, height: int) -> str:
    """The figure as a ``<div>`` + script that draws it with the page's inline plotly.js."""
    fig.update_layout(height=height, margin={"l": 60, "r": 40, "t": 60, "b": 50}, template="plotly_white")
    return str(
        pio.to_html(
            fig,
            include_plotlyjs=False,  # embedded once in <head> by the page
            full_html=False,
            div_id=div_id,  # deterministic output
            default_height=f"{height}px",
            config={"displaylogo": False, "responsive": True},
        )
    )


def capability_figure(report: ComparisonReport, rows: list[CategoryRow], lang: Lang = "en") -> go.Figure:
    """Accuracy per category on both sides: a radar from three categories on, grouped bars below."""
    cat_rows = [r for r in rows if r.category != ALL]
    cats = [r.category for r in cat_rows]
    sides = (
        (report.baseline.label, [r.base_pct for r in cat_rows], BASELINE_COLOR),
        (report.tuned.label, [r.tuned_pct for r in cat_rows], TUNED_COLOR),
    )
    fig = go.Figure()
    if len(cats) >= 3:
        for name, values, color in sides:
            fig.add_trace(
                go.Scatterpolar(
                    r=[*values, values[0]],  # close the polygon
                    theta=[*cats, cats[0]],
                    name=name,
                    mode="lines+markers",
                    fill="toself",
                    line={"color": color},
                    marker={"color": color},
                    fillcolor=rgba(color, 0.25),
                    hovertemplate="%{theta}: %{r:.1f}%<extra>" + html.escape(name) + "</extra>",
                )
            )
        fig.update_layout(
            polar={"radialaxis": {"range": [0, 100], "ticksuffix": "%", "angle": 90, "tickangle": 90}},
            showlegend=True,
            legend={"orientation": "h", "y": -0.08},
        )
    else:
        for name, values, color in sides:
            fig.add_trace(
                go.Bar(
                    x=cats,
                    y=values,
                    name=name,
                    marker={"color": rgba(color, 0.6), "line": {"color": color, "width": 1.5}},
                    hovertemplate="%{x}: %{y:.1f}%<extra>" + html.escape(name) + "</extra>",
                )
            )
        fig.update_layout(
            barmode="group", yaxis={"range": [0, 100], "ticksuffix": "%", "title": t("accuracy_axis", lang)}
        )
    return fig


def _curve_xy(x: list[int], y: list[float]) -> tuple[list[int], list[float]]:
    n = min(len(x), len(y))
    return x[:n], y[:n]


def curves_figure(curves: TrainingCurves, lang: Lang = "en") -> go.Figure:
    """Loss (train and validation), learning rate, grad norm and throughput over the steps, 2x2."""
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=tuple(t(k, lang) for k in ("loss", "learning_rate", "grad_norm", "tokens_per_s")),
        horizontal_spacing=0.1,
        vertical_spacing=0.15,
    )
    panels: list[tuple[int, int, str, list[int], list[float], str]] = [
        (1, 1, "train_loss", curves.step, curves.loss, TUNED_COLOR),
        (1, 1, "val_loss", curves.val_step, curves.val_loss, BASELINE_COLOR),
        (1, 2, "lr_trace", curves.step, curves.lr, "#2ca02c"),
        (2, 1, "grad_norm_trace", curves.step, curves.grad_norm, "#9467bd"),
        (2, 2, "tokens_per_s_trace", curves.step, curves.tokens_per_s, "#ff7f0e"),
    ]
    for row, col, key, xs, ys, color in panels:
        x, y = _curve_xy(xs, ys)
        if not y:
            continue
        is_val = key == "val_loss"
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                name=t(key, lang),
                mode="lines+markers" if is_val or len(y) <= 30 else "lines",
                line={"color": color, "dash": "dash" if is_val else "solid"},
                showlegend=row == 1 and col == 1,
            ),
            row=row,
            col=col,
        )
    for row in (1, 2):
        for col in (1, 2):
            fig.update_xaxes(title_text=t("step", lang), row=row, col=col)
    fig.update_yaxes(exponentformat="e", row=1, col=2)
    fig.update_layout(legend={"orientation": "h", "x": 0, "y": 1.12})
    return fig


def win_rate_figure(extras: ReportExtras, lang: Lang = "en") -> go.Figure:
    """Heatmap of how often the row model beats the column model, with the interval in each cell."""
    names = extras.models
    rate = {(w["a"], w["b"]): w for w in extras.win_rate}
    z = [[None if a == b else rate[(a, b)]["rate"] for b in names] for a in names]
    text = [
        [
            ""
            if a == b
            else f"{rate[(a, b)]['rate']:.0%}<br>[{rate[(a, b)]['low']:.0%}, {rate[(a, b)]['high']:.0%}]"
            for b in names
        ]
        for a in names
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=names, y=names, text=text, texttemplate="%{text}", colorscale="RdBu", zmin=0, zmax=1
        )
    )
    fig.update_layout(title=t("win_rate_title", lang))
    return fig


def clusters_figure(extras: ReportExtras, lang: Lang = "en") -> go.Figure:
    """Error rate of each bad-case cluster before and after, as grouped bars."""
    names = [c.label for c in extras.clusters]
    fig = go.Figure(
        [
            go.Bar(
                name=t("error_before", lang),
                x=names,
                y=[c.error_before for c in extras.clusters],
                marker_color=BASELINE_COLOR,
            ),
            go.Bar(
                name=t("error_after", lang),
                x=names,
                y=[c.error_after for c in extras.clusters],
                marker_color=TUNED_COLOR,
            ),
        ]
    )
    fig.update_layout(barmode="group", yaxis={"tickformat": ".0%", "range": [0, 1]})
    return fig
