"""The ``data_fix`` job kind: PII replacement, chain-of-thought rewriting and verified augmentation of a
dataset version, resumable (its verified chunks are in the job's data) and idempotent (a requeued job
that finds the version it committed returns it)."""

from __future__ import annotations

from typing import Any

from imts.jobs.registry import JobContext, JobKind, register
from imts.optimise.spec import FixReport, FixSpec
from imts.store.context import Context


def run_fix(job: JobContext, spec: FixSpec) -> FixReport:
    from imts.optimise.service import apply_fix

    def save(state: dict[str, Any]) -> None:
        job.data["fix"] = state
        job.save_data(job.data)

    state = job.data.setdefault("fix", {})
    return apply_fix(job.ctx, spec, job.job_id, state, save, job.should_stop, job.progress)


def check_fix(ctx: Context, spec: FixSpec) -> None:
    """Refuse an unknown dataset or a spec with nothing to do."""
    from imts.data.versions import resolve

    spec.resolved()
    resolve(ctx, spec.data)


FIX = register(JobKind("data_fix", FixSpec, run_fix, FixReport, check=check_fix, writes=True, stoppable=True))
