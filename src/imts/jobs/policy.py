"""Queue policy: who starts next. Pure functions over the pool and the jobs; no clock, no store.

Order: priority class first; inside a class, the tenant with the lowest weighted dominant share
(dominant resource fairness: a tenant's share is its largest fraction of any resource, divided by its
weight) goes next, oldest job first. A job starts only when all its workers fit (gang). A blocked job
lets smaller ones start in the gaps (backfill) until it has waited ``starvation_s``; then it reserves
the pool. A blocked job may preempt lower-priority preemptible jobs (lowest priority, youngest first),
except a job resumed less than ``preempt_grace_s`` ago (re-preemption damping: without it a resumed job
can be stopped again before it has redone its start-up, over and over).
"""

from __future__ import annotations

import copy
import heapq
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from imts.jobs.pool import Pool, PoolSpec, Request, Slot, usage_vector

PRIORITY_CLASSES = {"urgent": 1000, "high": 100, "normal": 50, "low": 10}


@dataclass(frozen=True)
class PolicyConfig:
    fair_share: bool = True
    backfill: bool = True
    preemption: bool = True
    priorities: bool = True
    starvation_s: float = 3600.0
    preempt_grace_s: float = 300.0  # a resumed job runs this long before it may be preempted again


FIFO = PolicyConfig(fair_share=False, backfill=False, preemption=False, priorities=False)


@dataclass
class Candidate:
    """What the policy needs to know of a job."""

    id: str
    tenant: str
    priority: int
    workers: int
    request: Request
    submitted: float
    preemptible: bool = True
    started: float | None = None
    slots: list[Slot] | None = None
    stopping: bool = False  # already asked to checkpoint-and-stop
    resumed: bool = False  # the current attempt follows an earlier one (preempted, paused, lost)
    project: str = ""  # for the storage quota
    writes: bool = False  # the job writes artifacts (training, splits): subject to the storage quota


@dataclass
class Usage:
    cpu_hours: float = 0.0
    gpu_hours: float = 0.0


@dataclass
class Plan:
    starts: list[tuple[Candidate, list[Slot]]] = field(default_factory=list)
    preempt: list[tuple[Candidate, str]] = field(default_factory=list)  # (victim, for whom)
    reasons: dict[str, str] = field(default_factory=dict)  # why a queued job waits


def shares(spec: PoolSpec, pool: Pool, running: Iterable[Candidate]) -> dict[str, float]:
    """Weighted dominant share of every tenant with running jobs."""
    used: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for j in running:
        for k, v in usage_vector(j.workers, j.request).items():
            used[j.tenant][k] += v
    return {t: _dominant(u, pool.total) / spec.tenant(t).weight for t, u in used.items()}


def _dominant(used: dict[str, float], total: dict[str, float]) -> float:
    return max((used.get(k, 0.0) / v for k, v in total.items() if v), default=0.0)


def quota_refusal(spec: PoolSpec, tenant: str, running: int, usage: Usage) -> str | None:
    """Why ``tenant`` may not start another job now, or None."""
    q = spec.tenant(tenant)
    if q.max_concurrent is not None and running >= q.max_concurrent:
        return f"quota: tenant '{tenant}' runs {running} of {q.max_concurrent} concurrent jobs"
    if q.cpu_hours is not None and usage.cpu_hours >= q.cpu_hours:
        return f"quota: tenant '{tenant}' used {usage.cpu_hours:.1f} of {q.cpu_hours:g} CPU-hours this period"
    if q.gpu_hours is not None and usage.gpu_hours >= q.gpu_hours:
        return f"quota: tenant '{tenant}' used {usage.gpu_hours:.1f} of {q.gpu_hours:g} GPU-hours this period"
    return None


def in_grace(j: Candidate, now: float, cfg: PolicyConfig) -> bool:
    """A resumed job inside its re-preemption grace period may not be preempted yet."""
    return j.resumed and j.started is not None and now - j.started < cfg.preempt_grace_s


def storage_refusal(spec: PoolSpec, project: str, used_bytes: int) -> str | None:
    """Why ``project`` may not start (or submit) a job that writes artifacts now, or None."""
    quota = spec.project(project).storage_gb
    if quota is None or used_bytes < quota * 2**30:
        return None
    used = f"{used_bytes / 2**30:.1f} GiB" if used_bytes >= 2**30 / 10 else f"{used_bytes / 2**20:.1f} MiB"
    return f"quota: project '{project}' uses {used} of its {quota:g} GiB storage quota"


def _key(c: Candidate) -> tuple[int, Request]:
    return (c.workers, c.request)


