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


def test_aliases_history_protection_tags_and_delete_over_http(world: World) -> None:
    a, c = world.a, world.client
    base = f"/api/v1/tenants/{a.tenant}/projects/{a.project}/models"
    admin, dev, viewer = (world.as_key(a.keys[r]) for r in ("admin", "developer", "viewer"))
    mv = c.get(f"{base}/{a.params['model']}", headers=viewer).json()
    seq0 = c.get(f"/api/v1/tenants/{a.tenant}/projects/{a.project}/aliases", headers=viewer).json()["seq"]
    r = c.put(f"{base}/{mv['id']}/aliases/champion", headers=dev)
    assert r.status_code == 200 and r.json()["version_id"] == mv["id"], r.text
    state = c.get(f"/api/v1/tenants/{a.tenant}/projects/{a.project}/aliases", headers=viewer).json()
    assert state["seq"] == seq0 + 1 and any(x["alias"] == "champion" for x in state["aliases"])
    assert c.get(f"{base}/{mv['name']}@champion", headers=viewer).json()["id"] == mv["id"]
    r = c.put(f"{base}/{mv['id']}/aliases/champion/protection", headers=admin, json={"min_role": "admin"})
    assert r.status_code == 200, r.text
    r = c.delete(f"{base}/{mv['id']}/aliases/champion", headers=dev)
    assert r.status_code == 403 and "protected" in r.json()["error"]["message"]
    assert c.delete(f"{base}/{mv['id']}", headers=admin).status_code == 409
    history = c.get(f"{base}/{mv['id']}/aliases?alias=champion", headers=viewer).json()
    assert [h["version_id"] for h in history] == [mv["id"]] and history[0]["protected"]
    assert c.get(f"{base}/{mv['id']}/aliases?at=2000-01-01T00:00:00Z", headers=viewer).json() == []
    r = c.patch(f"{base}/{mv['id']}/tags", headers=admin, json={"add": ["reviewed"]})
    assert r.status_code == 200 and "reviewed" in r.json()["tags"]
    assert c.put(f"{base}/{mv['id']}/aliases/Bad%20Name", headers=admin).status_code == 422
    assert c.delete(f"{base}/{mv['id']}/aliases/champion", headers=admin).status_code == 200


def test_an_export_downloads_as_one_streamed_tar_to_deployers_only(world: World) -> None:
    import io
    import os
    import tarfile

    from imts.store.context import open_context

    a, c = world.a, world.client
    base = f"/api/v1/tenants/{a.tenant}/projects/{a.project}/models"
    mv = c.get(f"{base}/{a.params['model']}", headers=world.as_key(a.keys["viewer"])).json()
    ctx = open_context(world.ctx.ws, a.tenant, a.project, "root", "admin", False, None, True)
    folder = ctx.artifacts.path(f"exports/{mv['name']}-{mv['version']}/adapter")
    files = {"adapter_model.safetensors": os.urandom(1_500_001), "adapter_config.json": b'{"r": 4}'}
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "sub" / "tokenizer.json").write_bytes(b"{}")
    url = f"{base}/{mv['name']}:{mv['version']}/exports/adapter"
    got = c.get(url, headers=world.as_key(a.keys["developer"]))
    assert got.status_code == 200, got.text
    prefix = f"{mv['name']}-{mv['version']}-adapter"
    assert got.headers["content-type"] == "application/x-tar" and prefix in got.headers["content-disposition"]
    assert int(got.headers["content-length"]) == len(got.content)  # announced before the first byte
    with tarfile.open(fileobj=io.BytesIO(got.content)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert members == {
        **{f"{prefix}/{k}": v for k, v in files.items()},
        f"{prefix}/sub/tokenizer.json": b"{}",
    }
    assert c.get(url, headers=world.as_key(a.keys["viewer"])).status_code == 403  # weights leave: deployers
    missing = c.get(url.replace("/adapter", "/merged"), headers=world.as_key(a.keys["developer"]))
    assert missing.status_code == 404 and "no merged export yet" in missing.json()["error"]["message"]
    assert (
        c.get(url.replace("/adapter", "/onnx"), headers=world.as_key(a.keys["developer"])).status_code == 422
    )
    other = (
        f"/api/v1/tenants/{a.tenant}/projects/{a.project}/models/{world.b.params['model']}/exports/adapter"
    )
    assert c.get(other, headers=world.as_key(a.keys["developer"])).status_code == 404
