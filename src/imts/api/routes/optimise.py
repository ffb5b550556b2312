"""Data optimisation: plan a fix, run it as a ``data_fix`` job, and the review queue of held rows.

``{ref}`` is a dataset reference as the CLI takes it (``NAME``, ``NAME@N``, ``dv_...``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from imts.api.deps import project_ctx
from imts.api.routes.jobs import JobOptions, submit_job
from imts.core.permissions import Permission
from imts.data.versions import VersionInfo
from imts.jobs.views import JobView
from imts.optimise import service
from imts.optimise.pii.scan import PiiScan
from imts.optimise.service import ReviewFix, ReviewView
from imts.optimise.spec import FixReport, FixSpec
from imts.store.context import Context

router = APIRouter(prefix="/tenants/{tenant}/projects/{project}", tags=["optimise"])
View = Annotated[Context, Depends(project_ctx(Permission.DATASET_VIEW))]
Upload = Annotated[Context, Depends(project_ctx(Permission.DATASET_UPLOAD))]


class FixRequest(BaseModel):
    """A data fix (``FixSpec`` without ``data``: the path names the version) and its job options."""

    fix: dict[str, object] = Field(default_factory=dict, description="FixSpec fields: pii, cot, augment ...")
    job: JobOptions = Field(default_factory=JobOptions)


class Decision(BaseModel):
    accept: bool
    reason: str = Field("", max_length=2000)


def _spec(ref: str, fields: dict[str, object]) -> FixSpec:
    from imts.jobs.registry import get

    spec = get("data_fix").parse({**fields, "data": ref})
    assert isinstance(spec, FixSpec)
    return spec


@router.post("/datasets/refs/{ref}/fix/plan", response_model=FixReport)
def plan(ref: str, body: FixRequest, ctx: View) -> FixReport:
    """What a data fix would do: PII by type, rows a teacher can rewrite, items each category needs."""
    return service.plan_fix(ctx, _spec(ref, body.fix))


@router.get("/datasets/refs/{ref}/pii", response_model=PiiScan)
def pii_scan(ref: str, ctx: View) -> PiiScan:
    """Which rows hold personal data, of which kinds (never the values), every text of every row
    scanned; split over Ray tasks when the pool runs on Ray."""
    return service.pii_scan(ctx, ref)


@router.post("/datasets/refs/{ref}/fix", response_model=JobView, status_code=201)
def fix(ref: str, body: FixRequest, ctx: Upload) -> JobView:
    """Run a data fix as a job; its result names the new version (lineage and change log in its report)."""
    spec = _spec(ref, body.fix)
    spec.resolved()  # refuse now what the job would refuse
    return submit_job(ctx, body.job.submission(ctx, "data_fix", spec))


@router.get("/reviews", response_model=list[ReviewView])
def reviews(
    ctx: View,
    status: Annotated[str, Query(description="pending | accepted | rejected | all")] = "pending",
    fix: Annotated[
        str | None, Query(description="Only the rows held by the fix that made this version.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[ReviewView]:
    """Generated or rewritten rows a fix held back for review (oldest first)."""
    return service.list_reviews(ctx, None if status == "all" else status, limit, fix)


@router.get("/reviews/fixes", response_model=list[ReviewFix])
def review_fixes(ctx: View) -> list[ReviewFix]:
    """The fixes that held rows for review: counts by status, versions committed from them."""
    return service.review_fixes(ctx)


@router.post("/reviews/{item_id}", response_model=ReviewView)
def decide(item_id: str, body: Decision, ctx: Upload) -> ReviewView:
    """Accept or reject one held row (rejected rows never enter a version)."""
    return service.decide(ctx, item_id, body.accept, body.reason)


@router.post("/datasets/refs/{ref}/reviewed", response_model=VersionInfo, status_code=201)
def commit_reviewed(ref: str, ctx: Upload) -> VersionInfo:
    """A new version: the fix's version plus the rows accepted in review."""
    return service.commit_reviewed(ctx, ref)
