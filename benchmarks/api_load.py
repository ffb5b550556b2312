"""Load on the real API server over loopback: 200 concurrent clients (httpx async) mixing reads and
writes (job submissions of the ``sleep`` kind, project creations), on SQLite and on PostgreSQL.

    PYTHONPATH=src .venv/bin/python benchmarks/api_load.py [--clients 200] [--requests 10]

Prints, per database: throughput, p50/p99 of reads and of writes, and errors (target: no errors, p99 of
reads under 100 ms). Each client has its own API key (per-key rate limits stay at their defaults x10).
Job submissions are in the mix when the server serves ``/jobs`` (else every write is a project
creation; the output says which). Small uploads are not in the mix yet (benchmarks/api_upload.py
measures uploads).
"""

from __future__ import annotations

import argparse
import asyncio
import os
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


async def _client(
    url: str, key: str, n: int, i: int, ops: dict[str, bool], out: list[tuple[str, float, bool]]
) -> None:
    base = "/api/v1/tenants/load/projects/p"
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        for j in range(n):
            kind = ("read", "read", "read", "write")[j % 4]
            t = time.perf_counter()
            try:
                if kind == "read":
                    r = await c.get("/api/v1/tenants/load/projects" if j % 2 else "/api/v1/me")
                elif ops["jobs"] and j % 8 == 3:
                    r = await c.post(f"{base}/jobs", json={"kind": "sleep", "spec": {"seconds": 0}})
                else:
                    r = await c.post("/api/v1/tenants/load/projects", json={"name": f"c{i}-{j}"})
                ok = r.status_code < 400
            except httpx.HTTPError:
                ok = False
            out.append((kind, time.perf_counter() - t, ok))


def run(db: str, database_url: str | None, clients: int, requests: int) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"imts-load-{db}-"))
    env = {
        "IMTS_WORKSPACE": str(root / "ws"),
        "IMTS_API_RATE_LIMIT": "12000/minute",
        "IMTS_LOG_LEVEL": "WARNING",
    }
    if database_url:
        env["IMTS_DATABASE_URL"] = database_url
    keys = _setup(env, clients)
    port = _port()
    cmd = [sys.executable, "-m", "imts", "server", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        paths = httpx.get(f"{url}/openapi.json").json()["paths"]
        ops = {"jobs": any(p.endswith("/jobs") for p in paths)}
        out: list[tuple[str, float, bool]] = []
        start = time.perf_counter()

        async def main() -> None:
            await asyncio.gather(*(_client(url, k, requests, i, ops, out) for i, k in enumerate(keys)))

        asyncio.run(main())
        took = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    reads = sorted(d for k, d, _ in out if k == "read")
    writes = sorted(d for k, d, _ in out if k == "write")
    errors = sum(not ok for *_, ok in out)

    def pct(xs: list[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")

    what = "job submissions" if ops["jobs"] else "project creations (no /jobs route served)"
    print(f"{db}: {clients} clients x {requests} requests = {len(out)} in {took:.1f} s -> "
          f"{len(out) / took:.0f} req/s; reads p50 {pct(reads, .5):.0f} ms p99 {pct(reads, .99):.0f} ms; "
          f"writes ({what}) p50 {pct(writes, .5):.0f} ms p99 {pct(writes, .99):.0f} ms "
          f"(mean {statistics.mean(writes) * 1000:.0f} ms); errors {errors}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    a = ap.parse_args()
    if a.db in ("sqlite", "both"):
        run("sqlite", None, a.clients, a.requests)
    if a.db in ("postgresql", "both"):
        from sqlalchemy import create_engine, text

        name = f"imts_load_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'create database "{name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        # Separate process: the settings and workspace of the SQLite run are cached in this one.
        subprocess.run(
            [sys.executable, __file__, "--db", "pg-child", url, str(a.clients), str(a.requests)], check=True
        )
        with admin.connect() as c:
            c.execute(text(f'drop database if exists "{name}" with (force)'))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "pg-child":
        run("postgresql", sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
