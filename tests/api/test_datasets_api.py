"""Every dataset verb through the real app (TestClient) on SQLite and PostgreSQL: upload, list, show,
rows, stats, diff, split, dedup, lineage, roll back, export, share, URL and SQL imports, analyses; each change
audited with its actor."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from tests.conftest import PG_ADMIN_URL

from conftest import DATASET, World, small_jsonl
from imts.api.client import upload_file


def _as(world: World, key: str) -> TestClient:
    return TestClient(world.client.app, base_url="https://testserver", headers=world.as_key(key))


@pytest.fixture(scope="module")
def files_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on loopback serving a folder."""
    folder = tmp_path_factory.mktemp("served")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    httpd.shutdown()


def test_every_dataset_verb(world: World, tmp_path: Path) -> None:
    a = world.a
    http = _as(world, a.keys["researcher"])
    base = f"/api/v1/tenants/{a.tenant}/projects/{a.project}/datasets"
    v1 = upload_file(http, a.tenant, a.project, small_jsonl(tmp_path / "arith.jsonl"), chunk_size=1 << 16)
    assert (v1["dataset"], v1["number"], v1["num_rows"], v1["params"]["file"]) == (
        "arith",
        1,
        20,
        "arith.jsonl",
    )
    v2 = upload_file(http, a.tenant, a.project, small_jsonl(tmp_path / "b.jsonl", 30, 10), name="arith")
    assert v2["number"] == 2
    listed = http.get(base, params={"dataset": "arith"}).json()
    assert [v["number"] for v in listed] == [1, 2]
    assert [v["number"] for v in http.get(f"{base}/arith/versions").json()] == [1, 2]
    assert http.get(f"{base}/nothing/versions").status_code == 404

    shown = http.get(f"{base}/refs/arith@1", params={"rows": 2}).json()
    assert shown["num_rows"] == 20 and len(shown["sample"]) == 2
    page = http.get(
        f"{base}/refs/arith@1/rows", params={"where": "messages[2].content = '7'", "limit": 5}
    ).json()
    assert page["total"] == 1 and page["rows"][0]["messages"][0]["content"] == "What is 3 plus 4?"
    assert http.get(f"{base}/refs/arith@1/stats").json()["rows"] == 20
    d = http.get(f"{base}/refs/arith@1/diff/arith@2").json()
    assert (d["rows"]["added"], d["rows"]["removed"], d["rows"]["unchanged"]) == (20, 10, 10)

    split = http.post(f"{base}/refs/arith@2/split", json={"ratios": [0.6, 0.2, 0.2], "stratify_by": ""})
    assert split.status_code == 201, split.text
    assert set(split.json()["stats"]["split"]) == {"train", "val", "test"}
    assert http.get(f"{base}/refs/arith@3:train").json()["split"] == "train"
    dd = http.post(f"{base}/refs/arith@1/dedup", json={"exact_only": True})
    assert dd.status_code == 201 and dd.json()["report"]["rows_out"] == 20
    emb = http.post(f"{base}/refs/arith@3:val/embeddings")
    assert emb.status_code == 201, emb.text
    assert (emb.json()["rows"], emb.json()["dim"], emb.json()["executor"]) == (
        split.json()["stats"]["split"]["val"],
        384,
        "local",
    )
    assert http.post(f"{base}/refs/arith@3:val/embeddings").json()["executor"] == "cached"
    assert _as(world, a.keys["viewer"]).post(f"{base}/refs/arith@1/embeddings").status_code == 403
    back = http.post(f"{base}/arith/rollback", json={"to": "1"})
    assert back.status_code == 201 and back.json()["num_rows"] == 20
    lineage = http.get(f"{base}/arith/lineage").json()
    assert [n["operation"] for n in lineage["versions"]] == ["import", "import", "split", "dedup", "rollback"]

    exported = http.get(f"{base}/refs/arith@3:test/export")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in exported.text.splitlines()]
    assert len(lines) == split.json()["stats"]["split"]["test"] and all(r["split"] == "test" for r in lines)
    parquet = http.get(f"{base}/refs/arith@1/export", params={"format": "parquet"})
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 20
    assert http.get(f"{base}/refs/arith@1/export", params={"format": "hf"}).status_code == 422

    second = f"/api/v1/tenants/{a.tenant}/projects/alpha-second/datasets"
    assert http.get(f"{second}/refs/{v1['id']}").status_code == 404
    shared = http.post(f"{base}/refs/arith@1/shares", json={"project": "alpha-second"})
    assert shared.status_code == 201 and shared.json()["reference"] == f"{a.project}/arith@1"
    assert http.get(f"{second}/refs/{v1['id']}").json()["num_rows"] == 20  # read-only, by its id
    # Every change is in the audit log, by whom, in its tenant.
    admin = _as(world, a.keys["admin"])
    entries = admin.get(
        f"/api/v1/tenants/{a.tenant}/audit", params={"action": "dataset.*", "limit": 1000}
    ).json()
    mine = [(e["action"], e["actor"]) for e in entries if e["actor"] == a.users["researcher"]]
    for action in ("import", "split", "dedup", "rollback", "share"):
        assert (f"dataset.{action}", a.users["researcher"]) in mine, action
    # A viewer reads but changes nothing.
    viewer = _as(world, a.keys["viewer"])
    assert viewer.get(f"{base}/refs/arith@1").status_code == 200
    assert viewer.post(f"{base}/arith/rollback", json={"to": "2"}).status_code == 403


