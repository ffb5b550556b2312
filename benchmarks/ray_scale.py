"""Ray executor: scheduling overhead per job against the local executor, and 1 vs 2 Ray worker nodes.

One run, one machine. (a) ``--jobs`` zero-second ``sleep`` jobs one after the other through the local
executor and through the Ray executor (a real cluster on this machine): seconds from submit to
succeeded per job, i.e. what each executor adds around the same worker process. (b) ``--jobs`` 2-second
``sleep`` jobs of 1 CPU submitted at once on a Ray cluster with one 1-CPU worker node and with two:
wall time and speed-up. The jobs wait rather than compute, so (b) shows placement, not arithmetic: on
this 2-core machine, CPU-bound work cannot go faster than the cores allow, whatever the node count.

    PYTHONPATH=src python benchmarks/ray_scale.py [--jobs 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from imts.core.settings import Settings
from imts.jobs import service
from imts.jobs.loop import Scheduler
from imts.jobs.pool import Request
from imts.jobs.ray_executor import RayExecutor
from imts.jobs.ray_local import LocalRayCluster
from imts.jobs.service import Submission
from imts.jobs.sleep import SleepJob
from imts.services.startup import local_context
from imts.store.context import Context


def workspace(root: Path, cpus: int, address: str | None) -> Context:
    spec: dict[str, object] = {"nodes": [{"name": "n", "cpus": cpus, "memory_gb": 8}]}
    if address:
        spec.update(executor="ray", ray_address=address)
    (root / "pool.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return local_context(
        Settings(
            workspace=root / "ws",
            pool_file=root / "pool.yaml",
            heartbeat_s=0.3,
            heartbeat_timeout_s=30,
            start_timeout_s=120,
            scheduler_interval_s=0.05,
        )
    )


def run(ws: Context, jobs: int, seconds: float, together: bool) -> tuple[float, list[float]]:
    """Wall time of ``jobs`` sleep jobs, and each one's submit-to-succeeded time."""
    sched = Scheduler(ws)
    sub = Submission("sleep", SleepJob(seconds=seconds), request=Request(cpus=1, memory_gb=0.1))
    t0, each, ids = time.perf_counter(), [], []
    try:
        for _ in range(jobs if together else 1):
            ids.append(service.submit(ws, sub))
        done: set[str] = set()
        while len(done) < jobs:
            sched.tick()
            for j in ids:
                if j not in done and service.get(ws, j).state in ("succeeded", "failed"):
                    row = service.get(ws, j)
                    assert row.state == "succeeded", row.error
                    done.add(j)
                    each.append(row.finished_ts - row.submitted_ts)
                    if not together and len(ids) < jobs:
                        ids.append(service.submit(ws, sub))
            time.sleep(0.05)
    finally:
        if isinstance(sched.executor, RayExecutor):
            sched.executor.close()
    return time.perf_counter() - t0, each


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=6)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "local").mkdir()
        _, local = run(workspace(root / "local", 1, None), args.jobs, 0.0, together=False)
        one = LocalRayCluster(head_cpus=0, node_cpus=(1,)).start()
        try:
            (root / "ray1").mkdir()
            _, on_ray = run(workspace(root / "ray1", 1, one.address), args.jobs, 0.0, together=False)
            (root / "ray1b").mkdir()
            wall1, _ = run(workspace(root / "ray1b", 1, one.address), args.jobs, 2.0, together=True)
            one.nodes.append(one.add_node(1))
            (root / "ray2").mkdir()
            wall2, _ = run(workspace(root / "ray2", 2, one.address), args.jobs, 2.0, together=True)
        finally:
            one.stop()
    ml, mr = sorted(local)[len(local) // 2], sorted(on_ray)[len(on_ray) // 2]
    print(f"(a) per job, submit to succeeded (median of {args.jobs}): local {ml:.2f} s, ray {mr:.2f} s")
    print(f"    scheduling overhead of the Ray executor: {mr - ml:+.2f} s per job ({mr / ml:.2f}x)")
    print(f"(b) {args.jobs} x 2 s jobs: 1 Ray worker node {wall1:.1f} s, 2 nodes {wall2:.1f} s")
    print(f"    speed-up {wall1 / wall2:.2f}x")


if __name__ == "__main__":
    main()
