"""The shared resource pool and the quotas: what a tenant may see of the pool, and its quotas."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from imts.api.deps import platform_ctx, tenant_ctx
from imts.core.permissions import Permission
from imts.jobs import service as jobs
from imts.jobs.service import CostSummary
from imts.services import pool
from imts.services.pool import PoolState, QuotaUpdate, QuotaView
from imts.store.context import Context

router = APIRouter(tags=["pool"])
Viewer = Annotated[Context, Depends(tenant_ctx(Permission.METRICS_VIEW))]


@router.get("/pool", response_model=PoolState)
def whole_pool(ctx: Annotated[Context, Depends(platform_ctx)]) -> PoolState:
    """Allocation per node, every tenant's jobs and fair share (platform administrators)."""
    return pool.pool_state(ctx)


@router.get("/tenants/{tenant}/pool", response_model=PoolState)
def tenant_pool(ctx: Viewer) -> PoolState:
    """Allocation per node, the tenant's running jobs and its place in the queue; other tenants only
    as totals."""
    return pool.pool_state(ctx)


@router.get("/tenants/{tenant}/costs", response_model=CostSummary)
def tenant_costs(ctx: Viewer) -> CostSummary:
    """What the tenant's jobs have cost so far (resource-hours x the pool's price table), per project;
    ``priced`` is false when the pool has no price table."""
    return jobs.costs(ctx)


@router.get("/tenants/{tenant}/quota", response_model=QuotaView)
def show_quota(ctx: Viewer) -> QuotaView:
    """The tenant's quotas (jobs at once, CPU/GPU-hours per period, project storage) and its usage."""
    return pool.quota(ctx)


@router.put("/tenants/{tenant}/quota", response_model=QuotaView)
def set_quota(
    body: QuotaUpdate, ctx: Annotated[Context, Depends(tenant_ctx(Permission.RESOURCES_MANAGE))]
) -> QuotaView:
    """Change the tenant's quotas; fields left out keep their value (weight and CPU/GPU-hours:
    platform administrators only)."""
    return pool.set_quota(ctx, body)
