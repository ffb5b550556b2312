"""Load on the real API server over loopback: 200 concurrent clients (httpx async) mixing reads, small
uploads and ``sleep`` job submissions, on SQLite and on PostgreSQL.

    PYTHONPATH=src .venv/bin/python benchmarks/api_load.py [--clients 200] [--requests 12]
        [--db sqlite|postgresql|both] [--think 10] [--baseline-src DIR] [--phases paced]

Each client has its own API key and repeats: 4 reads (``/me``, the tenant's projects, the project's
jobs, one job), then one write, alternately a job submission (``POST .../jobs``, kind ``sleep``) and a
small upload (declare, one 2 KB chunk, complete: a 10-row dataset version). Two phases per database:

- **saturated**: every client sends its next request as soon as the last one answered (closed loop, no
  pause). This measures throughput; latency there is ``clients / throughput`` by Little's law whatever
  the server does (200 in flight at 400 req/s is 500 ms each), so the read target is not judged here;
- **paced**: each client pauses a random 0..2x``--think`` seconds between requests (200 clients at
  ``--think 10`` offer ~20 req/s, about half of what this shared 2-core machine sustained saturated):
  reads p50/p99 here are what the target (p99 < 100 ms) is about.

Prints, per database and phase: throughput, p50/p99 of reads and of writes, and errors (any status >=
400 or transport error). ``--baseline-src DIR`` serves the same load from another source tree first
(e.g. ``git archive main src | tar -x -C /tmp/base``) and prints the ratio, back to back on the same
machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

PG_ADMIN = os.environ.get("IMTS_TEST_POSTGRES_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BASE = "/api/v1/tenants/load/projects/p"
ROWS = "".join(
    json.dumps({"prompt": f"q{i} " * 40, "response": f"a{i} " * 40}) + "\n" for i in range(10)
).encode()
Sample = tuple[str, float, bool]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(env: dict[str, str], clients: int) -> list[str]:
    """The admin, a tenant and project, and one key per client (in this process, on the same database)."""
    os.environ.update(env)
    from imts.core.settings import Settings
    from imts.services import identity, tenancy
    from imts.services.startup import start
    from imts.store.context import platform_context, tenant_context

    ws = start(Settings())
    admin = platform_context(ws, "root")
    identity.create_user(admin, "root", "load-test-password-1", platform_admin=True)
    tenancy.create_tenant(admin, "load")
    tenancy.create_project(tenant_context(ws, "load", "root", "admin", platform_admin=True), "p")
    return [identity.create_key(admin, f"c{i}", username="root").secret for i in range(clients)]


async def _upload(c: httpx.AsyncClient, name: str) -> httpx.Response:
    decl = {"file_name": f"{name}.jsonl", "size": len(ROWS), "sha256": hashlib.sha256(ROWS).hexdigest(),
            "chunk_size": 1 << 20}  # fmt: skip
    r = await c.post(f"{BASE}/uploads", json=decl)
    if r.status_code >= 400:
        return r
    uid = r.json()["id"]
    headers = {"X-Chunk-SHA256": hashlib.sha256(ROWS).hexdigest(), "Content-Type": "application/octet-stream"}
    r = await c.put(f"{BASE}/uploads/{uid}/chunks/0", content=ROWS, headers=headers)
    if r.status_code >= 400:
        return r
    return await c.post(f"{BASE}/uploads/{uid}/complete", json={"name": name})


async def _client(c: httpx.AsyncClient, n: int, i: int, think: float, out: list[Sample]) -> None:
    rng = random.Random(i)
    job_id = ""
    async with c:
        for j in range(n):
            if think:
                await asyncio.sleep(rng.uniform(0, 2 * think))
            step = j % 5
            kind = "read" if step < 4 else ("job" if (j // 5 + i) % 2 == 0 else "upload")
            t = time.perf_counter()
            try:
                if step == 0:
                    r = await c.get("/api/v1/me")
                elif step == 1:
                    r = await c.get("/api/v1/tenants/load/projects")
                elif step == 2:
                    r = await c.get(f"{BASE}/jobs")
                    if r.status_code == 200 and r.json():
                        job_id = r.json()[0]["id"]
                elif step == 3:
                    r = await c.get(f"{BASE}/jobs/{job_id}" if job_id else f"{BASE}/datasets")
                elif kind == "job":
                    r = await c.post(f"{BASE}/jobs", json={"kind": "sleep", "spec": {"seconds": 0}})
                else:
                    r = await _upload(c, f"u{i}-{j}")
                ok = r.status_code < 400
            except httpx.HTTPError:
                ok = False
            out.append((kind, time.perf_counter() - t, ok))


def _serve(env: dict[str, str], src: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    cmd = [sys.executable, "-m", "imts", "server", "--port", str(port)]
    proc = subprocess.Popen(cmd, env={**os.environ, **env, "PYTHONPATH": src}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server from {src} did not start")


def _pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")


def _phase(url: str, keys: list[str], requests: int, think: float) -> dict[str, float]:
    out: list[Sample] = []
    start = 0.0

    async def main() -> None:
        nonlocal start
        # Every client exists before the first request: building one takes ~30 ms of this process's
        # CPU (its TLS context), and 200 built on the fly held the event loop for seconds, so the
        # clients whose first pause ended meanwhile all fired at once, a burst no paced client makes.
        clients = [httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {k}"}, timeout=120)
                   for k in keys]  # fmt: skip
        # The 200 clients' objects never become garbage during the phase; left in the collector's view,
        # a full collection of this process held its event loop 230-400 ms (gc callbacks), which the
        # reads waiting on it counted as server latency. A real client is not 200 clients in one process.
        gc.collect()
        gc.freeze()
        start = time.perf_counter()
        await asyncio.gather(*(_client(c, requests, i, think, out) for i, c in enumerate(clients)))

    asyncio.run(main())
    took = time.perf_counter() - start
    reads = sorted(d for k, d, _ in out if k == "read")
    writes = sorted(d for k, d, _ in out if k != "read")
    return {"n": len(out), "s": took, "rps": len(out) / took, "r50": _pct(reads, 0.5),
            "r99": _pct(reads, 0.99), "w50": _pct(writes, 0.5), "w99": _pct(writes, 0.99),
            "wmean": statistics.mean(writes) * 1000 if writes else float("nan"),
            "errors": sum(not ok for *_, ok in out)}  # fmt: skip


def run(
    db: str, database_url: str | None, clients: int, requests: int, think: float, baseline: str, phases: str
) -> None:
    trees = ([("baseline", baseline)] if baseline else []) + [
        ("this tree", str(Path(__file__).parents[1] / "src"))
    ]
    results: dict[tuple[str, str], dict[str, float]] = {}
    for label, src in trees:
        root = Path(tempfile.mkdtemp(prefix=f"imts-load-{db}-"))
        env = {"IMTS_WORKSPACE": str(root / "ws"), "IMTS_API_RATE_LIMIT": "12000/minute",
               "IMTS_LOG_LEVEL": "WARNING"}  # fmt: skip
        if database_url:
            env["IMTS_DATABASE_URL"] = _fresh_pg(database_url)
        keys = _setup(env, clients)
        proc, url = _serve(env, src)
        try:
            for phase, pause in [(p, think if p == "paced" else 0.0) for p in phases.split(",")]:
                res = results[(label, phase)] = _phase(url, keys, requests, pause)
                print(f"{db} {label} {phase}: {clients} clients x {requests} = {res['n']:.0f} requests in "
                      f"{res['s']:.1f} s -> {res['rps']:.0f} req/s; reads p50 {res['r50']:.0f} ms p99 "
                      f"{res['r99']:.0f} ms; writes (jobs, upload requests) p50 {res['w50']:.0f} ms p99 "
                      f"{res['w99']:.0f} ms (mean {res['wmean']:.0f} ms); errors {res['errors']:.0f}",
                      flush=True)  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    if baseline:
        for phase in phases.split(","):
            b, t = results[("baseline", phase)], results[("this tree", phase)]
            print(f"{db} {phase}: throughput x{t['rps'] / b['rps']:.2f}, reads p99 "
                  f"{b['r99'] / t['r99']:.1f}x lower (this tree / baseline)")  # fmt: skip


def _fresh_pg(admin_url: str) -> str:
    """A new database on the server of ``admin_url`` (dropped by ``main`` at the end)."""
    from sqlalchemy import create_engine, text

    name = f"imts_load_{uuid.uuid4().hex[:8]}"
    with create_engine(admin_url, isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text(f'create database "{name}"'))
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--requests", type=int, default=10, help="per client and phase")
    ap.add_argument("--think", type=float, default=10.0, help="mean pause of the paced phase (s)")
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--baseline-src", default="", help="a source tree to serve the same load first")
    ap.add_argument(
        "--phases", choices=["saturated,paced", "paced"], default="saturated,paced",
        help="paced alone: on a fresh server, without the saturated phase's backlog of jobs",
    )  # fmt: skip
    a = ap.parse_args()
    args = [str(a.clients), str(a.requests), str(a.think), a.baseline_src, a.phases]
    # One process per database: the settings and workspace of a run are cached in the process.
    if a.db in ("sqlite", "both"):
        subprocess.run([sys.executable, __file__, "child", "sqlite", "", *args], check=True)
    if a.db in ("postgresql", "both"):
        subprocess.run([sys.executable, __file__, "child", "postgresql", PG_ADMIN, *args], check=True)
        from sqlalchemy import create_engine, text

        with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as c:
            for (name,) in c.execute(
                text("select datname from pg_database where datname like 'imts_load_%'")
            ):
                c.execute(text(f'drop database if exists "{name}" with (force)'))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        db, url, clients, requests, think, baseline, phases = sys.argv[2:9]
        run(db, url or None, int(clients), int(requests), float(think), baseline, phases)
    else:
        main()
