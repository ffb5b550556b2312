"""Requeued evaluation and split jobs do not redo finished work: real workers, real stops and requeues."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select
from tests.jobs.conftest import jobs_ws

from imts.core.progress import NullProgress
from imts.data.ingest import import_file
from imts.data.jobs import SplitJob, run_split
from imts.data.split import split_version
from imts.evals.jobs import EvalJob
from imts.evals.suite import SuiteSpec
from imts.jobs import service, store
from imts.jobs.loop import Scheduler
from imts.jobs.registry import JobContext
from imts.jobs.service import Submission
from imts.registry import base_models
from imts.store.models import DatasetVersion, GenerationCache, Run


def tick_until(sched: Scheduler, cond: Callable[[], bool], timeout: float = 180) -> None:
    end = time.time() + timeout  # generous: worker start-up with torch on a shared 2-core machine
    while not cond():
        assert time.time() < end, (
            f"timed out; the jobs: {[(j.kind, j.state, j.reason) for j in service.list_jobs(sched.ws)]}"
        )
        sched.tick()
        time.sleep(0.1)


def test_requeued_eval_resumes_from_the_generation_cache(
    tmp_path: Path, tiny_model: Path, math_file: Path
) -> None:
    ws = jobs_ws(tmp_path, cpus=1)
    ws.settings.heartbeat_timeout_s = 30.0  # torch start-up on a busy machine is not a lost worker
    base_models.add(ws, tiny_model, name="tiny")
    ref = split_version(ws, import_file(ws, math_file, name="math"), seed=0).ref
    # One item per batch and a long budget (the random model rarely ends early): the stop lands after
    # some items, well before the end, even when this process's passes are slow on a loaded machine.
    suite = SuiteSpec(datasets=[f"{ref}:test"], batch_size=1, max_new_tokens=400, max_items=30)
    job = service.submit(ws, Submission("eval", EvalJob(model="tiny", suite=suite)))
    sched = Scheduler(ws)
    tick_until(sched, lambda: (service.get(ws, job).progress or {}).get("done", 0) >= 3)
    service.request(ws, job, "pause")  # SIGTERM: the worker stops mid-generation
    tick_until(sched, lambda: service.get(ws, job).state == "paused")
    with ws.session() as s:
        kept = s.scalar(select(func.count()).select_from(GenerationCache))
        first = s.scalars(select(Run).where(Run.kind == "eval")).one()
    assert 3 <= kept < 30 and first.status == "preempted"
    service.request(ws, job, "resume")
    tick_until(sched, lambda: service.get(ws, job).state == "succeeded")
    row = service.get(ws, job)
    with ws.session() as s:
        run = s.get(Run, row.data["result"]["run_id"])
        cached = s.scalar(select(func.count()).select_from(GenerationCache))
    assert row.attempt == 2 and run is not None and run.status == "succeeded"
    assert run.summary["n"] == 30 and run.summary["cache_hits"] == kept  # generated once, reused
    assert cached == 30  # every item generated exactly once over both attempts


def test_split_job_requeued_after_committing_ends_with_one_version(tmp_path: Path, math_file: Path) -> None:
    ws = jobs_ws(tmp_path, cpus=1)
    import_file(ws, math_file, name="math")
    spec = SplitJob(data="math@1", seed=3)
    job = service.submit(ws, Submission("split", spec, max_retries=1))
    sched = Scheduler(ws, executor=_Deferred())
    tick_until(sched, lambda: service.get(ws, job).state == "starting")
    # Attempt 1 claims the job, commits its version, and dies before reporting (no heartbeat, no finish).
    row = store.claim(ws, job, 1, 999_999, "elsewhere")
    assert row is not None
    attempt = JobContext(ws, job, 1, {}, lambda d: None, lambda: False, NullProgress())
    made = run_split(attempt, spec)
    sched.executor = Scheduler(ws).executor  # attempt 2 runs in a real worker process
    tick_until(sched, lambda: service.get(ws, job).state == "succeeded", timeout=120)
    row = service.get(ws, job)
    assert row.attempt == 2 and row.retries == 1  # the lost attempt was noticed and retried
    assert row.data["result"] == made.model_dump(
        mode="json"
    )  # the retry found the committed version and kept it
    with ws.session() as s:
        assert s.scalar(select(func.count()).where(DatasetVersion.operation == "split")) == 1
    assert "made by an earlier attempt" in service.logs(ws, job)[-1].read_text()


class _Deferred:
    """An executor that launches nothing (the test plays attempt 1 itself)."""

    name = "deferred"

    def start(self, *a: object) -> None: ...
    def stop(self, *a: object) -> None: ...
    def kill(self, *a: object) -> None: ...


def test_eval_worker_killed_leaves_no_run_running(tmp_path: Path, tiny_model: Path, math_file: Path) -> None:
    """kill -9 of an eval worker: the scheduler requeues the job and marks the lost attempt's run
    ``interrupted`` with the reason; the second attempt's run succeeds."""
    ws = jobs_ws(tmp_path, cpus=1)
    ws.settings.heartbeat_timeout_s = 15.0  # torch start-up on a busy machine is not a lost worker
    base_models.add(ws, tiny_model, name="tiny")
    ref = split_version(ws, import_file(ws, math_file, name="math"), seed=0).ref
    # A long budget per item (the random model rarely ends early): the kill lands well before the end.
    suite = SuiteSpec(datasets=[f"{ref}:test"], batch_size=1, max_new_tokens=400, max_items=30)
    job = service.submit(ws, Submission("eval", EvalJob(model="tiny", suite=suite)))
    sched = Scheduler(ws)
    tick_until(sched, lambda: (service.get(ws, job).progress or {}).get("done", 0) >= 2)
    pid = service.get(ws, job).worker_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    tick_until(sched, lambda: service.get(ws, job).state == "succeeded")
    with ws.session() as s:
        first, second = s.scalars(select(Run).where(Run.kind == "eval").order_by(Run.created_at)).all()
    assert first.status == "interrupted" and "ended without finishing" in (first.error or "")
    assert second.status == "succeeded" and service.get(ws, job).attempt == 2
