"""Two model versions side by side: how their specs differ, how their data versions differ, their
evaluations on the same items (through the comparison report), and a one-line verdict with its
significance (McNemar on the paired answers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from imts.data import service as data
from imts.data.views import DatasetDiff
from imts.evals import compare
from imts.evals.report import Lang
from imts.evals.service import load_result
from imts.evals.significance import mcnemar
from imts.registry import service as registry
from imts.registry.views import ModelVersionView
from imts.store import runs
from imts.store.context import Context
from imts.store.runs import RunView
from imts.store.tracking import flatten

ALPHA = 0.05


class EvalPair(BaseModel):
    """Both versions evaluated on the same dataset version and split."""

    data: str
    split: str | None
    eval_a: str
    eval_b: str
    n: int
    accuracy_a: float
    accuracy_b: float
    only_a: int
    only_b: int
    p_value: float
    per_category: dict[str, list[float | None]]  # category -> [accuracy a, accuracy b]


class VersionComparison(BaseModel):
    """Two versions: spec differences, data difference, evaluations side by side, the verdict.

    Attributes:
        spec: spec key -> [value in a, value in b], the keys that differ only.
        data: the difference between their training data versions (None: the same version).
        evaluations: every dataset version (and split) both were evaluated on.
        report: the comparison report's files (HTML, Markdown, JSON) of the first pair.
        verdict, verdict_zh: one line, in English and Chinese.
    """

    a: ModelVersionView
    b: ModelVersionView
    spec: dict[str, list[Any]]
    data: DatasetDiff | None = None
    evaluations: list[EvalPair]
    report: dict[str, Path] = {}
    verdict: str
    verdict_zh: str
    significant: bool


def compare_versions(ctx: Context, ref_a: str, ref_b: str, lang: Lang = "en") -> VersionComparison:
    """Compare model versions ``ref_a`` (the reference) and ``ref_b``."""
    a, b = registry.get_model_version(ctx, ref_a), registry.get_model_version(ctx, ref_b)
    spec_a, spec_b = flatten(a.spec), flatten(b.spec)
    keys = list(dict.fromkeys([*spec_a, *spec_b]))
    spec = {k: [spec_a.get(k), spec_b.get(k)] for k in keys if spec_a.get(k) != spec_b.get(k)}
    data_diff = None
    if a.dataset_version_id != b.dataset_version_id:
        data_diff = data.diff(ctx, a.dataset_version_id, b.dataset_version_id)
    pairs = _pairs(ctx, a, b)
    evaluations = [_pair(ctx, ea, eb) for ea, eb in pairs]
    report: dict[str, Path] = {}
    if pairs:
        rep = compare.build_models(ctx, [pairs[0][0].id, pairs[0][1].id], cluster=False)
        report = compare.write(ctx, f"compare-{a.id}-{b.id}", rep, lang)
    verdict, verdict_zh, significant = _verdict(a, b, evaluations)
    return VersionComparison(
        a=a, b=b, spec=spec, data=data_diff, evaluations=evaluations, report=report,
        verdict=verdict, verdict_zh=verdict_zh, significant=significant,
    )  # fmt: skip


def evaluations_of(ctx: Context, mv: ModelVersionView) -> list[RunView]:
    """The version's succeeded evaluation runs, newest first."""
    return runs.search(ctx, "eval", "succeeded", model_version_id=mv.id)


def _pairs(ctx: Context, a: ModelVersionView, b: ModelVersionView) -> list[tuple[RunView, RunView]]:
    newest_b: dict[tuple[str | None, str | None], RunView] = {}
    for e in evaluations_of(ctx, b):
        newest_b.setdefault((e.dataset_version_id, e.split), e)
    out, seen = [], set()
    for e in evaluations_of(ctx, a):
        key = (e.dataset_version_id, e.split)
        if key in newest_b and key not in seen:
            seen.add(key)
            out.append((e, newest_b[key]))
    return out


def _pair(ctx: Context, ea: RunView, eb: RunView) -> EvalPair:
    ra, rb = load_result(ctx, ea.id), load_result(ctx, eb.id)
    by_b = {i.item_id: i for i in rb.items}
    both = [(i, by_b[i.item_id]) for i in ra.items if i.item_id in by_b]
    mc = mcnemar([x.correct for x, _ in both], [y.correct for _, y in both])
    cats: dict[str, list[list[int]]] = {}
    for x, y in both:
        c = cats.setdefault(x.category, [[0, 0], [0, 0]])
        c[0][0] += x.correct
        c[0][1] += 1
        c[1][0] += y.correct
        c[1][1] += 1
    n = len(both)
    return EvalPair(
        data=str(ea.spec.get("data", ea.dataset_version_id)),
        split=ea.split,
        eval_a=ea.id,
        eval_b=eb.id,
        n=n,
        accuracy_a=sum(x.correct for x, _ in both) / n if n else 0.0,
        accuracy_b=sum(y.correct for _, y in both) / n if n else 0.0,
        only_a=mc.b,
        only_b=mc.c,
        p_value=mc.p_value,
        per_category={
            k: [ca / ta if ta else None, cb / tb if tb else None] for k, ((ca, ta), (cb, tb)) in cats.items()
        },
    )


def _verdict(a: ModelVersionView, b: ModelVersionView, pairs: list[EvalPair]) -> tuple[str, str, bool]:
    if not pairs:
        return (
            f"no verdict: {a.label} and {b.label} were never evaluated on the same data "
            f"(run `imts eval --model {a.label}` and `--model {b.label}` on one dataset)",
            f"无法判断：{a.label} 与 {b.label} 从未在同一数据上评估"
            f"（请用 `imts eval --model {a.label}` 和 `--model {b.label}` 在同一数据集上评估）",
            False,
        )
    p = pairs[0]
    delta = (p.accuracy_b - p.accuracy_a) * 100
    sig = p.p_value < ALPHA and p.only_a != p.only_b
    stats = f"{p.accuracy_b:.1%} vs {p.accuracy_a:.1%} on {p.data} (n={p.n}, McNemar p={p.p_value:.3g})"
    stats_zh = (
        f"{p.accuracy_b:.1%} 对 {p.accuracy_a:.1%}，数据 {p.data}（n={p.n}，McNemar p={p.p_value:.3g}）"
    )
    if not sig:
        return (
            f"no significant difference between {b.label} and {a.label}: {stats}",
            f"{b.label} 与 {a.label} 无显著差异：{stats_zh}",
            False,
        )
    better = delta > 0
    return (
        f"{b.label} is {'better' if better else 'worse'} than {a.label} by {abs(delta):.1f} points "
        f"(significant at {ALPHA}): {stats}",
        f"{b.label} 比 {a.label} {'好' if better else '差'} {abs(delta):.1f} 个百分点"
        f"（在 {ALPHA} 水平显著）：{stats_zh}",
        True,
    )
