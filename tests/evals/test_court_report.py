"""Significance, win rates, ranking and bad-case clusters in the report; the page drawn in Chromium."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from imts.evals.analysis import build_extras
from imts.evals.report import ComparisonReport, EvalResult, ItemOutcome, render_markdown, write_report

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _results(mathgen: ModuleType) -> list[EvalResult]:
    rows, _ = mathgen.generate(120, 0)
    rows = rows[:60]
    rng = random.Random(0)
    # Each model is right where its skill beats the item's difficulty: v2 > v1 > base, nested.
    difficulty = [rng.random() for _ in rows]
    out = []
    for label, skill in (("base", 0.3), ("v1", 0.55), ("v2", 0.85)):
        items = [
            ItemOutcome(
                r["id"],
                r["category"],
                r["lang"],
                r["prompt"],
                r["answer"],
                f"The answer is {r['answer'] if d < skill else 0}.",
                r["answer"] if d < skill else "0",
                d < skill,
            )
            for r, d in zip(rows, difficulty, strict=True)
        ]
        out.append(EvalResult(label, label, items))
    return out


@pytest.fixture(scope="module")
def report(mathgen: ModuleType) -> ComparisonReport:
    results = _results(mathgen)
    comments = {i.item_id: "math: wrong_answer (final answer 0 != expected)" for i in results[-1].items}
    extras = build_extras(results, comments)
    return ComparisonReport("Three versions", results[0], results[-1], None, {"models": "3"}, extras)


def test_extras_rank_and_test_significance(report: ComparisonReport) -> None:
    ex = report.extras
    assert list(ex.ranking) == ["v2", "v1", "base"]
    pairs = {(s.a, s.b): s for s in ex.significance}
    assert set(pairs) == {("base", "v1"), ("v1", "v2"), ("base", "v2")}
    big = pairs[("base", "v2")]
    assert big.only_a == 0 and big.only_b > 20 and big.p_value < 1e-4 and big.low > 0
    rates = {(w["a"], w["b"]): w for w in ex.win_rate}
    assert rates[("v2", "base")]["rate"] > 0.5 > rates[("base", "v2")]["rate"]
    assert len(rates) == 6


def test_clusters_label_and_compare_error_rates(report: ComparisonReport) -> None:
    clusters = report.extras.clusters
    assert clusters and sum(c.size for c in clusters) == sum(
        not (b.correct and a.correct) for b, a in zip(report.baseline.items, report.tuned.items, strict=True)
    )
    for c in clusters:
        assert c.label.startswith(c.category) and c.terms and c.error_before >= c.error_after
        assert c.examples and c.examples[0]["judges"].startswith("math: wrong_answer")
    md = render_markdown(report)
    assert "**Ranking** (Bradley–Terry): v2" in md and "Bad-case clusters" in md


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make test installs it)"
)
def test_report_draws_in_chromium(report: ComparisonReport, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    paths = write_report(report, tmp_path / "out")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(paths["html"].as_uri())
        page.wait_for_selector("#imts-winrate .main-svg", timeout=30000)
        drawn = {
            div: page.locator(f"#{div} .main-svg").count()
            for div in ("imts-capabilities", "imts-winrate", "imts-clusters")
        }
        heat = page.locator("#imts-winrate .heatmaplayer image, #imts-winrate .hm").count()
        bars = page.locator("#imts-clusters .bars .point").count()
        browser.close()
    assert errors == []
    assert all(n >= 1 for n in drawn.values()), drawn
    assert heat >= 1 and bars == 2 * len(report.extras.clusters)
    assert shutil.which("chromium") == CHROMIUM or Path(CHROMIUM).exists()
