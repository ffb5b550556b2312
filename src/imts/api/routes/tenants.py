"""Tenants and their projects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from imts.api.deps import CurrentUser, WorkspaceDep, client_of, platform_ctx, project_ctx, tenant_ctx
from imts.core.permissions import Permission
from imts.services import tenancy
from imts.services.tenancy import ProjectView, TenantView
from imts.store.context import Context

router = APIRouter(prefix="/tenants", tags=["tenants"])


class NameBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)


@router.get("", response_model=list[TenantView])
def list_tenants(request: Request, who: CurrentUser, ws: WorkspaceDep) -> list[TenantView]:
    """The tenants the caller is a member of (within its key's scope)."""
    ctx = Context(ws, "", "", "", "", who.username, "viewer", client_of(request), who.acts_as_platform_admin)
    return tenancy.list_tenants(ctx, only=who.key_tenant_id)


@router.post("", response_model=TenantView, status_code=201)
def create_tenant(body: NameBody, ctx: Annotated[Context, Depends(platform_ctx)]) -> TenantView:
    """Create a tenant (platform administrators)."""
    return tenancy.create_tenant(ctx, body.name)


@router.get("/{tenant}/projects", response_model=list[ProjectView])
def list_projects(
    ctx: Annotated[Context, Depends(tenant_ctx(Permission.PROJECT_VIEW))], who: CurrentUser
) -> list[ProjectView]:
    """The tenant's projects (a project-scoped key sees its own only)."""
    return tenancy.list_projects(ctx, only=who.key_project_id)


@router.post("/{tenant}/projects", response_model=ProjectView, status_code=201)
def create_project(
    body: NameBody, ctx: Annotated[Context, Depends(tenant_ctx(Permission.PROJECT_MANAGE))]
) -> ProjectView:
    """Create a project in the tenant."""
    return tenancy.create_project(ctx, body.name)


@router.get("/{tenant}/projects/{project}", response_model=ProjectView)
def show_project(ctx: Annotated[Context, Depends(project_ctx(Permission.PROJECT_VIEW))]) -> ProjectView:
    """One project of the tenant."""
    return tenancy.show_project(ctx)
