"""The dataset health report in Markdown, HTML (self-contained: plotly.js inline, the semantic map as a
scatter) and JSON, in English or Chinese.
"""

from __future__ import annotations

import html
from pathlib import Path

from imts.analysis.pipeline import Analysis

_T: dict[str, tuple[str, str]] = {
    "title": ("Dataset health report", "数据集健康报告"),
    "intent": ("Intent", "目标"),
    "task": ("Task type", "任务类型"),
    "domain": ("Domain", "领域"),
    "abilities": ("Abilities", "所需能力"),
    "languages": ("Languages", "语言"),
    "form": ("Answer form", "回答形式"),
    "fit": ("Fit check", "匹配度检查"),
    "verdict": ("Verdict", "结论"),
    "fits": ("fits the intent", "符合目标"),
    "partial": ("partly fits the intent", "部分符合目标"),
    "refused": ("refused: the data does not serve the intent", "拒绝：数据与目标不符"),
    "forced": ("refused, continued with --force (recorded)", "已拒绝，但使用 --force 强制继续（已记录）"),
    "health": ("Health score", "健康分"),
    "sub": ("Sub-score", "分项"),
    "score": ("Score", "得分"),
    "reason": ("Reason", "原因"),
    "profile": ("Profile", "数据概况"),
    "rows": ("Rows", "行数"),
    "tokens": ("Tokens (prompt / response, mean, p95, max)", "Token 数（问题 / 回答：均值、p95、最大）"),
    "tokenizer": ("Tokenizer", "分词器"),
    "dups": ("Exact / near duplicates", "完全 / 近似重复"),
    "forms": ("Answer forms", "回答形式分布"),
    "balance": ("Category balance", "类别分布"),
    "source": ("Source", "来源"),
    "findings": ("Findings", "发现的问题"),
    "kind": ("Kind", "类型"),
    "severity": ("Severity", "严重程度"),
    "rows_n": ("Rows", "行数"),
    "action": ("Action", "建议操作"),
    "message": ("What", "说明"),
    "examples": ("Examples", "示例"),
    "map": ("Semantic map", "语义地图"),
    "cluster": ("Cluster", "聚类"),
    "share": ("Share", "占比"),
    "category": ("Main category", "主要类别"),
    "coverage": ("Coverage of expected sub-skills", "期望子技能覆盖率"),
    "question": ("The intent is too vague", "目标描述过于模糊"),
    "sample": ("rows embedded", "行已嵌入"),
    "none": ("No problem found.", "未发现问题。"),
}
_SOURCES = {
    "field": ("the category field", "类别字段"),
    "inferred_operations": ("inferred from the operations each problem needs", "根据每道题所需的运算推断"),
    "clusters": ("the semantic clusters", "语义聚类"),
}


def t(key: str, lang: str) -> str:
    return _T[key][1 if lang.startswith("zh") else 0]


def _verdict(a: Analysis, lang: str) -> str:
    return t("forced" if a.fit.forced else a.fit.verdict, lang)


def _zh(lang: str) -> bool:
    return lang.startswith("zh")


