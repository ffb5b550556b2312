"""Models through the real app on SQLite and PostgreSQL: a project's model versions by every kind of
reference, base models shared by all, registration by platform administrators only."""

from __future__ import annotations

from conftest import World


def test_model_versions_by_reference_and_not_across_tenants(world: World) -> None:
    a, b, c = world.a, world.b, world.client
    h = world.as_key(a.keys["viewer"])
    base = f"/api/v1/tenants/{a.tenant}/projects/{a.project}/models"
    versions = c.get(base, headers=h).json()
    mv = next(m for m in versions if m["id"] == a.params["model"])
    for ref in (mv["id"], mv["name"], f"{mv['name']}:{mv['version']}", mv["train_run_id"]):
        got = c.get(f"{base}/{ref}", headers=h)
        assert got.status_code == 200 and got.json()["id"] == mv["id"], (ref, got.text)
    same_name = c.get(f"{base}/{mv['id']}/versions", headers=h).json()
    assert [m["name"] for m in same_name] == [mv["name"]] * len(same_name) and mv["id"] in {
        m["id"] for m in same_name
    }
    assert c.get(f"{base}/{b.params['model']}", headers=h).status_code == 404
    assert all(m["id"] != b.params["model"] for m in versions)
    assert c.get(f"{base}/nothing:9", headers=h).status_code == 404


def test_base_models_are_listed_to_all_and_registered_by_platform_admins(world: World) -> None:
    c, a = world.client, world.a
    listed = c.get("/api/v1/base-models", headers=world.as_key(a.keys["viewer"]))
    assert listed.status_code == 200 and len(listed.json()) >= 2
    body = {"path": "/nonexistent/model", "name": "x"}
    assert c.post("/api/v1/base-models", headers=world.as_key(a.keys["admin"]), json=body).status_code == 403
    r = c.post("/api/v1/base-models", headers=world.as_key(world.admin_key), json=body)
    assert 400 <= r.status_code < 500 and "/nonexistent/model" in r.json()["error"]["message"], r.text
    assert len(c.get("/api/v1/base-models", headers=world.as_key(a.keys["viewer"])).json()) == len(
        listed.json()
    )
