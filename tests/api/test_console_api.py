"""What the web console needs of the API, through the real app: the console's files at ``/``, the run
and eval spec schemas, the memory plan, min/max-bucket downsampling of a curve (no spike lost) with a
full-resolution range, and the language remembered per user."""

from __future__ import annotations

import json

from conftest import World
from imts.core.downsample import downsample
from imts.store import runs
from imts.store.context import open_context


def test_downsample_keeps_every_bucket_min_max_and_last() -> None:
    points = [(s, 1.0) for s in range(10_000)]
    points[4321] = (4321, 50.0)  # one spike in ten thousand
    points[7000] = (7000, -3.0)
    out = downsample(points, 100)
    assert len(out) <= 300 and (4321, 50.0) in out and (7000, -3.0) in out and out[-1] == (9999, 1.0)
    assert [s for s, _ in out] == sorted({s for s, _ in out})
    assert downsample(points[:50], 100) == points[:50]


def test_console_files_and_specs(world: World) -> None:
    c = world.client
    page = c.get("/")
    assert page.status_code == 200 and '<script type="module" src="app.js">' in page.text
    assert c.get("/vendor/uPlot.esm.js").status_code == 200 and c.get("/app.js").status_code == 200
    assert c.get("/api/v1/specs/run").status_code == 401  # the schemas need a signed-in caller
    h = world.as_key(world.a.keys["viewer"])
    schema = c.get("/api/v1/specs/run", headers=h).json()
    assert schema["properties"]["lr"]["default"] == 0.001 and "lora" in schema["properties"]
    assert "datasets" in c.get("/api/v1/specs/eval", headers=h).json()["properties"]
    # the loop's spec, with its help in English and Chinese (the loop page's form is built from it)
    assert c.get("/api/v1/specs/loop").status_code == 401
    loop = c.get("/api/v1/specs/loop", headers=h).json()
    assert loop["required"] == ["intent", "data"] and loop["additionalProperties"] is False
    props = loop["properties"]
    assert props["max_iterations"]["default"] == 3 and props["max_iterations"]["maximum"] == 50
    assert props["train"]["default"] == ["max_steps=80", "save_every=40", "eval_every=40"]
    assert props["probe"]["default"] == "imts-general-probe"
    assert all(p.get("description") and p.get("description_zh") for n, p in props.items() if n != "budget")
    budget = loop["$defs"]["Budget"]
    assert budget["title_zh"] == "预算" and all(p["description_zh"] for p in budget["properties"].values())
    base = f"/api/v1/tenants/{world.a.tenant}/projects/{world.a.project}"
    plan = c.post(f"{base}/plan", headers=h, json={"base_model": "qwen2.5-7b", "gpus": "1xh100"}).json()
    assert plan["options"] and all(o["method"] == "lora" for o in plan["options"]) and plan["why"]
    bad = c.post(f"{base}/plan", headers=h, json={"base_model": "qwen2.5-7b", "batch_size": 0})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "batch_size"


def test_metrics_buckets_keep_spikes_and_zoom_reads_full_resolution(world: World) -> None:
    a = world.a
    ctx = open_context(world.ctx.ws, a.tenant, a.project, "trainer", "admin", False)
    run = runs.create(ctx, "train", {"data": "d"})
    runs.log_batch(ctx, run.id, [(s, {"loss": 9.0 if s == 1234 else 1.0}) for s in range(5000)])
    h = world.as_key(a.keys["viewer"])
    url = f"/api/v1/tenants/{a.tenant}/projects/{a.project}/runs/{run.id}/metrics"
    coarse = world.client.get(f"{url}?key=loss&buckets=100", headers=h).json()["loss"]
    assert len(coarse) <= 300 and {"step": 1234, "value": 9.0} in coarse
    zoom = world.client.get(f"{url}?key=loss&buckets=1000&after_step=1199&until_step=1300", headers=h).json()
    assert [p["step"] for p in zoom["loss"]] == list(range(1200, 1301))  # the range, every point


def test_a_finished_runs_curves_come_from_its_rollup_until_it_runs_again(world: World) -> None:
    a = world.a
    ctx = open_context(world.ctx.ws, a.tenant, a.project, "trainer", "admin", False)
    run = runs.create(ctx, "train", {"data": "d"})
    runs.log_batch(ctx, run.id, [(s, {"loss": 1.0 + (s == 4321), "lr": 0.1}) for s in range(5000)])
    h = world.as_key(a.keys["viewer"])
    base = f"/api/v1/tenants/{a.tenant}/projects/{a.project}/runs/{run.id}"
    url = f"{base}/metrics?buckets={runs.ROLLUP_BUCKETS}"
    rollup = ctx.artifacts.path(f"runs/{run.id}/curves.json")
    live = world.client.get(url, headers=h).json()
    assert not rollup.exists()  # a running run's curves are computed on every read
    runs.finish(ctx, run.id, "succeeded")
    assert rollup.exists()
    assert world.client.get(url, headers=h).json() == live  # the same points, from the rollup
    only = world.client.get(f"{url}&key=loss", headers=h).json()
    assert list(only) == ["loss"] and {"step": 4321, "value": 2.0} in only["loss"]
    # the rollup is what the page reads: changing it shows it is read (then a resumed run drops it)
    data = json.loads(rollup.read_text())
    data["curves"]["loss"] = [[0, 7.0]]
    rollup.write_text(json.dumps(data))
    assert world.client.get(f"{url}&key=loss", headers=h).json()["loss"] == [{"step": 0, "value": 7.0}]
    runs.start(ctx, run.id)
    assert not rollup.exists()
    runs.log_batch(ctx, run.id, [(5000, {"loss": 3.0})])
    runs.finish(ctx, run.id, "succeeded")
    assert {"step": 5000, "value": 3.0} in world.client.get(f"{url}&key=loss", headers=h).json()["loss"]


def test_language_is_remembered_per_user(world: World) -> None:
    h = world.as_key(world.a.keys["viewer"])
    assert world.client.get("/api/v1/me", headers=h).json()["user"]["lang"] == "en"
    assert world.client.put("/api/v1/me/preferences", headers=h, json={"lang": "zh"}).status_code == 200
    assert world.client.get("/api/v1/me", headers=h).json()["user"]["lang"] == "zh"
    bad = world.client.put("/api/v1/me/preferences", headers=h, json={"lang": "fr"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "lang"
