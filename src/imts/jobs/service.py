"""Jobs as users see them: submit, list, show, request pause/resume/cancel/retry/delete, follow, and
``execute``: one code path for a command that runs a job kind in this process or as a job.

Submitting writes the job row; the scheduler decides the rest. When no scheduler is running (the
embedded default), the functions that need one run passes in this process. Every function here acts
on the jobs of ``ctx.project_id`` only (another project's job is "not found"), except ``pool_jobs``,
the pool's view of every tenant; the scheduler loop itself is global.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, func, select, update

from imts.core.errors import ConflictError, ImtsError, InputError, NotFoundError
from imts.core.ids import new_id
from imts.core.progress import NullProgress, Progress
from imts.jobs import registry, storage, store
from imts.jobs.executors import log_path
from imts.jobs.machine import FINISHED, HOLDING, USER_ACTIONS, State, allowed
from imts.jobs.policy import PRIORITY_CLASSES, quota_refusal, storage_refusal
from imts.jobs.pool import Pool, Prices, Request, load_pool, project_key
from imts.jobs.registry import JobContext
from imts.jobs.views import JobEventView, JobProgressBar, JobView
from imts.store import audit
from imts.store.context import Context
from imts.store.models import JobEvent, JobRecord, Project
from imts.store.workspace import Workspace

log = logging.getLogger(__name__)


class QuotaError(ImtsError):
    """A tenant's quota does not allow the job."""


@dataclass(frozen=True)
class Submission:
    kind: str
    spec: dict[str, Any] | BaseModel
    owner: str = ""
    name: str = ""
    priority_class: str = "normal"
    preemptible: bool | None = None  # default: every class but urgent
    workers: int = 1
    request: Request = field(default_factory=Request)
    max_retries: int = 1
    id: str | None = None  # chosen by the caller (a loop step's job), else a new one


def submit(ctx: Context, sub: Submission) -> str:
    """Validate and queue a job; returns its id. Refuses what could never run, with the reason."""
    kind = registry.get(sub.kind)
    spec = kind.parse(sub.spec)
    kind.check(ctx, spec)
    if sub.priority_class not in PRIORITY_CLASSES:
        raise InputError(
            f"unknown priority class '{sub.priority_class}'; one of {', '.join(PRIORITY_CLASSES)}",
            field="priority",
        )
    if sub.workers < 1:
        raise InputError("workers must be at least 1", field="workers")
    sub = replace(sub, workers=kind.workers(spec, sub.workers))
    if sub.workers > 1 and not kind.multi_worker:
        raise InputError(f"{sub.kind} jobs run as one worker (got {sub.workers})", field="workers")
    pool_spec = load_pool(ctx.settings.pool_file)
    if not Pool(pool_spec).could_ever_fit(sub.workers, sub.request):
        need = sub.request.model_dump(exclude_defaults=True)
        nodes = ", ".join(
            f"{n.name}: {n.cpus} CPU, {sum(g.count for g in n.gpus)} GPU" for n in pool_spec.nodes
        )
        raise QuotaError(f"the pool can never hold {sub.workers} worker(s) x {need} (nodes: {nodes})")
    now = time.time()
    snap = store.snapshot(ctx, now, pool_spec.period_hours * 3600)
    refusal = quota_refusal(pool_spec, ctx.tenant, 0, snap.usage.get(ctx.tenant, store.Usage()))
    project = project_key(ctx.tenant, ctx.project)
    if refusal is None and kind.writes and pool_spec.project(project).storage_gb is not None:
        used = storage.usage(ctx).get(project)
        refusal = storage_refusal(pool_spec, project, used.total if used else 0)
    if refusal is not None:
        raise QuotaError(refusal)
    job_id = sub.id or new_id("job")
    with ctx.session() as s:
        s.add(
            JobRecord(
                id=job_id,
                project_id=ctx.project_id,
                tenant=ctx.tenant,  # fair share and quotas are per tenant: the project's
                owner=sub.owner,
                kind=sub.kind,
                name=sub.name or sub.kind,
                spec=spec.model_dump(mode="json"),
                priority_class=sub.priority_class,
                priority=PRIORITY_CLASSES[sub.priority_class],
                preemptible=sub.priority_class != "urgent" if sub.preemptible is None else sub.preemptible,
                workers=sub.workers,
                request=sub.request.model_dump(mode="json"),
                max_retries=sub.max_retries,
                submitted_ts=now,
                progress={},
                data={},
            )
        )
        s.flush()
        s.add(JobEvent(job_id=job_id, ts=now, kind="queued", message="submitted"))
        summary = {"kind": sub.kind, "name": sub.name or sub.kind, "priority": sub.priority_class,
                   "workers": sub.workers}  # fmt: skip
        audit.record(ctx, s, "job.submit", ("job", job_id), None, summary)
    return job_id


