"""The closed loop over HTTP: read a loop, its steps, log and report (both languages); refusals with the
reason and the spec's field they concern; roles; another tenant's loop is not found. Running loops are
tested in tests/flywheel/."""

from __future__ import annotations

from conftest import World


def test_a_loop_is_read_reported_and_guarded(world: World) -> None:
    a, b, c = world.a, world.b, world.client
    base = f"/api/v1/tenants/{a.tenant}/projects/{a.project}/loops"
    viewer, researcher, admin = (world.as_key(a.keys[r]) for r in ("viewer", "researcher", "admin"))
    loop_id = a.params["loop_id"]
    listed = c.get(base, headers=viewer)
    assert listed.status_code == 200 and loop_id in [x["id"] for x in listed.json()]
    one = c.get(f"{base}/{loop_id}", headers=viewer).json()
    assert one["status"] == "stopped" and one["phase"] == "analyze" and one["spec"]["data"] == "isolation"
    assert c.get(f"{base}/{loop_id}/steps", headers=viewer).json() == []
    assert c.get(f"{base}/{loop_id}/log", headers=viewer).json() == []
    page = c.get(f"{base}/{loop_id}/report?format=html&lang=zh", headers=viewer)
    assert page.status_code == 200 and "闭环迭代" in page.text and "text/html" in page.headers["content-type"]
    md = c.get(f"{base}/{loop_id}/report?format=md", headers=viewer)
    assert md.status_code == 200 and md.text.startswith("# Closed loop")
    # another tenant's loop does not exist here
    assert c.get(f"{base}/{b.params['loop_id']}", headers=viewer).status_code == 404
    # a viewer starts and stops nothing
    spec = {"intent": "Teach the model to add numbers", "data": "isolation", "base_model": "none-such"}
    assert c.post(base, headers=viewer, json=spec).status_code == 403
    assert c.post(f"{base}/{loop_id}/resume", headers=viewer).status_code == 403
    # bad input says what is wrong and where: the error's param names the spec's field (the console
    # shows the message at that field)
    r = c.post(base, headers=researcher, json=spec)
    assert r.status_code == 404 and "none-such" in r.json()["error"]["message"], r.text
    assert r.json()["error"]["param"] == "base_model"
    r = c.post(base, headers=researcher, json={**spec, "data": "no-such-data"})
    assert r.status_code == 404 and "no-such-data" in r.json()["error"]["message"], r.text
    assert r.json()["error"]["param"] == "data"
    r = c.post(base, headers=researcher, json={**spec, "max_iterations": 0})
    assert r.status_code == 422 and r.json()["error"]["param"] == "max_iterations", r.text
    known = {**spec, "base_model": one["spec"]["base_model"], "probe": ""}
    r = c.post(base, headers=researcher, json={**known, "intent": "make it better"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "intent", r.text
    assert "What should the model do?" in r.json()["error"]["message"]  # the question to answer ...
    assert "您希望模型具体做什么" in r.json()["error"]["message"]  # ... in both languages
    r = c.post(base, headers=researcher, json={**known, "heldout": ["isolation", "gone@1"]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "heldout.1", r.text
    assert "gone" in r.json()["error"]["message"]
    r = c.post(base, headers=researcher, json={**known, "heldout": ["isolation:nope"]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "heldout.0", r.text
    assert "has no split 'nope'" in r.json()["error"]["message"]
    r = c.post(base, headers=researcher, json={**known, "probe": "no-such-probe"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "probe", r.text
    r = c.post(base, headers=researcher, json={**known, "teacher": "openai", "teacher_model": "m"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "teacher_url", r.text
    r = c.post(base, headers=researcher, json={**known, "teacher": "local", "teacher_model": "no-such-model"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "teacher_model", r.text
    assert [x["id"] for x in c.get(base, headers=viewer).json()] == [loop_id]  # none of them started
    # moves that do not apply to a stopped loop are refused with the reason
    r = c.post(f"{base}/{loop_id}/stop", headers=admin)
    assert r.status_code == 409 and "only a running loop stops" in r.json()["error"]["message"]
    r = c.post(f"{base}/{loop_id}/approve", headers=admin)
    assert r.status_code == 409 and "nothing waits for approval" in r.json()["error"]["message"]
