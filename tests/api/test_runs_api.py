"""Runs, metrics and reports through the real app on SQLite and PostgreSQL: metrics streamed live over
server-sent events while a writer logs them (and resumed by Last-Event-ID), history, compare, and
report refusals."""

from __future__ import annotations

import threading
import time

from sse import events

from conftest import World
from imts.store import runs
from imts.store.context import open_context


def _base(world: World) -> str:
    return f"/api/v1/tenants/{world.a.tenant}/projects/{world.a.project}"


def test_live_metrics_stream_until_the_run_ends_and_resume(world: World) -> None:
    a = world.a
    ctx = open_context(world.ctx.ws, a.tenant, a.project, "trainer", "admin", False)
    run = runs.create(ctx, "train", {"lr": 0.001, "data": "d"})
    runs.start(ctx, run.id)

    def train() -> None:  # a training loop's sink: one step every 50 ms, then the end
        for step in range(1, 11):
            runs.log_batch(ctx, run.id, [(step, {"loss": 2.0 / step, "lr": 0.001})])
            time.sleep(0.05)
        runs.finish(ctx, run.id, "succeeded", {"final_loss": 0.2})

    writer = threading.Thread(target=train)
    writer.start()
    h = world.as_key(a.keys["viewer"])
    url = f"{_base(world)}/runs/{run.id}/metrics/stream?poll_s=0.05"
    got = events(world.client, url, h)
    writer.join()
    steps = [e for e in got if e["event"] == "metrics"]
    assert [e["data"]["step"] for e in steps] == list(range(1, 11)), got
    assert [e["id"] for e in steps] == [str(s) for s in range(1, 11)]
    assert steps[3]["data"]["metrics"] == {"loss": 0.5, "lr": 0.001}
    assert got[-1] == {"event": "end", "data": {"state": "succeeded"}}
    resumed = events(world.client, url, {**h, "Last-Event-ID": "7"})
    assert [e["data"]["step"] for e in resumed if e["event"] == "metrics"] == [8, 9, 10]
    hist = world.client.get(f"{_base(world)}/runs/{run.id}/metrics?key=loss", headers=h).json()
    assert list(hist) == ["loss"] and hist["loss"][-1] == {"step": 10, "value": 0.2}


def test_list_show_compare_and_reports(world: World) -> None:
    a, c = world.a, world.client
    h = world.as_key(a.keys["viewer"])
    ctx = open_context(world.ctx.ws, a.tenant, a.project, "trainer", "admin", False)
    r1 = runs.create(ctx, "train", {"lr": 0.001, "lora": {"r": 8}})
    r2 = runs.create(ctx, "train", {"lr": 0.002, "lora": {"r": 8}})
    runs.finish(ctx, r1.id, "succeeded", {"final_loss": 0.5})
    runs.finish(ctx, r2.id, "succeeded", {"final_loss": 0.4})
    listed = c.get(f"{_base(world)}/runs?kind=train", headers=h).json()
    assert {r1.id, r2.id} <= {r["id"] for r in listed} and all(r["kind"] == "train" for r in listed)
    shown = c.get(f"{_base(world)}/runs/{r1.id}", headers=h).json()
    assert shown["run"]["summary"] == {"final_loss": 0.5} and isinstance(shown["events"], list)
    cmp = c.get(f"{_base(world)}/runs/compare?run={r1.id}&run={r2.id}", headers=h).json()
    assert cmp["differing"] == ["lr"] and cmp["metrics"]["final_loss"] == [0.5, 0.4]
    one = c.get(f"{_base(world)}/runs/compare?run={r1.id}", headers=h)
    assert one.status_code == 422 and one.json()["error"]["param"] == "query.run"
    assert c.get(f"{_base(world)}/runs/run_nope", headers=h).status_code == 404
    # Reports: none yet (404 naming the run), a viewer may not write one, and one eval run is too few.
    missing = c.get(f"{_base(world)}/reports/{r1.id}", headers=h)
    assert missing.status_code == 404 and r1.id in missing.json()["error"]["message"]
    assert c.post(f"{_base(world)}/reports", headers=h, json={"evals": [r1.id, r2.id]}).status_code == 403
    rh = world.as_key(a.keys["researcher"])
    few = c.post(f"{_base(world)}/reports", headers=rh, json={"evals": [r1.id]})
    assert few.status_code == 422 and few.json()["error"]["param"] == "evals"
