"""The report in Chinese and English: the string catalogue, Markdown and HTML in both languages."""

from __future__ import annotations

import json
import re
import string
from dataclasses import replace
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from imts.evals.report import (
    Cluster,
    ComparisonReport,
    EvalResult,
    ItemOutcome,
    PairSignificance,
    ReportExtras,
    TrainingCurves,
    render_html,
    render_markdown,
    report_from_dict,
    report_to_dict,
    write_report,
)
from imts.evals.report.i18n import CATALOGUE, LANGS, t

# (id, category, prompt, reference, baseline correct, tuned correct): Chinese data, so that any English left
# in the zh rendering comes from the report itself.
_SPEC = [
    ("题1", "加法", "3 加 5 等于多少？", "8", False, True),
    ("题2", "加法", "12 加 30 等于多少？", "42", True, True),
    ("题3", "除法", "24 除以 6 等于多少？", "4", True, False),
    ("题4", "乘法", "7 乘 6 等于多少？", "42", False, True),
]


def _result(label: str, tuned: bool) -> EvalResult:
    items = []
    for item_id, cat, prompt, ref, base_ok, tuned_ok in _SPEC:
        ok = tuned_ok if tuned else base_ok
        answer = ref if ok else str(int(ref) + 1)
        items.append(ItemOutcome(item_id, cat, "zh", prompt, ref, f"答案是 {answer}。", answer, ok))
    return EvalResult(label, label, items)


def _report() -> ComparisonReport:
    extras = ReportExtras(
        models=["基线", "微调"],
        significance=[PairSignificance("基线", "微调", 4, 0.5, 0.75, 1, 2, 0.62, "exact", 0.25, -0.5, 0.75)],
        win_rate=[
            {"a": "基线", "b": "微调", "rate": 0.3, "low": 0.1, "high": 0.6, "n": 4},
            {"a": "微调", "b": "基线", "rate": 0.7, "low": 0.4, "high": 0.9, "n": 4},
        ],
        ranking={"微调": 1.2, "基线": 0.8},
        clusters=[
            Cluster("加法：加，等于", "加法", ["加", "等于"], 2, 0.5, 0.0, [
                {"item_id": "题1", "prompt": "3 加 5 等于多少？", "before": "答案是 9。",
                 "after": "答案是 8。", "reference": "8", "judges": "数学：答错"},
            ]),
        ],
    )  # fmt: skip
    return ComparisonReport(
        title="算术微调：前后对比",
        baseline=_result("基线", tuned=False),
        tuned=_result("微调", tuned=True),
        curves=TrainingCurves(
            step=[0, 10],
            loss=[2.0, 1.0],
            lr=[1e-4, 1e-4],
            grad_norm=[1.0, 0.9],
            tokens_per_s=[900.0, 950.0],
            val_step=[10],
            val_loss=[1.2],
        ),
        facts={"base model": "smollm2", "training run": "r_1"},
        extras=extras,
    )


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_catalogue_has_every_language_with_the_same_placeholders() -> None:
    for key, texts in CATALOGUE.items():
        assert set(texts) == set(LANGS), key
        assert _fields(texts["zh"]) == _fields(texts["en"]), key
    assert t("on_items", "zh", n=3) == "共 3 个样本"
    with pytest.raises(ValueError, match="fr"):
        t("accuracy", "fr")  # type: ignore[arg-type]


def test_markdown_in_chinese_has_no_english_left() -> None:
    md = render_markdown(_report(), lang="zh")
    for heading in (
        "准确率",
        "类别",
        "修正（错 → 对）：2",
        "退化（对 → 错）：1",
        "**全部**",
        "显著性",
        "**排名**",
        "错例聚类",
    ):
        assert heading in md, heading
    # Only proper names, the item language and the test's method name may stay in Latin letters.
    allowed = {"McNemar", "Bradley", "Terry", "bootstrap", "zh", "exact"}
    assert set(re.findall(r"[A-Za-z]{2,}", md)) <= allowed
    en = render_markdown(_report())
    assert "| category | n | baseline | tuned | Δ pts |" in en and "**Ranking** (Bradley–Terry)" in en


def _figures(page: str) -> dict[str, tuple[list[dict], dict]]:
    """div id -> (traces, layout) of every ``Plotly.newPlot`` call in the page (its JSON escapes CJK)."""
    decoder = json.JSONDecoder()
    figures = {}
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        traces, end = decoder.raw_decode(page, m.end())
        layout, _ = decoder.raw_decode(page, re.compile(r",\s*").match(page, end).end())
        figures[m.group(1)] = (traces, layout)
    return figures


ZH_HTML = [
    *("能力分布", "训练曲线", "各类别准确率", "修正的样本（错 → 对）：2", "退化的样本（对 → 错）：1"),
    *("基座模型", "训练运行", "参考答案：", "显著性（配对检验，同一批样本）", "胜率与排名", "错例聚类"),
    "评审意见：数学：答错",
]
EN_HTML = [
    *("Capabilities", "Training curves", "Per-category accuracy", "Fixed items (wrong → right): 2"),
    *("base model", "Significance (paired, same items)", "Win rates and ranking", "Bad-case clusters"),
]


@pytest.mark.parametrize("lang", LANGS)
def test_html_in_both_languages(lang: str) -> None:
    page = render_html(_report(), lang=lang).replace(get_plotlyjs(), "")  # type: ignore[arg-type]
    assert f"<html lang='{lang}'>" in page
    shown, absent = (ZH_HTML, EN_HTML) if lang == "zh" else (EN_HTML, ZH_HTML)
    assert [s for s in shown if s not in page] == []
    assert [s for s in absent if s in page] == []
    figures = _figures(page)
    curves, curves_layout = figures["imts-curves"]
    assert curves[0]["name"] == t("train_loss", lang)  # type: ignore[arg-type]
    assert curves_layout["xaxis"]["title"]["text"] == t("step", lang)  # type: ignore[arg-type]
    assert figures["imts-winrate"][1]["title"]["text"] == t("win_rate_title", lang)  # type: ignore[arg-type]
    clusters, _ = figures["imts-clusters"]
    assert [c["name"] for c in clusters] == [t("error_before", lang), t("error_after", lang)]  # type: ignore[arg-type]


def test_write_report_in_chinese(tmp_path: Path) -> None:
    paths = write_report(_report(), tmp_path, lang="zh")
    assert paths["md"].read_text(encoding="utf-8") == render_markdown(_report(), lang="zh")
    assert "<html lang='zh'>" in paths["html"].read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="unknown report language"):
        write_report(_report(), tmp_path / "x", lang="fr")  # type: ignore[arg-type]


def test_title_follows_the_report_language() -> None:
    report = replace(
        _report(),
        title="Before / after fine-tuning: smollm2 -> m:1",
        title_key="title.before_after",
        title_args={"base": "smollm2", "model": "m:1"},
    )
    assert render_markdown(report, lang="zh").startswith("# 微调前后对比：smollm2 -> m:1")
    assert render_markdown(report).startswith("# Before / after fine-tuning: smollm2 -> m:1")
    assert "<h1>微调前后对比：smollm2 -&gt; m:1</h1>" in render_html(report, lang="zh")
    again = report_from_dict(json.loads(json.dumps(report_to_dict(report))))
    assert again.heading("zh") == "微调前后对比：smollm2 -> m:1"
