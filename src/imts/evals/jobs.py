"""The ``eval`` job kind: one model on every dataset of a suite; a requeued attempt redoes nothing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from imts.evals.suite import SuiteSpec
from imts.jobs.registry import JobContext, JobKind, register
from imts.store.context import Context


class EvalJob(BaseModel):
    """Evaluate one model on every dataset of a suite (metrics, judges, generation settings)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    suite: SuiteSpec


class EvalResult(BaseModel):
    run_id: str  # the last dataset's eval run
    run_ids: list[str]  # one eval run per dataset, in the suite's order


def run_eval(job: JobContext, spec: EvalJob) -> EvalResult:
    from imts.evals.service import run_suite

    # A requeued attempt skips the datasets already evaluated, and inside a dataset regenerates only
    # what the generation cache lacks (it is filled batch by batch): finished work is not redone.
    def done(dataset: str, run_id: str) -> None:
        job.save_data({"eval_runs": {**job.data.get("eval_runs", {}), dataset: run_id}})

    run_ids = run_suite(job.ctx, spec.model, spec.suite, job.progress, job.data.get("eval_runs", {}), done)
    return EvalResult(run_id=run_ids[-1], run_ids=run_ids)


def check_eval(ctx: Context, spec: EvalJob) -> None:
    """Refuse an unknown model or dataset, and a version without a test split unless the reference
    names a split or asks for every row (``NAME@N:all``)."""
    from imts.evals.refs import eval_data
    from imts.registry import models

    models.resolve(ctx, spec.model)
    for data in spec.suite.datasets:
        eval_data(ctx, data)


EVAL = register(JobKind("eval", EvalJob, run_eval, EvalResult, check=check_eval))
