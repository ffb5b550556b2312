"""The scheduler state machine and policy: plain asserts, no processes, no database."""

from __future__ import annotations

from imts.jobs.machine import (
    Job,
    Kill,
    Machine,
    MachineConfig,
    Record,
    Start,
    State,
    Stop,
    Submitted,
    Tick,
    UserRequest,
    WorkerExited,
    WorkerRunning,
    allowed,
)
from imts.jobs.policy import FIFO, PolicyConfig, Usage
from imts.jobs.pool import GpuSpec, NodeSpec, Pool, PoolSpec, Request, TenantSpec


def pool(cpus: int = 3, **tenants: TenantSpec) -> PoolSpec:
    return PoolSpec(nodes=[NodeSpec(name="n1", cpus=cpus, memory_gb=64)], tenants=tenants)


def starts(out: list) -> list[str]:
    return [i.job_id for i in out if isinstance(i, Start)]


def test_lifecycle_happy_path() -> None:
    m = Machine(pool())
    m.handle(Submitted(Job("a", submitted=1)))
    out = m.handle(Tick(2))
    assert starts(out) == ["a"] and m.jobs["a"].state == State.STARTING and m.jobs["a"].attempt == 1
    m.handle(WorkerRunning("a", 1, 3))
    assert m.jobs["a"].state == State.RUNNING
    m.handle(WorkerExited("a", 1, "succeeded"))
    assert m.jobs["a"].state == State.SUCCEEDED and m.pool.free["n1"].cpus == 3
    m.handle(UserRequest("a", "delete"))
    assert m.jobs["a"].state == State.DELETED


def test_stale_attempt_reports_are_ignored() -> None:
    m = Machine(pool())
    m.handle(Submitted(Job("a")))
    m.handle(Tick(0))
    m.handle(WorkerExited("a", 0, "succeeded"))  # attempt 0 is not the current one (1)
    assert m.jobs["a"].state == State.STARTING


def test_gang_never_holds_slots_while_waiting() -> None:
    m = Machine(pool(cpus=3))
    m.handle(Submitted(Job("a", workers=2, submitted=1)))
    m.handle(Submitted(Job("b", workers=2, submitted=2)))
    out = m.handle(Tick(3))
    assert starts(out) == ["a"]
    assert m.jobs["b"].state == State.QUEUED and m.jobs["b"].slots is None
    assert m.pool.free["n1"].cpus == 1  # b holds nothing of the free slot
    assert "waiting for resources" in m.jobs["b"].reason
    m.handle(WorkerExited("a", 1, "succeeded"))
    assert starts(m.handle(Tick(4))) == ["b"]


def test_backfill_small_job_into_gap_but_not_when_starving() -> None:
    cfg = MachineConfig(start_timeout=1e9, policy=PolicyConfig(starvation_s=100))
    m = Machine(pool(cpus=3), cfg)
    m.handle(Submitted(Job("big0", workers=2, submitted=0)))
    m.handle(Tick(0))
    m.handle(Submitted(Job("big", workers=2, submitted=1)))
    m.handle(Submitted(Job("small", workers=1, submitted=2)))
    assert starts(m.handle(Tick(3))) == ["small"]  # fits the gap
    m.handle(WorkerExited("small", 1, "succeeded"))
    m.handle(Submitted(Job("small2", workers=1, submitted=4)))
    assert starts(m.handle(Tick(500))) == []  # big waited > starvation_s: it reserves the pool
    assert "reserves" in m.jobs["small2"].reason


def test_fifo_head_blocks_everything() -> None:
    m = Machine(pool(cpus=3), MachineConfig(policy=FIFO))
    m.handle(Submitted(Job("a", workers=2, submitted=0)))
    m.handle(Tick(0))
    m.handle(Submitted(Job("b", workers=2, submitted=1)))
    m.handle(Submitted(Job("c", workers=1, submitted=2)))
    assert starts(m.handle(Tick(3))) == []


def test_priority_then_fair_share_between_tenants() -> None:
    spec = pool(cpus=4, t1=TenantSpec(weight=1), t2=TenantSpec(weight=1))
    m = Machine(spec)
    for i in range(4):
        m.handle(Submitted(Job(f"t1-{i}", tenant="t1", submitted=i)))
    for i in range(4):
        m.handle(Submitted(Job(f"t2-{i}", tenant="t2", submitted=10 + i)))
    m.handle(Submitted(Job("urgent", tenant="t2", priority=1000, submitted=99)))
    started = starts(m.handle(Tick(100)))
    assert started[0] == "urgent"
    # after the urgent job t2 holds 1 slot, so t1 goes next; then they alternate
    assert sorted(started[1:]) == ["t1-0", "t1-1", "t2-0"]


def test_weights_change_the_split() -> None:
    spec = pool(cpus=4, a=TenantSpec(weight=3), b=TenantSpec(weight=1))
    m = Machine(spec)
    for i in range(4):
        m.handle(Submitted(Job(f"a{i}", tenant="a", submitted=i)))
        m.handle(Submitted(Job(f"b{i}", tenant="b", submitted=i)))
    started = starts(m.handle(Tick(10)))
    assert sum(s.startswith("a") for s in started) == 3 and sum(s.startswith("b") for s in started) == 1