def _jobs(ctx: Context) -> Select[tuple[JobRecord, str]]:
    """The context's project's jobs, each with its project's name."""
    return (
        select(JobRecord, Project.name)
        .join(Project, Project.id == JobRecord.project_id)
        .where(JobRecord.project_id == ctx.project_id)
    )


def get(ctx: Context, job_id: str) -> JobView:
    """One job of the context's project.

    Raises:
        NotFoundError: no such job in this project.
    """
    with ctx.session() as s:
        found = s.execute(_jobs(ctx).where(JobRecord.id == job_id)).first()
        if found is None:
            raise NotFoundError(f"no job '{job_id}'")
        return JobView.of(*found, _prices(ctx), time.time())


def events(ctx: Context, job_id: str) -> list[JobEventView]:
    """The job's history, oldest first."""
    get(ctx, job_id)
    with ctx.session() as s:
        rows = s.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
        return [JobEventView.of(e) for e in rows]


def list_ids(ctx: Context, ids: list[str]) -> set[str]:
    """Which of ``ids`` exist in the context's project."""
    with ctx.session() as s:
        return set(
            s.scalars(
                select(JobRecord.id).where(JobRecord.id.in_(ids), JobRecord.project_id == ctx.project_id)
            )
        )


def list_jobs(ctx: Context, state: str | None = None, limit: int = 200) -> list[JobView]:
    """The project's jobs, newest first."""
    q = _jobs(ctx).order_by(JobRecord.submitted_ts.desc()).limit(limit)
    with ctx.session() as s:
        rows = s.execute(q.where(JobRecord.state == state) if state else q)
        prices, now = _prices(ctx), time.time()
        return [JobView.of(*r, prices, now) for r in rows]


def pool_jobs(ctx: Context, limit: int = 100_000) -> list[JobView]:
    """Every tenant's queued jobs and those holding resources, newest first: the shared pool's view
    (allocation, shares, queue). Finished jobs, thousands in a busy pool, are not read."""
    live = [st.value for st in (*HOLDING, State.QUEUED)]
    q = (
        select(JobRecord, Project.name)
        .join(Project, Project.id == JobRecord.project_id)
        .where(JobRecord.state.in_(live))
        .order_by(JobRecord.submitted_ts.desc())
        .limit(limit)
    )
    prices, now = _prices(ctx), time.time()
    with ctx.session() as s:
        return [JobView.of(*r, prices, now) for r in s.execute(q)]


def _prices(ctx: Context) -> Prices | None:
    return load_pool(ctx.settings.pool_file).prices


class ProjectCost(BaseModel):
    project: str
    jobs: int
    cost: float


class CostSummary(BaseModel):
    """What the tenant's jobs have cost so far (resource-hours x the pool's prices), per project."""

    priced: bool  # false: the pool file has no price table, and nothing is costed
    currency: str
    total: float
    projects: list[ProjectCost]
    at: float


def costs(ctx: Context) -> CostSummary:
    """The tenant's costs per project (every job so far); nothing when the pool has no price table.
    Ended attempts are summed in the database (a busy tenant has thousands of finished jobs); the
    attempts running now add what they have held so far."""
    prices, now = _prices(ctx), time.time()
    if prices is None:
        return CostSummary(priced=False, currency="", total=0.0, projects=[], at=now)
    req, ran = JobRecord.request, store.worker_seconds()
    by: dict[str, float] = {}
    counts: dict[str, int] = {}
    with ctx.session() as s:
        mine = select(Project.id, Project.name).where(Project.tenant_id == ctx.tenant_id)
        names = dict(s.execute(mine).tuples().all())
        # Grouped by the output columns' names: PostgreSQL does not see two JSON paths as one expression.
        gpu_type = req["gpu_type"].as_string().label("gpu_type")
        mig = req["mig"].as_string().is_not(None).label("mig")
        ended = s.execute(
            select(
                JobRecord.project_id, gpu_type, mig, func.count(),
                func.sum(ran * store.requested("cpus")), func.sum(ran * store.requested("memory_gb")),
                func.sum(ran * store.requested("gpus")), func.sum(ran),
            )
            .where(JobRecord.project_id.in_(list(names)))
            .group_by(JobRecord.project_id, gpu_type, mig)
        ).all()  # fmt: skip
        live = s.execute(
            select(JobRecord, Project.name)
            .join(Project, Project.id == JobRecord.project_id)
            .where(Project.tenant_id == ctx.tenant_id, JobRecord.state.in_(["running", "preempting"]))
        ).all()
    for project_id, gpu_type, mig, n, cpu_s, mem_s, gpu_s, worker_s in ended:
        gpu = prices.gpu_hour.get(gpu_type or "", prices.default_gpu_hour)
        cost = cpu_s * prices.cpu_hour + mem_s * prices.memory_gb_hour + gpu_s * gpu
        cost += worker_s * prices.mig_hour if mig else 0.0
        name = names[project_id]
        by[name] = by.get(name, 0.0) + cost / 3600
        counts[name] = counts.get(name, 0) + n
    for row, name in live:  # the running attempt, not yet in ran_s
        view = JobView.of(row, name)
        running_s = max(0.0, now - (view.started_ts or now))
        by[name] = by.get(name, 0.0) + prices.hourly(view.workers, view.request) * running_s / 3600
    projects = [ProjectCost(project=p, jobs=counts.get(p, 0), cost=c) for p, c in sorted(by.items())]
    return CostSummary(
        priced=True, currency=prices.currency, total=sum(by.values()), projects=projects, at=now
    )


