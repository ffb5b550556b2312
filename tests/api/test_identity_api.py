"""Identity and audit through the real app (TestClient) and the services, on SQLite and PostgreSQL:
browser sessions with CSRF, keys revoked or expired on the next request, scopes and ceilings, the audit
chain written in the change's transaction and detecting a modified or deleted entry."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import text, update

from conftest import PASSWORD, World
from imts.core.errors import ConflictError
from imts.services import audit, identity
from imts.store import audit as audit_store
from imts.store.context import tenant_context
from imts.store.models import ApiKey, utcnow


def test_login_session_cookie_and_csrf(world: World) -> None:
    c, user = world.client, world.a.users["admin"]
    bad = c.post("/api/v1/auth/login", json={"username": user, "password": "wrong password!"})
    assert bad.status_code == 401 and bad.json()["error"]["type"] == "unauthenticated"
    r = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie
    csrf = r.json()["csrf_token"]
    assert c.get("/api/v1/me").json()["user"]["username"] == user
    # An unsafe request with the cookie but without the CSRF token is refused, and changes nothing.
    tenant = world.a.tenant
    assert c.post(f"/api/v1/tenants/{tenant}/projects", json={"name": "by-cookie"}).status_code == 403
    ok = c.post(
        f"/api/v1/tenants/{tenant}/projects", json={"name": "by-cookie"}, headers={"X-CSRF-Token": csrf}
    )
    assert ok.status_code == 201, ok.text
    assert c.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    c.cookies.clear()
    assert c.get("/api/v1/me").status_code == 401


def test_key_revocation_scope_and_ceiling_take_effect_on_the_next_request(world: World) -> None:
    c, a = world.client, world.a
    h = world.as_key(a.keys["researcher"])
    created = c.post("/api/v1/keys", headers=h, json={"tenant": a.tenant, "role_ceiling": "viewer"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["secret"].startswith("imts_") and key["prefix"] == key["secret"][:12]
    assert all("secret" not in k for k in c.get("/api/v1/keys", headers=h).json())
    kh = world.as_key(key["secret"])
    me = c.get("/api/v1/me", headers=kh).json()
    assert me["via"] == "key" and [m["role"] for m in me["memberships"]] == ["viewer"]  # ceiling applied
    # A viewer-capped key may read but not create, and cannot mint a key above its ceiling.
    assert c.get(f"/api/v1/tenants/{a.tenant}/projects", headers=kh).status_code == 200
    assert c.post("/api/v1/keys", headers=kh, json={"tenant": a.tenant}).status_code == 422
    assert c.post(f"/api/v1/tenants/{a.tenant}/projects", headers=kh, json={"name": "x"}).status_code == 403
    assert c.get(f"/api/v1/tenants/{world.b.tenant}/projects", headers=kh).status_code == 404
    assert c.delete(f"/api/v1/keys/{key['id']}", headers=h).status_code == 200
    assert c.get("/api/v1/me", headers=kh).status_code == 401  # the very next request
    # Expiry, and a disabled user.
    other = identity.create_key(world.ctx, "short", username=a.users["viewer"])
    with world.ctx.session() as s:
        s.execute(
            update(ApiKey).where(ApiKey.id == other.id).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    r = c.get("/api/v1/me", headers=world.as_key(other.secret))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


def test_membership_removal_and_disable_take_effect_on_the_next_request(world: World) -> None:
    c, a = world.client, world.a
    h = world.as_key(a.keys["admin"])
    user = a.users["developer"]
    dh = world.as_key(a.keys["developer"])
    assert c.get(f"/api/v1/tenants/{a.tenant}/projects", headers=dh).status_code == 200
    assert c.delete(f"/api/v1/tenants/{a.tenant}/members/{user}", headers=h).status_code == 200
    assert c.get(f"/api/v1/tenants/{a.tenant}/projects", headers=dh).status_code == 404
    assert (
        c.put(f"/api/v1/tenants/{a.tenant}/members/{user}", headers=h, json={"role": "developer"}).status_code
        == 200
    )
    assert c.get(f"/api/v1/tenants/{a.tenant}/projects", headers=dh).status_code == 200
    bad = c.put(f"/api/v1/tenants/{a.tenant}/members/{user}", headers=h, json={"role": "owner"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "role"
    assert c.post(f"/api/v1/users/{user}/disable", headers=world.as_key(world.admin_key)).status_code == 200
    assert c.get("/api/v1/me", headers=dh).status_code == 401


def test_every_change_is_audited_in_its_transaction_with_the_client_address(world: World) -> None:
    c, a = world.client, world.a
    h = world.as_key(a.keys["admin"])
    assert (
        c.post(f"/api/v1/tenants/{a.tenant}/projects", headers=h, json={"name": "audited"}).status_code == 201
    )
    entries = c.get(f"/api/v1/tenants/{a.tenant}/audit?action=project.*", headers=h).json()
    last = entries[-1]
    assert (last["action"], last["object_id"], last["actor"]) == (
        "project.create",
        "audited",
        a.users["admin"],
    )
    assert last["client"] == "testclient" and last["tenant"] == a.tenant
    # A refused change (the name is taken) leaves no entry: the entry shares the change's transaction.
    assert (
        c.post(f"/api/v1/tenants/{a.tenant}/projects", headers=h, json={"name": "audited"}).status_code == 409
    )
    assert c.get(f"/api/v1/tenants/{a.tenant}/audit?action=project.*", headers=h).json() == entries
    # A change that fails after its entry was written rolls the entry back too.
    tctx = tenant_context(world.ctx.ws, a.tenant, "root", "admin", platform_admin=True)
    before = audit.query(world.ctx, limit=1000)
    with pytest.raises(ConflictError), tctx.session() as s:
        audit_store.record(tctx, s, "member.set", ("member", "nobody"))
        raise ConflictError("the change failed after its entry")
    assert audit.query(world.ctx, limit=1000) == before
    exported = c.get(f"/api/v1/tenants/{a.tenant}/audit/export", headers=h)
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    assert len(exported.text.splitlines()) == len(
        c.get(f"/api/v1/tenants/{a.tenant}/audit?limit=1000", headers=h).json()
    )


def _tamper(world: World, sql: str) -> None:
    """Bypass the append-only triggers as someone with the database's owner rights would."""
    engine = world.ctx.ws._sessions.kw["bind"]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
            conn.execute(text(sql))
            conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
            conn.execute(text("DROP TRIGGER audit_log_no_delete"))
            conn.execute(text(sql))
            for event in ("UPDATE", "DELETE"):
                conn.execute(text(f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log"
                                  " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"))  # fmt: skip


