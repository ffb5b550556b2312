"""Dependencies: the workspace, the authenticated caller, and the ``Context`` a route acts in.

A route declares its permission through the dependency that builds its context::

    ctx: Annotated[Context, Depends(project_ctx(Permission.DATASET_UPLOAD))]

That dependency authenticates (``Authorization: Bearer imts_...``, or the session cookie plus the
``X-CSRF-Token`` header on unsafe methods), resolves the tenant and project by name, checks membership
and the key's scope (a tenant the caller is not in, or a project its key does not reach: 404, never
403), caps the role by the key's ceiling, and checks the permission (403). Each dependency carries its
permission as ``.permission``; ``app.py`` copies it into the route's OpenAPI ``x-permission`` and refuses
to build an app with a route that declares none.

Dependencies that do no I/O are ``async``: FastAPI runs a sync dependency on the thread pool, and a hop
there per dependency per request is what a busy server pays most for (benchmarks/api_load.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from imts.core.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from imts.core.permissions import Permission
from imts.services import identity
from imts.services.identity import Principal
from imts.store.context import Context, open_context, tenant_context
from imts.store.workspace import Workspace

SESSION_COOKIE = "imts_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# x-permission values besides a Permission: no credentials, any signed-in caller, platform administrators.
PUBLIC, AUTHENTICATED, PLATFORM_ADMIN = "public", "authenticated", "platform_admin"


async def _ws(request: Request) -> Workspace:
    return request.app.state.ws  # type: ignore[no-any-return]


WorkspaceDep = Annotated[Workspace, Depends(_ws)]


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def _principal(request: Request, ws: WorkspaceDep) -> Principal:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, secret = auth.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthenticationError("the Authorization header must be 'Bearer <API key>'")
        return identity.authenticate_key(ws, secret.strip())
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise AuthenticationError(
            "sign in (POST /api/v1/auth/login) or send 'Authorization: Bearer <API key>'"
        )
    who = identity.authenticate_session(ws, token)
    if request.method not in SAFE_METHODS and not who.csrf_ok(request.headers.get(CSRF_HEADER)):
        # A cross-site form can carry the cookie but cannot read the CSRF token that login returned.
        raise PermissionDeniedError(f"missing or wrong {CSRF_HEADER} header (returned by login)")
    return who


PrincipalDep = Annotated[Principal, Depends(_principal)]


def _mark(fn: Callable[..., Any], permission: str) -> Callable[..., Any]:
    fn.permission = permission  # type: ignore[attr-defined]
    return fn


async def public() -> None:
    """No credentials needed (health, login)."""


_mark(public, PUBLIC)


async def current_user(who: PrincipalDep) -> Principal:
    """Any signed-in caller; the route acts only on the caller's own things."""
    return who


_mark(current_user, AUTHENTICATED)
CurrentUser = Annotated[Principal, Depends(current_user)]


async def user_ctx(request: Request, who: PrincipalDep, ws: WorkspaceDep) -> Context:
    """A context without tenant for the caller's own things (its keys, logout)."""
    return Context(ws, "", "", "", "", who.username, "viewer", client_of(request), who.acts_as_platform_admin)


_mark(user_ctx, AUTHENTICATED)


async def platform_ctx(request: Request, who: PrincipalDep, ws: WorkspaceDep) -> Context:
    """A platform administrator's context (users, tenants, the whole audit log); others get 403."""
    if not who.acts_as_platform_admin:
        raise PermissionDeniedError(
            "only a platform administrator (with a session or an unscoped key) may do this"
        )
    return Context(ws, "", "", "", "", who.username, "admin", client_of(request), True)


_mark(platform_ctx, PLATFORM_ADMIN)


def _tenant_role(ws: Workspace, who: Principal, tenant: str) -> tuple[str, Any]:
    found = identity.role_in(ws, who, tenant)
    if found is None:
        raise NotFoundError(f"no tenant '{tenant}'")
    return found


def tenant_ctx(perm: Permission) -> Callable[..., Context]:
    """The dependency for a tenant-level route needing ``perm`` (path parameter ``tenant``)."""

    def dep(request: Request, tenant: str, who: PrincipalDep, ws: WorkspaceDep) -> Context:
        _, role = _tenant_role(ws, who, tenant)
        ctx = tenant_context(ws, tenant, who.username, role, client_of(request), who.acts_as_platform_admin)
        ctx.require(perm)
        return ctx

    return _mark(dep, perm.value)


def project_ctx(perm: Permission) -> Callable[..., Context]:
    """The dependency for a project route needing ``perm`` (path parameters ``tenant``, ``project``)."""

    def dep(request: Request, tenant: str, project: str, who: PrincipalDep, ws: WorkspaceDep) -> Context:
        _, role = _tenant_role(ws, who, tenant)
        ctx = open_context(
            ws, tenant, project, who.username, role, False, client_of(request), who.acts_as_platform_admin
        )
        if not who.reaches_project(ctx.project_id):
            raise NotFoundError(f"no project '{project}' in tenant '{tenant}'")
        ctx.require(perm)
        return ctx

    return _mark(dep, perm.value)


def permission_of(dependant: Any) -> str | None:
    """The permission a route declares: the strictest marked dependency in its tree (a tenant
    permission, else platform administrators, else any signed-in caller, else public)."""
    marks: set[str] = set()

    def walk(d: Any) -> None:
        for sub in d.dependencies:
            mark = getattr(sub.call, "permission", None)
            if mark is not None:
                marks.add(str(mark))
            walk(sub)

    walk(dependant)
    for level in ([m for m in marks if m in set(Permission)], [PLATFORM_ADMIN], [AUTHENTICATED], [PUBLIC]):
        found = [m for m in level if m in marks]
        if found:
            return sorted(found)[0]
    return None
