"""Preemption with a real training job: checkpoint at the next step, requeue, resume, nothing redone."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import func, select
from tests.jobs.conftest import jobs_ws

from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.jobs import service
from imts.jobs.loop import Scheduler
from imts.jobs.service import Submission
from imts.jobs.sleep import SleepJob
from imts.registry import base_models
from imts.store.models import Metric, ModelVersion, Run, RunEvent
from imts.train.jobs import TrainJob
from imts.train.spec import RunSpec


def test_preempted_training_job_resumes_from_its_checkpoint(
    tmp_path: Path, tiny_model: Path, math_file: Path
) -> None:
    ws = jobs_ws(tmp_path, cpus=1)
    ws.settings.heartbeat_timeout_s = 30.0  # torch start-up on a busy machine is not a lost worker
    base_models.add(ws, tiny_model, name="tiny")
    v = split_version(ws, import_file(ws, math_file, name="math"), seed=0)
    spec = RunSpec.from_sources(
        overrides=[
            "max_steps=60",
            "batch_size=4",
            "save_every=20",
            "eval_every=1000",
            "merge=false",
            "lora.r=4",
        ],
        base_model="tiny",
        data=v.ref,
    )
    train_job = service.submit(ws, Submission("train", TrainJob(run=spec), priority_class="low"))
    sched = Scheduler(ws)
    end = time.time() + 180

    def tick_until(cond) -> None:  # type: ignore[no-untyped-def]
        while not cond():
            assert time.time() < end, service.get(ws, train_job).state
            sched.tick()
            time.sleep(0.1)

    tick_until(lambda: (service.get(ws, train_job).progress or {}).get("done", 0) >= 5)
    urgent = service.submit(ws, Submission("sleep", SleepJob(seconds=0.5), priority_class="urgent"))
    tick_until(lambda: service.get(ws, urgent).state == "succeeded")
    tick_until(lambda: service.get(ws, train_job).state == "succeeded")

    row = service.get(ws, train_job)
    history = [e.message for e in service.events(ws, train_job)]
    assert any(f"preempted for {urgent}" in m for m in history)
    assert row.attempt == 2 and row.retries == 0
    run_id = row.data["run_id"]
    with ws.session() as s:
        run = s.get(Run, run_id)
        assert run is not None and run.status == "succeeded" and run.summary["steps"] == 60
        events = {e.kind: e for e in s.scalars(select(RunEvent).where(RunEvent.run_id == run_id))}
        stopped_at = events["stopped"].step
        assert stopped_at is not None and 5 <= stopped_at < 60
        # it resumed exactly where it stopped: a checkpoint was written at the stop step
        assert events["resumed"].message == f"resumed from step-{stopped_at:06d}"
        steps = s.execute(
            select(func.count(), func.count(func.distinct(Metric.step))).where(
                Metric.run_id == run_id, Metric.key == "loss"
            )
        ).one()
        assert tuple(steps) == (60, 60)  # no step trained twice, none skipped
        assert s.scalar(select(func.count()).select_from(ModelVersion)) == 1


def test_data_parallel_training_job_is_a_gang_of_its_processes(
    tmp_path: Path, tiny_model: Path, math_file: Path
) -> None:
    import pytest

    from imts.core.errors import InputError
    from imts.jobs.service import QuotaError

    ws = jobs_ws(tmp_path, cpus=2)
    ws.settings.heartbeat_timeout_s = 30.0
    base_models.add(ws, tiny_model, name="tiny")
    v = split_version(ws, import_file(ws, math_file, name="math"), seed=0)
    overrides = ["max_steps=4", "batch_size=4", "eval_every=1000", "merge=false", "lora.r=4", "nproc=2"]
    spec = RunSpec.from_sources(overrides=overrides, base_model="tiny", data=v.ref)
    with pytest.raises(InputError, match="runs 2 workers"):
        service.submit(ws, Submission("train", TrainJob(run=spec), workers=3))
    with pytest.raises(QuotaError, match="never hold 2 worker"):  # 2 x 2 CPUs on a 2-CPU pool
        service.submit(ws, Submission("train", TrainJob(run=spec), request=service.Request(cpus=2)))

    job = service.submit(ws, Submission("train", TrainJob(run=spec)))
    assert service.get(ws, job).workers == 2  # the gang is placed whole, one slot per process
    sched = Scheduler(ws)
    end = time.time() + 240
    while service.get(ws, job).state not in ("succeeded", "failed"):
        assert time.time() < end, service.get(ws, job).state
        sched.tick()
        time.sleep(0.2)
    row = service.get(ws, job)
    assert row.state == "succeeded", row.error
    with ws.session() as s:
        run = s.get(Run, row.data["run_id"])
        assert run is not None and run.summary["steps"] == 4
        started = s.scalars(
            select(RunEvent).where(RunEvent.run_id == run.id, RunEvent.kind == "started")
        ).one()
        assert started.data["nproc"] == 2
