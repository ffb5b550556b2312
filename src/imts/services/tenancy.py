"""Tenants and projects as the server manages them: created explicitly, listed per caller, audited."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from imts.core.errors import ConflictError, InputError, PermissionDeniedError
from imts.core.ids import new_id
from imts.core.permissions import Permission, Role
from imts.store import audit
from imts.store.context import Context
from imts.store.models import Membership, Project, Tenant, User, utcnow

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class TenantView(BaseModel):
    """A tenant, with the caller's role in it (None for a platform administrator who is no member)."""

    id: str
    name: str
    created_at: datetime
    role: Role | None = None


class ProjectView(BaseModel):
    """A tenant's project."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    tenant: str
    created_at: datetime


def _check_name(name: str, field: str) -> None:
    if not _NAME.match(name):
        raise InputError(f"'{name}' is not a valid name (letters, digits, . _ -; at most 100)", field=field)


def create_tenant(ctx: Context, name: str) -> TenantView:
    """A new tenant (platform administrators only)."""
    if not ctx.platform_admin:
        raise PermissionDeniedError("only a platform administrator may create tenants")
    _check_name(name, "name")
    with ctx.session() as s:
        if s.scalar(select(Tenant.id).where(Tenant.name == name)):
            raise ConflictError(f"tenant '{name}' exists already")
        t = Tenant(id=new_id("tnt"), name=name, created_at=utcnow())
        s.add(t)
        s.flush()
        audit.record(ctx, s, "tenant.create", ("tenant", name), None, {"id": t.id})
        return TenantView(id=t.id, name=t.name, created_at=t.created_at)


def list_tenants(ctx: Context, only: str | None = None) -> list[TenantView]:
    """The tenants ``ctx.principal`` is a member of (all of them for a platform administrator);
    ``only``: a tenant id the caller's key is limited to."""
    with ctx.session() as s:
        roles = dict(
            s.execute(
                select(Membership.tenant_id, Membership.role)
                .join(User, User.id == Membership.user_id)
                .where(User.username == ctx.principal)
            )
            .tuples()
            .all()
        )
        q = select(Tenant).order_by(Tenant.name)
        if not ctx.platform_admin:
            q = q.where(Tenant.id.in_(list(roles)))
        if only:
            q = q.where(Tenant.id == only)
        return [
            TenantView(id=t.id, name=t.name, created_at=t.created_at, role=roles.get(t.id))
            for t in s.scalars(q)
        ]


def create_project(ctx: Context, name: str) -> ProjectView:
    """A new project in the context's tenant."""
    ctx.require(Permission.PROJECT_MANAGE)
    _check_name(name, "name")
    with ctx.session() as s:
        if s.scalar(select(Project.id).where(Project.tenant_id == ctx.tenant_id, Project.name == name)):
            raise ConflictError(f"project '{name}' exists already in tenant '{ctx.tenant}'")
        p = Project(id=new_id("prj"), tenant_id=ctx.tenant_id, name=name, created_at=utcnow())
        s.add(p)
        s.flush()
        audit.record(ctx, s, "project.create", ("project", name), None, {"id": p.id})
        return ProjectView(id=p.id, name=name, tenant=ctx.tenant, created_at=p.created_at)


def list_projects(ctx: Context, only: str | None = None) -> list[ProjectView]:
    """The context's tenant's projects (``only``: the one project a caller's key is limited to)."""
    ctx.require(Permission.PROJECT_VIEW)
    with ctx.session() as s:
        q = select(Project).where(Project.tenant_id == ctx.tenant_id).order_by(Project.name)
        if only:
            q = q.where(Project.id == only)
        return [
            ProjectView(id=p.id, name=p.name, tenant=ctx.tenant, created_at=p.created_at)
            for p in s.scalars(q)
        ]


def show_project(ctx: Context) -> ProjectView:
    """The context's project."""
    ctx.require(Permission.PROJECT_VIEW)
    with ctx.session() as s:
        p = s.get(Project, ctx.project_id)
        assert p is not None  # the context was built from it
        return ProjectView(id=p.id, name=p.name, tenant=ctx.tenant, created_at=p.created_at)
