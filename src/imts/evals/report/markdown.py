"""The report as a short Markdown summary meant for a terminal."""

from __future__ import annotations

from imts.evals.report.i18n import Lang, check_lang, t
from imts.evals.report.model import (
    ALL,
    ComparisonReport,
    ItemOutcome,
    ReportExtras,
    category_rows,
    changed_items,
    fmt_delta,
    fmt_pct,
    one_line,
)

__all__ = ["extras_markdown", "render_markdown"]

_SNIPPET_CHARS = 80


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")


def _code(text: str) -> str:
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


def _answer(item: ItemOutcome, lang: Lang) -> str:
    """The extracted number, or a snippet of the prediction when nothing was extracted."""
    if item.extracted is not None:
        return _code(one_line(item.extracted, 40))
    return f"{t('md_none_from', lang)} " + _code(one_line(item.prediction, 40))


def _example(before: ItemOutcome, after: ItemOutcome, lang: Lang) -> str:
    prompt = _code(one_line(before.prompt, _SNIPPET_CHARS))
    return (
        f"- {_code(before.item_id)} [{_cell(before.category)}/{_cell(before.lang)}] {prompt}"
        f" · {t('md_ref', lang)} {_code(one_line(before.reference, 40))}"
        f" · {t('baseline', lang)} {_answer(before, lang)} → {t('tuned', lang)} {_answer(after, lang)}"
    )


def render_markdown(report: ComparisonReport, max_examples: int = 5, lang: Lang = "en") -> str:
    """Render the comparison as a short Markdown summary for a terminal.

    Args:
        report: The comparison to render.
        max_examples: Maximum number of fixed and of broken items listed (each as one line).
        lang: Language of the headings, labels and sentences.

    Returns:
        Markdown text: title, headline, a per-category table and the fixed/broken items.

    Raises:
        ValueError: If the baseline and tuned item sets differ, or ``lang`` is unknown.
    """
    lang = check_lang(lang)
    fixed, broken = changed_items(report.baseline, report.tuned)
    rows = category_rows(report)
    total = rows[-1]
    lines = [
        f"# {_cell(report.heading(lang))}",
        "",
        f"**{t('accuracy_colon', lang)}** {fmt_pct(total.base_pct)} → {fmt_pct(total.tuned_pct)}"
        f" ({fmt_delta(total.delta)} {t('pts', lang)}) {t('on_items', lang, n=total.n)}"
        f" · {t('baseline_colon', lang)} {_cell(report.baseline.label)}"
        f" · {t('tuned_colon', lang)} {_cell(report.tuned.label)}",
        "",
        "| " + " | ".join(t(k, lang) for k in ("category", "n", "baseline", "tuned", "delta_pts")) + " |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        name = f"**{t('all', lang)}**" if row.category == ALL else _cell(row.category)
        cells = [name, str(row.n), fmt_pct(row.base_pct), fmt_pct(row.tuned_pct), fmt_delta(row.delta)]
        lines.append("| " + " | ".join(cells) + " |")
    for key, pairs in (("md_fixed", fixed), ("md_broken", broken)):
        lines += ["", f"**{t(key, lang, n=len(pairs))}**"]
        if pairs:
            lines.append("")
            lines += [_example(b, a, lang) for b, a in pairs[: max(max_examples, 0)]]
            if len(pairs) > max_examples:
                lines.append(f"- {t('md_more', lang, n=len(pairs) - max(max_examples, 0))}")
    if report.extras is not None:
        lines.append(extras_markdown(report.extras, lang))
    return "\n".join(lines) + "\n"


def extras_markdown(extras: ReportExtras, lang: Lang = "en") -> str:
    """Significance table, ranking and bad-case clusters as Markdown (appended to the summary)."""
    lines = ["", t("md_significance", lang), ""]
    lines += [t("md_significance_header", lang), "|---|---|---:|---:|---:|---:|"]
    for s in extras.significance:
        lines.append(
            f"| {s.a} | {s.b} | {s.accuracy_a:.1%} → {s.accuracy_b:.1%} | {s.only_a} / {s.only_b} | "
            f"{s.p_value:.3g} ({s.method}) | {s.diff:+.3f} [{s.low:+.3f}, {s.high:+.3f}] |"
        )
    if extras.ranking:
        ranking = " > ".join(f"{k} ({v:.2f})" for k, v in extras.ranking.items())
        lines += ["", t("md_ranking", lang, ranking=ranking)]
    if extras.clusters:
        lines += ["", t("md_clusters", lang), ""]
        lines += [
            "- "
            + t(
                "md_cluster",
                lang,
                label=c.label,
                size=c.size,
                before=f"{c.error_before:.0%}",
                after=f"{c.error_after:.0%}",
            )
            for c in extras.clusters
        ]
    return "\n".join(lines) + "\n"