class RequestOutcome(BaseModel):
    """What a pause | resume | cancel | retry | delete request led to.

    Attributes:
        job: the job after the scheduler handled the request (None once deleted), or as it is now
            when ``handled`` is false.
        handled: whether a scheduler pass has acted on the request yet.
    """

    job: JobView | None
    handled: bool


def request_and_wait(ctx: Context, job_id: str, action: str, timeout_s: float = 10.0) -> RequestOutcome:
    """``request``, then wait (up to ``timeout_s``) until a scheduler pass has handled it, so the
    state reported is the one the request led to, not the one before it."""
    request(ctx, job_id, action)
    end = time.monotonic() + timeout_s
    while True:
        with ctx.session() as s:
            found = s.execute(select(JobRecord.action).where(JobRecord.id == job_id)).first()
        if found is None:
            return RequestOutcome(job=None, handled=True)
        if found[0] is None:
            return RequestOutcome(job=get(ctx, job_id), handled=True)
        if time.monotonic() > end:
            return RequestOutcome(job=get(ctx, job_id), handled=False)
        time.sleep(0.2)
        settle(ctx)  # the lease holder may have been a command that has stopped following


def request(ctx: Context, job_id: str, action: str) -> None:
    """Ask for pause | resume | cancel | retry | delete; refused at once when the state forbids it."""
    if action not in USER_ACTIONS:
        raise InputError(f"unknown action '{action}'; one of {', '.join(USER_ACTIONS)}")
    for _ in range(50):  # compare-and-set against the scheduler's writes
        with ctx.session() as s:
            found = s.execute(
                select(JobRecord.state, JobRecord.version).where(
                    JobRecord.id == job_id, JobRecord.project_id == ctx.project_id
                )
            ).first()
        if found is None:
            raise NotFoundError(f"no job '{job_id}'")
        state, version = found
        if not allowed(state, action):
            raise ConflictError(f"cannot {action} job {job_id}: it is {state}")
        with ctx.session() as s:
            res = s.execute(
                update(JobRecord)
                .where(JobRecord.id == job_id, JobRecord.version == version)
                .values(action=action, version=JobRecord.version + 1)
            )
            if res.rowcount:  # type: ignore[attr-defined]
                # The request is the change users make; the scheduler carries it out afterwards.
                audit.record(ctx, s, f"job.{action}", ("job", job_id), {"state": state}, {"action": action})
                break
        time.sleep(0.05)
    else:
        raise ConflictError(f"job {job_id} keeps changing; try again")
    settle(ctx, wait=True)


# Reads' scheduling passes in this process (``settle``): when the last began, per database; one at a time.
_last_pass: dict[str, float] = {}
_read_pass = threading.Lock()


def settle(ctx: Context, wait: bool = False) -> None:
    """One scheduling pass here if no scheduler is running (embedded mode needs no daemon): queued
    jobs start, finished workers' reports become states, lost workers are noticed.

    Args:
        wait: always pass (after a change, to answer with the state it leads to). Without it, as for
            a command that polls, pass only when no pass began in this process within
            ``scheduler_interval_s`` and none is under way. The API's reads use ``settle_soon``.
    """
    if store.lease_holder(ctx) is not None:
        return
    from imts.jobs.loop import Scheduler

    if wait:
        Scheduler(ctx).once()
        return
    key = ctx.settings.db_url
    if time.monotonic() - _last_pass.get(key, -1e9) < ctx.settings.scheduler_interval_s:
        return
    if not _read_pass.acquire(blocking=False):
        return  # another request is passing right now
    try:
        _last_pass[key] = time.monotonic()
        Scheduler(ctx).once()
    finally:
        _read_pass.release()


# The API server's background passes (``settle_soon``): one thread of the process, woken by reads.
_asked: dict[str, Workspace] = {}
_wake = threading.Event()
_soon_lock = threading.Lock()
_passer: threading.Thread | None = None


