"""The shared resource pool and the quotas as typed views: allocation per node, running jobs and the
queue, per-tenant fair share, and reading and setting a tenant's quotas (the pool file).

A tenant's view shows its own jobs and only counts of the others' (a tenant never learns another's
names or job ids); a platform administrator's view shows every tenant.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, Field, field_validator

from imts.core.errors import ConflictError, PermissionDeniedError
from imts.core.permissions import Permission
from imts.jobs import service as jobs
from imts.jobs import storage
from imts.jobs import store as job_store
from imts.jobs.machine import HOLDING, State
from imts.jobs.policy import Candidate, shares
from imts.jobs.pool import Pool, PoolSpec, ProjectQuota, Slot, TenantSpec, load_pool, project_key
from imts.jobs.views import JobView
from imts.store import audit
from imts.store.context import Context


class NodeUsage(BaseModel):
    """One node: what it has and what the holding jobs use of it."""

    name: str
    cpus: int
    cpus_used: int
    memory_gb: float
    memory_gb_used: float
    gpus_free: dict[str, int]  # GPU type -> whole GPUs free
    mig_free: dict[str, int]  # "type profile" -> MIG slices free


class TenantShare(BaseModel):
    tenant: str
    weight: float
    share: float  # weighted dominant share of the pool held now, 0..1
    running: int
    queued: int


class QueuedJob(BaseModel):
    """A queued job with its place in the whole pool's queue (1: next) and why it waits."""

    job: JobView
    position: int
    waiting_s: float


class PoolState(BaseModel):
    """The pool as the caller may see it; ``others`` sums up the tenants it may not see."""

    nodes: list[NodeUsage]
    running: list[JobView]
    queue: list[QueuedJob]
    tenants: list[TenantShare]
    others: TenantShare | None = None
    at: float


def pool_state(ctx: Context) -> PoolState:
    """The pool seen from the context's tenant (its jobs only), or whole for a platform context."""
    if ctx.tenant_id:
        ctx.require(Permission.METRICS_VIEW)
    elif not ctx.platform_admin:
        raise PermissionDeniedError("only a platform administrator may see every tenant's jobs")
    now = time.time()
    spec = load_pool(ctx.settings.pool_file)
    pool = Pool(spec)
    rows = jobs.pool_jobs(ctx)
    running = [r for r in rows if State(r.state) in HOLDING]
    for r in running:
        pool.take([Slot.from_json(s) for s in r.slots or []])
    nodes = []
    for n in spec.nodes:
        f = pool.free[n.name]
        nodes.append(
            NodeUsage(
                name=n.name, cpus=n.cpus, cpus_used=n.cpus - f.cpus, memory_gb=n.memory_gb,
                memory_gb_used=round(n.memory_gb - f.memory_gb, 3),
                gpus_free={t: len(ix) for t, ix in f.gpus.items()},
                mig_free={f"{t} {p}": left for (t, p), left in f.mig.items()},
            )
        )  # fmt: skip
    cands = [Candidate(r.id, r.tenant, r.priority, r.workers, r.request, r.submitted_ts) for r in running]
    share = shares(spec, pool, cands)
    queued = sorted(
        (r for r in rows if r.state == State.QUEUED.value), key=lambda r: (-r.priority, r.submitted_ts)
    )
    names = sorted({r.tenant for r in running} | {r.tenant for r in queued} | set(spec.tenants))

    def tenant_share(t: str) -> TenantShare:
        return TenantShare(
            tenant=t, weight=spec.tenant(t).weight, share=share.get(t, 0.0),
            running=sum(r.tenant == t for r in running), queued=sum(r.tenant == t for r in queued),
        )  # fmt: skip

    def visible(r: JobView) -> bool:
        return not ctx.tenant_id or r.tenant == ctx.tenant

    queue = [QueuedJob(job=r, position=i + 1, waiting_s=now - r.submitted_ts) for i, r in enumerate(queued)]
    state = PoolState(
        nodes=nodes,
        running=[r for r in running if visible(r)],
        queue=[q for q in queue if visible(q.job)],
        tenants=[tenant_share(t) for t in names if not ctx.tenant_id or t == ctx.tenant],
        at=now,
    )
    if ctx.tenant_id:
        hidden = [t for t in names if t != ctx.tenant]
        state.others = TenantShare(
            tenant="(other tenants)", weight=sum(spec.tenant(t).weight for t in hidden),
            share=sum(share.get(t, 0.0) for t in hidden),
            running=sum(r.tenant != ctx.tenant for r in running),
            queued=sum(r.tenant != ctx.tenant for r in queued),
        )  # fmt: skip
    return state


class ProjectQuotaView(BaseModel):
    storage_gb: float | None
    used_bytes: int


class QuotaView(BaseModel):
    """A tenant's quotas (from the pool file) and what it used of them this period."""

    tenant: str
    pool_file: str | None  # None: the pool is this machine, without a file (quotas cannot be set)
    period_hours: float
    weight: float
    max_concurrent: int | None
    cpu_hours: float | None
    gpu_hours: float | None
    running: int
    cpu_hours_used: float
    gpu_hours_used: float
    projects: dict[str, ProjectQuotaView]


