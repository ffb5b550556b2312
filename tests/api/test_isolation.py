"""Isolation, generated from the served OpenAPI schema: every route × every role × (own tenant, other
tenant), on SQLite and PostgreSQL.

- without credentials, only health and login answer 2xx (everything else: 401);
- every route declares its permission (``x-permission``), and only health and login are public;
- called with the other tenant's real objects, a route answers 404 — never 403, never 2xx — and
  nothing of the other tenant changes or appears in any answer;
- in its own tenant a role gets exactly what the matrix allows (403 otherwise), so a viewer changes
  nothing; the create/update route of each resource is called with a valid body (``EXAMPLES``) and
  succeeds for the roles allowed, so an allowed call is shown to pass, not to stop at validation.
"""

from __future__ import annotations

import uuid
from typing import Any

from conftest import World, fill
from imts.api.deps import AUTHENTICATED, PLATFORM_ADMIN, PUBLIC
from imts.core.permissions import MATRIX, ROLES, Permission

PUBLIC_ROUTES = {("GET", "/api/v1/health"), ("POST", "/api/v1/auth/login")}


def _routes(world: World) -> list[tuple[str, str, str]]:
    schema = world.client.get("/openapi.json").json()
    out = []
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            out.append((method.upper(), path, op.get("x-permission")))
    assert len(out) >= 20, "the schema lost routes"
    return out


T, P = "/api/v1/tenants/{tenant}", "/api/v1/tenants/{tenant}/projects/{project}"
# Valid request bodies for the create/update route of each resource (fresh names per call).
EXAMPLES: dict[tuple[str, str], Any] = {
    ("POST", f"{T}/projects"): lambda tag: {"name": f"made-{tag}"},
    ("PUT", f"{T}/members/{{username}}"): lambda tag: {"role": "viewer"},
    ("PUT", f"{T}/quota"): lambda tag: {"max_concurrent": 4},
    ("POST", f"{T}/webhooks"): lambda tag: {"url": f"http://127.0.0.1:9/{tag}", "events": ["job.failed"]},
    ("POST", f"{P}/uploads"): lambda tag: {
        "file_name": f"{tag}.jsonl",
        "size": 10,
        "sha256": "0" * 64,
        "chunk_size": 1 << 20,
    },
    ("POST", f"{P}/jobs"): lambda tag: {"kind": "sleep", "name": tag, "spec": {"seconds": 0}},
    ("PATCH", f"{P}/models/{{model}}/tags"): lambda tag: {"add": [tag]},
}


def _call(world: World, method: str, path: str, key: str | None, template: str = "") -> Any:
    body = {} if method in ("POST", "PUT", "PATCH") else None
    if (method, template) in EXAMPLES:
        body = EXAMPLES[(method, template)](uuid.uuid4().hex[:8])
    return world.client.request(method, path, headers=world.as_key(key), json=body)


def _snapshot(world: World, side: Any) -> Any:
    """What an admin of ``side`` sees of it: members, projects, keys and audit entries (a key's last use is
    bookkeeping the server writes in the background, not a change to compare)."""
    key = side.keys["admin"]
    h = world.as_key(key)
    c = world.client
    return (
        c.get(f"/api/v1/tenants/{side.tenant}/members", headers=h).json(),
        c.get(f"/api/v1/tenants/{side.tenant}/projects", headers=h).json(),
        [
            {**k, "last_used_at": None}
            for k in c.get("/api/v1/keys", headers=world.as_key(world.admin_key)).json()
        ],
        len(c.get(f"/api/v1/tenants/{side.tenant}/audit?limit=1000", headers=h).json()),
    )


def test_every_route_declares_a_permission_and_only_health_and_login_are_public(world: World) -> None:
    for method, path, perm in _routes(world):
        assert perm is not None, f"{method} {path} declares no permission"
        assert perm in {*Permission, PUBLIC, AUTHENTICATED, PLATFORM_ADMIN}, (method, path, perm)
        assert (perm == PUBLIC) == ((method, path) in PUBLIC_ROUTES), (method, path, perm)


def test_nothing_answers_without_credentials_but_health_and_login(world: World) -> None:
    for method, path, _ in _routes(world):
        r = _call(world, method, fill(path, world.b.params), None)
        if (method, path) in PUBLIC_ROUTES:
            continue
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.json()["error"]["type"] == "unauthenticated"
    assert world.client.get("/api/v1/health").status_code == 200


def test_no_route_reveals_or_changes_another_tenants_objects(world: World) -> None:
    b = world.b
    before = _snapshot(world, b)
    # Names and ids only tenant B has: none may appear in any answer to tenant A's members.
    secrets_of_b = {b.tenant, *b.users.values(), b.spare_user, b.spare_key_id}
    for method, path, _perm in _routes(world):
        if (method, path) in PUBLIC_ROUTES:
            continue
        for role in ROLES:
            r = _call(world, method, fill(path, b.params), world.a.keys[role])
            where = (method, path, role, r.status_code, r.text[:300])
            if "{tenant}" in path:
                assert r.status_code == 404, where  # not 403: B's existence is not disclosed
            else:
                assert r.status_code in (200, 201, 403, 404, 422), where
            leaked = [s for s in secrets_of_b if s in r.text and s not in fill(path, b.params)]
            assert not leaked, (*where, leaked)
    assert _snapshot(world, b) == before
    # B's spare key was not revoked by anyone in A.
    assert world.client.get("/api/v1/keys", headers=world.as_key(world.admin_key)).status_code == 200


def test_in_its_own_tenant_each_role_gets_exactly_what_the_matrix_allows(world: World) -> None:
    a = world.a
    routes = _routes(world)
    assert set(EXAMPLES) <= {(m, p) for m, p, _ in routes}, "a route with an example body is gone"
    for method, path, perm in routes:
        if perm not in set(Permission) or "{tenant}" not in path:
            continue
        for role in ROLES:
            r = _call(world, method, fill(path, a.params), a.keys[role], path)
            where = (method, path, role, r.status_code, r.text[:300])
            if Permission(perm) in MATRIX[role]:
                assert r.status_code != 403 and r.status_code < 500, where
                if (method, path) in EXAMPLES:
                    assert r.status_code in (200, 201), where  # a valid body: the call succeeds
            else:
                assert r.status_code == 403, where
                assert r.json()["error"]["type"] == "permission_denied", where
            if role == "viewer" and method != "GET":
                assert r.status_code >= 400, where  # a viewer changes nothing


def test_platform_routes_refuse_tenant_members(world: World) -> None:
    for method, path, perm in _routes(world):
        if perm != PLATFORM_ADMIN:
            continue
        for role in ROLES:
            r = _call(world, method, fill(path, world.a.params), world.a.keys[role])
            assert r.status_code == 403, (method, path, role, r.status_code)
        r = _call(world, method, fill(path, world.a.params), world.admin_key)
        assert r.status_code != 403 and r.status_code < 500, (method, path, r.status_code, r.text)
