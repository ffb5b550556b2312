"""Scheduler benchmark: the real policy and state machine, no processes, no database.

(a) one scheduling pass over 10,000 queued jobs on a simulated 100-node GPU pool: decisions per second
    and the p99 duration of a pass;
(b) a replayed day-long synthetic trace (Poisson arrivals, log-normal durations, four priority
    classes, three tenants with weights 3:2:1, gangs of 1-4 workers) on a simulated clock, run with
    IMTS's policy and with FIFO in the same process: utilisation, wait by priority and tenant, and
    Jain's fairness index of the tenants' weighted dominant shares while all three are waiting.

    PYTHONPATH=src python benchmarks/scheduler.py [--passes 20] [--jobs-per-day 3000]
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass

from imts.jobs.machine import (
    FINISHED,
    Job,
    Machine,
    MachineConfig,
    Start,
    Stop,
    Submitted,
    Tick,
    WorkerExited,
    WorkerRunning,
)
from imts.jobs.policy import FIFO, PRIORITY_CLASSES, PolicyConfig
from imts.jobs.pool import GpuSpec, NodeSpec, PoolSpec, Request, TenantSpec

NEVER = MachineConfig(heartbeat_timeout=1e18, start_timeout=1e18)
TENANTS = {"research": 3.0, "product": 2.0, "interns": 1.0}


def gpu_pool(nodes: int) -> PoolSpec:
    return PoolSpec(
        nodes=[
            NodeSpec(
                name=f"n{i:03d}",
                cpus=64,
                memory_gb=512,
                gpus=[GpuSpec(type="a100-80gb" if i % 2 else "h100-80gb", count=8, memory_gb=80)],
            )
            for i in range(nodes)
        ],
        tenants={t: TenantSpec(weight=w) for t, w in TENANTS.items()},
    )


def random_job(rng: random.Random, i: int, now: float) -> Job:
    tenant = rng.choice(list(TENANTS))
    cls = rng.choices(list(PRIORITY_CLASSES), weights=[5, 15, 60, 20])[0]
    workers = rng.choices([1, 2, 4], weights=[70, 20, 10])[0]
    gpus = rng.choices([0, 1, 2, 4], weights=[30, 40, 20, 10])[0]
    req = Request(cpus=rng.choice([2, 4, 8]), memory_gb=rng.choice([8, 16, 32]), gpus=gpus)
    return Job(f"j{i}", tenant, PRIORITY_CLASSES[cls], workers, req, now, preemptible=cls != "urgent")


def bench_pass(passes: int, queued: int = 10_000, nodes: int = 100) -> dict[str, float]:
    """A fresh machine with ``queued`` jobs; time one Tick (the whole scheduling pass)."""
    spec = gpu_pool(nodes)
    times, started = [], 0
    for p in range(passes):
        rng = random.Random(p)
        m = Machine(spec, NEVER)
        for i in range(queued):
            m.handle(Submitted(random_job(rng, i, float(i))))
        t0 = time.perf_counter()
        out = m.handle(Tick(1e6))
        times.append(time.perf_counter() - t0)
        started = sum(isinstance(i, Start) for i in out)
    times.sort()
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    return {
        "passes": passes,
        "median_pass_s": statistics.median(times),
        "p99_pass_s": p99,
        "decisions_per_s": queued / statistics.median(times),
        "started_in_last_pass": started,
    }


@dataclass
class SimJob:
    job: Job
    duration: float
    done: float = 0.0  # seconds of work completed (kept across preemption, up to the last checkpoint)
    first_start: float | None = None
    run_start: float | None = None


def trace(rng: random.Random, jobs_per_day: int) -> list[tuple[float, SimJob]]:
    out = []
    t = 0.0
    while True:
        # Poisson arrivals at a constant mean rate
        t += rng.expovariate(jobs_per_day / 86400)
        if t > 86400:
            return out
        j = random_job(rng, len(out), t)
        j.request = Request(cpus=j.request.cpus, memory_gb=j.request.memory_gb, gpus=min(j.request.gpus, 2))
        if j.tenant == "interns":  # one tenant floods the queue with long exploratory runs
            j.priority = PRIORITY_CLASSES["low"]
        duration = min(8 * 3600, rng.lognormvariate(7.0, 1.2))  # median ~18 min, long tail
        out.append((t, SimJob(j, duration)))


def simulate(
    policy: PolicyConfig, arrivals: list[tuple[float, SimJob]], nodes: int, ckpt_s: float, startup_s: float
) -> dict:
    """``startup_s``: every start (and resume) of a job does no work for this long (loading the model
    and the checkpoint); a job preempted during it has wasted it."""
    spec = gpu_pool(nodes)
    m = Machine(spec, MachineConfig(1e18, 1e18, policy))
    sims = {s.job.id: s for _, s in arrivals}
    total_gpus = nodes * 8
    events: list[tuple[float, int, str, str, int]] = []  # (time, seq, kind, job, attempt)
    seq = 0
    for t, s in arrivals:
        events.append((t, seq, "arrive", s.job.id, 0))
        seq += 1
    heapq.heapify(events)
    busy_gpu_s, last_t = 0.0, 0.0
    fair_samples: list[list[float]] = []
    preemptions = quick_repreemptions = 0
    lost_gpu_s = 0.0
    horizon = 86400.0
    while events:
        t = events[0][0]
        used = sum(
            sl.gpus.__len__() for j in m.jobs.values() if j.slots for sl in j.slots
        )  # GPUs held until t
        busy_gpu_s += used * (min(t, horizon) - min(last_t, horizon))
        last_t = t
        while events and events[0][0] == t:
            _, _, kind, jid, attempt = heapq.heappop(events)
            s = sims[jid]
            if kind == "arrive":
                s.job.submitted = t
                m.handle(Submitted(s.job))
            elif kind == "finish" and m.jobs.get(jid) and m.jobs[jid].attempt == attempt:
                s.done = s.duration
                m.handle(WorkerExited(jid, attempt, "succeeded"))
        for ins in m.handle(Tick(t)):
            s = sims[ins.job_id]
            if isinstance(ins, Start):
                m.handle(WorkerRunning(ins.job_id, ins.attempt, t))
                s.first_start = s.first_start if s.first_start is not None else t
                s.run_start = t
                seq += 1
                finish = t + startup_s + s.duration - s.done
                heapq.heappush(events, (finish, seq, "finish", ins.job_id, ins.attempt))
            elif isinstance(ins, Stop):  # checkpoint-and-stop: keep work up to the last checkpoint
                preemptions += 1
                ran = t - (s.run_start or t)
                if m.jobs[ins.job_id].attempt > 1 and ran < 300:  # thrash: stopped again soon after resuming
                    quick_repreemptions += 1
                worked = max(0.0, ran - startup_s)
                lost = min(ran, startup_s) + worked % ckpt_s
                lost_gpu_s += lost * sum(len(sl.gpus) for sl in m.jobs[ins.job_id].slots or [])
                s.done += worked - (worked % ckpt_s)
                m.handle(WorkerExited(ins.job_id, ins.attempt, "stopped"))
        for jid in [j for j, job in m.jobs.items() if job.state in FINISHED]:
            del m.jobs[jid]  # keep the simulated store small, as the real loop only loads live jobs
        waiting = {j.tenant for j in m.jobs.values() if j.state.value == "queued"}
        if t <= horizon and waiting == set(TENANTS):
            share = defaultdict(float)
            for j in m.jobs.values():
                if j.slots:
                    share[j.tenant] += sum(len(sl.gpus) for sl in j.slots) / total_gpus
            fair_samples.append([share[tn] / w for tn, w in TENANTS.items()])
    waits: dict[str, list[float]] = defaultdict(list)
    inv = {v: k for k, v in PRIORITY_CLASSES.items()}
    for s in sims.values():
        w = (s.first_start or horizon) - s.job.submitted
        waits[f"priority:{inv.get(s.job.priority, s.job.priority)}"].append(w)
        waits[f"tenant:{s.job.tenant}"].append(w)
    jain = (
        statistics.mean(sum(x) ** 2 / (len(x) * sum(v * v for v in x)) for x in fair_samples if sum(x))
        if fair_samples
        else float("nan")
    )
    return {
        "utilisation": busy_gpu_s / (total_gpus * horizon),
        "jain": jain,
        "preemptions": preemptions,
        "quick_repreemptions": quick_repreemptions,
        "lost_gpu_h": lost_gpu_s / 3600,
        "waits": {
            k: (statistics.mean(v), sorted(v)[int(0.95 * (len(v) - 1))]) for k, v in sorted(waits.items())
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=20)
    ap.add_argument("--jobs-per-day", type=int, default=3000)
    ap.add_argument("--trace-nodes", type=int, default=8)
    ap.add_argument("--ckpt-s", type=float, default=600, help="checkpoint interval of the simulated jobs")
    ap.add_argument("--startup-s", type=float, default=120, help="model + checkpoint load per start")
    ap.add_argument("--grace-s", type=float, default=PolicyConfig().preempt_grace_s, help="preemption grace")
    args = ap.parse_args()

    a = bench_pass(args.passes)
    print("(a) one pass over 10,000 queued jobs, 100 nodes x (64 CPU, 8 GPU)")
    print(
        f"    median {a['median_pass_s'] * 1000:.0f} ms, p99 {a['p99_pass_s'] * 1000:.0f} ms"
        f" over {a['passes']} passes;"
        f" {a['decisions_per_s']:,.0f} decisions/s; {a['started_in_last_pass']} jobs started in a pass"
    )
    arrivals = trace(random.Random(7), args.jobs_per_day)
    print(
        f"(b) day-long trace: {len(arrivals)} jobs, {args.trace_nodes} nodes x 8 GPUs, tenants {TENANTS}, "
        f"checkpoint every {args.ckpt_s:g}s, start-up {args.startup_s:g}s, grace {args.grace_s:g}s"
    )
    results = {}
    policies = (
        ("IMTS", PolicyConfig(starvation_s=4 * 3600, preempt_grace_s=args.grace_s)),
        ("IMTS, no grace", PolicyConfig(starvation_s=4 * 3600, preempt_grace_s=0)),
        ("FIFO", FIFO),
    )
    for name, pol in policies:
        copy = [(t, SimJob(Job(**{**s.job.__dict__}), s.duration)) for t, s in arrivals]
        t0 = time.perf_counter()
        results[name] = simulate(pol, copy, args.trace_nodes, args.ckpt_s, args.startup_s)
        results[name]["sim_s"] = time.perf_counter() - t0
    rs = list(results.values())

    def row(label: str, cells: list[str], note: str = "") -> None:
        print(f"    {label:26s}" + "".join(f"{c:>20s}" for c in cells) + note)

    row("", list(results))
    row("GPU utilisation", [f"{r['utilisation']:.1%}" for r in rs])
    row("Jain (weighted DRF)", [f"{r['jain']:.3f}" for r in rs])
    row("preemptions", [str(r["preemptions"]) for r in rs])
    row("re-preempted < 5 min", [str(r["quick_repreemptions"]) for r in rs], "   (after a resume)")
    row("GPU-hours lost", [f"{r['lost_gpu_h']:.0f}" for r in rs], "   (since last checkpoint)")
    for k in rs[0]["waits"]:
        cells = [f"{r['waits'][k][0] / 60:.1f} / {r['waits'][k][1] / 60:.1f}" for r in rs]
        row(f"wait {k}", cells, "   (mean / p95 minutes)")
    print("    simulated in " + ", ".join(f"{r['sim_s']:.1f}s ({n})" for n, r in results.items()))


if __name__ == "__main__":
    main()