def plan(
    spec: PoolSpec,
    pool: Pool,
    queued: list[Candidate],
    running: list[Candidate],
    now: float,
    cfg: PolicyConfig = PolicyConfig(),
    usage: dict[str, Usage] | None = None,
    storage: dict[str, int] | None = None,
) -> Plan:
    """One scheduling pass. ``pool`` already has the running jobs' slots taken; it is updated with the
    starts of the returned plan. ``usage``: CPU/GPU-hours per tenant this period; ``storage``: bytes
    stored per project."""
    usage = usage or {}
    storage = storage or {}
    out = Plan()
    share = shares(spec, pool, running) if cfg.fair_share else {}
    counts: dict[str, int] = defaultdict(int)
    for j in running:
        counts[j.tenant] += 1
    failed_shapes: set[tuple[int, Request]] = set()  # the pool only shrinks during a pass
    barrier: str | None = None  # set when a job reserves the pool: nothing after it starts
    classes: dict[int, list[Candidate]] = defaultdict(list)
    for c in queued:
        classes[c.priority if cfg.priorities else 0].append(c)
    for prio in sorted(classes, reverse=True):
        per_tenant: dict[str, deque[Candidate]] = defaultdict(deque)
        for c in sorted(classes[prio], key=lambda c: (c.submitted, c.id)):
            per_tenant[c.tenant if cfg.fair_share else ""].append(c)
        heap = [(share.get(t, 0.0), t) for t in per_tenant]
        heapq.heapify(heap)
        while heap:
            s, t = heapq.heappop(heap)
            if cfg.fair_share and share.get(t, 0.0) != s:  # share grew since pushed
                heapq.heappush(heap, (share.get(t, 0.0), t))
                continue
            q = per_tenant[t]
            c = q.popleft()
            if barrier is not None:
                out.reasons[c.id] = barrier
            elif refusal := (
                quota_refusal(spec, c.tenant, counts[c.tenant], usage.get(c.tenant, Usage()))
                or (c.writes and storage_refusal(spec, c.project, storage.get(c.project, 0)))
            ):
                out.reasons[c.id] = refusal
            else:
                slots = None if _key(c) in failed_shapes else pool.place(c.workers, c.request)
                if slots is not None:
                    out.starts.append((c, slots))
                    counts[c.tenant] += 1
                    if cfg.fair_share:
                        u = usage_vector(c.workers, c.request)
                        share[t] = share.get(t, 0.0) + _dominant(u, pool.total) / spec.tenant(c.tenant).weight
                else:
                    failed_shapes.add(_key(c))
                    barrier = _blocked(spec, pool, c, running, out, now, cfg)
            if q:
                heapq.heappush(heap, (share.get(t, 0.0), t))
    return out


def _blocked(
    spec: PoolSpec,
    pool: Pool,
    c: Candidate,
    running: list[Candidate],
    out: Plan,
    now: float,
    cfg: PolicyConfig,
) -> str | None:
    """Record why ``c`` waits; preempt for it if allowed. Returns a barrier reason when ``c`` reserves
    the pool (nothing queued after it may start in this pass)."""
    free = pool.free_summary()
    out.reasons[c.id] = (
        f"waiting for resources: needs {c.workers} x {c.request.cpus} CPU"
        + (f" + {c.request.gpus} GPU" if c.request.gpus else "")
        + (f" + MIG {c.request.mig}" if c.request.mig else "")
        + f"; free {free['cpus']:g} CPU, {free['gpus']:g} GPU"
    )
    if cfg.preemption:
        stopping = [j for j in running if j.stopping and j.slots]
        trial = copy.deepcopy(pool)
        trial.give(s for j in stopping for s in j.slots or [])
        if stopping and trial.place(c.workers, c.request) is not None:
            out.reasons[c.id] = "waiting for preempted jobs to checkpoint and stop"
            return f"waiting behind {c.id} (it reserves the resources being freed)"
        eligible = sorted(
            (j for j in running if j.preemptible and not j.stopping and j.priority < c.priority and j.slots),
            key=lambda j: (j.priority, -(j.started or 0.0)),
        )
        victims = [j for j in eligible if not in_grace(j, now, cfg)]
        chosen: list[Candidate] = []
        for v in victims:
            trial.give(v.slots or [])
            chosen.append(v)
            if trial.place(c.workers, c.request) is not None:
                for victim in chosen:
                    victim.stopping = True
                    out.preempt.append((victim, c.id))
                out.reasons[c.id] = f"preempting {', '.join(v.id for v in chosen)}"
                return f"waiting behind {c.id} (it reserves the resources being freed)"
        graced = [j for j in eligible if in_grace(j, now, cfg)]
        for j in graced:
            trial.give(j.slots or [])
        if graced and trial.place(c.workers, c.request) is not None:
            first = min(graced, key=lambda j: cfg.preempt_grace_s - (now - (j.started or now)))
            left = cfg.preempt_grace_s - (now - (first.started or now))
            out.reasons[c.id] += (
                f"; preemption deferred: {first.id} resumed {now - (first.started or now):.0f}s ago "
                f"(grace {cfg.preempt_grace_s:g}s, {left:.0f}s left)"
            )
    if not cfg.backfill:
        return f"waiting behind {c.id} (first in line)"
    if now - c.submitted > cfg.starvation_s:
        return f"waiting behind {c.id} (waited over {cfg.starvation_s:g}s; it reserves the pool)"
    return None
