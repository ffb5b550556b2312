"""Ray executor: scheduling overhead per job against the local executor, and 1 vs 2 Ray worker nodes.

One run, one machine, real jobs. The data analysis is a ``split`` job (seeded split, 13-gram
decontamination and MinHash near-duplicate removal of a generated math dataset); the training is a
``train`` job (LoRA on a randomly initialised 2-layer Llama with the SmolLM2 tokenizer, CPU).

(a) ``--jobs`` split jobs one after the other through the local executor and through the Ray executor
(a real cluster on this machine): seconds from submit to succeeded per job, i.e. what each executor
adds around the same worker. (b) ``--jobs`` split jobs and two train jobs of 1 CPU each submitted at once
on a Ray cluster with one 1-CPU worker node and with two (the head holds no work): wall time and
speed-up. On a 2-core machine the speed-up is bounded by the cores (the head, the raylets and the
scheduler share them with the work). (c) the data operations themselves split over Ray tasks
(``imts.data.parallel``): dedup hashing (exact keys + MinHash signatures) and MiniLM embedding of
``--data-rows`` rows, in this process vs on 1 and on 2 Ray worker nodes, cold (a new Ray driver and
new Ray workers: torch imported, the model loaded) and warm (the kept driver and workers); the
results are checked equal to the in-process ones (exact hashes, allclose vectors).

    PYTHONPATH=src .venv/bin/python benchmarks/ray_scale.py [--jobs 4] [--rows 3000] [--steps 30]
        [--data-rows 2000] [--piece-rows 250] [--only-data]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from imts.core.settings import Settings
from imts.data.ingest import import_file
from imts.data.jobs import SplitJob
from imts.data.split import split_version
from imts.data.versions import resolve
from imts.jobs import service
from imts.jobs.loop import Scheduler
from imts.jobs.pool import Request
from imts.jobs.ray_executor import RayExecutor
from imts.jobs.ray_local import LocalRayCluster
from imts.jobs.service import Submission
from imts.registry import base_models
from imts.services.startup import local_context
from imts.store.context import Context
from imts.train.jobs import TrainJob
from imts.train.spec import RunSpec

TOKENIZER = Path.home() / ".cache" / "imts" / "models" / "smollm2-135m-instruct"


def workspace(root: Path, cpus: int, address: str | None, data: Path, model: Path | None) -> Context:
    root.mkdir(parents=True)
    spec: dict[str, object] = {"nodes": [{"name": "n", "cpus": cpus, "memory_gb": 8}]}
    if address:
        spec.update(executor="ray", ray_address=address)
    (root / "pool.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    ws = local_context(
        Settings(
            workspace=root / "ws",
            pool_file=root / "pool.yaml",
            heartbeat_s=0.5,
            heartbeat_timeout_s=60,
            start_timeout_s=180,
            scheduler_interval_s=0.05,
        )
    )
    if model is not None:
        base_models.add(ws, model, name="tiny")
    import_file(ws, data, name="math")
    return ws


def split_sub() -> Submission:
    job = SplitJob(data="math@1", stratify_by=None, near=0.8)
    return Submission("split", job, request=Request(cpus=1, memory_gb=0.5))


def train_subs(ws: Context, steps: int, n: int) -> list[Submission]:
    """``n`` train jobs on a split of the dataset (made here, before any timing)."""
    v = split_version(ws, resolve(ws, "math@1"), seed=0, stratify_by=None)
    over = [f"max_steps={steps}", "batch_size=4", "save_every=1000", "eval_every=1000", "merge=false"]
    spec = RunSpec.from_sources(overrides=[*over, "lora.r=4"], base_model="tiny", data=v.ref)
    return [Submission("train", TrainJob(run=spec), request=Request(cpus=1, memory_gb=1)) for _ in range(n)]


def run(ws: Context, subs: list[Submission], together: bool) -> tuple[float, list[float]]:
    """Wall time of the jobs, and each one's submit-to-succeeded time."""
    sched = Scheduler(ws)
    t0, each, ids = time.perf_counter(), [], []
    pending = list(subs)
    try:
        for _ in range(len(pending) if together else 1):
            ids.append(service.submit(ws, pending.pop(0)))
        done: set[str] = set()
        while len(done) < len(subs):
            sched.tick()
            for j in ids:
                row = service.get(ws, j)
                if j not in done and row.state in ("succeeded", "failed", "cancelled"):
                    if row.state != "succeeded":
                        raise SystemExit(f"job {j} ({row.kind}) {row.state}: {row.error}")
                    done.add(j)
                    each.append(row.finished_ts - row.submitted_ts)
                    if pending:
                        ids.append(service.submit(ws, pending.pop(0)))
            time.sleep(0.05)
    finally:
        if isinstance(sched.executor, RayExecutor):
            sched.executor.close()
    return time.perf_counter() - t0, each


def data_ops(ws: Context, ref: str) -> tuple[float, float, list[dict], object]:
    """Seconds of dedup hashing and of embedding ``ref`` where the pool says; the hashes and vectors."""
    from imts.data import parallel, vectors

    source = resolve(ws, ref)
    t0 = time.perf_counter()
    hashes = list(parallel.map_shards(ws, source, "dedup_hash", {"num_perm": 128}))
    t_hash = time.perf_counter() - t0
    ws.artifacts.delete(vectors.artifact_key(source))  # computed again, not read back
    t0 = time.perf_counter()
    vectors.embed_version(ws, source)
    t_embed = time.perf_counter() - t0
    return t_hash, t_embed, hashes, vectors.load_vectors(ws, source)[1]


