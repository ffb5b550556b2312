"""The closed loop's service functions: start, read, stop, resume, approve, and its log.

``start`` writes the loop; the scheduler's passes move it (``driver``); ``follow`` waits for it while
running passes here when no scheduler daemon runs, like ``jobs.service.follow``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select

from imts.core.errors import ConflictError, InputError, NotFoundError
from imts.core.ids import new_id
from imts.core.permissions import Permission
from imts.core.progress import NullProgress, Progress
from imts.flywheel.driver import _row, _step, advance, spent_by
from imts.flywheel.machine import Outcome, Phase, Status, following, reason_text
from imts.flywheel.spec import PROBE_DATASET, LoopSpec
from imts.jobs import service as jobs
from imts.store import audit
from imts.store.context import Context
from imts.store.models import JobRecord, Loop, LoopStep


class StepView(BaseModel):
    iteration: int
    phase: str
    try_no: int
    job_id: str | None
    state: str  # queued | running | ... | succeeded | skipped
    seconds: float | None  # the job's run time (its attempts together)
    why: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None


class LoopView(BaseModel):
    id: str
    name: str
    owner: str
    status: str
    iteration: int
    phase: str
    stop_reason: str | None
    stop_reason_en: str
    stop_reason_zh: str
    error: str | None
    best_run: str | None
    best: dict[str, Any] | None
    spec: LoopSpec
    outcomes: list[Outcome]
    spent: dict[str, float]
    # the data it started from and made: source, analysis, split, eval_data (scored), data (trained on
    # now), heldout, probe, models (iteration -> model version); and tools, the decoding tools its
    # evaluations run with
    versions: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


VERSION_KEYS = (
    "source",
    "analysis",
    "analyzed",
    "split",
    "eval_data",
    "data",
    "heldout",
    "probe",
    "models",
    "tools",
)


def _view(ctx: Context, row: Loop) -> LoopView:
    spent = spent_by(ctx, row.id)
    return LoopView(
        id=row.id, name=row.name, owner=row.owner, status=row.status, iteration=row.iteration,
        phase=row.phase, stop_reason=row.stop_reason, stop_reason_en=reason_text(row.stop_reason, "en"),
        stop_reason_zh=reason_text(row.stop_reason, "zh"), error=row.error, best_run=row.best_run,
        best=row.state.get("best"), spec=LoopSpec.model_validate(row.spec),
        outcomes=[Outcome.model_validate(o) for o in row.state.get("outcomes", [])],
        spent=dict(spent.__dict__) if spent else {},
        versions={k: row.state[k] for k in VERSION_KEYS if k in row.state},
        created_at=row.created_at, updated_at=row.updated_at, finished_at=row.finished_at,
    )  # fmt: skip


def _probe(ctx: Context, name: str | None) -> str | None:
    """The probe's version reference; IMTS's own probe is imported into the project on first use."""
    from imts.data import service as data

    if not name:
        return None
    try:
        return data.resolve(ctx, name).version.ref
    except NotFoundError:
        if name != PROBE_DATASET:
            raise
    path = resources.files("imts.flywheel") / "data" / "general_probe.jsonl"
    with resources.as_file(path) as file:
        return data.import_file(ctx, file, PROBE_DATASET).ref


@contextmanager
def _at(field: str) -> Iterator[None]:
    """A lookup's error names the spec's field it came from (the API answers it as ``param``)."""
    try:
        yield
    except NotFoundError as e:
        raise NotFoundError(str(e), field=e.field or field) from None
    except InputError as e:
        raise InputError(e.reason, file=e.file, line=e.line, field=e.field or field) from None


def start(ctx: Context, spec: LoopSpec) -> LoopView:
    """Write a new loop (it starts at the next scheduler pass).

    Raises:
        NotFoundError: an unknown dataset, base model, held-out set or probe; its ``field`` names the
            spec's field (``heldout.1`` for the second held-out set).
        InputError: a bad dataset reference, or an intent too vague to act on (with the question to
            answer, in English and Chinese, at ``intent``).
    """
    from imts.analysis.intent import parse_intent
    from imts.data import service as data
    from imts.registry import service as registry

    ctx.require(Permission.MODEL_TRAIN)
    ctx.require(Permission.DATASET_UPLOAD)
    with _at("data"):
        source = data.resolve(ctx, spec.data).version.ref  # fixed now: a later import does not change it
    with _at("base_model"):
        registry.get_base_model(ctx, spec.base_model)
    parsed = parse_intent(spec.intent)
    if parsed.task is None:
        raise InputError(f"{parsed.question_en} / {parsed.question_zh}", field="intent")
    heldout = []
    for i, ref in enumerate(spec.heldout):
        with _at(f"heldout.{i}"):
            found = data.resolve(ctx, ref)  # the split too: a missing one is said now, not at evaluation
        heldout.append(str(found))
    with _at("probe"):
        probe = _probe(ctx, spec.probe)
    if spec.teacher == "local" and spec.teacher_model:
        from imts.registry.models import resolve as resolve_model

        with _at("teacher_model"):
            resolve_model(ctx, spec.teacher_model)  # a wrong ref is said now, not at the first repair
    # The decoding tools and the held-out sample are fixed when the loop starts: the base model and every
    # iteration are scored alike even if a later IMTS changes the spec's defaults.
    state = {
        "source": source, "heldout": heldout, "probe": probe, "tools": spec.tools,
        "heldout_items": spec.heldout_items,
    }  # fmt: skip
    loop_id = new_id("loop")
    with ctx.session() as s:
        s.add(
            Loop(
                id=loop_id, project_id=ctx.project_id, name=spec.loop_name(), owner=ctx.principal,
                role=ctx.role, spec=spec.model_dump(mode="json"), status=Status.RUNNING.value,
                iteration=1, phase=Phase.ANALYZE.value, state=state,
            )
        )  # fmt: skip
        s.flush()
        audit.record(
            ctx, s, "loop.start", ("loop", loop_id), None, {"data": spec.data, "intent": spec.intent}
        )
    return get(ctx, loop_id)


def get(ctx: Context, loop_id: str) -> LoopView:
    ctx.require(Permission.METRICS_VIEW)
    return _view(ctx, _row(ctx, loop_id))


def list_loops(ctx: Context, limit: int = 100) -> list[LoopView]:
    ctx.require(Permission.METRICS_VIEW)
    with ctx.session() as s:
        rows = s.scalars(
            select(Loop)
            .where(Loop.project_id == ctx.project_id)
            .order_by(Loop.created_at.desc())
            .limit(limit)
        ).all()
        for r in rows:
            s.expunge(r)
    return [_view(ctx, r) for r in rows]


def _current_job(ctx: Context, row: Loop) -> str | None:
    step = _step(ctx, row.id, row.iteration, row.phase)
    return step.job_id if step else None


def _set(ctx: Context, row: Loop, action: str, **values: Any) -> None:
    from imts.flywheel.driver import _move

    if not _move(ctx, row, **values):
        raise ConflictError(f"loop {row.id} moved meanwhile; try again")
    with ctx.session() as s:
        audit.record(ctx, s, f"loop.{action}", ("loop", row.id), {"status": row.status}, values)


def stop(ctx: Context, loop_id: str) -> LoopView:
    """Stop the loop: its running step's job is paused (it keeps its checkpoint for ``resume``)."""
    ctx.require(Permission.MODEL_TRAIN)
    row = _row(ctx, loop_id)
    if row.status not in (Status.RUNNING.value, Status.AWAITING_APPROVAL.value):
        raise ConflictError(f"loop {loop_id} is {row.status}: only a running loop stops")
    _set(ctx, row, "stop", status=Status.STOPPED.value)
    job_id = _current_job(ctx, row)
    if job_id and jobs.get(ctx, job_id).state in ("queued", "starting", "running"):
        jobs.request(ctx, job_id, "pause")
    return get(ctx, loop_id)