def test_quota_refusal_is_clear() -> None:
    spec = pool(cpus=4, t=TenantSpec(max_concurrent=1, cpu_hours=5))
    m = Machine(spec)
    m.handle(Submitted(Job("a", tenant="t", submitted=0)))
    m.handle(Submitted(Job("b", tenant="t", submitted=1)))
    assert starts(m.handle(Tick(2))) == ["a"]
    assert m.jobs["b"].reason == "quota: tenant 't' runs 1 of 1 concurrent jobs"
    m2 = Machine(spec, usage={"t": Usage(cpu_hours=6)})
    m2.handle(Submitted(Job("c", tenant="t")))
    assert starts(m2.handle(Tick(0))) == []
    assert "used 6.0 of 5 CPU-hours" in m2.jobs["c"].reason


def test_preemption_picks_lowest_priority_and_requeues_it() -> None:
    m = Machine(pool(cpus=2))
    m.handle(Submitted(Job("low", priority=10, submitted=0)))
    m.handle(Submitted(Job("normal", priority=50, submitted=0)))
    m.handle(Tick(0))
    m.handle(WorkerRunning("low", 1, 0))
    m.handle(WorkerRunning("normal", 1, 0))
    m.handle(Submitted(Job("urgent", priority=1000, submitted=5)))
    out = m.handle(Tick(6))
    assert [(i.job_id, i.reason) for i in out if isinstance(i, Stop)] == [("low", "preempt")]
    assert m.jobs["low"].state == State.PREEMPTING and m.jobs["urgent"].state == State.QUEUED
    assert not [i for i in m.handle(Tick(7)) if isinstance(i, Stop)]  # no second victim while it stops
    m.handle(WorkerExited("low", 1, "stopped"))
    assert m.jobs["low"].state == State.QUEUED and m.jobs["low"].retries == 0
    assert starts(m.handle(Tick(8))) == ["urgent"]
    assert m.jobs["low"].state == State.QUEUED


def test_non_preemptible_jobs_are_left_alone() -> None:
    m = Machine(pool(cpus=1))
    m.handle(Submitted(Job("low", priority=10, preemptible=False)))
    m.handle(Tick(0))
    m.handle(Submitted(Job("urgent", priority=1000)))
    assert not [i for i in m.handle(Tick(1)) if isinstance(i, Stop)]


def test_lost_worker_retried_then_failed() -> None:
    m = Machine(pool(), MachineConfig(heartbeat_timeout=10))
    m.handle(Submitted(Job("a", max_retries=1)))
    m.handle(Tick(0))
    m.handle(WorkerRunning("a", 1, 0))
    out = m.handle(Tick(11))
    assert Kill("a", 1) in out and m.jobs["a"].retries == 1
    assert m.jobs["a"].state == State.STARTING and m.jobs["a"].attempt == 2  # requeued and restarted
    m.handle(WorkerRunning("a", 2, 12))
    m.handle(Tick(30))
    assert m.jobs["a"].state == State.FAILED and "no heartbeat" in m.jobs["a"].reason


def test_start_timeout_requeues_without_using_a_retry() -> None:
    m = Machine(pool(), MachineConfig(start_timeout=5))
    m.handle(Submitted(Job("a")))
    m.handle(Tick(0))
    m.handle(Tick(6))
    assert m.jobs["a"].retries == 0 and m.jobs["a"].attempt == 2


def test_pause_resume_cancel_retry() -> None:
    m = Machine(pool())
    m.handle(Submitted(Job("a")))
    m.handle(Tick(0))
    m.handle(WorkerRunning("a", 1, 0))
    out = m.handle(UserRequest("a", "pause"))
    assert Stop("a", 1, "pause") in out
    m.handle(WorkerExited("a", 1, "stopped"))
    assert m.jobs["a"].state == State.PAUSED and m.pool.free["n1"].cpus == 3
    m.handle(UserRequest("a", "resume"))
    assert m.jobs["a"].state == State.QUEUED
    m.handle(UserRequest("a", "cancel"))
    assert m.jobs["a"].state == State.CANCELLED
    m.handle(UserRequest("a", "retry"))
    assert m.jobs["a"].state == State.QUEUED
    out = m.handle(UserRequest("a", "delete"))
    assert m.jobs["a"].state == State.QUEUED and any(
        isinstance(i, Record) and i.kind == "ignored" for i in out
    )
    assert not allowed("running", "delete") and allowed("failed", "retry")


def test_stop_before_the_worker_claims_takes_effect_at_once() -> None:
    for action, end in (("pause", State.PAUSED), ("cancel", State.CANCELLED)):
        m = Machine(pool())
        m.handle(Submitted(Job("a")))
        m.handle(Tick(0))
        assert m.jobs["a"].state == State.STARTING
        out = m.handle(UserRequest("a", action))
        assert Kill("a", 1) in out and not any(isinstance(i, Stop) for i in out)
        assert m.jobs["a"].state == end and m.pool.free["n1"].cpus == 3
        m.handle(WorkerRunning("a", 1, 1))  # the killed attempt's late report changes nothing
        assert m.jobs["a"].state == end