def settle_soon(ctx: Context) -> None:
    """Ask for a scheduling pass in the background, for a read of the API: the read answers at once.

    A pass writes (the scheduler's lease, the jobs it moves on), and on SQLite a write waits for the
    one writer: a read that passed inline waited behind every upload's commit. One thread of this
    process passes instead, at most once per ``scheduler_interval_s``, while no scheduler daemon holds
    the lease (embedded mode needs no daemon; with one, this does nothing).
    """
    global _passer
    with _soon_lock:
        _asked[ctx.settings.db_url] = ctx.ws
        if _passer is None or not _passer.is_alive():
            _passer = threading.Thread(target=_pass_when_asked, name="imts-settle", daemon=True)
            _passer.start()
    _wake.set()


def _pass_when_asked() -> None:
    from imts.jobs.loop import Scheduler

    while True:
        _wake.wait()
        _wake.clear()
        with _soon_lock:
            asked = list(_asked.values())
            _asked.clear()
        for ws in asked:
            try:
                if store.lease_holder(ws) is None:
                    Scheduler(ws).once()
            except Exception as exc:  # the next read asks again
                log.warning("background scheduling pass failed: %s", exc)
        time.sleep(min((ws.settings.scheduler_interval_s for ws in asked), default=0.5))


def logs(ctx: Context, job_id: str) -> list[Path]:
    """Log files of the job's attempts, oldest first."""
    row = get(ctx, job_id)
    return [p for a in range(1, row.attempt + 1) if (p := log_path(ctx.settings, job_id, a)).exists()]


def follow(
    ctx: Context,
    job_id: str,
    progress: Progress | None = None,
    poll_s: float = 0.5,
    on_requeued: Callable[[str, str], None] | None = None,
) -> JobView:
    """Wait until the job has finished, showing its live progress; runs scheduler passes in this
    process while no scheduler daemon holds the lease (so the embedded default needs no daemon).

    Args:
        on_requeued: told (job id, why) when a started attempt ends and the job is queued again (its
            worker was lost, or it was preempted); the live bar is closed then, and a new one opens
            when the next attempt reports.
    """
    from imts.jobs.loop import Scheduler

    bar = JobProgressBar(progress or NullProgress())
    sched: Scheduler | None = None
    try:
        while True:
            if store.lease_holder(ctx) in (None, getattr(sched, "holder", None)):
                sched = sched or Scheduler(ctx)
                sched.tick()
            row = get(ctx, job_id)
            # A new attempt (one pass may requeue and place it again): say why; a new bar opens.
            if bar.show(row) and on_requeued is not None:
                why = [e.message for e in events(ctx, job_id) if "-> queued" in e.message]
                on_requeued(job_id, why[-1] if why else "requeued")
            if row.state in [s.value for s in FINISHED]:
                return row
            time.sleep(poll_s)
    finally:
        bar.close()
        if sched is not None:
            store.release_lease(ctx, sched.holder)


def node_cpus(ctx: Context, workers: int = 1) -> int:
    """CPU slots per worker when ``workers`` share a whole node (the largest) out, as an inline run
    would use it: the default of commands that run as jobs."""
    return max(1, max(n.cpus for n in load_pool(ctx.settings.pool_file).nodes) // workers)


def execute(
    ctx: Context,
    sub: Submission,
    *,
    inline: bool = False,
    progress: Progress | None = None,
    on_queued: Callable[[str], None] | None = None,
    on_requeued: Callable[[str, str], None] | None = None,
) -> BaseModel:
    """Run a job kind to its end and return its typed result: in this process (``inline``), or as a
    job submitted and followed (scheduling passes run here while no scheduler daemon runs).

    Args:
        on_queued: told the job's id once it is queued (not for an inline run).
        on_requeued: told (job id, why) each time the followed job is queued again.

    Raises:
        ImtsError: the job did not succeed (its state and error).
    """
    kind = registry.get(sub.kind)
    if inline:
        return run_inline(ctx, sub.kind, sub.spec, progress)
    job_id = submit(ctx, sub)
    if on_queued is not None:
        on_queued(job_id)
    job = follow(ctx, job_id, progress, on_requeued=on_requeued)
    if job.state != State.SUCCEEDED.value:
        raise ImtsError(f"job {job_id} {job.state}: {job.error or job.reason}")
    return kind.result.model_validate(job.result)


def run_inline(
    ctx: Context, kind_name: str, spec: dict[str, Any] | BaseModel, progress: Progress | None = None
) -> BaseModel:
    """Run a kind's runner in this process: its data kept in memory, never asked to stop. Its own
    checks are the runner's (nothing is queued, so no quota applies)."""
    kind = registry.get(kind_name)
    data: dict[str, Any] = {}
    job = JobContext(
        ctx, new_id("job"), 1, data, data.update, lambda: False, progress or NullProgress(), time.time()
    )
    return kind.run(job, kind.parse(spec))
