"""A two-tenant world behind the real app: users of every role in each tenant, real objects, API keys.

``OTHER_OBJECTS`` is the registry the isolation test builds path parameters from: path-parameter name
→ a function creating a real object in the given tenant's project and returning the value to put in
the path. A resource that adds routes adds its parameters here (``dataset``, ``job_id``…), and
``tests/api/test_isolation.py`` then calls its routes with the other tenant's real objects.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import PG_ADMIN_URL, make_ws

from imts.api.app import create_app
from imts.core.permissions import ROLES, Role
from imts.services import identity, tenancy
from imts.store.context import Context, platform_context, tenant_context

PASSWORD = "correct horse battery staple"


@dataclass
class Side:
    """One tenant of the world: its names, members by role, their keys, and a spare member and key."""

    tenant: str
    project: str
    users: dict[Role, str] = field(default_factory=dict)
    keys: dict[Role, str] = field(default_factory=dict)
    spare_user: str = ""
    spare_key_id: str = ""
    params: dict[str, str] = field(default_factory=dict)  # path parameter → a real object of this side


@dataclass
class World:
    client: TestClient
    admin_key: str  # the platform administrator's (unscoped)
    a: Side
    b: Side
    ctx: Context  # a platform context over the same workspace

    def as_key(self, key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}


ObjectFactory = Callable[[Context, Side], str]


def _project(ctx: Context, side: Side) -> str:
    return side.project


def _tenant(ctx: Context, side: Side) -> str:
    return side.tenant


def _username(ctx: Context, side: Side) -> str:
    return side.spare_user


def _key_id(ctx: Context, side: Side) -> str:
    return side.spare_key_id


def _webhook_id(ctx: Context, side: Side) -> str:
    from imts.services import webhooks

    # Port 9 (discard) refuses at once: a test delivery fails fast instead of waiting for a timeout.
    return webhooks.add(ctx, "http://127.0.0.1:9/hook", []).id


OTHER_OBJECTS: dict[str, ObjectFactory] = {
    "tenant": _tenant,
    "project": _project,
    "username": _username,
    "key_id": _key_id,
    "webhook_id": _webhook_id,
}


def _side(ctx: Context, name: str) -> Side:
    side = Side(tenant=f"{name}-{uuid.uuid4().hex[:6]}", project=f"{name}-proj")
    tenancy.create_tenant(ctx, side.tenant)
    tctx = tenant_context(ctx.ws, side.tenant, ctx.principal, "admin", platform_admin=True)
    tenancy.create_project(tctx, side.project)
    tenancy.create_project(tctx, f"{name}-second")
    for role in ROLES:
        user = f"{side.tenant}-{role}"
        identity.create_user(ctx, user, PASSWORD)
        identity.add_member(tctx, user, role)
        side.users[role] = user
        side.keys[role] = identity.create_key(ctx, f"{role} key", username=user).secret
    side.spare_user = f"{side.tenant}-spare"
    identity.create_user(ctx, side.spare_user, PASSWORD)
    identity.add_member(tctx, side.spare_user, "viewer")
    side.spare_key_id = identity.create_key(ctx, "spare", side.tenant, username=side.spare_user).id
    project_ctx = Context(ctx.ws, tctx.tenant_id, side.tenant, "", side.project, ctx.principal, "admin",
                          platform_admin=True)  # fmt: skip
    side.params = {name: make(project_ctx, side) for name, make in OTHER_OBJECTS.items()}
    return side


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world per module and database (users' argon2 hashes make building it take seconds)."""
    url = None
    if request.param == "postgresql":
        # A database of its own: the audit tests tamper with the chain.
        request.getfixturevalue("postgres_url")  # skips (or fails under CI) without a server
        url = _fresh_pg_database(request)
    any_ws = make_ws(tmp_path_factory.mktemp("world"), url)
    app = create_app(any_ws.settings)
    ctx = platform_context(any_ws.ws, "root")
    admin = f"root-{uuid.uuid4().hex[:6]}"
    identity.create_user(ctx, admin, PASSWORD, platform_admin=True)
    admin_key = identity.create_key(ctx, "admin", username=admin).secret
    ctx = platform_context(any_ws.ws, admin)
    a, b = _side(ctx, "alpha"), _side(ctx, "bravo")
    # https: the session cookie is Secure, as on a real deployment
    with TestClient(app, base_url="https://testserver") as client:
        yield World(client, admin_key, a, b, ctx)


def _fresh_pg_database(request: pytest.FixtureRequest) -> str:
    from sqlalchemy import create_engine, text

    name = f"imts_world_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'create database "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    def drop() -> None:
        from imts.store.db import session_factory

        session_factory(url).kw["bind"].dispose()
        with admin.connect() as c:
            c.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()

    request.addfinalizer(drop)
    return url


def fill(path: str, params: dict[str, Any]) -> str:
    """``path`` with its ``{name}`` parameters taken from ``params``."""
    return path.format(**{k: params[k] for k in params if "{" + k + "}" in path})
