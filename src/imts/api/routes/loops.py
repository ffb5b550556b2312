"""The closed loop: start one, follow it (status, steps, the iteration log, the report), stop, resume
and approve its data actions. Each read runs a scheduler pass when no scheduler daemon runs, so an
embedded server moves its loops on as they are looked at."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from imts.api.deps import project_ctx
from imts.core.permissions import Permission
from imts.flywheel import report, service
from imts.flywheel.service import IterationView, LoopView, StepView
from imts.flywheel.spec import LoopSpec
from imts.jobs import service as jobs
from imts.store.context import Context

router = APIRouter(prefix="/tenants/{tenant}/projects/{project}", tags=["loops"])
Viewer = Annotated[Context, Depends(project_ctx(Permission.METRICS_VIEW))]
Trainer = Annotated[Context, Depends(project_ctx(Permission.MODEL_TRAIN))]
MEDIA = {"html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8"}


@router.post("/loops", response_model=LoopView, status_code=201)
def start(body: LoopSpec, ctx: Trainer) -> LoopView:
    """Start a closed loop on a dataset for an intent; the scheduler's passes move it on."""
    view = service.start(ctx, body)
    jobs.settle(ctx, wait=True)
    return service.get(ctx, view.id)


@router.get("/loops", response_model=list[LoopView])
def list_loops(ctx: Viewer) -> list[LoopView]:
    """The project's loops, newest first."""
    jobs.settle_soon(ctx)
    return service.list_loops(ctx)


@router.get("/loops/{loop_id}", response_model=LoopView)
def show(loop_id: str, ctx: Viewer) -> LoopView:
    """One loop: where it stands, its outcomes per iteration, the best model, what it spent."""
    jobs.settle_soon(ctx)
    return service.get(ctx, loop_id)


@router.get("/loops/{loop_id}/steps", response_model=list[StepView])
def steps(loop_id: str, ctx: Viewer) -> list[StepView]:
    """Every step so far with its job, state, run time, reason and result."""
    return service.steps(ctx, loop_id)


@router.get("/loops/{loop_id}/log", response_model=list[IterationView])
def log(loop_id: str, ctx: Viewer) -> list[IterationView]:
    """The iteration log: problem found -> data fix -> gain, with the numbers."""
    return service.iterations(ctx, loop_id)


@router.get(
    "/loops/{loop_id}/report",
    response_class=FileResponse,
    responses={200: {"content": {m: {} for m in MEDIA.values()}}},
)
def loop_report(
    loop_id: str, ctx: Viewer, format: Literal["html", "md"] = "html", lang: Literal["en", "zh"] = "en"
) -> FileResponse:
    """The loop's report (the rising curve and the iteration log), written now."""
    paths = report.write(ctx, service.get(ctx, loop_id), service.iterations(ctx, loop_id), lang)
    return FileResponse(paths[format], media_type=MEDIA[format], filename=f"{loop_id}-{lang}.{format}")


@router.post("/loops/{loop_id}/stop", response_model=LoopView)
def stop(loop_id: str, ctx: Trainer) -> LoopView:
    """Stop the loop; its running step's job is paused and keeps its checkpoint."""
    return service.stop(ctx, loop_id)


@router.post("/loops/{loop_id}/resume", response_model=LoopView)
def resume(loop_id: str, ctx: Trainer) -> LoopView:
    """Go on from where a stopped or failed loop stands (a failed step is tried again)."""
    return service.resume(ctx, loop_id)


@router.post("/loops/{loop_id}/approve", response_model=LoopView)
def approve(loop_id: str, ctx: Trainer) -> LoopView:
    """Apply the data actions the loop waits on (policy ``approve``)."""
    return service.approve(ctx, loop_id)
