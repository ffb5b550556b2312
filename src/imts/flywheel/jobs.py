"""The ``loop_feedback`` job kind (an iteration's evaluations -> the next data actions), and the hook
that lets every scheduler pass move the loops on (``driver.advance_all``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from imts.flywheel.feedback import Feedback
from imts.jobs.loop import PASS_HOOKS
from imts.jobs.registry import JobContext, JobKind, register
from imts.store.context import Context


class FeedbackJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loop: str
    iteration: int


def run_feedback(job: JobContext, spec: FeedbackJob) -> Feedback:
    from imts.flywheel.driver import _row
    from imts.flywheel.feedback import compute
    from imts.flywheel.spec import LoopSpec

    row = _row(job.ctx, spec.loop)
    job.progress.log(f"feedback of loop {row.name}, iteration {spec.iteration}")
    return compute(job.ctx, LoopSpec.model_validate(row.spec), row.state, spec.iteration)


def check_feedback(ctx: Context, spec: FeedbackJob) -> None:
    from imts.flywheel.driver import _row

    _row(ctx, spec.loop)


FEEDBACK = register(JobKind("loop_feedback", FeedbackJob, run_feedback, Feedback, check=check_feedback))


def _advance_all(ws: object) -> None:
    from imts.flywheel.driver import advance_all

    advance_all(ws)  # type: ignore[arg-type]


PASS_HOOKS["loop"] = _advance_all
