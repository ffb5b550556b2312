"""The loop's teacher: who writes its repairs' chains of thought and re-words their generated questions.

Checked when the loop starts (a missing endpoint or model is said then, with the spec's field), and
carried into every repair job, where a model teacher's output is kept only when the verifier confirms it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.flywheel.conftest import loop_ws, tiny_spec

from imts.core.errors import InputError, NotFoundError
from imts.flywheel import service
from imts.jobs import service as jobs


def test_a_teacher_without_its_endpoint_or_model_is_refused_at_start(
    tmp_path: Path, tiny_model: Path, math_file: Path
) -> None:
    with pytest.raises(InputError) as e:
        tiny_spec(teacher="openai", teacher_model="gpt-x")
    assert e.value.field == "teacher_url" and "endpoint" in str(e.value)
    with pytest.raises(InputError) as e:
        tiny_spec(teacher="local")
    assert e.value.field == "teacher_model"
    ws = loop_ws(tmp_path, tiny_model, math_file)
    with pytest.raises(NotFoundError) as nf:
        service.start(ws, tiny_spec(teacher="local", teacher_model="no-such-model"))
    assert nf.value.field == "teacher_model"
    assert service.list_loops(ws) == []  # nothing was written


def test_the_loops_repair_asks_its_teacher_and_keeps_only_verified_rewrites(
    tmp_path: Path, tiny_model: Path, math_file: Path
) -> None:
    """The tiny random model as the teacher: the first repair's job carries it, asks it for every
    answer-only row, and keeps none of its replies (empty, or no step survives the verifier), each listed
    with the reason; the embedded rules rewrite most of the same rows (planned on the same version)."""
    from imts.optimise.service import plan_fix
    from imts.optimise.spec import FixSpec

    ws = loop_ws(tmp_path, tiny_model, math_file)
    view = service.start(ws, tiny_spec(data="math@1", teacher="local", teacher_model="tiny"))
    end = time.time() + 400
    while True:
        repair = next((s for s in service.steps(ws, view.id) if s.phase == "repair"), None)
        if repair is not None and repair.state == "succeeded":
            break
        assert time.time() < end, [(s.phase, s.state) for s in service.steps(ws, view.id)]
        assert service.get(ws, view.id).status == "running", service.get(ws, view.id).error
        job_id = service._current_job(ws, service._row(ws, view.id))
        if job_id:
            jobs.follow(ws, job_id)
        service.advance(ws, view.id)
    service.stop(ws, view.id)
    spec = jobs.get(ws, repair.job_id).spec
    assert (spec["teacher"], spec["teacher_model"], spec["teacher_url"]) == ("local", "tiny", None)
    report = repair.result or {}
    asked = sum(c["answer_only"] for c in report["cot"].values())
    assert asked > 0 and len(report["not_rewritten"]) == asked
    # The model's reasons (the embedded rules never give either): nothing it wrote passed the checks.
    reasons = {x["reason"].split(":")[0] for x in report["not_rewritten"]}
    assert reasons <= {"empty reply / 回复为空", "rejected by the verifier / 未通过验证"}, reasons
    rules = plan_fix(ws, FixSpec(data=spec["data"], cot=True))
    assert sum(c.rewritten for c in rules.cot.values()) > asked // 2
