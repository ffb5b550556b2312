"""The loop driver: moves every active loop one step on, from the scheduler's pass.

It runs wherever a scheduler leads (the ``imts scheduler`` daemon, the API's passes, or a CLI command
following its jobs), so a loop needs no process of its own and a killed driver is just a scheduler that
another pass replaces. Every step is a job on the pool. A step is written (``loop_steps``, with the job
id chosen up front) before its job is submitted, and every move of the loop is a compare-and-set on its
``version``: killed anywhere, the next pass finds the step and submits that same id if it is missing, so
no step runs twice, and what the loop spent is read back from its jobs, so nothing is counted twice.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from imts.core.errors import ImtsError, InputError, NotFoundError
from imts.core.ids import new_id
from imts.flywheel.machine import KIND, Outcome, Phase, Spent, Status, best, following, stop_reason
from imts.flywheel.spec import LoopSpec
from imts.jobs import service as jobs
from imts.jobs.pool import Request
from imts.store.context import Context, context_of_project
from imts.store.models import JobRecord, Loop, LoopStep, utcnow
from imts.store.workspace import Workspace

log = logging.getLogger(__name__)
FINISHED_JOB = ("succeeded", "failed", "cancelled")


def advance_all(ws: Workspace) -> None:
    """One move for every running loop (the scheduler's pass hook)."""
    ws = getattr(ws, "ws", ws)  # a pass made for a context (``jobs.service.settle``) carries one
    with ws.session() as s:
        active = s.execute(
            select(Loop.id, Loop.project_id, Loop.role).where(Loop.status == Status.RUNNING.value)
        ).all()
    for loop_id, project_id, role in active:
        ctx = context_of_project(ws, project_id, principal=f"loop:{loop_id}", role=role)  # type: ignore[arg-type]
        try:
            advance(ctx, loop_id)
        except ImtsError as exc:  # the loop cannot go on as it is (a dataset deleted, a quota): say why
            log.warning("loop %s: %s", loop_id, exc)
            _fail(ctx, loop_id, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # e.g. the database busy: the next pass tries again
            log.warning("loop %s: this pass could not move it: %s", loop_id, exc)


def _row(ctx: Context, loop_id: str) -> Loop:
    with ctx.session() as s:
        row = s.get(Loop, loop_id)
        if row is None or row.project_id != ctx.project_id:
            raise NotFoundError(f"no loop '{loop_id}'")
        s.expunge(row)
        return row


def _step(ctx: Context, loop_id: str, iteration: int, phase: str) -> LoopStep | None:
    """The latest try of a step."""
    with ctx.session() as s:
        row = s.scalars(
            select(LoopStep)
            .where(LoopStep.loop_id == loop_id, LoopStep.iteration == iteration, LoopStep.phase == phase)
            .order_by(LoopStep.try_no.desc())
        ).first()
        if row is not None:
            s.expunge(row)
        return row


def _move(ctx: Context, row: Loop, **values: Any) -> bool:
    """Compare-and-set the loop's row; False when another pass moved it first."""
    with ctx.session() as s:
        res = s.execute(
            update(Loop)
            .where(Loop.id == row.id, Loop.version == row.version)
            .values(version=row.version + 1, updated_at=utcnow(), **values)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]


def _fail(ctx: Context, loop_id: str, error: str) -> None:
    row = _row(ctx, loop_id)
    if row.status == Status.RUNNING.value:
        _move(ctx, row, status=Status.FAILED.value, error=error[:4000])


def advance(ctx: Context, loop_id: str) -> None:
    """Move one loop on as far as it can go now (several steps when they need no job)."""
    for _ in range(20):  # steps without a job (a repair with nothing to do) follow at once
        row = _row(ctx, loop_id)
        if row.status != Status.RUNNING.value or not _advance_once(ctx, row):
            return


def _advance_once(ctx: Context, row: Loop) -> bool:
    """One move; True when the loop moved and may move again at once."""
    spec = LoopSpec.model_validate(row.spec)
    phase = Phase(row.phase)
    if phase == Phase.APPROVAL:
        _move(ctx, row, status=Status.AWAITING_APPROVAL.value)
        return False
    step = _step(ctx, row.id, row.iteration, phase.value)
    if step is None:
        return _begin(ctx, row, spec, phase, 1)
    if step.result is not None:  # done, but the loop did not move on (killed in between)
        return _finish_step(ctx, row, spec, phase, step.result)
    if step.job_id is None:
        return False
    try:
        job = jobs.get(ctx, step.job_id)
    except NotFoundError:  # killed between writing the step and submitting its job: submit that id
        _submit(ctx, row, phase, step.job_id, step.spec)
        return False
    if job.state not in FINISHED_JOB:
        return False
    if job.state != "succeeded":
        if row.request == "retry":  # resumed after a failure: the step's next try, with a new job
            return _move(ctx, row, request=None) and _begin(
                ctx, _row(ctx, row.id), spec, phase, step.try_no + 1
            )
        error = job.error or job.reason or job.state
        _move(ctx, row, status=Status.FAILED.value, error=f"{phase.value} job {job.id} {job.state}: {error}")
        return False
    result = job.result or {}
    with ctx.session() as s:
        s.execute(
            update(LoopStep)
            .where(
                LoopStep.loop_id == row.id,
                LoopStep.iteration == row.iteration,
                LoopStep.phase == phase.value,
                LoopStep.try_no == step.try_no,
            )
            .values(result=result, finished_at=utcnow())
        )
    return _finish_step(ctx, row, spec, phase, result)


def _begin(ctx: Context, row: Loop, spec: LoopSpec, phase: Phase, try_no: int) -> bool:
    """Write the step (with its job id) and submit its job; a step with nothing to do is done at once."""
    from imts.flywheel.steps import build

    if phase == Phase.TRAIN and (spent := spent_by(ctx, row.id)) is not None:
        from imts.flywheel.machine import budget_spent

        if (why := budget_spent(spec, spent)) is not None:
            return finish(ctx, row, spec, why)
    planned = build(ctx, row, spec, phase)
    job_id = new_id("job") if planned.spec is not None else None
    try:
        with ctx.session() as s:
            s.add(
                LoopStep(
                    loop_id=row.id,
                    iteration=row.iteration,
                    phase=phase.value,
                    try_no=try_no,
                    job_id=job_id,
                    spec=planned.spec or {},
                    why=planned.why,
                    result=None if job_id else {"skipped": True, **planned.why},
                    finished_at=None if job_id else utcnow(),
                )
            )
    except IntegrityError:
        return False  # another pass wrote it first
    if job_id is None:
        return _finish_step(ctx, row, spec, phase, {"skipped": True, **planned.why})
    _submit(ctx, row, phase, job_id, planned.spec or {})
    return False


def _submit(ctx: Context, row: Loop, phase: Phase, job_id: str, spec: dict[str, Any]) -> None:
    request = Request(cpus=jobs.node_cpus(ctx))
    sub = jobs.Submission(
        kind=KIND[phase], spec=spec, owner=row.owner, name=f"loop {row.name} #{row.iteration} {phase.value}",
        request=request, id=job_id, max_retries=3,  # a lost worker (killed, OOM) is not the step failing
    )  # fmt: skip
    try:
        jobs.submit(ctx, sub)
    except IntegrityError:
        pass  # a racing pass submitted this very id
    except (InputError, ImtsError) as exc:  # e.g. a quota refusal: the loop stops and says why
        _move(ctx, row, status=Status.FAILED.value, error=f"{phase.value}: {exc}")


def _finish_step(ctx: Context, row: Loop, spec: LoopSpec, phase: Phase, result: dict[str, Any]) -> bool:
    """Record what the step made in the loop's state and move to the next step (or end the loop)."""
    from imts.flywheel.steps import record

    state = record(dict(row.state), row.iteration, phase, result)
    if phase == Phase.ANALYZE and result.get("refused"):
        return finish(ctx, row, spec, "refused", state)
    if phase == Phase.FEEDBACK:
        outcomes = [Outcome.model_validate(o) for o in state.get("outcomes", [])]
        why = stop_reason(spec, outcomes, spent_by(ctx, row.id) or Spent())
        if why is not None:
            return finish(ctx, row, spec, why, state)
    iteration, nxt = following(row.iteration, phase, spec.policy)
    return _move(ctx, row, iteration=iteration, phase=nxt.value, state=state)


def finish(ctx: Context, row: Loop, spec: LoopSpec, reason: str, state: dict[str, Any] | None = None) -> bool:
    """End the loop: the best model so far gets the ``champion`` alias (its lineage is its run's)."""
    state = dict(state if state is not None else row.state)
    outcomes = [Outcome.model_validate(o) for o in state.get("outcomes", [])]
    top = best(spec, outcomes)
    if top is not None:
        state["best"] = top.model_dump()
        version = state.get("models", {}).get(str(top.iteration))
        if version:
            from imts.registry import service as registry

            try:
                registry.set_alias(ctx, version, "champion")
            except ImtsError as exc:  # e.g. a protected alias the starter may not move: say so
                state["alias_error"] = str(exc)
    return _move(
        ctx, row, status=Status.FINISHED.value, stop_reason=reason, state=state,
        best_run=top.run_id if top else None, finished_at=utcnow(),
    )  # fmt: skip


def spent_by(ctx: Context, loop_id: str) -> Spent | None:
    """What the loop's jobs have used: CPU- and GPU-hours held, training tokens, generated rows."""
    import time

    with ctx.session() as s:
        steps = s.execute(
            select(LoopStep.phase, LoopStep.job_id, LoopStep.result).where(LoopStep.loop_id == loop_id)
        ).all()
        ids = [j for _, j, _ in steps if j]
        records = s.scalars(select(JobRecord).where(JobRecord.id.in_(ids))).all() if ids else []
        now = time.time()
        cpu = gpu = 0.0
        for r in records:
            held = float((r.data or {}).get("ran_s", 0.0))
            if r.state in ("running", "preempting") and r.started_ts is not None:
                held += max(0.0, now - r.started_ts)
            req = Request.model_validate(r.request or {})
            cpu += held * r.workers * req.cpus / 3600
            gpu += held * r.workers * req.gpus / 3600
    from imts.store import runs

    tokens = 0
    for phase, _, res in steps:
        if phase == Phase.TRAIN.value and res and runs.exists(ctx, res["run_id"]):
            tokens += int(runs.get(ctx, res["run_id"]).summary.get("tokens", 0))
    generated = sum(generated_by(res) for phase, _, res in steps if phase == Phase.REPAIR.value and res)
    return Spent(cpu, gpu, tokens, generated)


def generated_by(fix: dict[str, Any]) -> int:
    """Rows a repair generated or rewrote (its FixReport's JSON; a skipped repair made none)."""
    cot = sum(int(c.get("rewritten", 0)) for c in fix.get("cot", {}).values())
    augmented = sum(int(a.get("accepted", 0)) for a in fix.get("augment", {}).values())
    return cot + augmented + int(fix.get("reinforced", 0))
