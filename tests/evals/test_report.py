"""Tests for the before/after comparison report (the imts.evals.report package)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from imts.evals.report import (
    BASELINE_COLOR,
    TUNED_COLOR,
    ComparisonReport,
    EvalResult,
    ItemOutcome,
    TrainingCurves,
    accuracy_by_category,
    changed_items,
    render_html,
    render_markdown,
    report_from_dict,
    report_to_dict,
    write_report,
)

PLOTLY_MARKER = "* plotly.js v"  # header comment of the bundled plotly.js


def _figures(page: str) -> dict[str, tuple[list[dict], dict]]:
    """div id -> (traces, layout) of every ``Plotly.newPlot`` call in the page."""
    decoder = json.JSONDecoder()
    figures = {}
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        traces, end = decoder.raw_decode(page, m.end())
        layout_start = re.compile(r",\s*").match(page, end).end()
        layout, _ = decoder.raw_decode(page, layout_start)
        figures[m.group(1)] = (traces, layout)
    return figures


def _item(
    item_id: str, category: str, lang: str, prompt: str, ref: str, pred: str, correct: bool
) -> ItemOutcome:
    extracted = re.findall(r"-?\d+(?:\.\d+)?", pred)
    return ItemOutcome(
        item_id=item_id,
        category=category,
        lang=lang,
        prompt=prompt,
        reference=ref,
        prediction=pred,
        extracted=extracted[-1] if extracted else None,
        correct=correct,
    )


# (id, category, lang, prompt, reference, baseline correct, tuned correct)
_SPEC = [
    ("add-1", "addition", "en", "What is 7 + 9?", "16", True, True),
    ("add-2", "addition", "zh", "小明有 3 个苹果，又买了 5 个，一共有几个？", "8", False, True),
    ("add-3", "addition", "en", "What is 12 + 30?", "42", False, True),
    ("div-1", "division", "zh", "24 除以 6 等于多少？", "4", True, False),
    ("div-2", "division", "en", "What is 81 / 9?", "9", True, True),
    ("ms-1", "multi_step", "zh", "一本书 12 元，买 3 本再减去 5 元优惠，要付多少钱？", "31", False, False),
    ("ms-2", "multi_step", "en", "Tom has 4 boxes of 6 eggs, breaks 3 | how many left?", "21", False, True),
    ("ms-3", "multi_step", "en", "A train goes 60 km/h for 2.5 hours. Distance?", "150", True, True),
]


def _result(side: str, spec: list[tuple[str, str, str, str, str, bool, bool]] = _SPEC) -> EvalResult:
    items = []
    for item_id, cat, lang, prompt, ref, base_ok, tuned_ok in spec:
        ok = base_ok if side == "baseline" else tuned_ok
        pred = f"The answer is {ref}." if ok else f"I think it is {int(ref) + 1}. <b>sure</b>"
        items.append(_item(item_id, cat, lang, prompt, ref, pred, ok))
    label = "baseline (smollm2-135m-instruct)" if side == "baseline" else "tuned (run r_123)"
    return EvalResult(label=label, model_ref=f"{side}-ref", items=items)


def _curves() -> TrainingCurves:
    steps = list(range(0, 100, 10))
    return TrainingCurves(
        step=steps,
        loss=[2.0 / (1 + s / 20) for s in steps],
        lr=[1e-4 * min(1.0, (s + 1) / 20) for s in steps],
        grad_norm=[1.0 + 0.1 * (s % 3) for s in steps],
        tokens_per_s=[1500.0 + s for s in steps],
        val_step=[0, 50, 90],
        val_loss=[2.1, 1.3, 1.1],
    )


def _report(curves: TrainingCurves | None = None, spec=_SPEC) -> ComparisonReport:
    return ComparisonReport(
        title="算术 fine-tune: before / after",
        baseline=_result("baseline", spec),
        tuned=_result("tuned", spec),
        curves=curves,
        facts={"base model": "smollm2-135m-instruct", "dataset version": "ds_v3", "run id": "r_123"},
    )


# ---------------------------------------------------------------------------------------------------------


def test_accuracy_by_category() -> None:
    base = accuracy_by_category(_result("baseline"))
    tuned = accuracy_by_category(_result("tuned"))
    assert base == {"addition": (1, 3), "division": (2, 2), "multi_step": (1, 3), "all": (4, 8)}
    assert tuned == {"addition": (3, 3), "division": (1, 2), "multi_step": (2, 3), "all": (6, 8)}
    assert list(base) == ["addition", "division", "multi_step", "all"]


def test_accuracy_empty_and_reserved_name() -> None:
    assert accuracy_by_category(EvalResult("x", "m", [])) == {"all": (0, 0)}
    bad = EvalResult("x", "m", [_item("a", "all", "en", "p", "1", "1", True)])
    with pytest.raises(ValueError, match="reserved"):
        accuracy_by_category(bad)


def test_changed_items() -> None:
    fixed, broken = changed_items(_result("baseline"), _result("tuned"))
    assert [b.item_id for b, _ in fixed] == ["add-2", "add-3", "ms-2"]
    assert [b.item_id for b, _ in broken] == ["div-1"]
    for before, after in fixed + broken:
        assert before.item_id == after.item_id
        assert before.correct != after.correct
    assert all(not b.correct and t.correct for b, t in fixed)


def test_changed_items_matches_by_id_not_position() -> None:
    tuned = _result("tuned")
    shuffled = EvalResult(tuned.label, tuned.model_ref, list(reversed(tuned.items)))
    fixed, broken = changed_items(_result("baseline"), shuffled)
    assert [b.item_id for b, _ in fixed] == ["add-2", "add-3", "ms-2"]
    assert [b.item_id for b, _ in broken] == ["div-1"]


def test_changed_items_mismatch_names_ids() -> None:
    base = _result("baseline")
    tuned = _result("tuned")
    tuned_items = [i for i in tuned.items if i.item_id != "div-2"]
    tuned_items.append(_item("extra-9", "addition", "en", "1+1", "2", "2", True))
    with pytest.raises(ValueError) as exc:
        changed_items(base, EvalResult(tuned.label, tuned.model_ref, tuned_items))
    msg = str(exc.value)
    assert "div-2" in msg and "extra-9" in msg
    assert "missing from tuned" in msg and "missing from baseline" in msg
    with pytest.raises(ValueError, match="div-2"):
        render_markdown(_report().__class__("t", base, EvalResult("t", "m", tuned_items), None, {}))


def test_changed_items_duplicate_ids() -> None:
    base = _result("baseline")
    dup = EvalResult(base.label, base.model_ref, [*base.items, base.items[0]])
    with pytest.raises(ValueError, match=r"duplicate.*add-1"):
        changed_items(dup, _result("tuned"))


# ---------------------------------------------------------------------------------------------------------


def test_plotly_bundle_is_inline_safe() -> None:
    js = get_plotlyjs()
    assert js.count(PLOTLY_MARKER) == 1
    assert "</script" not in js.lower()


def test_html_embeds_plotly_once_and_no_network() -> None:
    page = render_html(_report(_curves()))
    assert page.count(PLOTLY_MARKER) == 1
    assert page.count("Plotly.newPlot(") == 2  # radar + curves
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert not re.search(r"<link[^>]*https?://", page, re.IGNORECASE)
    # outside the plotly.js bundle itself (which only mentions a topojson URL for geo maps): no URLs at all
    rest = page.replace(get_plotlyjs(), "")
    assert len(rest) < 100_000
    assert not re.search(r"https?://", rest)
    assert '<meta charset="utf-8">' in page.lower() or "<meta charset='utf-8'>" in page.lower()


def test_html_radar_colours_and_order() -> None:
    page = render_html(_report(_curves()))
    figures = _figures(page)
    assert set(figures) == {"imts-capabilities", "imts-curves"}
    radar, layout = figures["imts-capabilities"]
    assert [t["type"] for t in radar] == ["scatterpolar", "scatterpolar"]
    assert [t["line"]["color"] for t in radar] == [BASELINE_COLOR, TUNED_COLOR]
    assert [t["fillcolor"] for t in radar] == ["rgba(31, 119, 180, 0.25)", "rgba(214, 39, 40, 0.25)"]
    assert all(t["fill"] == "toself" for t in radar)
    assert radar[0]["theta"] == ["addition", "division", "multi_step", "addition"]  # closed polygon
    assert radar[1]["r"] == pytest.approx([100.0, 50.0, 200 / 3, 100.0])
    assert layout["polar"]["radialaxis"]["range"] == [0, 100]
    curves, curves_layout = figures["imts-curves"]
    assert [t["name"] for t in curves] == ["train loss", "val loss", "learning rate", "grad norm", "tokens/s"]
    assert {t.get("xaxis", "x") for t in curves} == {"x", "x2", "x3", "x4"}  # 2x2 grid
    assert curves_layout["xaxis4"]["title"]["text"] == "step"
    body = page[page.index("<body>") :]
    order = [
        "<h1>",
        "smollm2-135m-instruct",  # facts table
        "class='headline'",
        "imts-capabilities",
        "imts-curves",
        "Per-category accuracy",
        "Fixed items",
        "Broken items",
    ]
    positions = [body.index(marker) for marker in order]
    assert positions == sorted(positions)


def test_html_content() -> None:
    page = render_html(_report(_curves()))
    # headline: 50% -> 75%, +25 points on 8 items
    assert "50.0%" in page and "75.0%" in page and "(+25.0 pts)" in page and "on 8 items" in page
    # Chinese text passes through unescaped; predictions are HTML-escaped
    assert "小明有 3 个苹果" in page
    assert "<b>sure</b>" not in page and "&lt;b&gt;sure&lt;/b&gt;" in page
    assert "Fixed items (wrong → right): 3" in page and "Broken items (right → wrong): 1" in page
    assert "class='num pos'>+66.7" in page  # addition 33.3% -> 100%
    assert "class='num neg'>-50.0" in page  # division 100% -> 50%
    # no curves -> no curves figure
    assert "imts-curves" not in render_html(_report(None))


def test_html_max_examples_and_truncation() -> None:
    spec = [(f"i{k}", "addition", "en", f"{k} + 1?", str(k + 1), False, True) for k in range(30)]
    report = _report(spec=spec)
    long_pred = "x" * 5000
    items = [ItemOutcome(**{**i.__dict__, "prediction": long_pred}) for i in report.tuned.items]
    report = ComparisonReport(report.title, report.baseline, EvalResult("t", "m", items), None, {})
    page = render_html(report, max_examples=4)
    assert page.count("<div class='item'>") == 4
    assert "Showing 4 of 30" in page
    assert "x" * 401 not in page and "x" * 300 in page


def test_html_bar_fallback_for_few_categories() -> None:
    spec = [s for s in _SPEC if s[1] in ("addition", "division")]
    traces, layout = _figures(render_html(_report(spec=spec)))["imts-capabilities"]
    assert [t["type"] for t in traces] == ["bar", "bar"]
    assert layout["barmode"] == "group"
    assert [t["marker"]["line"]["color"] for t in traces] == [BASELINE_COLOR, TUNED_COLOR]
    assert traces[0]["x"] == ["addition", "division"]


def test_html_escapes_hostile_category() -> None:
    spec = [(f"h{k}", "</script><i>x", "en", "p", "1", k % 2 == 0, True) for k in range(3)]
    page = render_html(_report(spec=spec))
    assert "</script><i>x" not in page


# ---------------------------------------------------------------------------------------------------------


def test_markdown() -> None:
    md = render_markdown(_report(_curves()), max_examples=2)
    lines = md.splitlines()
    assert lines[0] == "# 算术 fine-tune: before / after"
    assert any(line.startswith("**Accuracy:** 50.0% → 75.0% (+25.0 pts) on 8 items") for line in lines)
    header = lines.index("| category | n | baseline | tuned | Δ pts |")
    assert lines[header + 1] == "|---|---:|---:|---:|---:|"
    assert lines[header + 2 : header + 6] == [
        "| addition | 3 | 33.3% | 100.0% | +66.7 |",
        "| division | 2 | 100.0% | 50.0% | -50.0 |",
        "| multi_step | 3 | 33.3% | 66.7% | +33.3 |",
        "| **all** | 8 | 50.0% | 75.0% | +25.0 |",
    ]
    for row in lines[header : header + 6]:
        assert row.count("|") == 6
    assert "**Fixed (wrong → right): 3**" in lines
    assert "**Broken (right → wrong): 1**" in lines
    examples = [line for line in lines if line.startswith("- `")]
    assert len(examples) == 3  # 2 fixed (capped) + 1 broken
    assert "- … and 1 more" in lines
    assert all(len(line) < 300 for line in examples)
    assert any("小明有" in line for line in examples)


def test_markdown_escapes_pipes_in_cells() -> None:
    spec = [(f"p{k}", "a|b", "en", "p", "1", True, True) for k in range(2)]
    md = render_markdown(_report(spec=spec))
    assert "| a\\|b | 2 | 100.0% | 100.0% | +0.0 |" in md.splitlines()


# ---------------------------------------------------------------------------------------------------------


def test_write_report(tmp_path: Path) -> None:
    report = _report(_curves())
    out = tmp_path / "nested" / "eval"
    paths = write_report(report, out)
    assert paths == {"html": out / "report.html", "md": out / "report.md", "json": out / "report.json"}
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    assert paths["html"].read_text(encoding="utf-8") == render_html(report)
    assert paths["md"].read_text(encoding="utf-8") == render_markdown(report)

    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert report_from_dict(data) == report
    assert data["computed"]["accuracy"]["baseline"]["all"] == {"correct": 4, "total": 8, "accuracy": 0.5}
    assert data["computed"]["accuracy"]["tuned"]["addition"]["correct"] == 3
    assert data["computed"]["fixed_ids"] == ["add-2", "add-3", "ms-2"]
    assert data["computed"]["broken_ids"] == ["div-1"]
    assert data["computed"]["gain_points"] == pytest.approx(25.0)
    assert "小明有" in paths["json"].read_text(encoding="utf-8")  # not \u-escaped

    # overwrite in place: still exactly three files, no temp leftovers
    write_report(report, out)
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]


def test_json_handles_non_finite_and_missing_curves(tmp_path: Path) -> None:
    curves = _curves()
    curves = TrainingCurves(**{**curves.__dict__, "loss": [*curves.loss[:-1], math.nan]})
    paths = write_report(_report(curves), tmp_path)
    data = json.loads(paths["json"].read_text(encoding="utf-8"))  # strict JSON (no NaN tokens)
    assert data["curves"]["loss"][-1] is None
    assert math.isnan(report_from_dict(data).curves.loss[-1])

    no_curves = _report(None)
    assert report_from_dict(json.loads(json.dumps(report_to_dict(no_curves)))) == no_curves


def test_write_report_failure_leaves_nothing(tmp_path: Path) -> None:
    base = _result("baseline")
    bad = ComparisonReport("t", base, EvalResult("t", "m", base.items[:-1]), None, {})
    with pytest.raises(ValueError):
        write_report(bad, tmp_path)
    assert list(tmp_path.iterdir()) == []