def data_bench(root: Path, data: Path, rows: int, piece_rows: int) -> list[str]:
    """(c): in-process vs 1 vs 2 Ray worker nodes, cold and warm; results checked equal."""
    import numpy as np
    import pyarrow as pa

    from imts.data import parallel

    parallel.RAY_PIECE_ROWS = piece_rows
    ws = workspace(root / "data-local", 1, None, data, None)
    h_cold, e_cold, hashes, vecs = data_ops(ws, "math@1")  # cold: torch imported, the model loaded
    h_local, e_local, _, _ = data_ops(ws, "math@1")
    out = [f"(c) data operations on {rows} rows, Ray pieces of {piece_rows} rows (1 CPU per task);"]
    out.append("    ratios are in-process warm time / this time (>1: faster than in-process)")
    out.append(f"    in-process, cold: dedup hashing {h_cold:.2f} s, MiniLM embedding {e_cold:.2f} s")
    out.append(f"    in-process, warm: dedup hashing {h_local:.2f} s, MiniLM embedding {e_local:.2f} s")
    cluster = LocalRayCluster(head_cpus=0, node_cpus=(1,)).start()
    try:
        for nodes in (1, 2):
            if nodes == 2:
                cluster.nodes.append(cluster.add_node(1))
            parallel._close_idle()  # cold: a new driver, new Ray workers on every node
            ws = workspace(root / f"data-ray{nodes}", nodes, cluster.address, data, None)
            for run_kind in ("cold", "warm"):
                h, e, got_hashes, got = data_ops(ws, "math@1")
                norms = [pa.concat_arrays([p["norm"] for p in hs]) for hs in (got_hashes, hashes)]
                assert norms[0].equals(norms[1]), "exact keys differ"
                sig = np.concatenate([p["sig"] for p in got_hashes])
                assert np.array_equal(sig, np.concatenate([p["sig"] for p in hashes])), "hashes differ"
                assert np.allclose(got, vecs, atol=1e-5), "vectors differ"
                out.append(
                    f"    Ray, {nodes} node(s), {run_kind}: dedup hashing {h:.2f} s ({h_local / h:.2f}x "
                    f"in-process), embedding {e:.2f} s ({e_local / e:.2f}x in-process)"
                )
    finally:
        parallel._close_idle()
        cluster.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=4, help="split jobs per measurement")
    ap.add_argument("--rows", type=int, default=3000, help="rows of the generated dataset")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps of each train job")
    ap.add_argument("--data-rows", type=int, default=2000, help="rows of the data operations (c)")
    ap.add_argument("--piece-rows", type=int, default=250, help="rows per Ray task in (c)")
    ap.add_argument("--only-data", action="store_true", help="only (c)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from train_throughput import make_tiny_model

    from imts.flywheel.demo import example_generator

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows, _ = example_generator().generate(args.rows, 3)
        data = root / "math.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        small = root / "small.jsonl"
        small.write_text("".join(json.dumps(r) + "\n" for r in rows[: args.data_rows]), encoding="utf-8")
        report = data_bench(root, small, min(args.data_rows, len(rows)), args.piece_rows)
        print("\n".join(report), flush=True)
        if args.only_data:
            return
        model = make_tiny_model(TOKENIZER, root / "tiny", seed=0)

        ws = workspace(root / "local", 1, None, data, model)
        _, local = run(ws, [split_sub() for _ in range(args.jobs)], together=False)
        print(f"local split jobs: {[round(x, 2) for x in local]}", flush=True)
        cluster = LocalRayCluster(head_cpus=0, node_cpus=(1,)).start()
        try:
            ws = workspace(root / "ray", 1, cluster.address, data, model)
            _, on_ray = run(ws, [split_sub() for _ in range(args.jobs)], together=False)
            print(f"ray split jobs: {[round(x, 2) for x in on_ray]}", flush=True)
            ws = workspace(root / "ray1", 1, cluster.address, data, model)
            batch = [split_sub() for _ in range(args.jobs)] + train_subs(ws, args.steps, 2)
            wall1, _ = run(ws, batch, together=True)
            cluster.nodes.append(cluster.add_node(1))
            ws = workspace(root / "ray2", 2, cluster.address, data, model)
            batch = [split_sub() for _ in range(args.jobs)] + train_subs(ws, args.steps, 2)
            wall2, _ = run(ws, batch, together=True)
        finally:
            cluster.stop()
    ml, mr = statistics.median(local), statistics.median(on_ray)
    print(f"data: {args.rows} rows; {args.jobs} split jobs (dedup, near-dup); 2 train: {args.steps} steps")
    print(f"(a) split job, submit to succeeded (median of {args.jobs}): local {ml:.2f} s, ray {mr:.2f} s")
    print(f"    scheduling overhead of the Ray executor: {mr - ml:+.2f} s per job ({mr / ml:.2f}x)")
    print(f"(b) {args.jobs} split + 2 train jobs at once: 1 Ray node {wall1:.1f} s, 2 nodes {wall2:.1f} s")
    print(f"    speed-up {wall1 / wall2:.2f}x (2-core machine: bounded by the cores)")
    print("\n".join(report))


if __name__ == "__main__":
    main()