def resume(ctx: Context, loop_id: str) -> LoopView:
    """Go on from where the loop stopped: a paused step's job resumes, a failed step is tried again."""
    ctx.require(Permission.MODEL_TRAIN)
    row = _row(ctx, loop_id)
    if row.status not in (Status.STOPPED.value, Status.FAILED.value):
        raise ConflictError(f"loop {loop_id} is {row.status}: only a stopped or failed loop resumes")
    job_id = _current_job(ctx, row)
    status = Status.AWAITING_APPROVAL if row.phase == Phase.APPROVAL.value else Status.RUNNING
    if job_id:
        state = _resume_job(ctx, job_id)
        if state in ("failed", "cancelled"):
            _set(ctx, row, "resume", status=status.value, error=None, request="retry")
            advance(ctx, loop_id)
            return get(ctx, loop_id)
    _set(ctx, row, "resume", status=status.value, error=None)
    advance(ctx, loop_id)
    return get(ctx, loop_id)


def _resume_job(ctx: Context, job_id: str, wait_s: float = 15.0) -> str:
    """Resume the job a stop paused; returns its state as found.

    The stop's pause may still be on its way: not yet taken by a scheduling pass, or the worker still
    stopping (``preempting``). A resume then must not miss it, or the job ends up paused under a running
    loop and nothing moves it again: wait (up to ``wait_s``) until no request is pending, and resume a
    job that is pausing as well as one that has paused (the machine turns the pause into a requeue).
    """
    end = time.monotonic() + wait_s
    while True:
        with ctx.session() as s:
            state, pending = s.execute(
                select(JobRecord.state, JobRecord.action).where(JobRecord.id == job_id)
            ).one()
        if pending is None or time.monotonic() > end:
            break
        time.sleep(0.2)
        jobs.settle(ctx)
    if state in ("paused", "preempting"):
        jobs.request(ctx, job_id, "resume")
    return str(state)


