"""The report as one self-contained HTML page that works offline, rendered from Jinja2 templates.

The templates live in ``templates/`` beside this module so the web console can reuse them:
``report.html`` is the page (plotly.js embedded inline exactly once, no CDN, no network) and
``report_body.html`` its content alone. Figures come from :mod:`imts.evals.report.figures`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from imts.evals.report import figures
from imts.evals.report.i18n import Lang, check_lang, fact_label, t
from imts.evals.report.model import ALL, ComparisonReport, category_rows, changed_items, fmt_delta, fmt_pct
from imts.evals.report.model import truncate as _truncate

__all__ = ["TEMPLATES", "environment", "render_body", "render_html", "template_context"]

TEMPLATES = Path(__file__).with_name("templates")
_PREDICTION_CHARS = 400
_PROMPT_CHARS = 1000


def _delta_class(delta: float | None) -> str:
    if delta is None or abs(delta) < 1e-9:
        return "zero"
    return "pos" if delta > 0 else "neg"


@functools.cache
def environment() -> Environment:
    """The Jinja2 environment of the report templates (autoescaped, strict about undefined names)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        pct=fmt_pct,
        delta=fmt_delta,
        delta_class=_delta_class,
        clip=_truncate,
        fmt=lambda v, spec: format(v, spec),
    )
    return env


def template_context(report: ComparisonReport, max_examples: int = 20, lang: Lang = "en") -> dict[str, Any]:
    """Everything the templates read: the report, its computed rows and diff, figures, the language.

    Raises:
        ValueError: If the baseline and tuned item sets differ, or ``lang`` is unknown.
    """
    lang = check_lang(lang)
    fixed, broken = changed_items(report.baseline, report.tuned)
    rows = category_rows(report)
    figs: dict[str, Markup | None] = {
        "capabilities": Markup(
            figures.fig_html(figures.capability_figure(report, rows, lang), "imts-capabilities", 480)
        ),
        "curves": None
        if report.curves is None
        else Markup(figures.fig_html(figures.curves_figure(report.curves, lang), "imts-curves", 620)),
    }
    extras = report.extras
    if extras is not None:
        if len(extras.models) >= 2:
            figs["win_rate"] = Markup(
                figures.fig_html(figures.win_rate_figure(extras, lang), "imts-winrate", 420)
            )
        if extras.clusters:
            figs["clusters"] = Markup(
                figures.fig_html(figures.clusters_figure(extras, lang), "imts-clusters", 380)
            )
    return {
        "lang": lang,
        "t": functools.partial(t, lang=lang),
        "report": report,
        "extras": extras,
        "facts": [(fact_label(k, lang), v) for k, v in report.facts.items()],
        "rows": rows,
        "total": rows[-1],
        "ALL": ALL,
        "fixed": fixed,
        "broken": broken,
        "max_examples": max(max_examples, 0),
        "prediction_chars": _PREDICTION_CHARS,
        "prompt_chars": _PROMPT_CHARS,
        "figures": figs,
        "baseline_color": figures.BASELINE_COLOR,
        "tuned_color": figures.TUNED_COLOR,
    }


def render_body(report: ComparisonReport, max_examples: int = 20, lang: Lang = "en") -> str:
    """The report's content as an HTML fragment, for a page that already loads plotly.js."""
    return environment().get_template("report_body.html").render(template_context(report, max_examples, lang))


def render_html(report: ComparisonReport, max_examples: int = 20, lang: Lang = "en") -> str:
    """Render the comparison as one self-contained HTML page that works offline.

    plotly.js is embedded inline exactly once in ``<head>``; the figures reference it without loading
    anything from the network.

    Args:
        report: The comparison to render.
        max_examples: Maximum number of fixed and of broken items shown in full.
        lang: Language of the page (also its ``<html lang>``).

    Returns:
        The complete HTML document (UTF-8).

    Raises:
        ValueError: If the baseline and tuned item sets differ, or ``lang`` is unknown.
    """
    context = template_context(report, max_examples, lang)
    # get_plotlyjs() contains no "</script" (checked by the tests), so it is safe to inline verbatim.
    context["plotly_js"] = Markup(get_plotlyjs())
    return environment().get_template("report.html").render(context)
