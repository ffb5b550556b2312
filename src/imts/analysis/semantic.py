"""The semantic map: MiniLM embeddings of a stratified sample (cached by content hash), k-means
clusters labelled by their top TF-IDF terms, a 2-D PCA projection, and coverage per cluster.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from imts.core.text import CJK, tokens
from imts.data.embeddings import EmbeddingCache

# Tokens no cluster label should show: function words of both languages.
_STOP = {
    "the", "a", "an", "of", "to", "and", "or", "in", "on", "at", "for", "is", "are", "was", "were",
    "be", "has", "have", "had", "how", "what", "many", "much", "does", "did", "do", "with", "from",
    "by", "as", "it", "its", "this", "that", "then", "if", "each", "more", "his", "her", "he",
    "she", "they", "them", "their", "there", "you", "your", "will", "can", "i", "we", "our",
    "what's", "who", "which", "when", "where", "why", "all", "answer",
    "的", "了", "是", "有", "个", "在", "和", "又", "还", "多", "少", "几", "一", "共",
    "给", "把", "他", "她", "们", "吗", "呢", "么", "这", "那", "每", "答案",
}  # fmt: skip


def _label_word(t: str) -> bool:
    """A word worth showing in a cluster's label: no number, no function word, no punctuation."""
    if t in _STOP or any(c.isdigit() for c in t) or not any(c.isalnum() for c in t):
        return False
    return len(t) > 2 or bool(CJK.search(t))


class Cluster(BaseModel):
    id: int
    label: str  # its top terms; an LLM's name when one is configured
    terms: list[str]
    size: int  # sampled rows in it
    share: float
    category: str | None = None  # the most common category of its rows
    category_share: float = 0.0
    examples: list[dict[str, str]] = Field(default_factory=list)


class SemanticMap(BaseModel):
    sample: int  # rows embedded
    embedded_now: int  # rows whose embedding was not cached
    clusters: list[Cluster]
    points: list[tuple[float, float, int]]  # x, y, cluster per sampled row (in ``ids`` order)
    ids: list[str]
    explained_variance: list[float]
    coverage: dict[str, float] = Field(default_factory=dict)  # expected sub-skill -> share of the sample


def stratified_sample(strata: Sequence[str | None], size: int, seed: int = 0) -> list[int]:
    """Indices of at most ``size`` rows, each stratum in proportion to its rows (at least one each)."""
    n = len(strata)
    if n <= size:
        return list(range(n))
    groups: dict[str | None, list[int]] = defaultdict(list)
    for i, s in enumerate(strata):
        groups[s].append(i)
    rng = random.Random(seed)
    out: list[int] = []
    for members in groups.values():
        take = max(1, round(len(members) * size / n))
        out.extend(rng.sample(members, min(take, len(members))))
    return sorted(out[:size] if len(out) > size else out)


def top_terms(texts: Sequence[str], labels: np.ndarray, k: int, n_terms: int = 5) -> list[list[str]]:
    """The ``n_terms`` highest mean TF-IDF terms of each cluster (no numbers, no function words)."""
    import jieba
    from sklearn.feature_extraction.text import TfidfVectorizer

    jieba.setLogLevel(60)

    def toks(text: str) -> list[str]:
        words = jieba.lcut(text) if CJK.search(text) else tokens(text)
        return [t for w in words if (t := w.strip().lower()) and _label_word(t)]

    tfidf = TfidfVectorizer(
        tokenizer=toks, token_pattern=None, lowercase=False, max_features=5000, ngram_range=(1, 1)
    )
    matrix = tfidf.fit_transform(texts)
    vocab = tfidf.get_feature_names_out()
    out = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            out.append([])
            continue
        weights = np.asarray(matrix[members].mean(axis=0)).ravel()
        out.append([str(vocab[t]) for t in weights.argsort()[::-1][:n_terms] if weights[t] > 0])
    return out


def semantic_map(
    ids: Sequence[str],
    texts: Sequence[str],
    categories: Sequence[str | None],
    cache_dir: Path,
    sample: int = 2000,
    clusters: int | None = None,
    sub_skills: Sequence[str] = (),
    namer: object | None = None,
) -> SemanticMap:
    """Embed a sample stratified by category, cluster it, project it to 2-D, label the clusters.

    Args:
        clusters: the number of clusters (default: about sqrt(sample / 20), 2 to 12).
        namer: a ``ChatBackend`` that names each cluster from its terms and examples (optional).
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    chosen = stratified_sample(categories, sample)
    if len(chosen) < 2:
        return SemanticMap(
            sample=len(chosen), embedded_now=0, clusters=[], points=[], ids=[], explained_variance=[]
        )
    sample_texts = [texts[i][:1000] for i in chosen]
    vectors, fresh = EmbeddingCache(cache_dir).embed(sample_texts)
    k = clusters or max(2, min(12, round(math.sqrt(len(chosen) / 20))))
    k = min(k, len(chosen))
    labels = KMeans(n_clusters=k, n_init=3, random_state=0).fit_predict(vectors)
    pca = PCA(n_components=2, random_state=0)
    xy = pca.fit_transform(vectors)
    terms = top_terms(sample_texts, labels, k)
    out: list[Cluster] = []
    for c in range(k):
        members = [chosen[m] for m in np.flatnonzero(labels == c)]
        if not members:
            continue
        cats = Counter(categories[i] for i in members if categories[i])
        top = cats.most_common(1)[0] if cats else (None, 0)
        out.append(
            Cluster(
                id=c,
                label=", ".join(terms[c][:3]) or f"cluster {c}",
                terms=terms[c],
                size=len(members),
                share=round(len(members) / len(chosen), 4),
                category=top[0],
                category_share=round(top[1] / len(members), 3),
                examples=[{"id": ids[i], "text": texts[i][:160]} for i in members[:3]],
            )
        )
    if namer is not None:
        _name_clusters(namer, out)
    sampled_cats = Counter(categories[i] for i in chosen)
    coverage = {s: round(sampled_cats.get(s, 0) / len(chosen), 4) for s in sub_skills}
    return SemanticMap(
        sample=len(chosen),
        embedded_now=fresh,
        clusters=sorted(out, key=lambda c: -c.size),
        points=[
            (round(float(x), 4), round(float(y), 4), int(lab)) for (x, y), lab in zip(xy, labels, strict=True)
        ],
        ids=[ids[i] for i in chosen],
        explained_variance=[round(float(v), 4) for v in pca.explained_variance_ratio_],
        coverage=coverage,
    )


def _name_clusters(backend: object, clusters: list[Cluster]) -> None:
    """Ask a chat backend for a short name of each cluster; keep the terms on a failed call."""
    for c in clusters:
        examples = "\n".join(f"- {e['text']}" for e in c.examples)
        prompt = (
            f"Name this group of texts in at most five words.\nKey terms: {', '.join(c.terms)}\n{examples}"
        )
        try:
            reply = backend.chat([{"role": "user", "content": prompt}], max_tokens=16).text  # type: ignore[attr-defined]
        except Exception:  # an unreachable endpoint must not lose the analysis
            return
        name = reply.strip().splitlines()[0].strip(" \"'.") if reply.strip() else ""
        if name:
            c.label = name[:60]
