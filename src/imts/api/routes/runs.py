"""Training and evaluation runs of a project: list, show, metrics history, live metrics over
server-sent events, and comparison side by side."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

from imts.api.deps import project_ctx
from imts.api.routes.jobs import SSE, StreamEnd
from imts.core.errors import InputError
from imts.core.permissions import Permission
from imts.jobs import service as jobs
from imts.store import runs
from imts.store.context import Context
from imts.store.runs import RunComparison, RunEventView, RunRecord, RunView

router = APIRouter(prefix="/tenants/{tenant}/projects/{project}/runs", tags=["runs"])
Viewer = Annotated[Context, Depends(project_ctx(Permission.METRICS_VIEW))]
LIVE = {"created", "running"}  # a run in any other status has ended (a preempted one may resume later)


class RunDetail(BaseModel):
    """One run with its events (checkpoints, rollbacks, early stop ...)."""

    run: RunView
    events: list[RunEventView]


class MetricPoint(BaseModel):
    step: int
    value: float


class StepMetrics(BaseModel):
    """Every metric logged at one step; the event id is the step."""

    step: int
    metrics: dict[str, float]


@router.get("", response_model=list[RunView])
def list_runs(
    ctx: Viewer, kind: Literal["train", "eval"] | None = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[RunView]:  # fmt: skip
    """Runs, newest first."""
    return runs.search(ctx, kind=kind, status=status, limit=limit)


@router.get("/compare", response_model=RunComparison)
def compare(ctx: Viewer, run: Annotated[list[str], Query(min_length=2, max_length=20)]) -> RunComparison:
    """Runs side by side (``?run=A&run=B``): the spec keys that differ, and their summary metrics."""
    return runs.compare(ctx, run)


@router.get("/{run_id}", response_model=RunDetail)
def show(run_id: str, ctx: Viewer) -> RunDetail:
    """One run: spec, summary, status and events."""
    return RunDetail(run=runs.get(ctx, run_id), events=runs.events(ctx, run_id))


@router.get("/{run_id}/metrics", response_model=dict[str, list[MetricPoint]])
def metrics(
    run_id: str, ctx: Viewer, key: Annotated[list[str] | None, Query(max_length=100)] = None,
    after_step: Annotated[int | None, Query(ge=-1)] = None,
    until_step: Annotated[int | None, Query(ge=0)] = None,
    buckets: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> dict[str, list[MetricPoint]]:  # fmt: skip
    """The run's metrics history by key (``?key=loss&key=lr`` for some), in step order; steps in
    ``(after_step, until_step]``. ``?buckets=1000`` cuts each curve's range into that many buckets and
    keeps each bucket's minimum, maximum and last point, so no spike is lost."""
    if buckets is not None:
        hist = runs.curves(ctx, run_id, key, buckets, after_step, until_step)
    else:
        hist = runs.history(ctx, run_id, key, after_step, until_step)
    return {k: [MetricPoint(step=s, value=v) for s, v in points] for k, points in hist.items()}


def after_step(last_event_id: Annotated[str | None, Header()] = None) -> int:
    """The step to resume after (``Last-Event-ID``), checked before any stream starts."""
    if last_event_id is None:
        return -1
    if not last_event_id.lstrip("-").isdigit():
        raise InputError("Last-Event-ID must be the last step received", field="Last-Event-ID")
    return int(last_event_id)


def run_of(run_id: str, ctx: Viewer) -> RunView:
    """The run (404 before any stream starts when it is not this project's)."""
    return runs.get(ctx, run_id)


@router.get("/{run_id}/metrics/stream", response_class=EventSourceResponse, responses=SSE)
def stream_metrics(
    run: Annotated[RunView, Depends(run_of)], ctx: Viewer, after: Annotated[int, Depends(after_step)],
    poll_s: Annotated[float, Query(ge=0.05, le=10)] = 0.25,
) -> Iterator[ServerSentEvent]:  # fmt: skip
    """Metrics live, one ``metrics`` event per logged step (resume with ``Last-Event-ID``: the last
    step received), then one ``end`` event with the run's final status."""
    while True:
        jobs.settle_soon(ctx)  # embedded mode: no scheduler daemon; the server's passes move the job on
        status = runs.get(ctx, run.id).status
        by_step: dict[int, dict[str, float]] = {}
        for key, points in runs.history(ctx, run.id, after_step=after).items():
            for step, value in points:
                by_step.setdefault(step, {})[key] = value
        for step in sorted(by_step):
            yield ServerSentEvent(
                event="metrics", id=str(step), data=StepMetrics(step=step, metrics=by_step[step])
            )
            after = step
        if status not in LIVE:  # read before the metrics: nothing logged before the end is missed
            yield ServerSentEvent(event="end", data=StreamEnd(state=status))
            return
        time.sleep(poll_s)


@router.get("/{run_id}/record", response_model=RunRecord)
def run_record(run_id: str, ctx: Viewer) -> RunRecord:
    """The run with what it was made with: code version (commit, dirty), packages, hardware, seeds."""
    return runs.record(ctx, run_id)
