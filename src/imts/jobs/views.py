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
        """The view of a row; ``project`` is the name of its project (the row holds the id)."""
        values = {f: getattr(r, f) for f in cls.model_fields if f != "project"}
        return cls.model_validate(
            {**values, "project": project, "progress": r.progress or {}, "data": r.data or {}}
        )


class JobEventView(BaseModel):
    """A line of a job's history (queued, starting, preempted for ..., succeeded, ...)."""

    ts: float
    kind: str
    message: str

    @classmethod
    def of(cls, e: JobEvent) -> JobEventView:
        return cls.model_validate(e, from_attributes=True)
