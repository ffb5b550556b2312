"""The loop's teacher: who writes its repairs' chains of thought and re-words their generated questions.

Checked when the loop starts (a missing endpoint or model is said then, with the spec's field), and
carried into every repair job (where a model teacher's output is kept only when the verifier confirms it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.flywheel.conftest import loop_ws, tiny_spec

from imts.core.errors import InputError, NotFoundError
from imts.flywheel import service
from imts.flywheel.machine import Phase
from imts.flywheel.steps import build
from imts.store.context import Context


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


def test_every_repair_job_of_the_loop_carries_its_teacher(ws: Context) -> None:
    """The repair job of the feedback's actions (the second iteration) names the loop's teacher; the first
    repair takes the same fields through the same merge in ``steps``. What a chat teacher's replies become
    (kept only when verified, else listed with the reason) is the data fix's own test
    (tests/optimise/test_fix.py)."""
    from imts.optimise.spec import FixSpec
    from imts.store.models import Loop

    spec = tiny_spec(teacher="openai", teacher_url="http://127.0.0.1:9/v1", teacher_model="m")
    state = {"data": "math@3", "next_fix": {"augment": {"division": 0.2}}, "next_actions": []}
    row = Loop(name="t", iteration=2, state=state)  # the second iteration: the feedback's actions
    fix = FixSpec.model_validate(build(ws, row, spec, Phase.REPAIR).spec)
    assert (fix.teacher, fix.teacher_url, fix.teacher_model) == ("openai", "http://127.0.0.1:9/v1", "m")
    assert fix.augment == {"division": 0.2} and fix.data == "math@3"
    plain = FixSpec.model_validate(build(ws, row, tiny_spec(), Phase.REPAIR).spec)
    assert plain.teacher == "embedded" and plain.teacher_url is None
