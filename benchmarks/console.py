"""The web console's two speed targets, on a real ``imts server`` (SQLite) and Debian's Chromium:

1. the overview with 10,000 jobs in the project answers within 1 s (the page's API calls, then the page
   drawn in the browser);
2. a curve page with 20 runs of 100,000 points each is interactive within 2 s (every curve drawn),
   with min/max-per-bucket downsampling; the same 20 curves fetched at full resolution (what the
   console would do without buckets) is the alternative, and the ratio is printed.

    PYTHONPATH=src .venv/bin/python benchmarks/console.py [--jobs 10000] [--runs 20] [--points 100000]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import insert, select

PASSWORD = "correct horse battery staple"
CHROMIUM = "/usr/bin/chromium"


def imts(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "imts", *args], env=env, input=stdin, capture_output=True, text=True
    )
    if r.returncode:
        sys.exit(f"imts {' '.join(args)} failed: {r.stderr}")


def populate(ws_dir: Path, n_jobs: int, n_runs: int, n_points: int) -> list[str]:
    """Jobs submitted through the job service (queued, as a busy team's backlog), and runs whose
    metrics are written in bulk (one ``loss`` point per step), then finished."""
    os.environ["IMTS_WORKSPACE"] = str(ws_dir)
    from imts.core.settings import Settings
    from imts.jobs import service as jobs
    from imts.services.startup import start
    from imts.store import runs
    from imts.store.context import open_context
    from imts.store.models import JobRecord as Job
    from imts.store.models import Metric

    ws = start(Settings())  # registers the job kinds, as the server does
    ctx = open_context(ws, "acme", "default", "alice", "admin", False)
    t0 = time.perf_counter()
    # One job through the job service, then its row copied (new ids): the same rows 10,000 submissions
    # write, without the setup taking minutes on a shared machine. Most are finished, as in a
    # project that has run for a while; the last 100 stay queued.
    first = jobs.submit(ctx, jobs.Submission("sleep", {"seconds": 0}, owner="alice", priority_class="low"))
    with ctx.session() as s:
        row = dict(s.execute(select(Job.__table__).where(Job.id == first)).mappings().one())
        copies = []
        for i in range(1, n_jobs):
            done = i < n_jobs - 100
            ts = row["submitted_ts"] + i
            state = "succeeded" if done else "queued"
            end = ts + 1 if done else None
            copies.append({**row, "id": f"{first}{i:05d}", "name": f"job {i}", "submitted_ts": ts,
                           "state": state, "finished_ts": end})  # fmt: skip
        s.execute(insert(Job), copies)
    print(f"setup: {n_jobs} jobs written in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    ids = []
    for _ in range(n_runs):
        run = runs.create(ctx, "train", {"base_model": "tiny", "data": "math@2"})
        rows = [
            {"run_id": run.id, "key": "loss", "step": s, "value": 2 / (1 + s / 1000) + 5 * (s == 77_777)}
            for s in range(n_points)
        ]
        with ctx.session() as s:
            s.execute(insert(Metric), rows)
        # as a training run ends: finishing writes the run's curve rollup (``runs.curves``)
        runs.finish(ctx, run.id, "succeeded", {"final_loss": 1.0})
        ids.append(run.id)
    print(f"setup: {n_runs} runs x {n_points} points written in {time.perf_counter() - t0:.1f} s")
    return ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--points", type=int, default=100_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="imts-console-bench-"))
    env = {**os.environ, "IMTS_WORKSPACE": str(tmp / "ws")}
    imts(env, "admin", "init", "--username", "boss", "--password-stdin", stdin=PASSWORD + "\n")
    imts(env, "tenants", "create", "acme")
    imts(env, "projects", "create", "default", "--tenant", "acme")
    imts(env, "users", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    imts(env, "members", "add", "alice", "--role", "admin", "--tenant", "acme")
    ids = populate(tmp / "ws", args.jobs, args.runs, args.points)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "imts", "server", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{url}/api/v1/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "/")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("#jobs tr[data-job]", timeout=60_000)
            page.goto(url + "/#/datasets")
            page.wait_for_selector("#datasets")
            t0 = time.perf_counter()
            page.goto(url + "/#/overview")
            page.wait_for_selector("#jobs tr[data-job]")
            overview = time.perf_counter() - t0
            print(f"overview, {args.jobs} jobs in the project: {overview:.3f} s (target < 1 s)")
            t0 = time.perf_counter()
            page.goto(url + f"/#/monitor?run={','.join(ids)}")
            page.wait_for_selector("#view[data-ready]", timeout=120_000)
            curves = time.perf_counter() - t0
            drawn = page.locator("#monitor-status").inner_text()
            print(f"curve page, {args.runs} runs x {args.points} points: interactive in {curves:.3f} s "
                  f"(target < 2 s) — {drawn}")  # fmt: skip
            full_ms = page.evaluate(
                """async (ids) => { const t0 = performance.now();
                   const base = '/api/v1/tenants/acme/projects/default/runs/';
                   const get = (id) => fetch(`${base}${id}/metrics?key=loss`).then((r) => r.json());
                   await Promise.all(ids.map(get));
                   return performance.now() - t0; }""",
                ids,
            )
            full = full_ms / 1000
            print(f"the same curves at full resolution (fetched and parsed, not drawn): {full:.3f} s; "
                  f"ratio full / bucketed page: {full / curves:.1f}x")  # fmt: skip
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
