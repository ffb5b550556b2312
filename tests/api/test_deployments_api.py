"""Deployments through the real app on SQLite and PostgreSQL: listed to viewers, added and removed by
roles that may deploy, never across tenants."""

from __future__ import annotations

from conftest import World


def test_deployments_over_http(world: World) -> None:
    a, b, c = world.a, world.b, world.client
    base = f"/api/v1/tenants/{a.tenant}/projects/{a.project}/deployments"
    viewer, dev = world.as_key(a.keys["viewer"]), world.as_key(a.keys["developer"])
    listed = c.get(base, headers=viewer).json()
    assert [d["name"] for d in listed] == [a.params["deployment"]]
    model = c.get(f"/api/v1/tenants/{a.tenant}/projects/{a.project}/models/{a.params['model']}",
                  headers=viewer).json()  # fmt: skip
    body = {"model": model["name"], "alias": "canary"}
    assert c.post(base, headers=viewer, json=body).status_code == 403
    r = c.post(base, headers=dev, json=body)
    assert r.status_code == 201 and r.json()["name"] == f"{model['name']}@canary", r.text
    assert c.post(base, headers=dev, json=body).status_code == 409
    r = c.post(base, headers=dev, json={"model": "no-such-model"})
    assert r.status_code == 404 and "no-such-model" in r.json()["error"]["message"]
    r = c.post(base, headers=dev, json={"model": model["name"], "alias": "Bad Alias"})
    assert r.status_code == 422 and "alias" in r.text
    assert c.delete(f"{base}/{b.params['deployment']}", headers=dev).status_code == 404
    assert c.delete(f"{base}/{model['name']}@canary", headers=dev).status_code == 200
    assert [d["name"] for d in c.get(base, headers=viewer).json()] == [a.params["deployment"]]