def test_imports_from_a_url_and_a_database_server_but_never_the_servers_own_files(
    world: World, files_server: tuple[str, Path]
) -> None:
    a = world.a
    http = _as(world, a.keys["researcher"])
    base = f"/api/v1/tenants/{a.tenant}/projects/{a.project}/datasets"
    url, folder = files_server
    small_jsonl(folder / "web.jsonl", 7)
    r = http.post(f"{base}/imports", json={"source": f"{url}/web.jsonl"})
    assert r.status_code == 201, r.text
    assert (r.json()["dataset"], r.json()["num_rows"]) == ("web", 7)
    (folder / "bad.jsonl").write_text('{"prompt": "a", "response": "b"}\n{"prompt": \n')
    bad = http.post(f"{base}/imports", json={"source": f"{url}/bad.jsonl"})
    assert bad.status_code == 422 and bad.json()["error"]["message"].startswith(
        f"{url}/bad.jsonl:2: malformed JSON"
    )
    for local in ("/etc/passwd", "file:///etc/passwd", str(folder / "web.jsonl")):
        refused = http.post(f"{base}/imports", json={"source": local, "type": "text"})
        assert refused.status_code == 422 and refused.json()["error"]["param"] == "source", local
    for db in ("sqlite:////etc/hosts", "duckdb:///x.db"):
        refused = http.post(f"{base}/queries", json={"url": db, "sql": "select 1", "name": "q"})
        assert refused.status_code == 422 and refused.json()["error"]["param"] == "url"
    try:
        create_engine(PG_ADMIN_URL).connect().close()
    except Exception:
        return  # no PostgreSQL server to read from here; the refusals above still ran
    sql = "select 'hello ' || n as prompt, 'world ' || n as response from generate_series(1, 5) as n"
    q = http.post(f"{base}/queries", json={"url": PG_ADMIN_URL, "sql": sql, "name": "from-sql"})
    assert q.status_code == 201, q.text
    assert q.json()["num_rows"] == 5 and "postgres" in q.json()["params"]["url"]
    failed = http.post(f"{base}/queries", json={"url": PG_ADMIN_URL, "sql": "select nope", "name": "x"})
    assert failed.status_code == 422 and "the query failed" in failed.json()["error"]["message"]
    assert http.get(f"{base}/x/versions").status_code == 404


