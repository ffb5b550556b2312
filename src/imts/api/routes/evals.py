"""Evaluations and comparison reports of a project: submit an evaluation job, generate a report,
fetch it as JSON, HTML or Markdown."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from imts.api.deps import project_ctx
from imts.api.routes.jobs import JobOptions, submit_job
from imts.core.permissions import Permission
from imts.evals.jobs import EvalJob
from imts.evals.suite import SuiteSpec
from imts.jobs.views import JobView
from imts.services import reports
from imts.services.reports import ReportFormat, ReportRequest, ReportView
from imts.store.context import Context

router = APIRouter(prefix="/tenants/{tenant}/projects/{project}", tags=["evaluations"])
Viewer = Annotated[Context, Depends(project_ctx(Permission.METRICS_VIEW))]
Trainer = Annotated[Context, Depends(project_ctx(Permission.MODEL_TRAIN))]
FILES = {
    200: {
        "content": {"application/json": {}, "text/html": {}, "text/markdown": {}},
        "description": "the report file",
    }
}
MEDIA = {"json": "application/json", "html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8"}


class EvalSubmit(BaseModel):
    """An evaluation, as ``imts eval`` builds it: a model reference, a suite, the job options."""

    model: str = Field(..., min_length=1, description="Base model name, model version (NAME[:N]) or run id.")
    suite: SuiteSpec
    job: JobOptions = Field(default_factory=JobOptions)


@router.post("/evaluations", response_model=JobView, status_code=201)
def evaluate(body: EvalSubmit, ctx: Trainer) -> JobView:
    """Queue an evaluation job; its eval runs (one per dataset) appear under /runs once it starts."""
    return submit_job(ctx, body.job.submission(ctx, "eval", EvalJob(model=body.model, suite=body.suite)))


@router.post("/reports", response_model=ReportView, status_code=201)
def generate_report(body: ReportRequest, ctx: Trainer) -> ReportView:
    """Write the comparison report of a training run (before/after) or of two or more eval runs."""
    return reports.generate(ctx, body)


@router.get("/reports/{run_id}", response_model=ReportView)
def show_report(run_id: str, ctx: Viewer) -> ReportView:
    """The report filed under a run: its title, language and data (``report.json``)."""
    return reports.get(ctx, run_id)


@router.get("/reports/{run_id}/{fmt}", response_class=FileResponse, responses=FILES)
def report_file(run_id: str, fmt: ReportFormat, ctx: Viewer) -> FileResponse:
    """One file of the report: ``json``, ``html`` (self-contained, offline) or ``md``."""
    return FileResponse(reports.report_file(ctx, run_id, fmt), media_type=MEDIA[fmt])
