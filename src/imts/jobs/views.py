"""Read models of jobs: what the job services return (and the API will answer with); never ORM rows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from imts.jobs.pool import Prices, Request
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
    cost: float | None = None  # resource-hours so far x the pool's prices; None without a price table

    @property
    def result(self) -> dict[str, Any] | None:
        """The succeeded job's result (the JSON of its kind's result model)."""
        return self.data.get("result")

    @classmethod
    def of(cls, r: JobRecord, project: str, prices: Prices | None = None, now: float = 0.0) -> JobView:
        """The view of a row; ``project`` is the name of its project (the row holds the id); with
        ``prices``, what the job has cost up to ``now``."""
        values = {f: getattr(r, f) for f in cls.model_fields if f not in ("project", "cost")}
        view = cls.model_validate(
            {**values, "project": project, "progress": r.progress or {}, "data": r.data or {}}
        )
        if prices is not None:
            view.cost = prices.hourly(view.workers, view.request) * view.held_s(now) / 3600
        return view

    def held_s(self, now: float) -> float:
        """Seconds the job has held its resources: its ended attempts, and the running one so far."""
        ended = float(self.data.get("ran_s", 0.0))
        if self.state in ("running", "preempting") and self.started_ts is not None:
            return ended + max(0.0, now - self.started_ts)
        return ended


class JobEventView(BaseModel):
    """A line of a job's history (queued, starting, preempted for ..., succeeded, ...)."""

    ts: float
    kind: str
    message: str

    @classmethod
    def of(cls, e: JobEvent) -> JobEventView:
        return cls.model_validate(e, from_attributes=True)


class JobLogEvent(BaseModel):
    """A piece of a followed job's log (``text`` of ``attempt``), or the last event: ``state`` set to
    the state the job ended (or paused) in."""

    attempt: int = 0
    text: str = ""
    state: str | None = None


class JobProgressBar:
    """Mirrors a followed job's live progress (``JobView.progress``: task, done, total, fields) onto a
    ``Progress``: one bar per task, a new one for each new attempt. Fed a view per poll, here or by the
    remote CLI from the API; ``close`` when done."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.task_cm: Any = None
        self.bar: Any = None
        self.shown: tuple[str, float] = ("", 0.0)
        self.attempt = 0

    def show(self, row: JobView) -> bool:
        """Update from ``row``; True when it is a new attempt of the job (requeued after a start)."""
        requeued = bool(self.attempt and row.attempt > self.attempt)
        if requeued:
            self.close()
        self.attempt = row.attempt
        p = row.progress or {}
        if row.state == "running" and p.get("task"):
            if p["task"] != self.shown[0] or self.bar is None:
                self.close()
                self.task_cm = self.progress.task(f"{row.kind} {row.id}: {p['task']}", p.get("total"))
                self.bar, self.shown = self.task_cm.__enter__(), (p["task"], 0.0)
                self.bar.advance(0)
            done = float(p.get("done", 0.0))
            if done != self.shown[1]:
                self.bar.advance(done - self.shown[1], **p.get("fields", {}))
                self.shown = (self.shown[0], done)
        return requeued

    def close(self) -> None:
        if self.task_cm is not None:
            self.task_cm.__exit__(None, None, None)
        self.task_cm, self.bar, self.shown = None, None, ("", 0.0)