def approve(ctx: Context, loop_id: str) -> LoopView:
    """Apply the data actions the loop proposed (policy ``approve``): the next repair starts."""
    ctx.require(Permission.MODEL_TRAIN)
    row = _row(ctx, loop_id)
    if row.status != Status.AWAITING_APPROVAL.value:
        raise ConflictError(f"loop {loop_id} is {row.status}: nothing waits for approval")
    spec = LoopSpec.model_validate(row.spec)
    iteration, phase = following(row.iteration, Phase.APPROVAL, spec.policy)
    _set(ctx, row, "approve", status=Status.RUNNING.value, iteration=iteration, phase=phase.value)
    advance(ctx, loop_id)
    return get(ctx, loop_id)


def steps(ctx: Context, loop_id: str) -> list[StepView]:
    """Every step so far, in order, with its job's state and run time."""
    ctx.require(Permission.METRICS_VIEW)
    _row(ctx, loop_id)
    now = time.time()
    with ctx.session() as s:
        rows = s.scalars(
            select(LoopStep).where(LoopStep.loop_id == loop_id).order_by(LoopStep.started_at, LoopStep.try_no)
        ).all()
        ids = [r.job_id for r in rows if r.job_id]
        found = {j.id: j for j in s.scalars(select(JobRecord).where(JobRecord.id.in_(ids)))} if ids else {}
        out = []
        for r in rows:
            j = found.get(r.job_id or "")
            seconds = None
            if j is not None:
                seconds = float((j.data or {}).get("ran_s", 0.0))
                if j.state == "running" and j.started_ts:
                    seconds += now - j.started_ts
            out.append(
                StepView(
                    iteration=r.iteration, phase=r.phase, try_no=r.try_no, job_id=r.job_id,
                    state="skipped" if r.job_id is None else (j.state if j else "submitting"),
                    seconds=seconds, why=r.why, result=r.result,
                )
            )  # fmt: skip
    return out


def follow(ctx: Context, loop_id: str, progress: Progress | None = None, poll_s: float = 1.0) -> LoopView:
    """Wait until the loop stops, finishes or fails (or waits for approval), showing each step's job
    live; scheduler passes run here while no scheduler daemon holds the lease."""
    progress = progress or NullProgress()
    shown: set[str] = set()
    while True:
        view = get(ctx, loop_id)
        if view.status != Status.RUNNING.value:
            return view
        job_id = _current_job(ctx, _row(ctx, loop_id))
        if job_id and job_id not in shown:
            shown.add(job_id)
            progress.log(f"[bold]iteration {view.iteration}: {view.phase}[/] (job {job_id})")
            jobs.follow(ctx, job_id, progress)
            advance(ctx, loop_id)
        else:
            jobs.settle(ctx, wait=True)
            time.sleep(poll_s)


class IterationView(BaseModel):
    """One line of the loop's log: problem found -> data fix -> gain, with the numbers."""

    iteration: int
    problems: list[dict[str, str]]  # en / zh: what the analysis (iteration 1) or the feedback found
    fix: dict[str, Any]  # what the repair did (its FixReport summary), or why it did nothing
    scores: dict[str, float]  # set label -> accuracy of this iteration's model
    base: dict[str, float]  # set label -> the base model's
    gain: dict[str, float]  # set label -> accuracy change against the previous model (the base at 1)
    categories: dict[str, dict[str, float]]  # validation category -> {before, after}
    clusters: list[dict[str, Any]]  # the previous model's bad-case clusters and their error rate now
    p_vs_best: float | None
    model_version: str | None
    run_id: str | None
    started_from: int | None = None  # the iteration whose model this one's training went on from
    seconds: dict[str, float]  # step -> run time
    warnings: list[dict[str, str]] = []  # en / zh: a validation gain that a held-out set does not show


