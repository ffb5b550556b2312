"""Jobs of a project: submit (any kind, or a training run), list, show, pause, resume, cancel, retry,
delete, and their logs, whole or streamed live over server-sent events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import PlainTextResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from imts.api.deps import project_ctx
from imts.api.errors import JSON_ERROR_RESPONSES
from imts.core.errors import InputError
from imts.core.permissions import Permission
from imts.jobs import service
from imts.jobs.executors import log_path
from imts.jobs.machine import FINISHED
from imts.jobs.pool import Request
from imts.jobs.views import JobEventView, JobView
from imts.store.context import Context
from imts.train.jobs import TrainJob
from imts.train.spec import RunSpec

router = APIRouter(prefix="/tenants/{tenant}/projects/{project}", tags=["jobs"])
Viewer = Annotated[Context, Depends(project_ctx(Permission.METRICS_VIEW))]
Trainer = Annotated[Context, Depends(project_ctx(Permission.MODEL_TRAIN))]
Priority = Literal["urgent", "high", "normal", "low"]
ENDED = {s.value for s in FINISHED} | {"paused"}  # a log stream ends here; a paused job resumes later
SSE = {
    **JSON_ERROR_RESPONSES,
    200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
}
TEXT = {
    **JSON_ERROR_RESPONSES,
    200: {"content": {"text/plain": {}}, "description": "the worker logs of every attempt"},
}


class JobOptions(BaseModel):
    """Where and how a job runs: what ``imts jobs submit`` takes as options."""

    name: str = Field("", max_length=200, description="A label.")
    priority: Priority = "normal"
    preemptible: bool | None = Field(None, description="Default: every class but urgent.")
    workers: int = Field(1, ge=1, le=1024, description="Gang size: all start together or not at all.")
    request: Request = Field(default_factory=Request, description="What each worker needs.")
    retries: int = Field(1, ge=0, le=100, description="Retries when the job fails or its worker is lost.")

    def submission(self, ctx: Context, kind: str, spec: dict[str, Any] | BaseModel) -> service.Submission:
        return service.Submission(
            kind, spec, owner=ctx.principal, name=self.name, priority_class=self.priority,
            preemptible=self.preemptible, workers=self.workers, request=self.request,
            max_retries=self.retries,
        )  # fmt: skip


class JobSubmit(JobOptions):
    """A job of any registered kind (train, eval, split, sleep, ...) with its spec as JSON."""

    kind: str = Field(..., min_length=1, max_length=40, description="train | eval | split | sleep | ...")
    spec: dict[str, Any] = Field(default_factory=dict, description="The kind's spec (its fields as JSON).")


class TrainSubmit(BaseModel):
    """A training run, as ``imts train`` builds it: the run spec, the model name, the job options."""

    run: RunSpec
    model_name: str | None = Field(None, description="Model name to record the result under.")
    job: JobOptions = Field(default_factory=JobOptions)


class JobDetail(BaseModel):
    """One job with its history."""

    job: JobView
    events: list[JobEventView]


class JobDeleted(BaseModel):
    """What a delete request left: ``deleted``, or the state while the scheduler still has to act."""

    id: str
    state: str


def submit_job(ctx: Context, sub: service.Submission) -> JobView:
    job_id = service.submit(ctx, sub)
    service.settle(ctx, wait=True)  # answer with the state the submission leads to
    return service.get(ctx, job_id)


@router.get("/jobs", response_model=list[JobView])
def list_jobs(
    ctx: Viewer, state: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[JobView]:  # fmt: skip
    """The project's jobs, newest first (``reason`` says why a queued job waits)."""
    service.settle_soon(ctx)
    return service.list_jobs(ctx, state, limit)


@router.post("/jobs", response_model=JobView, status_code=201)
def submit(body: JobSubmit, ctx: Trainer) -> JobView:
    """Queue a job; refused at once, with the reason, when it could never fit or is over quota."""
    return submit_job(ctx, body.submission(ctx, body.kind, body.spec))


@router.post("/train", response_model=JobView, status_code=201)
def train(body: TrainSubmit, ctx: Trainer) -> JobView:
    """Queue a fine-tuning job (LoRA, QLoRA, full or DPO); its run appears under /runs once it starts."""
    opts = body.job.model_copy(update={"workers": body.run.nproc})
    return submit_job(ctx, opts.submission(ctx, "train", TrainJob(run=body.run, model_name=body.model_name)))


def job_of(job_id: str, ctx: Viewer) -> JobView:
    """The job (404 before any stream starts when it is not this project's)."""
    return service.get(ctx, job_id)


JobDep = Annotated[JobView, Depends(job_of)]


@router.get("/jobs/{job_id}", response_model=JobDetail)
def show(job_id: str, ctx: Viewer) -> JobDetail:
    """One job: spec, allocation, state, progress, result and history."""
    service.settle_soon(ctx)
    return JobDetail(job=service.get(ctx, job_id), events=service.events(ctx, job_id))


