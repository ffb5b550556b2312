"""The analysis domain's service functions: what the CLI, the API, the job and the loop call.

Each takes the caller's ``Context`` (tenant and project per call). An analysis is stored with the
dataset version it read (lineage: which analysis of which version): a ``dataset_analyses`` row with the
verdict, scores and finding counts, and ``analyses/<id>/`` in the artifact store with the full result
(``analysis.json``) and its reports (``report.md``, ``report.html``).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from imts.analysis.intent import parse_intent
from imts.analysis.pipeline import Analysis, AnalysisOptions, analyse_rows
from imts.analysis.profile import read_rows
from imts.analysis.report import write_reports
from imts.core.errors import ConflictError, InputError, NotFoundError
from imts.core.ids import new_id
from imts.core.progress import Progress
from imts.data.versions import DataRef, iter_tables, resolve
from imts.store.context import Context
from imts.store.models import DatasetAnalysis, Run

LANGS = ("en", "zh")
FORMATS = {"md": "report.md", "html": "report.html", "json": "analysis.json"}


class AnalysisSummary(BaseModel):
    """One stored analysis: what lists and the loop need (the full result: ``get_analysis``)."""

    id: str
    version_id: str
    intent: str
    lang: str
    task: str | None
    verdict: str  # fits | partial | refused
    fit_score: float
    health_score: float | None
    forced: bool
    findings: dict[str, int]  # finding kind -> rows behind it
    created_by: str
    created_at: datetime


class AnalysisRefused(ConflictError):
    """The fit check refused the data (stored; ``--force`` goes on and records the override)."""


def analyze(
    ctx: Context,
    ref: str,
    intent: str,
    *,
    lang: str | None = None,
    opts: AnalysisOptions | None = None,
    backend: Any = None,
    progress: Progress | None = None,
) -> Analysis:
    """Analyse a dataset version for ``intent`` and store the result with the version.

    Raises:
        InputError: the intent is too vague (the message is the question to answer), or ``lang`` is
            unknown.
        AnalysisRefused: the fit check refused the data and ``opts.force`` is off; the refusal is stored.
    """
    opts = opts or AnalysisOptions()
    if lang is not None and lang not in LANGS:
        raise InputError(f"--lang must be one of {', '.join(LANGS)}, not {lang!r}", field="lang")
    if not intent.strip():
        raise InputError("the intent is empty: say what the model should learn", field="intent")
    data = resolve(ctx, ref)  # an unknown reference fails before any model loads
    spec = parse_intent(intent, backend)
    if spec.task is None:
        raise InputError(f"{spec.question_en} / {spec.question_zh}", field="intent")
    rows = read_rows(ctx, data)
    if not len(rows):
        raise InputError(f"{data} has no rows to analyse", field="dataset")
    namer = backend if backend is not None and getattr(backend, "name", "rules") != "rules" else None
    result = analyse_rows(
        rows,
        spec,
        str(data),
        data.version.id,
        lang or spec.lang,
        opts,
        ctx.settings.workspace / "cache" / "embeddings",
        token_ctx=ctx,
        eval_prompts=_eval_sets(ctx, data),
        namer=namer,
        progress=progress,
    )
    _store(ctx, result)
    if result.status == "refused":
        en = f"{result.fit.reason_en}. {result.fit.suggestion_en} (analysis {result.id})"
        zh = f"{result.fit.reason_zh}。{result.fit.suggestion_zh}（分析 {result.id}）"
        raise AnalysisRefused(f"{zh} / {en}" if result.lang == "zh" else f"{en} / {zh}")
    return result


def _eval_sets(ctx: Context, data: DataRef) -> dict[str, list[str]]:
    """The prompts of the evaluation sets this project has scored (other versions than ``data``'s)."""
    from imts.data.versions import list_versions

    with ctx.session() as s:
        pairs = s.execute(
            select(Run.dataset_version_id, Run.split)
            .where(Run.project_id == ctx.project_id, Run.kind == "eval", Run.dataset_version_id.is_not(None))
            .distinct()
        ).all()
    if not pairs:
        return {}
    by_id = {v.id: v for v in list_versions(ctx)}
    out: dict[str, list[str]] = {}
    for version_id, split in pairs:
        v = by_id.get(version_id)
        if v is None or v.id == data.version.id:
            continue
        name = f"{v.ref}{':' + split if split else ''}"
        out[name] = [r for r in _prompts(ctx, DataRef(v, split))]
    return out


def _prompts(ctx: Context, ref: DataRef) -> list[str]:
    from imts.data.schemas import row_text

    return [row_text(r) for t in iter_tables(ctx, ref) for r in t.to_pylist()]


def _store(ctx: Context, a: Analysis) -> None:
    a.id = new_id("an")
    a.created_by = ctx.principal
    key = f"analyses/{a.id}"
    with ctx.artifacts.staging() as stage:
        write_reports(a, stage / "report")
        ctx.artifacts.commit(stage / "report", key)
    counts = Counter({f.kind.value: len(f.row_ids) for f in a.findings})
    with ctx.session() as s:
        rec = DatasetAnalysis(
            id=a.id,
            project_id=ctx.project_id,
            version_id=a.version_id,
            intent=a.spec.intent,
            lang=a.lang,
            task=a.spec.task.value if a.spec.task else None,
            verdict=a.fit.verdict,
            fit_score=a.fit.score,
            health_score=a.health.score if a.health else None,
            forced=a.fit.forced,
            findings=dict(counts),
            report_key=key,
            created_by=ctx.principal,
        )
        s.add(rec)
        s.flush()
        a.created_at = rec.created_at.isoformat()
        from imts.store import audit

        audit.record(
            ctx,
            s,
            "dataset.analyze",
            ("dataset_version", a.version_id),
            None,
            {"analysis": a.id, "verdict": a.fit.verdict, "forced": a.fit.forced},
        )


def _summary(r: DatasetAnalysis) -> AnalysisSummary:
    return AnalysisSummary(
        id=r.id,
        version_id=r.version_id,
        intent=r.intent,
        lang=r.lang,
        task=r.task,
        verdict=r.verdict,
        fit_score=r.fit_score,
        health_score=r.health_score,
        forced=r.forced,
        findings=r.findings,
        created_by=r.created_by,
        created_at=r.created_at,
    )


def list_analyses(ctx: Context, ref: str) -> list[AnalysisSummary]:
    """The analyses of a dataset version, newest first."""
    version = resolve(ctx, ref).version
    with ctx.session() as s:
        found = s.scalars(
            select(DatasetAnalysis)
            .where(DatasetAnalysis.project_id == ctx.project_id, DatasetAnalysis.version_id == version.id)
            .order_by(DatasetAnalysis.created_at.desc(), DatasetAnalysis.id.desc())
        ).all()
        return [_summary(r) for r in found]


def _record(ctx: Context, ref: str, analysis_id: str | None) -> DatasetAnalysis:
    version = resolve(ctx, ref).version
    with ctx.session() as s:
        q = select(DatasetAnalysis).where(
            DatasetAnalysis.project_id == ctx.project_id, DatasetAnalysis.version_id == version.id
        )
        if analysis_id:
            q = q.where(DatasetAnalysis.id == analysis_id)
        rec = s.scalars(q.order_by(DatasetAnalysis.created_at.desc(), DatasetAnalysis.id.desc())).first()
        if rec is None:
            raise NotFoundError(
                f"no analysis of {version.ref}{' with id ' + analysis_id if analysis_id else ''}; "
                f"run `imts data analyze {version.ref} --intent ...` first"
            )
        s.expunge(rec)
        return rec


def get_analysis(ctx: Context, ref: str, analysis_id: str | None = None) -> Analysis:
    """The latest analysis of a dataset version (or the one with ``analysis_id``), in full."""
    rec = _record(ctx, ref, analysis_id)
    return Analysis.model_validate_json(
        ctx.artifacts.path(rec.report_key).joinpath(FORMATS["json"]).read_text("utf-8")
    )


def report_path(ctx: Context, ref: str, fmt: str = "html", analysis_id: str | None = None) -> Path:
    """Where the report of the latest analysis (or ``analysis_id``) is, as ``md``, ``html`` or ``json``."""
    if fmt not in FORMATS:
        raise InputError(
            f"the report format must be one of {', '.join(FORMATS)}, not {fmt!r}", field="format"
        )
    rec = _record(ctx, ref, analysis_id)
    return ctx.artifacts.path(rec.report_key) / FORMATS[fmt]


def fit_gate(ctx: Context, ref: str) -> AnalysisSummary | None:
    """What a training or optimisation step asks first: the nearest analysis of the version or of the
    versions it was made from (a split of an analysed version is gated by that analysis), if any.

    Raises:
        AnalysisRefused: that analysis refused the data and was not forced.
    """
    from imts.store.models import VersionParent

    start = resolve(ctx, ref).version
    frontier, seen = [start.id], {start.id}
    with ctx.session() as s:
        for _ in range(20):  # lineage depth: a version is rarely more than a few steps from an import
            rec = s.scalars(
                select(DatasetAnalysis)
                .where(DatasetAnalysis.project_id == ctx.project_id, DatasetAnalysis.version_id.in_(frontier))
                .order_by(DatasetAnalysis.created_at.desc(), DatasetAnalysis.id.desc())
            ).first()
            if rec is not None:
                break
            parents = s.scalars(select(VersionParent.parent_id).where(VersionParent.version_id.in_(frontier)))
            frontier = [p for p in parents if p not in seen]
            seen.update(frontier)
            if not frontier:
                return None
        else:
            return None
        summary = _summary(rec)
    if summary.verdict == "refused" and not summary.forced:
        raise AnalysisRefused(
            f"analysis {summary.id} refused the data of {ref} for the intent {summary.intent!r}; bring "
            "other data, or analyse again with --force to go on (recorded) / "
            f"分析 {summary.id} 判定 {ref} 的数据与目标不符；"
            "请提供其他数据，或使用 --force 重新分析后继续（会被记录）"
        )
    return summary
