"""The jobs' narrow store interface: every write is a compare-and-set, so racing processes are safe.

The scheduler writes its columns only if the row's ``version`` is the one it read; a worker writes its
columns only for its own ``attempt``. Two schedulers, or a scheduler and a worker, can therefore never
both win: the loser's update matches no row, and it re-reads on its next pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from imts.jobs import registry
from imts.jobs.executors import WorkerJob
from imts.jobs.machine import FINISHED, HOLDING, Job, State
from imts.jobs.policy import Usage
from imts.jobs.pool import Request, Slot, project_key
from imts.store.models import JobEvent, JobRecord, Project, SchedulerLease, Tenant
from imts.store.workspace import Workspace

WORKER_EXITS = ("succeeded", "failed", "stopped")


def project_keys(s: Session) -> dict[str, str]:
    """Every project's id -> its key in the pool file (TENANT/PROJECT)."""
    query = select(Project.id, Project.name, Tenant.name).join(Tenant, Tenant.id == Project.tenant_id)
    return {pid: project_key(tenant, name) for pid, name, tenant in s.execute(query).tuples()}


def to_job(r: JobRecord, project: str = "") -> Job:
    """The scheduler's view of a row (``project``: the key of the row's project, TENANT/PROJECT)."""
    return Job(
        id=r.id,
        tenant=r.tenant,
        project=project,
        writes=writes(r.kind),
        priority=r.priority,
        workers=r.workers,
        request=Request.model_validate(r.request),
        submitted=r.submitted_ts,
        preemptible=r.preemptible,
        max_retries=r.max_retries,
        state=State(r.state),
        attempt=r.attempt,
        retries=r.retries,
        stop_reason=r.stop_reason,
        slots=[Slot.from_json(s) for s in r.slots] if r.slots else None,
        started=r.started_ts,
        heartbeat=r.heartbeat_ts if r.report_attempt == r.attempt else None,
        reason=r.reason,
        error=r.error,
    )


def writes(kind: str) -> bool:
    """Whether jobs of ``kind`` write artifacts (held back by a storage quota); a kind this process
    does not know counts as writing."""
    k = registry.find(kind)
    return k.writes if k is not None else True


def worker_job(r: JobRecord) -> WorkerJob:
    """The executor's view of a row."""
    return WorkerJob(
        id=r.id,
        kind=r.kind,
        tenant=r.tenant,
        priority_class=r.priority_class,
        workers=r.workers,
        request=Request.model_validate(r.request),
        max_retries=r.max_retries,
        report_attempt=r.report_attempt,
        worker_pid=r.worker_pid,
        worker_host=r.worker_host,
    )


def worker_seconds() -> Any:
    """SQL: the seconds a job's ended attempts held its workers (``ran_s`` x workers)."""
    return func.coalesce(JobRecord.data["ran_s"].as_float(), 0.0) * JobRecord.workers


def requested(key: str) -> Any:
    """SQL: what each worker of a job asked for of ``key`` (cpus, memory_gb, gpus), 0 when unset."""
    return func.coalesce(JobRecord.request[key].as_float(), 0.0)


@dataclass
class Snapshot:
    rows: list[JobRecord]
    usage: dict[str, Usage]
    projects: dict[str, str]  # project id -> key (TENANT/PROJECT, the pool file's)


def snapshot(ws: Workspace, now: float, period_s: float) -> Snapshot:
    """Unfinished jobs and those with a pending request, plus each tenant's usage in the quota period."""
    with ws.session() as s:
        rows = list(
            s.scalars(
                select(JobRecord).where(
                    or_(JobRecord.state.not_in([st.value for st in FINISHED]), JobRecord.action.is_not(None))
                )
            )
        )
        projects = project_keys(s)
        # Summed in the database: a busy period's thousands of finished jobs are not decoded one by one.
        ran = worker_seconds()
        recent = s.execute(
            select(JobRecord.tenant, func.sum(ran * requested("cpus")), func.sum(ran * requested("gpus")))
            .where(JobRecord.finished_ts > now - period_s)
            .group_by(JobRecord.tenant)
        ).all()
    usage = {t: Usage(cpu_hours=cpu_s / 3600, gpu_hours=gpu_s / 3600) for t, cpu_s, gpu_s in recent}
    for r in rows:
        if r.state in (State.RUNNING.value, State.PREEMPTING.value) and r.started_ts:
            u = usage.setdefault(r.tenant, Usage())
            secs = now - r.started_ts
            u.cpu_hours += r.workers * r.request.get("cpus", 0) * secs / 3600
            u.gpu_hours += r.workers * r.request.get("gpus", 0) * secs / 3600
    return Snapshot(rows, usage, projects)


def persist(ws: Workspace, job: Job, version: int, consumed_action: bool, now: float) -> bool:
    """Write the scheduler's view of ``job`` if nobody changed the row since it was read."""
    values: dict[str, Any] = {
        "state": job.state.value,
        "attempt": job.attempt,
        "retries": job.retries,
        "stop_reason": job.stop_reason,
        "slots": [s.to_json() for s in job.slots] if job.slots else None,
        "started_ts": job.started,
        "reason": job.reason,
        "error": job.error,
        "version": version + 1,
    }
    if job.state in FINISHED:
        values["finished_ts"] = now
    elif job.state == State.QUEUED:
        values["finished_ts"] = None
    if consumed_action:
        values["action"] = None
    with ws.session() as s:
        res = s.execute(
            update(JobRecord).where(JobRecord.id == job.id, JobRecord.version == version).values(**values)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]