# How long an action's answer waits for a scheduling pass to act on it: a pass under way elsewhere (the
# API's background pass, or a scheduler daemon) holds the lease, and the request is handled by the next.
ACT_WAIT_S = 5.0


def _act(ctx: Context, job_id: str, action: str) -> JobView:
    outcome = service.request_and_wait(ctx, job_id, action, timeout_s=ACT_WAIT_S)
    return outcome.job if outcome.job is not None else service.get(ctx, job_id)


@router.post("/jobs/{job_id}/pause", response_model=JobView)
def pause(job_id: str, ctx: Trainer) -> JobView:
    """Checkpoint and stop a running job (or hold a queued one); returns its state after the request."""
    return _act(ctx, job_id, "pause")


@router.post("/jobs/{job_id}/resume", response_model=JobView)
def resume(job_id: str, ctx: Trainer) -> JobView:
    """Queue a paused job again; it continues from its checkpoint."""
    return _act(ctx, job_id, "resume")


@router.post("/jobs/{job_id}/cancel", response_model=JobView)
def cancel(job_id: str, ctx: Trainer) -> JobView:
    """Stop a job for good."""
    return _act(ctx, job_id, "cancel")


@router.post("/jobs/{job_id}/retry", response_model=JobView)
def retry(job_id: str, ctx: Trainer) -> JobView:
    """Queue a failed or cancelled job again, with a fresh retry budget."""
    return _act(ctx, job_id, "retry")


@router.delete("/jobs/{job_id}", response_model=JobDeleted)
def delete(job_id: str, ctx: Trainer) -> JobDeleted:
    """Delete a finished job and its history."""
    outcome = service.request_and_wait(ctx, job_id, "delete", timeout_s=ACT_WAIT_S)
    return JobDeleted(id=job_id, state="deleted" if outcome.job is None else outcome.job.state)


@router.get("/jobs/{job_id}/logs", response_class=PlainTextResponse, responses=TEXT)
def logs(job: JobDep, ctx: Viewer) -> PlainTextResponse:
    """The worker logs of every attempt, oldest first, each under an ``== attempt N ==`` line."""
    parts = []
    for a in range(1, job.attempt + 1):
        path = log_path(ctx.settings, job.id, a)
        if path.exists():
            parts.append(f"== attempt {a} ==\n" + path.read_text(encoding="utf-8", errors="replace"))
    return PlainTextResponse("".join(parts))


class LogChunk(BaseModel):
    """A piece of an attempt's log; the event id ``ATTEMPT:OFFSET`` is where the next one starts."""

    attempt: int
    text: str


class StreamEnd(BaseModel):
    """The last event: the state the job (or run) ended in."""

    state: str


def log_position(last_event_id: Annotated[str | None, Header()] = None) -> tuple[int, int]:
    """Where to resume (``Last-Event-ID``: ATTEMPT:OFFSET), checked before any stream starts."""
    if not last_event_id:
        return 1, 0
    attempt, sep, offset = last_event_id.partition(":")
    if not (sep and attempt.isdigit() and offset.isdigit()):
        raise InputError("Last-Event-ID must be ATTEMPT:OFFSET, as sent in the stream", field="Last-Event-ID")
    return int(attempt), int(offset)


@router.get("/jobs/{job_id}/logs/stream", response_class=EventSourceResponse, responses=SSE)
def stream_logs(
    job: JobDep, ctx: Viewer, position: Annotated[tuple[int, int], Depends(log_position)],
    poll_s: Annotated[float, Query(ge=0.05, le=10)] = 0.25,
) -> Iterator[ServerSentEvent]:  # fmt: skip
    """The job's logs live: ``log`` events (resume with ``Last-Event-ID``), then one ``end`` event
    when the job has finished or paused."""
    attempt, offset = position
    while True:
        service.settle_soon(ctx)  # embedded mode: no scheduler daemon; the server's passes move the job on
        row = service.get(ctx, job.id)
        ended = row.state in ENDED
        while attempt <= max(row.attempt, 1):
            path = log_path(ctx.settings, job.id, attempt)
            chunk = b""
            if path.exists():
                with path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read(1 << 16)
            if chunk:
                # Cut at the last newline so that no UTF-8 character or line is split between events.
                cut = chunk.rfind(b"\n") + 1 if (b"\n" in chunk and not ended) else len(chunk)
                offset += cut
                text = chunk[:cut].decode("utf-8", errors="replace")
                yield ServerSentEvent(
                    event="log", id=f"{attempt}:{offset}", data=LogChunk(attempt=attempt, text=text)
                )
                continue
            if attempt >= row.attempt:
                break
            attempt, offset = attempt + 1, 0
        if ended:
            yield ServerSentEvent(event="end", data=StreamEnd(state=row.state))
            return
        time.sleep(poll_s)
