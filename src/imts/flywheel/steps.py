"""What each step of an iteration submits (``build``) and what its result adds to the loop's state
(``record``). The state is a small JSON object on the loop's row::

    analysis   the analysis id           split      the split version (NAME@N)
    data       the training data now     eval_data  the version whose val/test splits are scored
    probe      the probe version         baseline   the base model's eval runs, one per set (``eval_sets``)
    runs       {iteration: run id}       models     {iteration: model version NAME:N}
    evals      {iteration: [run ids]}    outcomes   [Outcome, ...]   next_fix   the latest feedback's fix
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imts.flywheel.machine import Phase
from imts.flywheel.spec import LoopSpec
from imts.store.context import Context
from imts.store.models import Loop

# Analysis findings the first repair acts on (the others need a person: collect data, drop rows).
REPAIRS = ("pii_replace", "cot_rewrite", "augment")


@dataclass(frozen=True)
class Planned:
    spec: dict[str, Any] | None  # the job's spec; None: nothing to run (the step is done at once)
    why: dict[str, Any] = field(default_factory=dict)


def eval_sets(state: dict[str, Any], spec: LoopSpec) -> list[tuple[str, str]]:
    """(label, dataset reference) of every set an evaluation scores, validation first."""
    version = state["eval_data"]
    sets = [("validation", f"{version}:val"), ("test", f"{version}:test")]
    for ref in state.get("heldout", spec.heldout):  # fixed to versions when the loop started
        sets.append((ref.split("@")[0].split(":")[0], ref if ":" in ref else f"{ref}:all"))
    if state.get("probe"):
        sets.append(("probe", f"{state['probe']}:all"))
    return sets


def suite(state: dict[str, Any], spec: LoopSpec) -> dict[str, Any]:
    """The loop's evaluation suite (a ``SuiteSpec`` as a dict): every set of :func:`eval_sets`, the
    splits and the probe sampled to ``eval_items``, the held-out sets to ``heldout_items``, the loop's
    decoding tools. The baseline, every iteration and ``benchmarks/loop.py`` score through it."""
    refs = [ref for _, ref in eval_sets(state, spec)]
    heldout = refs[2 : len(refs) - (1 if state.get("probe") else 0)]  # between the splits and the probe
    return {
        "name": "loop",
        "datasets": refs,
        "max_items": spec.eval_items,
        # a loop started before held-out sets were scored in full goes on sampling them like the splits
        "items": dict.fromkeys(heldout, state.get("heldout_items", spec.eval_items)),
        "tools": state.get("tools", []),  # a loop started before tools existed decodes without
    }


def build(ctx: Context, row: Loop, spec: LoopSpec, phase: Phase) -> Planned:
    state = row.state
    if phase == Phase.ANALYZE:
        return Planned(
            {"data": state["source"], "intent": spec.intent, "sample": 1000}, {"data": state["source"]}
        )
    if phase == Phase.SPLIT:  # the version analysed, not whatever is latest now
        return Planned({"data": state["analyzed"], "seed": spec.seed})
    if phase == Phase.REPAIR:
        return _repair(ctx, row, spec)
    if phase in (Phase.BASELINE, Phase.EVALUATE):
        model = spec.base_model if phase == Phase.BASELINE else state["runs"][str(row.iteration)]
        return Planned({"model": model, "suite": suite(state, spec)}, {"model": model})
    if phase == Phase.TRAIN:
        from imts.train.spec import RunSpec

        start = _start_from(spec, state, row.iteration)
        run = RunSpec.from_sources(
            overrides=spec.train, base_model=spec.base_model, data=state["data"], seed=spec.seed,
            init_from=start,
        )  # fmt: skip
        model_name = f"loop-{row.name}"
        why = {"data": state["data"], **({"init_from": start} if start else {})}
        return Planned({"run": run.model_dump(mode="json"), "model_name": model_name}, why)
    if phase == Phase.FEEDBACK:
        return Planned({"loop": row.id, "iteration": row.iteration})
    raise AssertionError(f"no job for {phase}")


def _start_from(spec: LoopSpec, state: dict[str, Any], iteration: int) -> str | None:
    """The run whose adapters this iteration's training goes on from: the best model so far (None: the
    first iteration, or ``continue_training`` off)."""
    from imts.flywheel.machine import Outcome, best

    if not spec.continue_training or iteration <= 1:
        return None
    top = best(spec, [Outcome.model_validate(o) for o in state.get("outcomes", [])])
    return state["runs"][str(top.iteration)] if top else None


def _repair(ctx: Context, row: Loop, spec: LoopSpec) -> Planned:
    """The first repair acts on the analysis's findings; later ones on the feedback's data actions."""
    from imts.core.errors import InputError
    from imts.optimise.spec import FixSpec

    state = row.state
    if row.iteration <= 1:
        from imts.analysis.service import get_analysis

        analysis = get_analysis(ctx, state["analyzed"], state.get("analysis"))
        findings = [f for f in analysis.findings if f.action.value in REPAIRS]
        fix: dict[str, Any] = {"findings": [f.model_dump(mode="json") for f in findings]}
        why = {"findings": [{"kind": f.kind.value, "en": f.message_en, "zh": f.message_zh} for f in findings]}
    else:
        fix = dict(state.get("next_fix") or {})
        why = {"actions": state.get("next_actions", [])}
    try:
        teacher = spec.model_dump(include={"teacher", "teacher_url", "teacher_model"})
        seed = spec.seed + row.iteration
        parsed = FixSpec.model_validate({**fix, **teacher, "data": state["data"], "seed": seed})
        parsed.resolved()
    except InputError as exc:  # nothing to do: the training data stays as it is
        return Planned(None, {**why, "skipped_en": str(exc).split(" / ")[0], "nothing_to_do": True})
    return Planned(parsed.model_dump(mode="json"), why)


def record(state: dict[str, Any], iteration: int, phase: Phase, result: dict[str, Any]) -> dict[str, Any]:
    """The loop's state once ``phase`` of ``iteration`` has ``result``."""
    it = str(iteration)
    if result.get("skipped"):
        if phase == Phase.REPAIR and iteration <= 1:
            state["eval_data"] = state["data"]
        return state
    if phase == Phase.ANALYZE:
        state["analysis"], state["analyzed"] = result.get("analysis"), result.get("version")
    elif phase == Phase.SPLIT:
        state["split"] = state["data"] = result["version"]
    elif phase == Phase.REPAIR:
        state["data"] = result["version"]
        if iteration <= 1:
            state["eval_data"] = result["version"]
    elif phase == Phase.BASELINE:
        state["baseline"] = result["run_ids"]
    elif phase == Phase.TRAIN:
        state.setdefault("runs", {})[it] = result["run_id"]
    elif phase == Phase.EVALUATE:
        state.setdefault("evals", {})[it] = result["run_ids"]
    elif phase == Phase.FEEDBACK:
        state.setdefault("models", {})[it] = result.get("model_version")
        state["outcomes"] = [*state.get("outcomes", []), result["outcome"]]
        state["next_fix"] = result.get("fix") or {}
        state["next_actions"] = [
            {"kind": a["kind"], "en": a["why_en"], "zh": a["why_zh"]} for a in result.get("actions", [])
        ]
    return state