# The data-fix routes (api/routes/optimise.py): plan, submit as a job, the review queue; roles enforced.
def test_data_fix_plan_submit_and_review(world: World) -> None:
    a = world.a
    http = _as(world, a.keys["researcher"])
    viewer = _as(world, a.keys["viewer"])
    base = f"/api/v1/tenants/{a.tenant}/projects/{a.project}"
    plan = viewer.post(f"{base}/datasets/refs/{DATASET}/fix/plan", json={"fix": {"cot": True}})
    assert plan.status_code == 200, plan.text
    body = plan.json()
    assert body["planned"] and sum(c["rewritten"] for c in body["cot"].values()) > 0
    bad = http.post(f"{base}/datasets/refs/{DATASET}/fix/plan", json={"fix": {"augment": {"x": 3}}})
    assert bad.status_code == 422 and "augment" in bad.text
    assert viewer.post(f"{base}/datasets/refs/{DATASET}/fix", json={"fix": {"cot": True}}).status_code == 403
    job = http.post(f"{base}/datasets/refs/{DATASET}/fix", json={"fix": {"cot": True}})
    assert job.status_code == 201 and job.json()["kind"] == "data_fix"
    pending = viewer.get(f"{base}/reviews").json()
    assert pending and all(p["status"] == "pending" for p in pending)
    first = pending[0]
    assert viewer.post(f"{base}/reviews/{first['id']}", json={"accept": True}).status_code == 403
    done = http.post(f"{base}/reviews/{first['id']}", json={"accept": True})
    assert done.status_code == 200 and done.json()["status"] == "accepted"
    assert http.post(f"{base}/reviews/{first['id']}", json={"accept": False}).status_code == 409
    rejected = http.post(f"{base}/reviews/{pending[1]['id']}", json={"accept": False, "reason": "odd"})
    assert rejected.status_code == 200 and rejected.json()["reason"] == "odd"
    # the queue by status (or all), by fix; the counts per fix
    assert len(viewer.get(f"{base}/reviews", params={"status": "all"}).json()) == len(pending)
    assert [i["id"] for i in viewer.get(f"{base}/reviews", params={"status": "rejected"}).json()] == [
        pending[1]["id"]
    ]
    assert len(viewer.get(f"{base}/reviews", params={"fix": first["fix_version"], "limit": 1}).json()) == 1
    assert viewer.get(f"{base}/reviews", params={"fix": "nothing@1"}).status_code == 404
    assert viewer.get(f"{base}/reviews", params={"status": "maybe"}).status_code == 422
    (fix,) = viewer.get(f"{base}/reviews/fixes").json()
    held_by = http.get(f"{base}/datasets/refs/{first['fix_version']}").json()
    assert fix["fix_version"] == first["fix_version"] and fix["version"] == f"{DATASET}@{held_by['number']}"
    counts = [fix["pending"], fix["accepted"], fix["rejected"], fix["committed"]]
    assert counts == [len(pending) - 2, 1, 1, []]
    made = http.post(f"{base}/datasets/refs/{first['fix_version']}/reviewed")
    assert made.status_code == 201 and made.json()["operation"] == "review"
    (fix,) = viewer.get(f"{base}/reviews/fixes").json()
    assert [(c["version"], c["accepted"]) for c in fix["committed"]] == [
        (f"{DATASET}@{made.json()['number']}", 1)
    ]


def test_analyses_over_the_api(world: World, tmp_path: Path) -> None:
    """Dataset analyses: run one, read it back, its report, a 409 refusal (stored), a queued job, roles."""
    a = world.a
    http = _as(world, a.keys["researcher"])
    upload_file(http, a.tenant, a.project, small_jsonl(tmp_path / "sums.jsonl", 30), name="sums")
    base = f"/api/v1/tenants/{a.tenant}/projects/{a.project}/datasets/refs/sums"
    body = {"intent": "Solve arithmetic word problems step by step", "semantic": False}
    r = http.post(f"{base}/analyses", json=body)
    assert r.status_code == 201, r.text
    summary = r.json()
    assert summary["verdict"] == "fits" and summary["findings"]["answer_only"] == 30

    full = http.get(f"{base}/analysis").json()
    assert full["id"] == summary["id"] and full["version"] == "sums@1" and full["lang"] == "en"
    (ao,) = [f for f in full["findings"] if f["kind"] == "answer_only"]
    assert len(ao["row_ids"]) == 30 and ao["action"] == "cot_rewrite"
    page = http.get(f"{base}/analysis/report", params={"format": "html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Dataset health report" in page.text

    refused = http.post(f"{base}/analyses", json={"intent": "写古风诗词，七言绝句那种", "semantic": False})
    assert refused.status_code == 409 and "匹配度" in refused.text
    assert [x["verdict"] for x in http.get(f"{base}/analyses").json()] == ["refused", "fits"]
    vague = http.post(f"{base}/analyses", json={"intent": "make a good AI"})
    assert vague.status_code == 422 and "What should the model do" in vague.text

    job = http.post(f"{base}/analyses/jobs", json={**body, "lang": "zh"})
    assert job.status_code == 201 and job.json()["kind"] == "analyze"

    viewer = _as(world, a.keys["viewer"])
    assert viewer.get(f"{base}/analysis").status_code == 200
    assert viewer.post(f"{base}/analyses", json=body).status_code == 403