def remove(ws: Workspace, job_id: str, version: int) -> bool:
    with ws.session() as s:
        s.execute(delete(JobEvent).where(JobEvent.job_id == job_id))
        res = s.execute(delete(JobRecord).where(JobRecord.id == job_id, JobRecord.version == version))
        return bool(res.rowcount)  # type: ignore[attr-defined]


def record(ws: Workspace, events: list[tuple[str, str, str]], now: float | None = None) -> None:
    """Append (job id, kind, message) lines to the jobs' histories."""
    if events:
        ts = now or time.time()
        with ws.session() as s:
            s.execute(
                insert(JobEvent), [{"job_id": j, "ts": ts, "kind": k, "message": m} for j, k, m in events]
            )


# --- worker side -----------------------------------------------------------------------------------


def claim(ws: Workspace, job_id: str, attempt: int, pid: int, host: str) -> JobRecord | None:
    """Mark ``attempt`` as running in process ``pid``; None if the attempt is no longer current (the
    job was requeued, cancelled or claimed already): that worker must exit without doing anything."""
    with ws.session() as s:
        res = s.execute(
            update(JobRecord)
            .where(
                JobRecord.id == job_id,
                JobRecord.attempt == attempt,
                JobRecord.state.in_([State.STARTING.value, State.PREEMPTING.value]),
                or_(JobRecord.report_attempt.is_(None), JobRecord.report_attempt != attempt),
            )
            .values(
                report="running",
                report_attempt=attempt,
                worker_pid=pid,
                worker_host=host,
                heartbeat_ts=time.time(),
                version=JobRecord.version + 1,
            )
        )
        if not res.rowcount:  # type: ignore[attr-defined]
            return None
        return s.get(JobRecord, job_id)


def heartbeat(ws: Workspace, job_id: str, attempt: int, progress: dict[str, Any]) -> None:
    """Alive. No version bump: heartbeats must not make the scheduler's writes fail."""
    with ws.session() as s:
        s.execute(
            update(JobRecord)
            .where(JobRecord.id == job_id, JobRecord.report_attempt == attempt, JobRecord.attempt == attempt)
            .values(heartbeat_ts=time.time(), progress=progress)
        )


def save_data(ws: Workspace, job_id: str, attempt: int, data: dict[str, Any]) -> None:
    """Merge ``data`` into what later attempts of the job will see."""
    with ws.session() as s:
        row = s.get(JobRecord, job_id, with_for_update=True)
        if row is not None and row.attempt == attempt:
            row.data = {**row.data, **data}


def finish(
    ws: Workspace,
    job_id: str,
    attempt: int,
    outcome: str,
    error: str | None,
    ran_s: float,
    result: dict[str, Any],
) -> bool:
    """Report how the attempt ended; the scheduler turns it into the job's next state."""
    assert outcome in WORKER_EXITS
    with ws.session() as s:
        row = s.get(JobRecord, job_id, with_for_update=True)
        if row is None or row.attempt != attempt or row.report_attempt != attempt:
            return False
        data = {**row.data, "ran_s": float(row.data.get("ran_s", 0.0)) + ran_s}
        if result:
            data["result"] = result
        s.execute(
            update(JobRecord)
            .where(and_(JobRecord.id == job_id, JobRecord.attempt == attempt))
            .values(report=outcome, error=error, data=data, version=JobRecord.version + 1)
        )
        return True


# --- leader lease ----------------------------------------------------------------------------------


def acquire_lease(ws: Workspace, holder: str, ttl: float, name: str = "scheduler") -> bool:
    """Take or extend the lease; False while another live scheduler holds it."""
    now = time.time()
    with ws.session() as s:
        res = s.execute(
            update(SchedulerLease)
            .where(
                SchedulerLease.name == name,
                or_(SchedulerLease.holder == holder, SchedulerLease.expires_ts < now),
            )
            .values(holder=holder, expires_ts=now + ttl)
        )
        if res.rowcount:  # type: ignore[attr-defined]
            return True
    try:
        with ws.session() as s:
            if s.get(SchedulerLease, name) is not None:
                return False
            s.add(SchedulerLease(name=name, holder=holder, expires_ts=now + ttl))
        return True
    except IntegrityError:
        return False


def release_lease(ws: Workspace, holder: str, name: str = "scheduler") -> None:
    with ws.session() as s:
        s.execute(
            update(SchedulerLease)
            .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
            .values(expires_ts=0.0)
        )


def lease_holder(ws: Workspace, name: str = "scheduler") -> str | None:
    """The live lease holder, if any."""
    with ws.session() as s:
        lease = s.get(SchedulerLease, name)
        return lease.holder if lease is not None and lease.expires_ts > time.time() else None


def holding(r: JobRecord) -> bool:
    return State(r.state) in HOLDING
