"""Job kinds: one typed spec and one runner per kind (training, evaluation, dataset split, sleep).

A runner gets a ``JobContext`` (workspace, a ``should_stop`` flag set by SIGTERM, progress that the
heartbeat reports, and ``data`` that survives requeues) and returns a JSON summary. It raises
``Interrupted`` when it stopped on request after saving what a later attempt needs to resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from imts.core.errors import Interrupted
from imts.core.progress import Progress
from imts.evals.suite import SuiteSpec
from imts.store.context import Context
from imts.train.spec import RunSpec


class TrainJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: RunSpec
    model_name: str | None = None


class EvalJob(BaseModel):
    """Evaluate one model on every dataset of a suite (metrics, judges, generation settings)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    suite: SuiteSpec


class SplitJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: str
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    stratify_by: str | None = "category"
    ngram: int = Field(13, ge=1)


class SleepJob(BaseModel):
    """A trivial job for smoke tests and drills: waits, resumably; optionally appends its id to a file."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(1.0, ge=0)
    append_to: str | None = Field(None, description="Append the job id to this file when done.")
    fail: bool = Field(False, description="Fail instead of succeeding (to exercise retries).")


SPECS: dict[str, type[BaseModel]] = {"train": TrainJob, "eval": EvalJob, "split": SplitJob, "sleep": SleepJob}
# Kinds that can run as a gang of several workers. A train job has one worker per data-parallel
# process (``run.nproc``): the gang is placed whole, then its worker launches the ranks.
MULTI_WORKER = {"sleep", "train"}


def workers_of(kind: str, spec: Any, asked: int) -> int:
    """The job's gang size: a train job's is its ``run.nproc`` (``asked`` may only repeat it)."""
    if isinstance(spec, TrainJob) and spec.run.nproc > 1:
        if asked not in (1, spec.run.nproc):
            from imts.core.errors import InputError

            raise InputError(
                f"a train job with nproc={spec.run.nproc} runs {spec.run.nproc} workers (got {asked})",
                field="workers",
            )
        return spec.run.nproc
    return asked


WRITES = frozenset({"train", "split"})  # kinds that write artifacts: held back by a storage quota


@dataclass
class JobContext:
    ws: Context  # the job's tenant and project, acting as the job
    job_id: str
    attempt: int
    data: dict[str, Any]
    save_data: Callable[[dict[str, Any]], None]
    should_stop: Callable[[], bool]
    progress: Progress


def run_sleep(ctx: JobContext, spec: SleepJob) -> dict[str, Any]:
    done = float(ctx.data.get("done_s", 0.0))  # resumes where a preempted attempt stopped
    with ctx.progress.task("sleep", total=spec.seconds) as bar:
        bar.advance(done)
        while done < spec.seconds:
            if ctx.should_stop():
                ctx.save_data({"done_s": done})
                raise Interrupted()
            dt = min(0.05, spec.seconds - done)
            time.sleep(dt)
            done += dt
            bar.advance(dt)
    if spec.fail:
        raise RuntimeError("sleep job asked to fail")
    if spec.append_to:
        with open(spec.append_to, "a", encoding="utf-8") as f:
            f.write(ctx.job_id + "\n")
    return {"slept_s": spec.seconds}


def run_train(ctx: JobContext, spec: TrainJob) -> dict[str, Any]:
    from imts.core.ids import new_id
    from imts.train.service import train

    if "run_id" not in ctx.data:  # fixed before training starts, so a requeued attempt resumes this run
        ctx.save_data({"run_id": new_id("run")})
    run_id = train(
        ctx.ws,
        spec.run,
        ctx.progress,
        model_name=spec.model_name,
        run_id=ctx.data["run_id"],
        should_stop=ctx.should_stop,
    )
    return {"run_id": run_id}


def run_eval(ctx: JobContext, spec: EvalJob) -> dict[str, Any]:
    from imts.evals.service import run_suite

    # A requeued attempt skips the datasets already evaluated, and inside a dataset regenerates only
    # what the generation cache lacks (it is filled batch by batch): finished work is not redone.
    def done(dataset: str, run_id: str) -> None:
        ctx.save_data({"eval_runs": {**ctx.data.get("eval_runs", {}), dataset: run_id}})

    run_ids = run_suite(ctx.ws, spec.model, spec.suite, ctx.progress, ctx.data.get("eval_runs", {}), done)
    return {"run_id": run_ids[-1], "run_ids": run_ids}


def run_split(ctx: JobContext, spec: SplitJob) -> dict[str, Any]:
    from imts.data.split import split_version
    from imts.data.versions import resolve

    source = resolve(ctx.ws, spec.data)
    found = _split_made_by(ctx, spec, source.version.id)
    if found is not None:  # an earlier attempt committed it, then died or was stopped before reporting
        ctx.progress.log(f"split {found[0]} was made by an earlier attempt of this job: kept")
        return {"version": found[0], "version_id": found[1]}
    v = split_version(ctx.ws, source, spec.ratios, spec.seed, spec.stratify_by, spec.ngram, ctx.progress)
    return {"version": v.ref, "version_id": v.id}


def _split_made_by(ctx: JobContext, spec: SplitJob, parent_id: str) -> tuple[str, str] | None:
    """(ref, id) of the split this job already committed, if any: same parent, same parameters, made
    since the job was submitted. A split version is committed atomically (one transaction), so this
    makes the job idempotent: a requeued split job ends with exactly one version."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from imts.store.models import Dataset, DatasetVersion, JobRecord, VersionParent

    with ctx.ws.session() as s:
        job = s.get(JobRecord, ctx.job_id)
        if job is None or ctx.attempt == 1:
            return None
        rows = s.execute(
            select(DatasetVersion, Dataset.name)
            .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
            .join(VersionParent, VersionParent.version_id == DatasetVersion.id)
            .where(
                VersionParent.parent_id == parent_id,
                DatasetVersion.operation == "split",
                DatasetVersion.created_at >= datetime.fromtimestamp(job.submitted_ts, UTC),
            )
            .order_by(DatasetVersion.number)
        ).all()
        for v, name in rows:
            p = v.params
            if (p.get("ratios"), p.get("seed"), p.get("decontaminate_ngram")) == (
                list(spec.ratios),
                spec.seed,
                spec.ngram,
            ) and p.get("stratify_by") in (spec.stratify_by, None):
                return f"{name}@{v.number}", v.id
    return None


def check(ws: Context, kind: str, spec: Any) -> None:
    """Refuse at submit what would fail at once in the worker (unknown model or dataset, a dataset of
    the wrong format, QLoRA without CUDA)."""
    from imts.data.versions import resolve

    if isinstance(spec, TrainJob):
        from imts.registry import base_models
        from imts.train.spec import check_format, check_runnable

        check_runnable(spec.run)
        base_models.get(ws, spec.run.base_model)
        version = resolve(ws, spec.run.data).version
        check_format(spec.run, version.ref, version.format)
    elif isinstance(spec, EvalJob):
        from imts.registry import models

        models.resolve(ws, spec.model)
        for data in spec.suite.datasets:
            resolve(ws, data)
    elif isinstance(spec, SplitJob):
        resolve(ws, spec.data)


RUNNERS: dict[str, Callable[[JobContext, Any], dict[str, Any]]] = {
    "train": run_train,
    "eval": run_eval,
    "split": run_split,
    "sleep": run_sleep,
}
