"""The analysis of one dataset version against an intent, from its rows: fit check first (refused data
stops there unless forced), then profile, categories, personal data, leakage, semantic map, findings and
the health score. No database here: ``service`` reads the rows and stores the result.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from imts.analysis.categories import infer_categories
from imts.analysis.findings import Action, Finding, FindingKind, Severity
from imts.analysis.fit import FitResult, check_fit
from imts.analysis.health import Evidence, Health, build_findings, find_personal_data, score, split_leaks
from imts.analysis.intent import TaskSpec, TaskType
from imts.analysis.profile import Profile, Rows, profile
from imts.analysis.semantic import SemanticMap, semantic_map, stratified_sample
from imts.core.progress import NullProgress, Progress

FIT_SAMPLE = 400


class AnalysisOptions(BaseModel):
    sample: int = Field(2000, ge=10, le=200_000, description="rows embedded for the semantic map")
    clusters: int | None = Field(None, ge=2, le=50, description="clusters of the map (default: by size)")
    model: str | None = Field(
        "smollm2-135m-instruct", description="base model whose tokenizer counts tokens (if recorded here)"
    )
    context: int = Field(2048, ge=16, description="the model's context length, in tokens")
    force: bool = Field(False, description="go on with data the fit check refuses (recorded)")
    semantic: bool = Field(True, description="build the semantic map")


class Analysis(BaseModel):
    """Everything an analysis found; stored as JSON with the dataset version."""

    id: str = ""
    version: str  # NAME@N
    version_id: str
    lang: str  # the report's language
    spec: TaskSpec
    fit: FitResult
    status: str  # complete | refused
    profile: Profile | None = None
    semantic: SemanticMap | None = None
    health: Health | None = None
    findings: list[Finding] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    created_by: str = ""
    created_at: str = ""


def analyse_rows(
    rows: Rows,
    spec: TaskSpec,
    version: str,
    version_id: str,
    lang: str,
    opts: AnalysisOptions,
    cache_dir: Path,
    token_ctx: Any = None,
    eval_prompts: dict[str, Sequence[str]] | None = None,
    namer: Any = None,
    progress: Progress | None = None,
) -> Analysis:
    """Analyse ``rows`` for ``spec``.

    Args:
        token_ctx: the ``Context`` whose registry holds ``opts.model`` (None: approximate token counts).
        eval_prompts: name -> prompts of the registered evaluation sets to check for leakage.
    """
    progress = progress or NullProgress()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    fit_idx = stratified_sample(rows.categories, FIT_SAMPLE, seed=1)
    distinct_responses = len(set(rows.responses))
    label_like = rows.fmt == "classification" or (
        len(rows) >= 20
        and distinct_responses <= max(2, 0.05 * len(rows))
        and spec.task == TaskType.CLASSIFICATION
    )
    fit = check_fit(
        spec,
        [rows.prompts[i] for i in fit_idx],
        [rows.responses[i] for i in fit_idx],
        [rows.turns[i] for i in fit_idx],
        [rows.langs[i] for i in fit_idx],
        label_like=label_like,
    )
    timings["fit"] = time.perf_counter() - t0
    progress.log(f"fit check: {fit.verdict} ({fit.score:.2f})")
    result = Analysis(
        version=version, version_id=version_id, lang=lang, spec=spec, fit=fit, status="complete"
    )
    if fit.refused:
        off = Finding(
            kind=FindingKind.OFF_INTENT,
            severity=Severity.SEVERE,
            message_en=f"{fit.reason_en}. {fit.suggestion_en}",
            message_zh=f"{fit.reason_zh}。{fit.suggestion_zh}",
            row_ids=[rows.ids[i] for i in fit_idx],
            examples=[rows.example(i) for i in fit_idx[:3]],
            share=round(1 - fit.score, 4),
            action=Action.COLLECT,
            params={"fit": fit.score, "forced": opts.force},
        )
        result.findings.append(off)
        if not opts.force:
            result.status = "refused"
            result.timings = {k: round(v, 3) for k, v in timings.items()}
            return result
        fit.forced = True
    t = time.perf_counter()
    prof = profile(token_ctx, rows, opts.model if token_ctx is not None else None, opts.context)
    timings["profile"] = time.perf_counter() - t
    progress.log(f"profile: {len(rows)} rows, {prof.profile.exact_duplicates} exact duplicates")
    t = time.perf_counter()
    given = sum(bool(c) for c in rows.categories)
    if given >= 0.8 * max(1, len(rows)):
        categories, source = list(rows.categories), "field"
    else:
        inferred = (
            infer_categories(rows.prompts, rows.responses, rows.answers)
            if spec.task == TaskType.MATH_REASONING
            else None
        )
        categories, source = (
            (inferred, "inferred_operations") if inferred else ([None] * len(rows), "clusters")
        )
    pii = find_personal_data(rows)
    leaked = split_leaks(rows)
    if eval_prompts:
        from imts.data.dedup import exact_key

        for name, prompts in eval_prompts.items():
            keys = {exact_key(p) for p in prompts}
            for i, p in enumerate(rows.prompts):
                if i not in leaked and exact_key(p) in keys:
                    leaked[i] = f"evaluation set {name}"
    timings["checks"] = time.perf_counter() - t
    if opts.semantic:
        t = time.perf_counter()
        result.semantic = semantic_map(
            rows.ids,
            [p + "\n" + r for p, r in zip(rows.prompts, rows.responses, strict=True)],
            categories if source != "clusters" else rows.langs,
            cache_dir,
            opts.sample,
            opts.clusters,
            spec.sub_skills if source != "clusters" else (),
            namer,
        )
        timings["semantic"] = time.perf_counter() - t
        progress.log(f"semantic map: {result.semantic.sample} rows, {len(result.semantic.clusters)} clusters")
        if source == "clusters" and result.semantic.clusters:
            # Categories from the clusters: each sampled row's cluster (the others stay unknown).
            label = {c.id: c.label for c in result.semantic.clusters}
            at = {rid: n for n, rid in enumerate(result.semantic.ids)}
            categories = [
                label[result.semantic.points[at[rid]][2]] if rid in at else None for rid in rows.ids
            ]
    ev = Evidence(categories=categories, category_source=source, leaked=leaked, pii=pii)
    result.findings += build_findings(rows, prof, spec, ev)
    result.health = score(rows, prof, spec, ev, result.findings)
    result.profile = prof.profile
    timings["total"] = time.perf_counter() - t0
    result.timings = {k: round(v, 3) for k, v in timings.items()}
    return result
