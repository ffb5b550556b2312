"""CPU time per API read, in process (the app over httpx's ASGI transport, 10 concurrent clients, SQLite):
a figure that the machine's other load barely moves, unlike latencies.

    PYTHONPATH=src .venv/bin/python benchmarks/api_read_cpu.py --baseline-src /tmp/base/src

Reads cycle over ``/me``, the tenant's projects, the project's jobs and the project. Prints the CPU
milliseconds per read (server and the in-process client together; the best of 3 rounds of 400) for this
tree and, with ``--baseline-src``, for the other tree, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATHS = ["/api/v1/me", "/api/v1/tenants/load/projects", "/api/v1/tenants/load/projects/p/jobs",
         "/api/v1/tenants/load/projects/p"]  # fmt: skip


def measure() -> float:
    """CPU ms per read, best of 3 rounds (in this process, with the tree on PYTHONPATH)."""
    os.environ.update({"IMTS_WORKSPACE": tempfile.mkdtemp(prefix="imts-readcpu-"),
                       "IMTS_API_RATE_LIMIT": "100000/minute", "IMTS_LOG_LEVEL": "WARNING"})  # fmt: skip
    import httpx

    from imts.api.app import create_app
    from imts.core.settings import Settings
    from imts.services import identity, tenancy
    from imts.services.startup import start
    from imts.store.context import platform_context, tenant_context

    ws = start(Settings())
    admin = platform_context(ws, "root")
    identity.create_user(admin, "root", "load-test-password-1", platform_admin=True)
    tenancy.create_tenant(admin, "load")
    tenancy.create_project(tenant_context(ws, "load", "root", "admin", platform_admin=True), "p")
    keys = [identity.create_key(admin, f"c{i}", username="root").secret for i in range(10)]
    app = create_app(Settings(), secure_cookies=False)

    async def round_(n: int) -> None:
        transport = httpx.ASGITransport(app=app)

        async def client(key: str) -> None:
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
                for j in range(n):
                    r = await c.get(PATHS[j % len(PATHS)])
                    assert r.status_code == 200, r.text

        await asyncio.gather(*(client(k) for k in keys))

    async def main() -> float:
        async with app.router.lifespan_context(app):
            await round_(8)  # warm: imports, caches, pooled connections
            best = float("inf")
            for _ in range(3):
                t = time.process_time()
                await round_(40)
                best = min(best, (time.process_time() - t) / (40 * len(keys)) * 1000)
            return best

    return asyncio.run(main())


def _in(src: str) -> float:
    out = subprocess.run([sys.executable, __file__, "child"], env={**os.environ, "PYTHONPATH": src},
                         capture_output=True, text=True, check=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline-src", default="", help="another source tree to measure the same way")
    a = ap.parse_args()
    mine = _in(str(Path(__file__).parents[1] / "src"))
    print(f"this tree: {mine:.2f} CPU ms per read")
    if a.baseline_src:
        base = _in(a.baseline_src)
        print(f"baseline: {base:.2f} CPU ms per read; this tree uses {base / mine:.2f}x less CPU per read")


if __name__ == "__main__":
    if sys.argv[1:] == ["child"]:
        print(measure())
    else:
        main()