def markdown(a: Analysis, lang: str | None = None) -> str:
    lang = lang or a.lang
    zh = _zh(lang)
    s = a.spec
    out = [
        f"# {t('title', lang)}: {a.version}",
        "",
        f"- **{t('intent', lang)}**: {s.intent}",
        f"- **{t('task', lang)}**: {s.task_name(lang)} ({s.method})",
        f"- **{t('domain', lang)}**: {s.domain or '-'}",
        f"- **{t('abilities', lang)}**: {', '.join(s.abilities) or '-'}",
        f"- **{t('languages', lang)}**: {', '.join(s.languages) or '-'}",
        f"- **{t('form', lang)}**: {s.answer_form or '-'}",
        "",
        f"## {t('fit', lang)}",
        "",
        f"**{t('verdict', lang)}**: {_verdict(a, lang)} — {a.fit.reason_zh if zh else a.fit.reason_en}",
    ]
    suggestion = a.fit.suggestion_zh if zh else a.fit.suggestion_en
    if suggestion:
        out += ["", f"> {suggestion}"]
    if a.health:
        out += ["", f"## {t('health', lang)}: {a.health.score:.0f} / 100", ""]
        out += [f"| {t('sub', lang)} | {t('score', lang)} | {t('reason', lang)} |", "|---|---:|---|"]
        out += [
            f"| {x.name} | {x.score:.0f} | {x.reason_zh if zh else x.reason_en} |"
            for x in a.health.sub_scores
        ]
    if a.profile:
        p = a.profile
        out += [
            "",
            f"## {t('profile', lang)}",
            "",
            f"- {t('rows', lang)}: {p.rows} ({p.format})",
            f"- {t('tokenizer', lang)}: {p.tokenizer}",
            f"- {t('tokens', lang)}: {p.prompt_tokens.mean} / {p.response_tokens.mean}, "
            f"{p.prompt_tokens.p95} / {p.response_tokens.p95}, "
            f"{p.prompt_tokens.max} / {p.response_tokens.max}",
            f"- {t('languages', lang)}: {', '.join(f'{k} {v}' for k, v in p.languages.items())}",
            f"- {t('dups', lang)}: {p.exact_duplicates} / {p.near_duplicates}",
            f"- {t('forms', lang)}: {', '.join(f'{k} {v}' for k, v in p.answer_forms.items())}",
        ]
    if a.health and a.health.balance:
        b = a.health.balance
        src = _SOURCES[b.source][1 if zh else 0]
        out += ["", f"## {t('balance', lang)}", "", f"{t('source', lang)}: {src}", ""]
        out += [f"- {k}: {v:.1%}" for k, v in b.shares.items()]
    out += ["", f"## {t('findings', lang)}", ""]
    if not a.findings:
        out.append(t("none", lang))
    for f in a.findings:
        out += [
            f"### {f.kind.value} ({f.severity.value}) — {len(f.row_ids)} {t('rows_n', lang).lower()}",
            "",
            f.message(lang),
            "",
            f"{t('action', lang)}: `{f.action.value}`",
        ]
        if f.examples:
            out += ["", f"{t('examples', lang)}:"]
            out += [f"- `{e.get('id')}`: {str(e.get('prompt', ''))[:120]!s}" for e in f.examples]
        out.append("")
    if a.semantic and a.semantic.clusters:
        m = a.semantic
        out += ["", f"## {t('map', lang)} ({m.sample} {t('sample', lang)})", ""]
        out += [f"| {t('cluster', lang)} | {t('share', lang)} | {t('category', lang)} |", "|---|---:|---|"]
        out += [f"| {c.label} | {c.share:.1%} | {c.category or '-'} |" for c in m.clusters]
        if m.coverage:
            out += ["", f"{t('coverage', lang)}: " + ", ".join(f"{k} {v:.1%}" for k, v in m.coverage.items())]
    return "\n".join(out) + "\n"


def _scatter(a: Analysis) -> str:
    import plotly.graph_objects as go
    import plotly.io as pio

    m = a.semantic
    if m is None or not m.points:
        return ""
    fig = go.Figure()
    for c in m.clusters:
        pts = [(x, y, rid) for (x, y, k), rid in zip(m.points, m.ids, strict=True) if k == c.id]
        fig.add_trace(
            go.Scattergl(
                x=[p[0] for p in pts],
                y=[p[1] for p in pts],
                text=[p[2] for p in pts],
                mode="markers",
                marker={"size": 4},
                name=f"{c.label} ({c.share:.0%})",
            )
        )
    fig.update_layout(height=520, template="plotly_white", margin={"l": 40, "r": 20, "t": 30, "b": 40})
    return str(pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id="semantic-map"))


def html_page(a: Analysis, lang: str | None = None) -> str:
    """The report as one offline HTML page: the Markdown's content as tables and lists, plus the map."""
    from plotly.offline import get_plotlyjs

    lang = lang or a.lang
    body = _md_to_html(markdown(a, lang))
    scatter = _scatter(a)
    return f"""<!doctype html>
<html lang="{"zh" if _zh(lang) else "en"}"><head><meta charset="utf-8">
<title>{html.escape(t("title", lang))}: {html.escape(a.version)}</title>
<script type="text/javascript">{get_plotlyjs() if scatter else ""}</script>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}
td,th{{border:1px solid #ccc;padding:2px 8px}}
table{{border-collapse:collapse}}blockquote{{color:#a40;border-left:3px solid #a40;padding-left:1em}}</style>
</head><body>
{body}
{scatter}
</body></html>
"""


def _md_to_html(md: str) -> str:
    """The small Markdown subset ``markdown`` writes: headings, lists, tables, quotes, bold, code."""
    import re

    out: list[str] = []
    table: list[list[str]] = []

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    def flush() -> None:
        if table:
            head, *body = table
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>")
            out.extend("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body)
            out.append("</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-:") for c in cells):
                table.append(cells)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("- "):
            out.append(f"<li>{inline(line[2:])}</li>")
        elif line.startswith("> "):
            out.append(f"<blockquote>{inline(line[2:])}</blockquote>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(out)


def write_reports(a: Analysis, folder: Path, lang: str | None = None) -> dict[str, Path]:
    """``report.md``, ``report.html`` and ``analysis.json`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"md": folder / "report.md", "html": folder / "report.html", "json": folder / "analysis.json"}
    paths["md"].write_text(markdown(a, lang), encoding="utf-8")
    paths["html"].write_text(html_page(a, lang), encoding="utf-8")
    paths["json"].write_text(a.model_dump_json(indent=1), encoding="utf-8")
    return paths
