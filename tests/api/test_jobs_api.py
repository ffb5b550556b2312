"""Jobs through the real app on SQLite and PostgreSQL: a real sleep job run by a real worker process,
its logs streamed live over server-sent events (and resumed), the state after each action, audit
entries, refusals naming the field, and the pool and quotas as a tenant sees them."""

from __future__ import annotations

import time

import yaml
from sse import events

from conftest import World


def _base(world: World) -> str:
    return f"/api/v1/tenants/{world.a.tenant}/projects/{world.a.project}"


def test_submit_stream_logs_until_the_job_ends_and_resume(world: World) -> None:
    c, a = world.client, world.a
    h = world.as_key(a.keys["researcher"])
    r = c.post(
        f"{_base(world)}/jobs", headers=h, json={"kind": "sleep", "spec": {"seconds": 1.0}, "name": "nap"}
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["kind"], job["name"], job["owner"]) == ("sleep", "nap", a.users["researcher"])
    url = f"{_base(world)}/jobs/{job['id']}/logs/stream?poll_s=0.1"
    got = events(c, url, h)  # returns only once the worker process has finished the job
    assert got[-1]["event"] == "end" and got[-1]["data"] == {"state": "succeeded"}, got
    logs = [e for e in got if e["event"] == "log"]
    assert logs and "".join(e["data"]["text"] for e in logs).strip(), got
    full = c.get(f"{_base(world)}/jobs/{job['id']}/logs", headers=h)
    assert full.headers["content-type"].startswith("text/plain")
    assert full.text.startswith("== attempt 1 ==\n")
    assert full.text.removeprefix("== attempt 1 ==\n") == "".join(e["data"]["text"] for e in logs)
    # Resuming from the last event id sends nothing again: only the end.
    again = events(c, url, {**h, "Last-Event-ID": logs[-1]["id"]})
    assert [e["event"] for e in again] == ["end"]
    bad = c.get(url, headers={**h, "Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "Last-Event-ID"
    shown = c.get(f"{_base(world)}/jobs/{job['id']}", headers=world.as_key(a.keys["viewer"])).json()
    assert shown["job"]["state"] == "succeeded" and shown["job"]["data"]["result"] == {"slept_s": 1.0}
    assert shown["events"][0]["kind"] == "queued"
    audit = c.get(f"/api/v1/tenants/{a.tenant}/audit?action=job.*", headers=world.as_key(a.keys["admin"]))
    assert any(e["action"] == "job.submit" and e["object_id"] == job["id"] for e in audit.json())


def _wait(world: World, job_id: str, state: str) -> None:
    """Until the job is in ``state`` (a worker process imports torch before it runs or stops)."""
    deadline = time.time() + 120
    h = world.as_key(world.a.keys["viewer"])
    while (
        now := world.client.get(f"{_base(world)}/jobs/{job_id}", headers=h).json()["job"]["state"]
    ) != state:
        assert time.time() < deadline, f"job {job_id} stayed {now}, never {state}"
        time.sleep(0.2)


def test_actions_return_the_state_after_the_request_and_are_audited(world: World) -> None:
    c, a = world.client, world.a
    h = world.as_key(a.keys["admin"])
    jid = c.post(f"{_base(world)}/jobs", headers=h, json={"kind": "sleep", "spec": {"seconds": 60}}).json()[
        "id"
    ]
    # Stops are asked of running workers (a stop asked while the worker is still starting is the
    # scheduler's business, not the API's).
    _wait(world, jid, "running")
    paused = c.post(f"{_base(world)}/jobs/{jid}/pause", headers=h)
    assert paused.status_code == 200 and paused.json()["state"] in ("paused", "preempting"), paused.text
    _wait(world, jid, "paused")
    assert c.post(f"{_base(world)}/jobs/{jid}/pause", headers=h).status_code == 409  # already paused
    resumed = c.post(f"{_base(world)}/jobs/{jid}/resume", headers=h).json()["state"]
    assert resumed in ("queued", "starting", "running"), resumed
    _wait(world, jid, "running")
    cancelled = c.post(f"{_base(world)}/jobs/{jid}/cancel", headers=h).json()["state"]
    assert cancelled in ("preempting", "cancelled"), cancelled
    _wait(world, jid, "cancelled")
    retried = c.post(f"{_base(world)}/jobs/{jid}/retry", headers=h).json()
    assert retried["state"] in ("queued", "starting", "running"), retried
    _wait(world, jid, "running")
    c.post(f"{_base(world)}/jobs/{jid}/cancel", headers=h)
    _wait(world, jid, "cancelled")
    gone = c.delete(f"{_base(world)}/jobs/{jid}", headers=h)
    assert gone.status_code == 200 and gone.json() == {"id": jid, "state": "deleted"}, gone.text
    assert c.get(f"{_base(world)}/jobs/{jid}", headers=h).status_code == 404
    entries = c.get(f"/api/v1/tenants/{a.tenant}/audit?action=job.*&limit=1000", headers=h).json()
    mine = [e for e in entries if e["object_id"] == jid]
    assert [e["action"] for e in mine] == [
        "job.submit", "job.pause", "job.resume", "job.cancel", "job.retry", "job.cancel", "job.delete"
    ]  # fmt: skip
    assert all(e["client"] == "testclient" and e["actor"] == a.users["admin"] for e in mine)


def test_an_action_waits_for_a_pass_under_way_elsewhere(world: World) -> None:
    """While another pass holds the scheduler's lease (the API's background pass, a daemon), an action's
    answer is still the state it leads to: the request waits for the next pass, not the one under way."""
    from imts.jobs import store

    c, a = world.client, world.a
    h = world.as_key(a.keys["admin"])
    jid = c.post(f"{_base(world)}/jobs", headers=h, json={"kind": "sleep", "spec": {"seconds": 60}}).json()[
        "id"
    ]
    assert c.post(f"{_base(world)}/jobs/{jid}/cancel", headers=h).json()["state"] in (
        "preempting",
        "cancelled",
    )
    _wait(world, jid, "cancelled")
    deadline = time.time() + 30
    while not store.acquire_lease(world.ctx.ws, "a pass under way", ttl=1.5):  # the API's own pass ends
        assert time.time() < deadline, "the scheduler's lease was never free"
        time.sleep(0.05)
    retried = c.post(f"{_base(world)}/jobs/{jid}/retry", headers=h).json()
    assert retried["state"] in ("queued", "starting", "running"), retried
    assert c.post(f"{_base(world)}/jobs/{jid}/cancel", headers=h).json()["state"] in (
        "preempting",
        "cancelled",
    )
    _wait(world, jid, "cancelled")


def test_refusals_name_the_field_and_change_nothing(world: World) -> None:
    c, a = world.client, world.a
    h = world.as_key(a.keys["researcher"])
    before = c.get(f"{_base(world)}/jobs", headers=h).json()
    r = c.post(f"{_base(world)}/jobs", headers=h, json={"kind": "nap", "spec": {}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "kind", r.text
    r = c.post(f"{_base(world)}/jobs", headers=h, json={"kind": "sleep", "spec": {"seconds": -1}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "seconds", r.text
    r = c.post(f"{_base(world)}/jobs", headers=h, json={"kind": "sleep", "workers": 999, "spec": {}})
    assert r.status_code == 400 and "never hold" in r.json()["error"]["message"], r.text
    r = c.post(f"{_base(world)}/train", headers=h, json={"run": {"base_model": "nope", "data": "none"}})
    assert r.status_code in (404, 422), r.text
    viewer = c.post(f"{_base(world)}/jobs", headers=world.as_key(a.keys["viewer"]), json={"kind": "sleep"})
    assert viewer.status_code == 403
    assert c.get(f"{_base(world)}/jobs", headers=h).json() == before


def test_pool_shows_only_the_tenants_own_jobs_and_quotas_are_set_by_admins(world: World) -> None:
    c, a, b = world.client, world.a, world.b
    bh = world.as_key(b.keys["admin"])
    base_b = f"/api/v1/tenants/{b.tenant}/projects/{b.project}"
    queued = c.post(f"{base_b}/jobs", headers=bh, json={"kind": "sleep", "spec": {"seconds": 30}}).json()
    ah = world.as_key(a.keys["viewer"])
    pool = c.get(f"/api/v1/tenants/{a.tenant}/pool", headers=ah)
    assert pool.status_code == 200, pool.text
    assert b.tenant not in pool.text and queued["id"] not in pool.text
    assert pool.json()["others"]["running"] + pool.json()["others"]["queued"] >= 1
    whole = c.get("/api/v1/pool", headers=world.as_key(world.admin_key)).json()
    assert any(j["id"] == queued["id"] for j in whole["running"] + [q["job"] for q in whole["queue"]])
    c.post(f"{base_b}/jobs/{queued['id']}/cancel", headers=bh)

    admin = world.as_key(a.keys["admin"])
    q = c.put(
        f"/api/v1/tenants/{a.tenant}/quota",
        headers=admin,
        json={"max_concurrent": 3, "projects": {a.project: 5}},
    )
    assert q.status_code == 200, q.text
    assert q.json()["max_concurrent"] == 3 and q.json()["projects"][a.project]["storage_gb"] == 5
    assert c.get(f"/api/v1/tenants/{a.tenant}/quota", headers=ah).json()["max_concurrent"] == 3
    pool_file = world.ctx.settings.pool_file
    assert pool_file is not None
    on_disk = yaml.safe_load(pool_file.read_text(encoding="utf-8"))
    assert (
        on_disk["tenants"][a.tenant]["max_concurrent"] == 3
        and on_disk["projects"][f"{a.tenant}/{a.project}"]["storage_gb"] == 5
    )
    # Weights share the pool out between tenants: not a tenant administrator's to change.
    w = c.put(f"/api/v1/tenants/{a.tenant}/quota", headers=admin, json={"weight": 100})
    assert w.status_code == 403 and "platform administrator" in w.json()["error"]["message"]
    other = c.put(f"/api/v1/tenants/{a.tenant}/quota", headers=admin, json={"projects": {b.project: 1}})
    assert other.status_code == 404
    negative = c.put(f"/api/v1/tenants/{a.tenant}/quota", headers=admin, json={"projects": {a.project: -1}})
    assert negative.status_code == 422 and negative.json()["error"]["param"] == f"projects.{a.project}"
    platform = world.as_key(world.admin_key)
    null = c.put(f"/api/v1/tenants/{a.tenant}/quota", headers=platform, json={"weight": None})
    assert null.status_code == 422 and null.json()["error"]["param"] == "weight"
    assert yaml.safe_load(pool_file.read_text(encoding="utf-8")) == on_disk
    entries = c.get(f"/api/v1/tenants/{a.tenant}/audit?action=quota.set", headers=admin).json()
    assert entries[-1]["after"]["max_concurrent"] == 3


def test_costs_are_resource_hours_times_the_pool_price_table(world: World) -> None:
    from sqlalchemy import update

    from imts.jobs import service as jobs
    from imts.jobs.pool import Request
    from imts.store.context import open_context
    from imts.store.models import JobRecord

    c, a = world.client, world.a
    h = world.as_key(a.keys["viewer"])
    costs = f"/api/v1/tenants/{a.tenant}/costs"
    assert c.get(costs, headers=h).json()["priced"] is False  # no table: nothing is costed
    assert all(j["cost"] is None for j in c.get(f"{_base(world)}/jobs", headers=h).json())
    pool_file = world.ctx.settings.pool_file
    assert pool_file is not None
    before = pool_file.read_text(encoding="utf-8")
    spec = yaml.safe_load(before)
    spec["prices"] = {"currency": "CNY", "cpu_hour": 0.5, "memory_gb_hour": 0.1, "gpu_hour": {"a100": 9.0}}
    pool_file.write_text(yaml.safe_dump(spec), encoding="utf-8")
    try:
        start = c.get(costs, headers=h).json()
        assert start["priced"] and start["currency"] == "CNY"
        # Queued through the service (no scheduling pass runs before it is marked ended below).
        ctx = open_context(world.ctx.ws, a.tenant, a.project, "root", "admin", False, None, True)
        sub = jobs.Submission("sleep", {"seconds": 0}, request=Request(cpus=2, memory_gb=4))
        job = {"id": jobs.submit(ctx, sub)}
        with world.ctx.session() as s:  # it ran two hours, then ended
            s.execute(
                update(JobRecord)
                .where(JobRecord.id == job["id"])
                .values(state="succeeded", finished_ts=time.time(), data={"ran_s": 7200.0})
            )
        listed = {j["id"]: j for j in c.get(f"{_base(world)}/jobs", headers=h).json()}
        assert listed[job["id"]]["cost"] == 2 * (2 * 0.5 + 4 * 0.1)  # 2 h x (2 CPUs, 4 GB)
        after = c.get(costs, headers=h).json()
        mine = {p["project"]: p for p in after["projects"]}[a.project]
        assert after["total"] - start["total"] == mine["cost"] - next(
            (p["cost"] for p in start["projects"] if p["project"] == a.project), 0.0
        )
        assert abs(after["total"] - start["total"] - 2.8) < 1e-6 and world.b.tenant not in str(after)
        assert c.get(f"/api/v1/tenants/{world.b.tenant}/costs", headers=h).status_code in (403, 404)
    finally:
        pool_file.write_text(before, encoding="utf-8")
