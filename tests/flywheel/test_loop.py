"""The closed loop on the tiny model, through real jobs and worker processes: every step one job, the
log (problem found -> data fix -> gain), the approval policy, the report, the champion alias; then the
same loop with its driver (the scheduler daemon) and its workers SIGKILLed at random moments, which
must end with the same lineage, no step run twice and nothing counted twice."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.flywheel.conftest import loop_ws, tiny_spec
from tests.jobs.test_jobs_durability import scheduler_proc, stop

from imts.data.versions import resolve
from imts.flywheel import report, service
from imts.flywheel.driver import spent_by
from imts.registry import service as registry
from imts.services.audit import query
from imts.store import runs
from imts.store.context import Context
from imts.store.models import JobRecord, LoopStep


@pytest.fixture(scope="module")
def approved(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, math_file: Path
) -> tuple[Context, str]:
    """A two-iteration loop under the approve policy, approved once, run to its end in this process."""
    ws = loop_ws(tmp_path_factory.mktemp("loop"), tiny_model, math_file)
    view = service.start(ws, tiny_spec(data="math@1", policy="approve"))
    view = service.follow(ws, view.id, poll_s=0.2)
    assert view.status == "awaiting_approval", view.error
    assert view.iteration == 2 and view.phase == "approval" and len(view.outcomes) == 1
    proposed = service.iterations(ws, view.id)
    assert proposed[-1].iteration == 1  # nothing of iteration 2 ran before the approval
    view = service.approve(ws, view.id)
    view = service.follow(ws, view.id, poll_s=0.2)
    assert view.status == "finished", view.error
    return ws, view.id


def lineage(ctx: Context, loop_id: str) -> list[tuple[Any, ...]]:
    """What a loop made, step by step: the data versions' contents, the models' data, the actions."""
    out: list[tuple[Any, ...]] = []
    for s in service.steps(ctx, loop_id):
        res = s.result or {}
        version = res.get("version")
        content = resolve(ctx, version).version.content_hash if version and "@" in str(version) else None
        actions = [a["kind"] for a in res.get("actions", [])]
        out.append((s.iteration, s.phase, s.try_no, content, actions, s.why.get("data")))
    return out


def test_every_step_is_one_job_and_the_log_reads_problem_fix_gain(approved: tuple[Context, str]) -> None:
    ws, loop_id = approved
    view = service.get(ws, loop_id)
    assert view.stop_reason == "max_iterations" and view.stop_reason_zh
    steps = service.steps(ws, loop_id)
    assert [(s.iteration, s.phase) for s in steps] == [
        (1, "analyze"), (1, "split"), (1, "repair"), (1, "baseline"), (1, "train"), (1, "evaluate"),
        (1, "feedback"), (2, "repair"), (2, "train"), (2, "evaluate"), (2, "feedback"),
    ]  # fmt: skip
    assert all(s.state == "succeeded" and s.try_no == 1 for s in steps)
    with ws.session() as s:
        jobs = s.scalar(select(func.count()).select_from(JobRecord).where(JobRecord.name.like("loop math %")))
    assert jobs == len(steps)
    its = service.iterations(ws, loop_id)
    first, second = its
    # iteration 1 acts on the analysis: the example data's planted defects are what it found and fixed
    kinds = " ".join(p["en"] for p in first.problems)
    assert "personal data" in kinds and "without reasoning" in kinds and "division" in kinds
    assert (
        first.fix["pii_rows"] > 0
        and first.fix["cot_rewritten"] > 0
        and first.fix["augmented"]["division"] > 0
    )
    assert set(first.scores) == {"validation", "test", "probe"} and set(first.base) == set(first.scores)
    # iteration 2 acts on the feedback: each problem with its reason, and the fix it led to
    assert second.problems and all(p["en"] and p["zh"] for p in second.problems)
    assert second.fix.get("reinforced", 0) + second.fix.get("cot_rewritten", 0) > 0 or second.fix.get(
        "skipped"
    )
    assert set(second.gain) == set(second.scores)
    assert second.seconds["train"] > 0
    assert len(view.outcomes) == 2 and view.best is not None
    champion = registry.resolve_alias(ws, "loop-math", "champion")
    assert champion.version == view.best["iteration"]  # the loop's models are versions 1, 2 of loop-math
    spent = view.spent
    assert spent["tokens"] > 0 and spent["generated_items"] == sum(i.fix.get("generated", 0) for i in its)
    actions = [e.action for e in query(ws, action="loop.*", limit=200)]
    assert "loop.start" in actions and "loop.approve" in actions


def test_the_report_has_the_curve_and_the_log_in_both_languages(approved: tuple[Context, str]) -> None:
    ws, loop_id = approved
    view, its = service.get(ws, loop_id), service.iterations(ws, loop_id)
    en, zh = report.write(ws, view, its, "en"), report.write(ws, view, its, "zh")
    page = en["html"].read_text(encoding="utf-8")
    assert "plotly" in page and "Iteration log" in page and "<script src=" not in page
    md = zh["md"].read_text(encoding="utf-8")
    assert "迭代日志" in md and "发现的问题" in md and "| validation |" in md
    # every evaluation, the base model's too, decoded with the loop's tools, and the report says so
    assert view.versions["tools"] == ["calculator"]
    assert "greedy, with the tools calculator" in page and "贪心解码，并使用工具 calculator" in md
    evals = [r for r in runs.search(ws, "eval", "succeeded") if r.spec["data"].startswith("math@")]
    assert evals and all(r.spec["tools"] == ["calculator"] for r in evals)
    assert {r.model_version_id is None for r in evals} == {True, False}  # the base model and the loop's


def test_stop_and_resume_refuse_what_they_cannot_do(approved: tuple[Context, str]) -> None:
    from imts.core.errors import ConflictError

    ws, loop_id = approved
    with pytest.raises(ConflictError, match="only a running loop stops"):
        service.stop(ws, loop_id)
    with pytest.raises(ConflictError, match="only a stopped or failed loop resumes"):
        service.resume(ws, loop_id)
    with pytest.raises(ConflictError, match="nothing waits for approval"):
        service.approve(ws, loop_id)


def test_killed_driver_and_workers_change_nothing(approved: tuple[Context, str], tmp_path: Path) -> None:
    """SIGKILL the scheduler daemon (the loop's driver) at random moments, ten times and more, and some
    of the workers: the loop ends as the uninterrupted one did, every step with one job, nothing twice."""
    ws, reference = approved
    view = service.start(ws, tiny_spec(data="math@1"))
    rng = random.Random(0)
    log = tmp_path / "scheduler.log"
    kills, killed_workers = 0, set()
    deadline = time.time() + 900
    while service.get(ws, view.id).status == "running":
        assert time.time() < deadline, service.get(ws, view.id)
        proc = scheduler_proc(ws, log)
        time.sleep(rng.uniform(1.0, 8.0))  # starting up, mid-pass, between steps, while a step runs
        if kills % 3 == 2:  # now and then a worker too, once per job (a lost worker is requeued)
            with ws.session() as s:
                running = s.execute(
                    select(JobRecord.id, JobRecord.worker_pid).where(
                        JobRecord.state == "running", JobRecord.name.like("loop math %")
                    )
                ).all()
            for job_id, pid in running:
                if pid and job_id not in killed_workers:
                    killed_workers.add(job_id)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if kills >= 10:
            proc = scheduler_proc(ws, log)
            try:
                while service.get(ws, view.id).status == "running":
                    assert time.time() < deadline, service.get(ws, view.id)
                    time.sleep(0.5)
            finally:
                assert stop([proc]) == [0]
    assert kills >= 10
    done = service.get(ws, view.id)
    assert done.status == "finished", done.error
    assert done.stop_reason == service.get(ws, reference).stop_reason
    assert [x[:5] for x in lineage(ws, view.id)] == [x[:5] for x in lineage(ws, reference)]
    with ws.session() as s:
        steps = s.scalars(select(LoopStep).where(LoopStep.loop_id == view.id)).all()
        ids = [st.job_id for st in steps]
        jobs = s.scalars(
            select(JobRecord).where(JobRecord.name.like("loop math #%"), JobRecord.id.in_(ids))
        ).all()
        all_loop_jobs = s.scalar(
            select(func.count())
            .select_from(JobRecord)
            .where(JobRecord.submitted_ts >= done.created_at.timestamp())
        )
    assert len(set(ids)) == len(ids) == len(jobs) == all_loop_jobs  # one job per step, no stray submission
    assert all(j.state == "succeeded" for j in jobs)
    before, after = spent_by(ws, reference), spent_by(ws, view.id)
    assert before is not None and after is not None
    assert (after.tokens, after.generated_items) == (before.tokens, before.generated_items)


def test_resume_right_after_stop_goes_on_while_the_pause_is_on_its_way(
    tmp_path: Path, tiny_model: Path, math_file: Path
) -> None:
    """Stop pauses the running step's job, and a resume at once finds the pause still under way (the
    worker stopping): the job must go on, not stay paused under a running loop that nothing moves."""
    from imts.flywheel.driver import advance
    from imts.jobs import service as jobs

    ws = loop_ws(tmp_path, tiny_model, math_file)
    view = service.start(ws, tiny_spec(data="math@1", max_iterations=1))
    deadline = time.time() + 600
    while True:  # until the training step's worker runs
        assert time.time() < deadline, service.get(ws, view.id)
        steps = service.steps(ws, view.id)
        last = steps[-1] if steps else None
        if last and last.phase == "train" and last.job_id and jobs.get(ws, last.job_id).state == "running":
            break
        advance(ws, view.id)
        jobs.settle(ws, wait=True)
        time.sleep(0.1)
    assert service.stop(ws, view.id).status == "stopped"
    assert last is not None and last.job_id is not None
    assert jobs.get(ws, last.job_id).state in ("preempting", "paused")
    assert service.resume(ws, view.id).status == "running"
    while (now := service.get(ws, view.id)).status == "running":
        assert time.time() < deadline, (now, jobs.get(ws, last.job_id).state)
        advance(ws, view.id)
        jobs.settle(ws, wait=True)
        time.sleep(0.2)
    assert now.status == "finished", now.error
    train = [s for s in service.steps(ws, view.id) if s.phase == "train"]
    assert [(s.job_id, s.state) for s in train] == [(last.job_id, "succeeded")]  # the same job went on