def test_audit_is_append_only_and_verify_detects_modified_and_deleted_entries(world: World) -> None:
    c, admin = world.client, world.as_key(world.admin_key)
    v = c.get("/api/v1/audit/verify", headers=admin).json()
    assert v["ok"] and v["entries"] >= 20, v
    engine = world.ctx.ws._sessions.kw["bind"]
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"))
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    _tamper(world, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    v = c.get("/api/v1/audit/verify", headers=admin).json()
    assert not v["ok"] and v["broken_seq"] == 3 and "modified" in v["problem"], v
    _tamper(world, "DELETE FROM audit_log WHERE seq = 3")
    v = c.get("/api/v1/audit/verify", headers=admin).json()
    assert not v["ok"] and v["broken_seq"] == 3 and "missing" in v["problem"], v
    last = v["head_seq"]
    _tamper(world, f"DELETE FROM audit_log WHERE seq >= 4 AND seq <= {last}")  # everything after the hole
    v = audit.verify(world.ctx)
    assert not v.ok and "deleted" in (v.problem or ""), v


def test_init_admin_only_once(world: World) -> None:
    with pytest.raises(ConflictError, match="exists already"):
        identity.init_admin(world.ctx, "second-admin", PASSWORD)


def test_no_secret_in_the_apps_log_records(world: World, caplog: pytest.LogCaptureFixture) -> None:
    c, user = world.client, world.a.users["viewer"]
    key = world.a.keys["viewer"]
    caplog.set_level(logging.DEBUG)
    assert (
        c.post("/api/v1/auth/login", json={"username": user, "password": "x" + PASSWORD}).status_code == 401
    )
    assert c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD}).status_code == 200
    c.cookies.clear()
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {key}-"}).status_code == 401
    r = c.post("/api/v1/users", headers={"Authorization": f"Bearer {key}"}, json={"password": PASSWORD})
    assert r.status_code == 403 and PASSWORD not in r.text and key not in r.text
    bad = c.post(
        "/api/v1/users", headers=world.as_key(world.admin_key), json={"username": "u", "password": 7}
    )
    assert bad.status_code == 422 and "7" not in bad.json()["error"]["message"].replace("422", "")
    assert caplog.records, "nothing was logged: the check below would pass vacuously"
    assert PASSWORD not in caplog.text and key not in caplog.text and key[5:] not in caplog.text


def test_every_error_has_the_one_shape(world: World) -> None:
    c, h = world.client, world.as_key(world.admin_key)
    for r, status, kind in [
        (c.get("/api/v1/no-such-route", headers=h), 404, "not_found"),
        (c.put("/api/v1/health"), 405, "method_not_allowed"),
        (c.post("/api/v1/tenants", headers=h, json={"name": "bad name!"}), 422, "invalid_input"),
        (c.post("/api/v1/tenants", headers=h, json={}), 422, "invalid_input"),
        (c.post("/api/v1/tenants", headers=h, json={"name": world.a.tenant}), 409, "conflict"),
    ]:
        assert r.status_code == status, r.text
        assert set(r.json()) == {"error"} and set(r.json()["error"]) == {"message", "type", "code", "param"}
        assert r.json()["error"]["type"] == kind
    assert c.post("/api/v1/tenants", headers=h, json={}).json()["error"]["param"] == "name"
