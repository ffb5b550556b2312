"""Who acts, in which tenant and project: the ``Context`` every service function takes.

A context is built per call (per CLI command, per HTTP request, per job attempt) over the process's one
``Workspace``; after the first call for a (tenant, project) pair it costs a dictionary lookup. Every
store query of a project-owned object (datasets, runs, jobs, evaluations, model versions) filters on
``ctx.project_id``; nothing reads the project from the process's settings.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from imts.core.errors import NotFoundError, PermissionDeniedError
from imts.core.ids import new_id
from imts.core.permissions import MATRIX, Permission, Role
from imts.core.settings import Settings
from imts.store.artifacts import LocalArtifactStore
from imts.store.models import Project, Tenant
from imts.store.workspace import Workspace


@dataclass(frozen=True)
class Context:
    """One call's acting principal, tenant and project, over the shared infrastructure.

    Attributes:
        ws: the process's workspace (database, artifacts, settings).
        tenant_id, tenant: the tenant's id and name.
        project_id, project: the project's id and name; every project-owned object is read and
            written here.
        principal: who acts (a user name, ``local`` for the CLI's user, ``job:<id>`` for a worker).
        role: the principal's role in the tenant (``core/permissions.py``).
        client: the caller's network address (an HTTP request's), recorded in the audit log.
        platform_admin: the principal administers the installation (creates tenants and users); the
            CLI's local user does, since it holds the database itself.
    """

    ws: Workspace
    tenant_id: str
    tenant: str
    project_id: str
    project: str
    principal: str = "local"
    role: Role = "admin"
    client: str | None = None
    platform_admin: bool = False

    def require(self, perm: Permission) -> None:
        """Raise ``PermissionDeniedError`` unless the role holds ``perm``."""
        if perm not in MATRIX[self.role]:
            raise PermissionDeniedError(
                f"role '{self.role}' may not {perm.value.replace('_', ' ')} in tenant '{self.tenant}'"
            )

    def session(self) -> AbstractContextManager[Session]:
        return self.ws.session()

    @property
    def artifacts(self) -> LocalArtifactStore:
        return self.ws.artifacts

    @property
    def settings(self) -> Settings:
        return self.ws.settings


def open_context(
    ws: Workspace,
    tenant: str = "default",
    project: str = "default",
    principal: str = "local",
    role: Role = "admin",
    create: bool = True,
    client: str | None = None,
    platform_admin: bool = False,
) -> Context:
    """The context for ``tenant``/``project`` (names), creating both on first use when ``create``.

    Raises:
        NotFoundError: the tenant or project does not exist and ``create`` is false.
    """
    key = (tenant, project)
    if key not in ws.ids:
        ws.ids[key] = _ensure(ws, tenant, project, create)
    tenant_id, project_id = ws.ids[key]
    return Context(ws, tenant_id, tenant, project_id, project, principal, role, client, platform_admin)


def tenant_context(
    ws: Workspace,
    tenant: str,
    principal: str,
    role: Role,
    client: str | None = None,
    platform_admin: bool = False,
) -> Context:
    """A context for tenant-level actions (projects, members): no project (``project_id`` is "").

    Raises:
        NotFoundError: no such tenant.
    """
    with ws.session() as s:
        tenant_id = s.scalar(select(Tenant.id).where(Tenant.name == tenant))
    if tenant_id is None:
        raise NotFoundError(f"no tenant '{tenant}'")
    return Context(ws, tenant_id, tenant, "", "", principal, role, client, platform_admin)


def platform_context(ws: Workspace, principal: str, client: str | None = None) -> Context:
    """A platform administrator's context for installation-wide actions (tenants, users): no tenant."""
    return Context(ws, "", "", "", "", principal, "admin", client, platform_admin=True)


def context_of_project(
    ws: Workspace, project_id: str, principal: str = "local", role: Role = "admin"
) -> Context:
    """The context of an existing project, by id (a job worker acts in its job's project)."""
    with ws.session() as s:
        row = s.execute(
            select(Project.name, Tenant.id, Tenant.name)
            .join(Tenant, Tenant.id == Project.tenant_id)
            .where(Project.id == project_id)
        ).first()
    if row is None:
        raise NotFoundError(f"no project '{project_id}'")
    name, tenant_id, tenant = row
    ws.ids[(tenant, name)] = (tenant_id, project_id)
    return Context(ws, tenant_id, tenant, project_id, name, principal, role)


def _ensure(ws: Workspace, tenant: str, project: str, create: bool) -> tuple[str, str]:
    for attempt in range(2):  # a concurrent first use may insert the same row: read it back then
        try:
            with ws.session() as s:
                t = s.scalar(select(Tenant).where(Tenant.name == tenant))
                if t is None:
                    if not create:
                        raise NotFoundError(f"no tenant '{tenant}'")
                    t = Tenant(id=new_id("tnt"), name=tenant)
                    s.add(t)
                    s.flush()
                p = s.scalar(select(Project).where(Project.tenant_id == t.id, Project.name == project))
                if p is None:
                    if not create:
                        raise NotFoundError(f"no project '{project}' in tenant '{tenant}'")
                    p = Project(id=new_id("prj"), tenant_id=t.id, name=project)
                    s.add(p)
                    s.flush()
                return t.id, p.id
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")
