"""The ``train`` job kind: one training run, resumable from its checkpoints; a gang of its nproc ranks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from imts.core.errors import InputError
from imts.jobs.registry import JobContext, JobKind, register
from imts.store.context import Context
from imts.train.spec import RunSpec


class TrainJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: RunSpec
    model_name: str | None = None
    resume: str | None = None  # a run id: continue that run from its latest checkpoint


class TrainResult(BaseModel):
    run_id: str


def run_train(job: JobContext, spec: TrainJob) -> TrainResult:
    from imts.core.ids import new_id
    from imts.train.service import train

    if "run_id" not in job.data:  # fixed before training starts, so a requeued attempt resumes this run
        job.save_data({"run_id": spec.resume or new_id("run")})
    run_id = train(
        job.ctx,
        spec.run,
        job.progress,
        model_name=spec.model_name,
        run_id=job.data["run_id"],
        should_stop=job.should_stop,
        stopped_status=job.stopped_status,
    )
    return TrainResult(run_id=run_id)


def run_train_rank(job: JobContext, spec: TrainJob) -> None:
    """Rank 1..N-1 of a train job placed apart (Ray): waits for rank 0 to fix the run id, then trains."""
    import time

    from imts.store.models import JobRecord
    from imts.train.service import train_rank

    end = time.monotonic() + spec.run.dist_timeout_s
    run_id = job.data.get("run_id")
    while run_id is None:
        if time.monotonic() > end:
            raise TimeoutError(f"rank 0 of {job.job_id} fixed no run id within {spec.run.dist_timeout_s}s")
        time.sleep(0.2)
        with job.ctx.session() as s:
            row = s.get(JobRecord, job.job_id)
            run_id = (row.data or {}).get("run_id") if row is not None else None
    train_rank(job.ctx, spec.run, run_id)


def check_train(ctx: Context, spec: TrainJob) -> None:
    """Refuse an unknown base model or dataset, a dataset of the wrong format or without the split to
    train on, data the dataset analysis refused for its intent (unless forced), QLoRA without CUDA."""
    from imts.analysis.service import fit_gate
    from imts.data.versions import resolve
    from imts.registry import base_models
    from imts.train.spec import check_format, check_runnable, check_splits

    check_runnable(spec.run)
    if spec.resume is not None:
        from imts.train.service import check_resumable

        check_resumable(ctx, spec.resume)
    version = resolve(ctx, spec.run.data).version
    fit_gate(ctx, spec.run.data)
    base_models.get(ctx, spec.run.base_model)
    check_format(spec.run, version.ref, version.format)
    check_splits(spec.run, version.ref, version.stats.get("split", {}))


def train_workers(spec: TrainJob, asked: int) -> int:
    """One worker per data-parallel process (``run.nproc``): ``asked`` may only repeat it."""
    if spec.run.nproc > 1:
        if asked not in (1, spec.run.nproc):
            raise InputError(
                f"a train job with nproc={spec.run.nproc} runs {spec.run.nproc} workers (got {asked})",
                field="workers",
            )
        return spec.run.nproc
    return asked


# The gang is placed whole, then its worker launches the ranks itself (torch.distributed).
TRAIN = register(
    JobKind(
        "train",
        TrainJob,
        run_train,
        TrainResult,
        check=check_train,
        workers=train_workers,
        multi_worker=True,
        self_launching=True,
        writes=True,
        stoppable=True,
        run_rank=run_train_rank,
    )
)
