"""Before/after comparison report of the evaluation step.

After a fine-tuning run IMTS evaluates the baseline model and the tuned model on the same items and shows
what changed. This module renders that comparison two ways:

* a self-contained HTML page that works offline (plotly.js embedded inline exactly once, no CDN, no
  network): key facts, headline accuracy, a capability radar, training curves, a per-category table and the
  items that were fixed or broken;
* a Markdown summary meant for a terminal.

:func:`write_report` writes both plus a machine-readable ``report.json`` atomically.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

__all__ = [
    "BASELINE_COLOR",
    "JSON_SCHEMA_VERSION",
    "TUNED_COLOR",
    "ComparisonReport",
    "EvalResult",
    "ItemOutcome",
    "TrainingCurves",
    "accuracy_by_category",
    "changed_items",
    "render_html",
    "render_markdown",
    "report_from_dict",
    "report_to_dict",
    "write_report",
]

BASELINE_COLOR = "#1f77b4"
TUNED_COLOR = "#d62728"
JSON_SCHEMA_VERSION = 1

_ALL = "all"
_PREDICTION_CHARS = 400
_PROMPT_CHARS = 1000
_MD_SNIPPET_CHARS = 80
_MAX_IDS_IN_ERROR = 20


# --------------------------------------------------------------------------------------------------------
# Input types
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemOutcome:
    """One evaluated item for one model."""

    item_id: str
    category: str  # e.g. addition, division, multi_step ("all" never appears here)
    lang: str  # "en" | "zh"
    prompt: str
    reference: str  # expected final answer (e.g. "16")
    prediction: str  # model's generated text
    extracted: str | None  # number extracted from the prediction, None if none found
    correct: bool


@dataclass(frozen=True)
class EvalResult:
    """The outcomes of one model on an evaluation set."""

    label: str  # e.g. "baseline (smollm2-135m-instruct)" or "tuned (run r_123)"
    model_ref: str
    items: list[ItemOutcome]  # same item_ids for both sides of a comparison


@dataclass(frozen=True)
class TrainingCurves:
    """Per-step training metrics; every list is parallel to ``step`` (validation lists to ``val_step``)."""

    step: list[int]
    loss: list[float]
    lr: list[float]
    grad_norm: list[float]
    tokens_per_s: list[float]
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class ComparisonReport:
    """Everything the before/after report shows."""

    title: str
    baseline: EvalResult
    tuned: EvalResult
    curves: TrainingCurves | None
    facts: dict[str, str]  # ordered key facts: base model, dataset version, run id, method, steps, time, ...
    extras: Any = None  # imts.evals.court_report.ReportExtras: significance, win rates, clusters


# --------------------------------------------------------------------------------------------------------
# Computations
# --------------------------------------------------------------------------------------------------------


def accuracy_by_category(result: EvalResult) -> dict[str, tuple[int, int]]:
    """Count correct answers per category.

    Args:
        result: The evaluation result to summarise.

    Returns:
        ``category -> (correct, total)`` with categories in order of first appearance, followed by the key
        ``"all"`` covering every item (``(0, 0)`` for an empty result).

    Raises:
        ValueError: If an item uses the reserved category name ``"all"``.
    """
    counts: dict[str, list[int]] = {}
    for item in result.items:
        if item.category == _ALL:
            raise ValueError(f"item {item.item_id!r} uses the reserved category name {_ALL!r}")
        c = counts.setdefault(item.category, [0, 0])
        c[0] += int(item.correct)
        c[1] += 1
    out = {cat: (c[0], c[1]) for cat, c in counts.items()}
    out[_ALL] = (sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values()))
    return out


def _format_ids(ids: Iterable[str]) -> str:
    ids = sorted(ids)
    shown = ", ".join(repr(i) for i in ids[:_MAX_IDS_IN_ERROR])
    if len(ids) > _MAX_IDS_IN_ERROR:
        shown += f", ... ({len(ids) - _MAX_IDS_IN_ERROR} more)"
    return shown


def _index_by_id(result: EvalResult, side: str) -> dict[str, ItemOutcome]:
    index: dict[str, ItemOutcome] = {}
    duplicates: set[str] = set()
    for item in result.items:
        if item.item_id in index:
            duplicates.add(item.item_id)
        index[item.item_id] = item
    if duplicates:
        raise ValueError(f"{side} result has duplicate item ids: {_format_ids(duplicates)}")
    return index


def changed_items(
    baseline: EvalResult, tuned: EvalResult
) -> tuple[list[tuple[ItemOutcome, ItemOutcome]], list[tuple[ItemOutcome, ItemOutcome]]]:
    """Find the items whose correctness changed between the baseline and the tuned model.

    Args:
        baseline: Result of the model before fine-tuning.
        tuned: Result of the model after fine-tuning, on the same items.

    Returns:
        ``(fixed, broken)``: lists of ``(baseline_item, tuned_item)`` pairs matched by ``item_id``, in the
        baseline's item order. ``fixed`` went wrong -> right, ``broken`` went right -> wrong.

    Raises:
        ValueError: If the two item sets differ (the message names the ids missing on each side) or a side
            has duplicate item ids.
    """
    base_idx = _index_by_id(baseline, "baseline")
    tuned_idx = _index_by_id(tuned, "tuned")
    missing_in_tuned = base_idx.keys() - tuned_idx.keys()
    missing_in_baseline = tuned_idx.keys() - base_idx.keys()
    if missing_in_tuned or missing_in_baseline:
        parts = []
        if missing_in_tuned:
            parts.append(f"missing from tuned ({len(missing_in_tuned)}): {_format_ids(missing_in_tuned)}")
        if missing_in_baseline:
            parts.append(
                f"missing from baseline ({len(missing_in_baseline)}): {_format_ids(missing_in_baseline)}"
            )
        raise ValueError("baseline and tuned item sets differ; " + "; ".join(parts))
    fixed: list[tuple[ItemOutcome, ItemOutcome]] = []
    broken: list[tuple[ItemOutcome, ItemOutcome]] = []
    for item_id, before in base_idx.items():
        after = tuned_idx[item_id]
        if not before.correct and after.correct:
            fixed.append((before, after))
        elif before.correct and not after.correct:
            broken.append((before, after))
    return fixed, broken


@dataclass(frozen=True)
class _CategoryRow:
    category: str
    n: int
    base: tuple[int, int]
    tuned: tuple[int, int]

    @property
    def base_pct(self) -> float | None:
        return _pct(*self.base)

    @property
    def tuned_pct(self) -> float | None:
        return _pct(*self.tuned)

    @property
    def delta(self) -> float | None:
        b, t = self.base_pct, self.tuned_pct
        return None if b is None or t is None else t - b


def _pct(correct: int, total: int) -> float | None:
    return None if total == 0 else 100.0 * correct / total


def _category_rows(report: ComparisonReport) -> list[_CategoryRow]:
    """Per-category rows (union of both sides, first-appearance order), the ``all`` row last."""
    base = accuracy_by_category(report.baseline)
    tuned = accuracy_by_category(report.tuned)
    cats = [c for c in base if c != _ALL] + [c for c in tuned if c != _ALL and c not in base]
    rows = []
    for cat in [*cats, _ALL]:
        b = base.get(cat, (0, 0))
        t = tuned.get(cat, (0, 0))
        rows.append(_CategoryRow(cat, max(b[1], t[1]), b, t))
    return rows


def _fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _fmt_delta(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _one_line(text: str, limit: int) -> str:
    return _truncate(" ".join(text.split()), limit)


def _headline(rows: list[_CategoryRow]) -> tuple[str, str, str, int]:
    total = rows[-1]
    return _fmt_pct(total.base_pct), _fmt_pct(total.tuned_pct), _fmt_delta(total.delta), total.n


# --------------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")


def _md_code(text: str) -> str:
    """Inline code span that survives backticks in ``text`` (CommonMark rules)."""
    if not text:
        return "``"
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_answer(item: ItemOutcome) -> str:
    """The extracted number, or a snippet of the prediction when nothing was extracted."""
    if item.extracted is not None:
        return _md_code(_one_line(item.extracted, 40))
    return "none from " + _md_code(_one_line(item.prediction, 40))


def _md_example(before: ItemOutcome, after: ItemOutcome) -> str:
    prompt = _md_code(_one_line(before.prompt, _MD_SNIPPET_CHARS))
    return (
        f"- {_md_code(before.item_id)} [{_md_cell(before.category)}/{_md_cell(before.lang)}] {prompt}"
        f" · ref {_md_code(_one_line(before.reference, 40))}"
        f" · baseline {_md_answer(before)} → tuned {_md_answer(after)}"
    )


def render_markdown(report: ComparisonReport, max_examples: int = 5) -> str:
    """Render the comparison as a short Markdown summary for a terminal.

    Args:
        report: The comparison to render.
        max_examples: Maximum number of fixed and of broken items listed (each as one line).

    Returns:
        Markdown text: title, headline, a per-category table and the fixed/broken items.

    Raises:
        ValueError: If the baseline and tuned item sets differ.
    """
    fixed, broken = changed_items(report.baseline, report.tuned)
    rows = _category_rows(report)
    base_acc, tuned_acc, gain, n = _headline(rows)
    lines = [
        f"# {_md_cell(report.title)}",
        "",
        f"**Accuracy:** {base_acc} → {tuned_acc} ({gain} pts) on {n} items"
        f" · baseline: {_md_cell(report.baseline.label)} · tuned: {_md_cell(report.tuned.label)}",
        "",
        "| category | n | baseline | tuned | Δ pts |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        name = f"**{_ALL}**" if row.category == _ALL else _md_cell(row.category)
        cells = [name, str(row.n), _fmt_pct(row.base_pct), _fmt_pct(row.tuned_pct), _fmt_delta(row.delta)]
        lines.append("| " + " | ".join(cells) + " |")
    for heading, pairs in (("Fixed (wrong → right)", fixed), ("Broken (right → wrong)", broken)):
        lines += ["", f"**{heading}: {len(pairs)}**"]
        if pairs:
            lines.append("")
            lines += [_md_example(b, t) for b, t in pairs[: max(max_examples, 0)]]
            if len(pairs) > max_examples:
                lines.append(f"- … and {len(pairs) - max(max_examples, 0)} more")
    if report.extras is not None:
        from imts.evals.court_report import extras_markdown

        lines.append(extras_markdown(report.extras))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------------

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "PingFang SC",
       "Hiragino Sans GB", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif;
       margin: 0 auto; max-width: 1100px; padding: 1.5rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .5rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .25rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #ddd; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; background: #fafafa; }
.pos { color: #1a7f37; } .neg { color: #cf222e; } .zero { color: #666; }
.headline { font-size: 1.35rem; margin: 1rem 0; }
.headline .base { color: #1f77b4; } .headline .tuned { color: #d62728; }
.muted { color: #666; font-size: .9rem; }
.item { border: 1px solid #ddd; border-radius: 6px; padding: .6rem .8rem; margin: .6rem 0; }
.item .meta { color: #666; font-size: .85rem; }
.item pre { white-space: pre-wrap; word-break: break-word; margin: .2rem 0 .5rem; background: #f7f7f7;
            padding: .4rem; border-radius: 4px; font-size: .85rem; }
.item .cols { display: grid; grid-template-columns: 1fr 1fr; gap: .8rem; }
.item .label-base { color: #1f77b4; font-weight: bold; }
.item .label-tuned { color: #d62728; font-weight: bold; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _delta_class(delta: float | None) -> str:
    if delta is None or abs(delta) < 1e-9:
        return "zero"
    return "pos" if delta > 0 else "neg"


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _fig_html(fig: go.Figure, div_id: str, height: int) -> str:
    fig.update_layout(height=height, margin={"l": 60, "r": 40, "t": 60, "b": 50}, template="plotly_white")
    return pio.to_html(
        fig,
        include_plotlyjs=False,  # embedded once in <head> by render_html
        full_html=False,
        div_id=div_id,  # deterministic output
        default_height=f"{height}px",
        config={"displaylogo": False, "responsive": True},
    )


def _capability_figure(report: ComparisonReport, rows: list[_CategoryRow]) -> go.Figure:
    cat_rows = [r for r in rows if r.category != _ALL]
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
                    fillcolor=_rgba(color, 0.25),
                    hovertemplate="%{theta}: %{r:.1f}%<extra>" + _esc(name) + "</extra>",
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
                    marker={"color": _rgba(color, 0.6), "line": {"color": color, "width": 1.5}},
                    hovertemplate="%{x}: %{y:.1f}%<extra>" + _esc(name) + "</extra>",
                )
            )
        fig.update_layout(barmode="group", yaxis={"range": [0, 100], "ticksuffix": "%", "title": "accuracy"})
    return fig


def _curve_xy(x: list[int], y: list[float]) -> tuple[list[int], list[float]]:
    n = min(len(x), len(y))
    return x[:n], y[:n]


def _curves_figure(curves: TrainingCurves) -> go.Figure:
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=("Loss", "Learning rate", "Grad norm", "Tokens/s"),
        horizontal_spacing=0.1,
        vertical_spacing=0.15,
    )
    panels: list[tuple[int, int, str, list[int], list[float], str]] = [
        (1, 1, "train loss", curves.step, curves.loss, TUNED_COLOR),
        (1, 1, "val loss", curves.val_step, curves.val_loss, BASELINE_COLOR),
        (1, 2, "learning rate", curves.step, curves.lr, "#2ca02c"),
        (2, 1, "grad norm", curves.step, curves.grad_norm, "#9467bd"),
        (2, 2, "tokens/s", curves.step, curves.tokens_per_s, "#ff7f0e"),
    ]
    for row, col, name, xs, ys, color in panels:
        x, y = _curve_xy(xs, ys)
        if not y:
            continue
        is_val = name == "val loss"
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                name=name,
                mode="lines+markers" if is_val or len(y) <= 30 else "lines",
                line={"color": color, "dash": "dash" if is_val else "solid"},
                showlegend=row == 1 and col == 1,
            ),
            row=row,
            col=col,
        )
    for row in (1, 2):
        for col in (1, 2):
            fig.update_xaxes(title_text="step", row=row, col=col)
    fig.update_yaxes(exponentformat="e", row=1, col=2)
    fig.update_layout(legend={"orientation": "h", "x": 0, "y": 1.12})
    return fig


def _facts_html(facts: Mapping[str, str]) -> str:
    if not facts:
        return ""
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in facts.items())
    return f'<table class="facts">{body}</table>'


def _category_table_html(rows: list[_CategoryRow]) -> str:
    out = [
        "<table><thead><tr><th>category</th><th>n</th><th>baseline acc</th><th>tuned acc</th>"
        "<th>Δ pts</th></tr></thead><tbody>"
    ]
    for row in rows:
        cls = ' class="total"' if row.category == _ALL else ""
        out.append(
            f"<tr{cls}><td>{_esc(row.category)}</td><td class='num'>{row.n}</td>"
            f"<td class='num'>{_fmt_pct(row.base_pct)}</td><td class='num'>{_fmt_pct(row.tuned_pct)}</td>"
            f"<td class='num {_delta_class(row.delta)}'>{_fmt_delta(row.delta)}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _prediction_html(css: str, label: str, item: ItemOutcome) -> str:
    extracted = "none" if item.extracted is None else item.extracted
    mark = "✓" if item.correct else "✗"
    return (
        f"<div><span class='{css}'>{_esc(label)}</span> {mark} "
        f"<span class='meta'>extracted: {_esc(extracted)}</span>"
        f"<pre>{_esc(_truncate(item.prediction, _PREDICTION_CHARS))}</pre></div>"
    )


def _items_html(pairs: list[tuple[ItemOutcome, ItemOutcome]], limit: int) -> str:
    shown = pairs[: max(limit, 0)]
    if not pairs:
        return "<p class='muted'>None.</p>"
    out = [f"<p class='muted'>Showing {len(shown)} of {len(pairs)}.</p>"]
    for before, after in shown:
        out.append(
            "<div class='item'>"
            f"<div class='meta'>{_esc(before.item_id)} · {_esc(before.category)} · {_esc(before.lang)}</div>"
            f"<pre>{_esc(_truncate(before.prompt, _PROMPT_CHARS))}</pre>"
            f"<div>reference: <b>{_esc(before.reference)}</b></div>"
            "<div class='cols'>"
            f"{_prediction_html('label-base', 'baseline', before)}"
            f"{_prediction_html('label-tuned', 'tuned', after)}"
            "</div></div>"
        )
    return "".join(out)


def render_html(report: ComparisonReport, max_examples: int = 20) -> str:
    """Render the comparison as one self-contained HTML page that works offline.

    plotly.js is embedded inline exactly once in ``<head>``; the figures reference it without loading
    anything from the network.

    Args:
        report: The comparison to render.
        max_examples: Maximum number of fixed and of broken items shown in full.

    Returns:
        The complete HTML document (UTF-8).

    Raises:
        ValueError: If the baseline and tuned item sets differ.
    """
    fixed, broken = changed_items(report.baseline, report.tuned)
    rows = _category_rows(report)
    base_acc, tuned_acc, gain, n = _headline(rows)
    total = rows[-1]

    sections = [
        f"<h1>{_esc(report.title)}</h1>",
        _facts_html(report.facts),
        "<div class='headline'>Accuracy "
        f"<span class='base'>{base_acc}</span> → <span class='tuned'>{tuned_acc}</span> "
        f"<span class='{_delta_class(total.delta)}'>({gain} pts)</span> "
        f"<span class='muted'>on {n} items</span></div>",
        f"<p class='muted'><span style='color:{BASELINE_COLOR}'>■</span> {_esc(report.baseline.label)} "
        f"({_esc(report.baseline.model_ref)}) &nbsp; <span style='color:{TUNED_COLOR}'>■</span> "
        f"{_esc(report.tuned.label)} ({_esc(report.tuned.model_ref)})</p>",
        "<h2>Capabilities</h2>",
        _fig_html(_capability_figure(report, rows), "imts-capabilities", 480),
    ]
    if report.curves is not None:
        sections += ["<h2>Training curves</h2>", _fig_html(_curves_figure(report.curves), "imts-curves", 620)]
    sections += [
        "<h2>Per-category accuracy</h2>",
        _category_table_html(rows),
        f"<h2>Fixed items (wrong → right): {len(fixed)}</h2>",
        _items_html(fixed, max_examples),
        f"<h2>Broken items (right → wrong): {len(broken)}</h2>",
        _items_html(broken, max_examples),
    ]
    if report.extras is not None:
        from imts.evals.court_report import extras_html

        sections.append(extras_html(report.extras))
    # get_plotlyjs() contains no "</script" (checked by the tests), so it is safe to inline verbatim.
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{_esc(report.title)}</title>\n<style>{_STYLE}</style>\n"
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f"<script>{get_plotlyjs()}</script>\n</head>\n<body>\n"
        + "\n".join(s for s in sections if s)
        + "\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------------------------------------
# JSON + writing
# --------------------------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats (a diverged loss) with ``None`` so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def report_to_dict(report: ComparisonReport) -> dict[str, Any]:
    """Convert a report to the JSON-ready dict written as ``report.json``.

    Holds every input plus computed per-category accuracies and the fixed/broken item ids. Non-finite
    floats in the curves become ``None``.

    Args:
        report: The comparison to convert.

    Returns:
        A dict of plain JSON types.

    Raises:
        ValueError: If the baseline and tuned item sets differ.
    """
    fixed, broken = changed_items(report.baseline, report.tuned)
    rows = _category_rows(report)
    total = rows[-1]

    def acc(result: EvalResult) -> dict[str, dict[str, Any]]:
        return {
            cat: {"correct": c, "total": t, "accuracy": None if t == 0 else c / t}
            for cat, (c, t) in accuracy_by_category(result).items()
        }

    data = {
        "schema_version": JSON_SCHEMA_VERSION,
        "title": report.title,
        "facts": dict(report.facts),
        "baseline": asdict(report.baseline),
        "tuned": asdict(report.tuned),
        "curves": None if report.curves is None else asdict(report.curves),
        "computed": {
            "n_items": total.n,
            "accuracy": {"baseline": acc(report.baseline), "tuned": acc(report.tuned)},
            "gain_points": total.delta,
            "fixed_ids": [b.item_id for b, _ in fixed],
            "broken_ids": [b.item_id for b, _ in broken],
        },
    }
    if report.extras is not None:
        data["extras"] = report.extras.to_dict()
    return _json_safe(data)


def _result_from_dict(data: Mapping[str, Any]) -> EvalResult:
    return EvalResult(
        label=data["label"],
        model_ref=data["model_ref"],
        items=[ItemOutcome(**item) for item in data["items"]],
    )


def _floats(values: list[Any]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def report_from_dict(data: Mapping[str, Any]) -> ComparisonReport:
    """Rebuild a report from :func:`report_to_dict` output (e.g. a loaded ``report.json``).

    The ``computed`` section is ignored; curve values stored as ``None`` come back as NaN.

    Args:
        data: The dict to read.

    Returns:
        The reconstructed report.
    """
    curves = data.get("curves")
    return ComparisonReport(
        title=data["title"],
        baseline=_result_from_dict(data["baseline"]),
        tuned=_result_from_dict(data["tuned"]),
        curves=None
        if curves is None
        else TrainingCurves(
            step=[int(s) for s in curves["step"]],
            loss=_floats(curves["loss"]),
            lr=_floats(curves["lr"]),
            grad_norm=_floats(curves["grad_norm"]),
            tokens_per_s=_floats(curves["tokens_per_s"]),
            val_step=[int(s) for s in curves.get("val_step", [])],
            val_loss=_floats(curves.get("val_loss", [])),
        ),
        facts={str(k): str(v) for k, v in data.get("facts", {}).items()},
    )


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_report(report: ComparisonReport, out_dir: Path) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and ``report.json`` into ``out_dir`` atomically.

    Everything is rendered before anything is written; each file goes to a temporary file in ``out_dir``
    and is moved into place with :func:`os.replace`, so readers never see a partial file.

    Args:
        report: The comparison to write.
        out_dir: Destination folder (created if missing).

    Returns:
        ``{"html": path, "md": path, "json": path}``.

    Raises:
        ValueError: If the baseline and tuned item sets differ.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {
        "html": render_html(report),
        "md": render_markdown(report),
        "json": json.dumps(report_to_dict(report), ensure_ascii=False, indent=2, allow_nan=False) + "\n",
    }
    paths = {kind: out_dir / f"report.{kind}" for kind in contents}
    for kind, text in contents.items():
        _atomic_write_text(paths[kind], text)
    return paths