def test_failed_worker_retries_per_policy() -> None:
    m = Machine(pool())
    m.handle(Submitted(Job("a", max_retries=2)))
    m.handle(Tick(0))
    m.handle(WorkerExited("a", 1, "failed", "boom"))
    assert m.jobs["a"].state == State.QUEUED and m.jobs["a"].retries == 1


def test_gpus_and_mig_placement() -> None:
    spec = PoolSpec(
        nodes=[
            NodeSpec(name="g", cpus=8, memory_gb=64, gpus=[GpuSpec(type="a100", count=2, mig={"1g.10gb": 2})])
        ]
    )
    p = Pool(spec)
    two = p.place(1, Request(gpus=2, gpu_type="a100"))
    assert two is not None and two[0].gpus == ["a100:0", "a100:1"]
    assert p.place(1, Request(gpus=1)) is None
    assert p.place(2, Request(mig="1g.10gb")) is not None
    assert p.place(1, Request(mig="1g.10gb")) is None
    p.give(two)
    assert p.place(1, Request(gpus=1, gpu_type="h100")) is None
    assert p.place(1, Request(gpus=1, gpu_type="a100")) is not None


def test_resumed_job_is_not_preempted_again_within_its_grace() -> None:
    cfg = MachineConfig(heartbeat_timeout=1e9, start_timeout=1e9, policy=PolicyConfig(preempt_grace_s=30))
    m = Machine(pool(cpus=1), cfg)
    m.handle(Submitted(Job("low", priority=10, submitted=0)))
    m.handle(Tick(0))
    m.handle(WorkerRunning("low", 1, 0))
    m.handle(Submitted(Job("high", priority=100, submitted=1)))
    assert [i.job_id for i in m.handle(Tick(1)) if isinstance(i, Stop)] == ["low"]  # first attempt: at once
    m.handle(WorkerExited("low", 1, "stopped"))
    assert starts(m.handle(Tick(2))) == ["high"]
    m.handle(WorkerRunning("high", 1, 2))
    m.handle(WorkerExited("high", 1, "succeeded"))
    assert starts(m.handle(Tick(3))) == ["low"] and m.jobs["low"].attempt == 2  # resumed at t=3
    m.handle(WorkerRunning("low", 2, 3))
    m.handle(Submitted(Job("high2", priority=100, submitted=4)))
    for t in (4, 20, 32.9):  # inside the grace: the resumed job keeps running, high2 waits and says why
        assert not [i for i in m.handle(Tick(t)) if isinstance(i, Stop)]
        assert m.jobs["low"].state == State.RUNNING
    assert "preemption deferred: low resumed 30s ago (grace 30s, 0s left)" in m.jobs["high2"].reason
    assert [i.job_id for i in m.handle(Tick(33.1)) if isinstance(i, Stop)] == ["low"]  # grace over


def test_grace_prefers_a_victim_outside_its_grace() -> None:
    cfg = MachineConfig(start_timeout=1e9, policy=PolicyConfig(preempt_grace_s=60))
    m = Machine(pool(cpus=2), cfg)
    m.load(Job("resumed", priority=10, state=State.RUNNING, attempt=2, started=100, heartbeat=100,
               slots=Pool(m.spec).place(1, Request())))  # fmt: skip
    m.load(Job("fresh", priority=50, state=State.RUNNING, attempt=1, started=100, heartbeat=100,
               slots=Pool(m.spec).place(1, Request())))  # fmt: skip
    m.handle(Submitted(Job("urgent", priority=1000, submitted=101)))
    # "resumed" has the lowest priority but is inside its grace: the fresh job is stopped instead
    assert [i.job_id for i in m.handle(Tick(110)) if isinstance(i, Stop)] == ["fresh"]


def test_storage_quota_holds_back_writing_jobs_only() -> None:
    from imts.jobs.pool import ProjectQuota

    spec = pool(cpus=4)
    spec.projects = {"p": ProjectQuota(storage_gb=10)}
    m = Machine(spec, storage={"p": int(12.3 * 2**30), "q": 50 * 2**30})
    m.handle(Submitted(Job("train-p", project="p", writes=True, submitted=0)))
    m.handle(Submitted(Job("eval-p", project="p", writes=False, submitted=1)))
    m.handle(Submitted(Job("train-q", project="q", writes=True, submitted=2)))  # q has no quota
    assert sorted(starts(m.handle(Tick(3)))) == ["eval-p", "train-q"]
    assert m.jobs["train-p"].reason == "quota: project 'p' uses 12.3 GiB of its 10 GiB storage quota"
    m.storage["p"] = 9 * 2**30  # the project deleted some runs
    assert starts(m.handle(Tick(4))) == ["train-p"]
