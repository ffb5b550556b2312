"""What the report adds beyond before/after: significance, a win-rate matrix with a Bradley–Terry
ranking across any number of model versions, and clusters of the items that went wrong.

Pure computation from eval runs on the same items: :func:`build_extras` assembles a
:class:`~imts.evals.report.ReportExtras`, which the report package renders.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from imts.evals.report.model import Cluster, EvalResult, ItemOutcome, PairSignificance, ReportExtras
from imts.evals.significance import bradley_terry, mcnemar, paired_bootstrap, win_rates

__all__ = ["bad_case_clusters", "build_extras", "embed"]


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
    """Sentence embeddings with MiniLM (see ``imts.data.embeddings``): mean-pooled, L2-normalised."""
    from imts.data.embeddings import embed as minilm

    return minilm(texts)


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
