"""The loop's report: the rising curve (accuracy per evaluation set, base model then each iteration) and
the iteration log (problem found -> data fix -> gain), in English or Chinese, as Markdown and as one
self-contained HTML page (plotly.js inline, no network)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from imts.flywheel.service import IterationView, LoopView
from imts.store.context import Context

TEXT = {
    "title": ("Closed loop", "闭环迭代"),
    "status": ("status", "状态"),
    "reason": ("stopped because", "停止原因"),
    "best": ("best model", "最佳模型"),
    "curve": ("Accuracy per iteration (0 = base model)", "各轮准确率（0 = 基座模型）"),
    "log": ("Iteration log: problem found -> data fix -> gain", "迭代日志：发现问题 -> 数据修复 -> 提升"),
    "problem": ("problem found", "发现的问题"),
    "fix": ("data fix", "数据修复"),
    "gain": ("gain against the previous model", "相对上一模型的提升"),
    "set": ("set", "评估集"),
    "base": ("base", "基座"),
    "iteration": ("iteration", "迭代"),
    "nothing": ("nothing to fix", "无需修复"),
    "trained": ("trained from", "训练起点"),
    "from_base": ("the base model", "基座模型"),
    "from_it": ("the model of iteration {n} (the best so far)", "第 {n} 轮的模型（目前最好）"),
    "categories": ("validation by category and language (before -> after)", "验证集分类别、语言（前 -> 后）"),
    "clusters": (
        "bad-case clusters of the previous model (error rate before -> now)",
        "上一模型的错误聚类（错误率 前 -> 现在）",
    ),
    "time": ("time per step (s)", "各步耗时（秒）"),
    "warning": ("does not generalise", "未能泛化"),
    "decoding": (
        "decoding, the same for the base model and every iteration",
        "解码方式（基座模型与每轮相同）",
    ),
    "greedy": ("greedy", "贪心解码"),
    "tools": ("with the tools", "并使用工具"),
}


def _t(key: str, lang: str) -> str:
    en, zh = TEXT[key]
    return zh if lang.startswith("zh") else en


def _fix_line(fix: dict[str, Any], lang: str) -> str:
    if not fix:
        return "-"
    if fix.get("skipped"):
        return _t("nothing", lang)
    zh = lang.startswith("zh")
    parts = [f"{'新版本' if zh else 'new version'} {fix.get('version')}"]
    if fix.get("pii_rows"):
        parts.append(
            f"{'个人信息替换' if zh else 'PII replaced in'} {fix['pii_rows']} {'行' if zh else 'rows'}"
        )
    if fix.get("cot_rewritten"):
        parts.append(f"{'思维链改写' if zh else 'CoT rewrites'} {fix['cot_rewritten']}")
    for cat, n in (fix.get("augmented") or {}).items():
        chained = (fix.get("chained") or {}).get(cat)
        more = (
            (f"（其中 {chained} 条由单步题串联）" if zh else f" ({chained} chained from one-step rows)")
            if chained
            else ""
        )
        parts.append(f"{'扩充' if zh else 'augmented'} {cat} +{n}{more}")
    if fix.get("reinforced"):
        parts.append(f"{'邻域强化' if zh else 'reinforced'} +{fix['reinforced']}")
    if fix.get("replayed"):
        parts.append(f"{'回放' if zh else 'replay'} +{fix['replayed']}")
    return "; ".join(parts)


def markdown(loop: LoopView, its: list[IterationView], lang: str = "en") -> str:
    zh = lang.startswith("zh")
    lines = [f"# {_t('title', lang)} {loop.name} ({loop.id})", ""]
    lines.append(f"- {_t('status', lang)}: {loop.status}")
    if loop.stop_reason:
        lines.append(f"- {_t('reason', lang)}: {loop.stop_reason_zh if zh else loop.stop_reason_en}")
    if loop.best:
        lines.append(
            f"- {_t('best', lang)}: {_t('iteration', lang)} {loop.best['iteration']} ({loop.best_run})"
        )
    tools = loop.versions.get("tools") or []
    lines.append(
        f"- {_t('decoding', lang)}: {_t('greedy', lang)}"
        + (f"{'，' if zh else ', '}{_t('tools', lang)} {', '.join(tools)}" if tools else "")
    )
    labels = list(its[0].scores) if its and its[0].scores else []
    if labels:
        lines += ["", f"## {_t('curve', lang)}", ""]
        lines.append(
            f"| {_t('set', lang)} | {_t('base', lang)} | " + " | ".join(str(i.iteration) for i in its) + " |"
        )
        lines.append("|---" * (len(its) + 2) + "|")
        for label in labels:
            row = [f"{i.scores.get(label, 0):.1%}" if i.scores else "-" for i in its]
            lines.append(f"| {label} | {its[0].base.get(label, 0):.1%} | " + " | ".join(row) + " |")
    lines += ["", f"## {_t('log', lang)}", ""]
    for i in its:
        lines.append(f"### {_t('iteration', lang)} {i.iteration}")
        problems = [p["zh" if zh else "en"] for p in i.problems] or ["-"]
        lines.append(f"- **{_t('problem', lang)}**: " + "; ".join(problems))
        lines.append(f"- **{_t('fix', lang)}**: {_fix_line(i.fix, lang)}")
        start = _t("from_it", lang).format(n=i.started_from) if i.started_from else _t("from_base", lang)
        lines.append(f"- **{_t('trained', lang)}**: {start}")
        if i.gain:
            gains = ", ".join(f"{k} {v * 100:+.1f}" for k, v in i.gain.items())
            p = f" (p = {i.p_vs_best:.3g})" if i.p_vs_best is not None else ""
            lines.append(f"- **{_t('gain', lang)}**: {gains}{p}")
        for w in i.warnings:
            lines.append(f"- **{_t('warning', lang)}**: {w['zh' if zh else 'en']}")
        if i.categories:
            cats = ", ".join(f"{c} {v['before']:.0%} -> {v['after']:.0%}" for c, v in i.categories.items())
            lines.append(f"- {_t('categories', lang)}: {cats}")
        if i.clusters:
            cl = "; ".join(
                f"{c['label']} (n={c['size']}) {c['error_before']:.0%} -> {c['error_after']:.0%}"
                for c in i.clusters[:4]
            )
            lines.append(f"- {_t('clusters', lang)}: {cl}")
        if i.seconds:
            lines.append(f"- {_t('time', lang)}: " + ", ".join(f"{k} {v:.0f}" for k, v in i.seconds.items()))
        lines.append("")
    return "\n".join(lines)


def curve_figure(its: list[IterationView], lang: str = "en") -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = list(its[0].scores) if its and its[0].scores else []
    done = [i for i in its if i.scores]
    for label in labels:
        xs = [0] + [i.iteration for i in done]
        ys = [its[0].base.get(label, 0) * 100] + [i.scores.get(label, 0) * 100 for i in done]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=label))
    fig.update_layout(
        title=_t("curve", lang), xaxis_title=_t("iteration", lang), yaxis_title="%", xaxis={"dtick": 1}
    )
    return fig


def page(loop: LoopView, its: list[IterationView], lang: str = "en") -> str:
    from plotly.offline import get_plotlyjs

    from imts.evals.report.figures import fig_html

    body = html.escape(markdown(loop, its, lang))
    return (
        f'<!doctype html><html lang="{"zh" if lang.startswith("zh") else "en"}"><head><meta charset="utf-8">'
        f"<title>{html.escape(loop.name)}</title><script>{get_plotlyjs()}</script></head><body>"
        f"{fig_html(curve_figure(its, lang), 'curve', 420)}"
        f'<pre style="white-space:pre-wrap;font-family:sans-serif">{body}</pre></body></html>'
    )


def write(ctx: Context, loop: LoopView, its: list[IterationView], lang: str = "en") -> dict[str, Path]:
    """The Markdown and HTML reports, written atomically under the artifact store."""
    out = {}
    for fmt, text in (("md", markdown(loop, its, lang)), ("html", page(loop, its, lang))):
        key = f"loops/{loop.id}/report.{lang}.{fmt}"
        with ctx.artifacts.staging() as stage:
            tmp = stage / f"report.{fmt}"
            tmp.write_text(text, encoding="utf-8")
            ctx.artifacts.delete(key)  # the report of a loop that went on since: replaced whole
            ctx.artifacts.commit(tmp, key)
        out[fmt] = ctx.artifacts.path(key)
    return out
