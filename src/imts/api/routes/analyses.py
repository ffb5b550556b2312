"""Dataset analyses: analyse a version for an intent (now, or queued as an ``analyze`` job), list a
version's analyses, read the latest in full, download its report (HTML, Markdown or JSON).

``{ref}`` is a dataset reference as the CLI takes it (``NAME``, ``NAME@N``, ``NAME@N:SPLIT``, ``dv_...``).
A refused fit check answers 409 with the reason and the suggestion; the refusal is stored all the same.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from pydantic import Field

from imts.analysis import service
from imts.analysis.jobs import AnalyzeJob
from imts.analysis.pipeline import Analysis, AnalysisOptions
from imts.analysis.service import AnalysisSummary
from imts.api.deps import project_ctx
from imts.api.routes.jobs import JobOptions, submit_job
from imts.core.permissions import Permission
from imts.jobs.views import JobView
from imts.store.context import Context

router = APIRouter(prefix="/tenants/{tenant}/projects/{project}/datasets/refs/{ref}", tags=["analyses"])
View = Annotated[Context, Depends(project_ctx(Permission.DATASET_VIEW))]
Upload = Annotated[Context, Depends(project_ctx(Permission.DATASET_UPLOAD))]
MEDIA = {"html": "text/html", "md": "text/markdown", "json": "application/json"}


class AnalyzeRequest(AnalysisOptions):
    intent: str = Field(min_length=1, max_length=2000, description="what the model should learn, any words")
    lang: Literal["en", "zh"] | None = Field(None, description="report language (default: the intent's)")


class AnalyzeJobRequest(AnalyzeRequest):
    job: JobOptions = Field(default_factory=JobOptions)


def _summary(ctx: Context, ref: str, analysis_id: str) -> AnalysisSummary:
    return next(a for a in service.list_analyses(ctx, ref) if a.id == analysis_id)


@router.post("/analyses", response_model=AnalysisSummary, status_code=201)
def analyze(ref: str, body: AnalyzeRequest, ctx: Upload) -> AnalysisSummary:
    """Analyse the version now and store the analysis with it (409 when the fit check refuses the data)."""
    opts = AnalysisOptions(**body.model_dump(include=set(AnalysisOptions.model_fields)))
    a = service.analyze(ctx, ref, body.intent, lang=body.lang, opts=opts)
    return _summary(ctx, ref, a.id)


@router.post("/analyses/jobs", response_model=JobView, status_code=201)
def analyze_job(ref: str, body: AnalyzeJobRequest, ctx: Upload) -> JobView:
    """Queue the analysis as an ``analyze`` job (for large versions); its result names the analysis."""
    spec = AnalyzeJob(data=ref, **body.model_dump(exclude={"job"}))
    return submit_job(ctx, body.job.submission(ctx, "analyze", spec))


@router.get("/analyses", response_model=list[AnalysisSummary])
def list_analyses(ref: str, ctx: View) -> list[AnalysisSummary]:
    """The version's analyses, newest first."""
    return service.list_analyses(ctx, ref)


@router.get("/analysis", response_model=Analysis)
def latest(ref: str, ctx: View, id: str | None = None) -> Analysis:
    """The latest analysis of the version (or the one with ``id``) in full: spec, fit, profile, map,
    findings with their row ids, health score."""
    return service.get_analysis(ctx, ref, id)


@router.get(
    "/analysis/report",
    response_class=FileResponse,
    responses={200: {"content": {m: {} for m in MEDIA.values()}}},
)
def report(
    ref: str, ctx: View, format: Literal["html", "md", "json"] = "html", id: str | None = None
) -> FileResponse:
    """The report of the latest analysis (or ``id``) as a file, in the analysis's language."""
    path = service.report_path(ctx, ref, format, id)
    return FileResponse(path, media_type=MEDIA[format], filename=f"{ref.replace('/', '_')}-analysis.{format}")
