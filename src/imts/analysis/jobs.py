"""The ``analyze`` job kind: the dataset analysis of a version for an intent, run by a worker (what the
API's ``POST .../analyses`` submits; a 100k-row analysis takes minutes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from imts.analysis.pipeline import AnalysisOptions
from imts.jobs.registry import JobContext, JobKind, register
from imts.store.context import Context


class AnalyzeJob(AnalysisOptions):
    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="dataset reference: NAME, NAME@N, NAME@N:SPLIT or dv_...")
    intent: str = Field(min_length=1, max_length=2000, description="what the model should learn")
    lang: str | None = Field(None, description="report language: en | zh (default: the intent's)")


class AnalyzeResult(BaseModel):
    analysis: str  # its id
    version: str
    verdict: str
    fit_score: float
    health_score: float | None = None
    refused: bool = False


def run_analyze(job: JobContext, spec: AnalyzeJob) -> AnalyzeResult:
    from imts.analysis.service import AnalysisRefused, analyze, list_analyses

    opts = AnalysisOptions(**spec.model_dump(include=set(AnalysisOptions.model_fields)))
    try:
        a = analyze(job.ctx, spec.data, spec.intent, lang=spec.lang, opts=opts, progress=job.progress)
    except AnalysisRefused as exc:  # a refusal is the job's answer, stored; not a failure to retry
        job.progress.log(str(exc))
        latest = list_analyses(job.ctx, spec.data)[0]
        return AnalyzeResult(
            analysis=latest.id, version=spec.data, verdict="refused", fit_score=latest.fit_score, refused=True
        )
    return AnalyzeResult(
        analysis=a.id,
        version=a.version,
        verdict=a.fit.verdict,
        fit_score=a.fit.score,
        health_score=a.health.score if a.health else None,
    )


def check_analyze(ctx: Context, spec: AnalyzeJob) -> None:
    """Refuse an unknown dataset, a vague intent or an unknown language at submit."""
    from imts.analysis.intent import parse_intent
    from imts.analysis.service import LANGS
    from imts.core.errors import InputError
    from imts.data.versions import resolve

    resolve(ctx, spec.data)
    if spec.lang is not None and spec.lang not in LANGS:
        raise InputError(f"lang must be one of {', '.join(LANGS)}, not {spec.lang!r}", field="lang")
    parsed = parse_intent(spec.intent)
    if parsed.task is None:
        raise InputError(f"{parsed.question_en} / {parsed.question_zh}", field="intent")


ANALYZE = register(
    JobKind("analyze", AnalyzeJob, run_analyze, AnalyzeResult, check=check_analyze, writes=True)
)
