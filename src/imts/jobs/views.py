"""Read models of jobs: what the job services return (and the API will answer with); never ORM rows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from imts.jobs.pool import Request
from imts.store.models import JobEvent, JobRecord


class JobView(BaseModel):
    """One job as its users see it."""

    id: str
    kind: str
    name: str
    tenant: str
    project: str
    owner: str
    priority_class: str
    priority: int
    preemptible: bool
    workers: int
    request: Request
    max_retries: int
    spec: dict[str, Any]
    state: str
    reason: str
    error: str | None
    attempt: int
    retries: int
    slots: list[Any] | None  # the allocation of a holding job (``Slot`` JSON per worker)
    worker_pid: int | None
    worker_host: str | None
    heartbeat_ts: float | None
    progress: dict[str, Any]  # the running attempt's task, done, total and live fields
    data: dict[str, Any]  # what later attempts see (e.g. the run id) and, once done, "result"
    submitted_ts: float
    started_ts: float | None
    finished_ts: float | None

    @property
    def result(self) -> dict[str, Any] | None:
        """The succeeded job's result (the JSON of its kind's result model)."""
        return self.data.get("result")

    @classmethod
    def of(cls, r: JobRecord, project: str) -> JobView:
        return cls(
            id=r.id,
            kind=r.kind,
            name=r.name,
            tenant=r.tenant,
            project=project,
            owner=r.owner,
            priority_class=r.priority_class,
            priority=r.priority,
            preemptible=r.preemptible,
            workers=r.workers,
            request=Request.model_validate(r.request),
            max_retries=r.max_retries,
            spec=dict(r.spec),
            state=r.state,
            reason=r.reason,
            error=r.error,
            attempt=r.attempt,
            retries=r.retries,
            slots=list(r.slots) if r.slots is not None else None,
            worker_pid=r.worker_pid,
            worker_host=r.worker_host,
            heartbeat_ts=r.heartbeat_ts,
            progress=dict(r.progress or {}),
            data=dict(r.data or {}),
            submitted_ts=r.submitted_ts,
            started_ts=r.started_ts,
            finished_ts=r.finished_ts,
        )


class JobEventView(BaseModel):
    """A line of a job's history (queued, starting, preempted for ..., succeeded, ...)."""

    ts: float
    kind: str
    message: str

    @classmethod
    def of(cls, e: JobEvent) -> JobEventView:
        return cls(ts=e.ts, kind=e.kind, message=e.message)