def _fix_summary(result: dict[str, Any] | None) -> dict[str, Any]:
    if not result:
        return {}
    if result.get("skipped"):
        return {"skipped": True, "why": result.get("skipped_en", "")}
    from imts.flywheel.driver import generated_by

    return {
        "version": result.get("version"),
        "pii_rows": result.get("pii_rows", 0),
        "cot_rewritten": sum(c.get("rewritten", 0) for c in result.get("cot", {}).values()),
        "augmented": {k: a.get("accepted", 0) for k, a in result.get("augment", {}).items()},
        "chained": {k: a["chained"] for k, a in result.get("augment", {}).items() if a.get("chained")},
        "reinforced": result.get("reinforced", 0),
        "replayed": result.get("replayed", 0),
        "generated": generated_by(result),
    }


def iterations(ctx: Context, loop_id: str) -> list[IterationView]:
    """The loop's log, one entry per iteration that has begun."""
    all_steps = steps(ctx, loop_id)
    out = []
    for it in sorted({s.iteration for s in all_steps}):
        mine = {s.phase: s for s in all_steps if s.iteration == it}  # the latest try of each phase
        repair = mine.get(Phase.REPAIR.value)
        problems: list[dict[str, str]] = []
        if repair is not None:
            why = repair.why
            problems = [{"en": f["en"], "zh": f["zh"]} for f in why.get("findings", [])]
            problems += [{"en": a["en"], "zh": a["zh"]} for a in why.get("actions", [])]
        fb = (mine.get(Phase.FEEDBACK.value) or StepView(iteration=it, phase="", try_no=0, job_id=None,
              state="", seconds=None)).result or {}  # fmt: skip
        sets = fb.get("sets", [])
        scores = {s["label"]: _acc(s["score"]) for s in sets}
        base = {s["label"]: _acc(s["base"]) for s in sets if s.get("base")}
        gain = {s["label"]: _acc(s["score"]) - _acc(s["previous"]) for s in sets if s.get("previous")}
        val = sets[0] if sets else None
        categories = {}
        if val and val.get("previous"):
            for field, prefix in (("by_category", ""), ("by_lang", "lang:")):
                for key, (ok, n) in val["score"].get(field, {}).items():
                    before = val["previous"].get(field, {}).get(key, (0, 0))
                    categories[prefix + key] = {"before": before[0] / before[1] if before[1] else 0.0,
                                                "after": ok / n}  # fmt: skip
        train = mine.get(Phase.TRAIN.value)
        parent = (train.why.get("init_from") if train else None) or None
        started_from = next((v.iteration for v in out if parent and v.run_id == parent), None)
        out.append(
            IterationView(
                iteration=it, problems=problems, started_from=started_from,
                fix=_fix_summary(repair.result if repair else None),
                scores=scores, base=base, gain=gain, categories=categories, clusters=fb.get("clusters", []),
                p_vs_best=(fb.get("outcome") or {}).get("p_vs_best"), model_version=fb.get("model_version"),
                run_id=fb.get("run_id"),
                seconds={s.phase: s.seconds for s in mine.values() if s.seconds is not None},
                warnings=_not_carried_over(sets, gain),
            )
        )  # fmt: skip
    return out


IN_TEMPLATE = ("validation", "test", "probe")  # the other sets of an evaluation are held-out sets


def _not_carried_over(sets: list[dict[str, Any]], gain: dict[str, float]) -> list[dict[str, str]]:
    """A warning for each held-out set that fell while validation rose: the new data taught its own
    wording, not the skill (held-out sets are reported, never used for decisions)."""
    val = gain.get("validation")
    if val is None or val <= 0:
        return []
    out = []
    for s in sets:
        label, delta = s["label"], gain.get(s["label"])
        if label in IN_TEMPLATE or delta is None or delta >= 0:
            continue
        p = s.get("p_vs_previous")
        p_en, p_zh = (f" (p = {p:.2g})", f"（p = {p:.2g}）") if p is not None else ("", "")
        out.append({
            "en": f"the gain does not carry over: validation {val * 100:+.1f} points but {label} "
            f"{delta * 100:+.1f}{p_en}; {label} is written differently from the training data",
            "zh": f"提升没有迁移：验证集 {val * 100:+.1f} 分，{label} 却 {delta * 100:+.1f}{p_zh}；"
            f"{label} 的写法与训练数据不同",
        })  # fmt: skip
    return out


def _acc(score: dict[str, Any]) -> float:
    return score["correct"] / score["total"] if score.get("total") else 0.0
