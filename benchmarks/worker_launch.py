"""What a job worker's start costs: forked by the server's launcher against started as a fresh interpreter.

    PYTHONPATH=src .venv/bin/python benchmarks/worker_launch.py [--jobs 30]

Runs ``--jobs`` zero-second ``sleep`` jobs through the scheduler on a fresh SQLite workspace (2 slots),
once with each worker started directly (``python -m imts.services.worker``, what the CLI does) and once
forked by a launcher (what ``imts server`` does), in one process run. Prints, for each, the wall time
until all succeeded and the CPU the machine spent meanwhile (every process: ``/proc/stat``), per job, and
the ratio. The machine should be otherwise quiet.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _busy_s() -> float:
    """CPU seconds the whole machine has spent (all cores, not idle or waiting)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _run(jobs: int, forked: bool) -> tuple[float, float]:
    import yaml

    from imts.core.settings import Settings
    from imts.jobs import launcher, service
    from imts.jobs.loop import Scheduler
    from imts.jobs.pool import Request
    from imts.jobs.service import Submission
    from imts.jobs.sleep import SleepJob
    from imts.services import kinds
    from imts.services.startup import local_context

    root = Path(tempfile.mkdtemp(prefix="imts-worker-start-"))
    pool = root / "pool.yaml"
    pool.write_text(yaml.safe_dump({"nodes": [{"name": "local", "cpus": 2, "memory_gb": 8}]}))
    ctx = local_context(
        Settings(workspace=root / "ws", pool_file=pool, heartbeat_s=0.5, scheduler_interval_s=0.05)
    )
    if forked:
        launcher.start(kinds.worker_modules()).wait_ready()
    ids = [
        service.submit(ctx, Submission("sleep", SleepJob(seconds=0.0), request=Request(cpus=1, memory_gb=1)))
        for _ in range(jobs)
    ]
    sched = Scheduler(ctx)
    busy, start = _busy_s(), time.perf_counter()
    try:
        while any(service.get(ctx, j).state != "succeeded" for j in ids):
            sched.tick()
            time.sleep(0.05)
    finally:
        launcher.stop()
    return time.perf_counter() - start, _busy_s() - busy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=30)
    args = ap.parse_args()
    results = {}
    for forked in (False, True):
        wall, cpu = _run(args.jobs, forked)
        name = "forked by the launcher" if forked else "started directly"
        results[forked] = cpu
        print(
            f"{name}: {args.jobs} sleep jobs in {wall:.1f} s; machine CPU {cpu:.1f} s "
            f"({cpu / args.jobs:.2f} s per job)",
            flush=True,
        )
    print(f"CPU per job: x{results[False] / max(results[True], 1e-9):.1f} less when forked")


if __name__ == "__main__":
    main()