class QuotaUpdate(BaseModel):
    """Fields to change; those left out keep their value. ``weight``, ``cpu_hours`` and ``gpu_hours``
    share the pool out between tenants, so only a platform administrator may change them."""

    max_concurrent: int | None = Field(None, ge=1, description="Jobs running at once.")
    weight: float | None = Field(None, gt=0, description="Fair-share weight.")
    cpu_hours: float | None = Field(None, ge=0, description="CPU-slot hours per period.")
    gpu_hours: float | None = Field(None, ge=0, description="GPU hours per period.")
    # ge=0 as the pool file's own field: a negative quota is refused here (422), not when the file is built
    projects: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="Project name -> storage quota in GiB."
    )

    @field_validator("weight")
    @classmethod
    def _weight_is_a_number(cls, v: float | None) -> float:
        # Every tenant has a weight: null given explicitly would only fail when the file is built.
        if v is None:
            raise ValueError("weight cannot be null: leave it out to keep the current weight")
        return v


POOL_WIDE = ("weight", "cpu_hours", "gpu_hours")


def quota(ctx: Context) -> QuotaView:
    """The context's tenant's quotas and usage this period."""
    ctx.require(Permission.METRICS_VIEW)
    spec = load_pool(ctx.settings.pool_file)
    q = spec.tenant(ctx.tenant)
    snap = job_store.snapshot(ctx.ws, time.time(), spec.period_hours * 3600)
    used = snap.usage.get(ctx.tenant, job_store.Usage())
    holding = [s.value for s in HOLDING]
    running = sum(r.tenant == ctx.tenant and r.state in holding for r in snap.rows)
    stored = storage.usage(ctx.ws)
    keys = {p: project_key(ctx.tenant, p) for p in sorted(_project_names(ctx))}
    return QuotaView(
        tenant=ctx.tenant, pool_file=str(ctx.settings.pool_file) if ctx.settings.pool_file else None,
        period_hours=spec.period_hours, weight=q.weight, max_concurrent=q.max_concurrent,
        cpu_hours=q.cpu_hours, gpu_hours=q.gpu_hours, running=running,
        cpu_hours_used=used.cpu_hours, gpu_hours_used=used.gpu_hours,
        projects={
            p: ProjectQuotaView(storage_gb=spec.project(k).storage_gb,
                                used_bytes=stored[k].total if k in stored else 0)
            for p, k in keys.items()
        },
    )  # fmt: skip


def _project_names(ctx: Context) -> set[str]:
    from sqlalchemy import select

    from imts.store.models import Project

    with ctx.session() as s:
        return set(s.scalars(select(Project.name).where(Project.tenant_id == ctx.tenant_id)))


def set_quota(ctx: Context, change: QuotaUpdate) -> QuotaView:
    """Change the context's tenant's quotas in the pool file (written whole, atomically), audited.

    Raises:
        PermissionDeniedError: the role lacks manage_resources, or a tenant administrator changes a
            pool-wide field.
        ConflictError: there is no pool file (``IMTS_POOL_FILE``) to keep quotas in.
        NotFoundError: a named project is not the tenant's.
    """
    ctx.require(Permission.RESOURCES_MANAGE)
    fields = change.model_dump(exclude_unset=True, exclude={"projects"})
    if any(k in fields for k in POOL_WIDE) and not ctx.platform_admin:
        raise PermissionDeniedError(
            f"only a platform administrator may change {', '.join(POOL_WIDE)} (they share the pool out)"
        )
    path = ctx.settings.pool_file
    if path is None:
        raise ConflictError(
            "the pool is this machine, described by no file: set IMTS_POOL_FILE to a pool YAML to keep quotas"
        )
    from imts.core.errors import NotFoundError

    unknown = sorted(set(change.projects) - _project_names(ctx))
    if unknown:
        raise NotFoundError(f"no project '{unknown[0]}' in tenant '{ctx.tenant}'")
    spec = load_pool(path)
    before = spec.tenant(ctx.tenant)
    tenants = {**spec.tenants, ctx.tenant: before.model_copy(update=fields)}
    keys = {p: project_key(ctx.tenant, p) for p in change.projects}
    mine = {keys[p]: ProjectQuota(storage_gb=gb) for p, gb in change.projects.items()}
    projects = {**spec.projects, **mine}
    new = PoolSpec.model_validate({**spec.model_dump(), "tenants": tenants, "projects": projects})
    with ctx.session() as s:
        audit.record(
            ctx, s, "quota.set", ("tenant", ctx.tenant),
            {**before.model_dump(), "projects": {p: spec.project(k).storage_gb for p, k in keys.items()}},
            {**tenants[ctx.tenant].model_dump(), "projects": change.projects},
        )  # fmt: skip
        # The file is replaced whole before the entry commits: a failed write rolls the entry back.
        _write_atomically(path, new)
    return quota(ctx)


def _write_atomically(path: Path, spec: PoolSpec) -> None:
    text = yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["PoolState", "QuotaUpdate", "QuotaView", "TenantSpec", "pool_state", "quota", "set_quota"]
