"""The loop's rules as pure functions: which step follows which, when to stop, which model is best.

No clock, no processes, no database (``jobs/machine.py`` is the model): the driver (``flywheel/driver.py``)
reads the store, asks these functions, and writes back. An iteration is::

    1:   analyze -> split -> repair -> baseline -> train -> evaluate -> feedback
    2..: [approval] -> repair -> train -> evaluate -> feedback

The split comes before the repair so that the validation and test items are fixed for the whole loop
(paired tests compare the same items) and nothing generated can land in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field

from imts.flywheel.spec import LoopSpec


class Phase(StrEnum):
    ANALYZE = "analyze"
    SPLIT = "split"
    REPAIR = "repair"
    BASELINE = "baseline"
    TRAIN = "train"
    EVALUATE = "evaluate"
    FEEDBACK = "feedback"
    APPROVAL = "approval"  # waits for a person (policy: approve); no job


class Status(StrEnum):
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    STOPPED = "stopped"  # by its user; resumable
    FAILED = "failed"  # a step failed; resumable (the step is tried again)
    FINISHED = "finished"  # a stop rule ended it; ``stop_reason`` says which


ACTIVE = (Status.RUNNING, Status.AWAITING_APPROVAL)
FIRST = (
    Phase.ANALYZE,
    Phase.SPLIT,
    Phase.REPAIR,
    Phase.BASELINE,
    Phase.TRAIN,
    Phase.EVALUATE,
    Phase.FEEDBACK,
)
LATER = (Phase.REPAIR, Phase.TRAIN, Phase.EVALUATE, Phase.FEEDBACK)

# Which job kind runs each phase.
KIND = {
    Phase.ANALYZE: "analyze",
    Phase.SPLIT: "split",
    Phase.REPAIR: "data_fix",
    Phase.BASELINE: "eval",
    Phase.TRAIN: "train",
    Phase.EVALUATE: "eval",
    Phase.FEEDBACK: "loop_feedback",
}


def phases(iteration: int, policy: str) -> tuple[Phase, ...]:
    if iteration <= 1:
        return FIRST
    return ((Phase.APPROVAL,) if policy == "approve" else ()) + LATER


def following(iteration: int, phase: Phase, policy: str) -> tuple[int, Phase]:
    """The step after ``phase`` of ``iteration`` (after feedback: the next iteration's first)."""
    order = phases(iteration, policy)
    at = order.index(phase)
    if at + 1 < len(order):
        return iteration, order[at + 1]
    return iteration + 1, phases(iteration + 1, policy)[0]


class Score(BaseModel):
    """Accuracy on one evaluation set."""

    correct: int
    total: int
    by_category: dict[str, tuple[int, int]] = Field(default_factory=dict)
    by_lang: dict[str, tuple[int, int]] = Field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


class Outcome(BaseModel):
    """What one iteration's feedback measured: the numbers the stop rules read."""

    iteration: int
    run_id: str
    decision: float  # accuracy on the set that picks the best model (validation)
    target_score: float  # accuracy on the set the target is on
    probe_drop: float | None = None  # base model's probe accuracy minus this one's (> 0: forgot)
    p_vs_best: float = 1.0  # paired test against the best model so far, on the decision set
    gain_vs_best: float = 0.0
    replayed: bool = False  # this iteration's data mixed in replay rows against forgetting
    actions: int = 0  # data actions proposed for the next iteration


@dataclass(frozen=True)
class Spent:
    cpu_hours: float = 0.0
    gpu_hours: float = 0.0
    tokens: int = 0
    generated_items: int = 0


def forgets(spec: LoopSpec, o: Outcome) -> bool:
    return o.probe_drop is not None and o.probe_drop > spec.forgetting_tolerance


def best(spec: LoopSpec, outcomes: list[Outcome]) -> Outcome | None:
    """The best iteration, champion and challenger: the first that keeps the general probe within the
    tolerance, replaced only by a later one that keeps it too and beats it significantly on the decision
    set (its paired test against the best so far, :func:`significant`): a higher validation score that
    is not significant is what the plateau rule already counts as no gain. If no iteration keeps the
    probe, the one that forgets least."""
    top = None
    for o in outcomes:
        if not forgets(spec, o) and (top is None or significant(spec, o)):
            top = o
    if top is not None or not outcomes:
        return top
    return min(outcomes, key=lambda o: (o.probe_drop or 0.0, -o.decision, o.iteration))


def significant(spec: LoopSpec, o: Outcome) -> bool:
    return o.gain_vs_best > 0 and o.p_vs_best < spec.alpha


def budget_spent(spec: LoopSpec, spent: Spent) -> str | None:
    """Which budget is used up, if any."""
    b = spec.budget
    for name, limit, used in (
        ("cpu_hours", b.cpu_hours, spent.cpu_hours),
        ("gpu_hours", b.gpu_hours, spent.gpu_hours),
        ("tokens", b.tokens, spent.tokens),
        ("generated_items", b.generated_items, spent.generated_items),
    ):
        if limit is not None and used >= limit:
            return f"budget:{name}"
    return None


def stop_reason(spec: LoopSpec, outcomes: list[Outcome], spent: Spent) -> str | None:
    """Why the loop ends after its latest feedback (None: go on). In this order: the target, forgetting
    that replay did not cure, the budget, the iteration limit, no significant gain for ``patience``
    iterations, nothing left to fix."""
    if not outcomes:
        return None
    last = outcomes[-1]
    if spec.target is not None and last.target_score >= spec.target and not forgets(spec, last):
        return "target"
    if forgets(spec, last) and last.replayed:
        return "forgetting"
    spent_on = budget_spent(spec, spent)
    if spent_on:
        return spent_on
    if last.iteration >= spec.max_iterations:
        return "max_iterations"
    stale = 0
    for o in reversed(outcomes[1:]):  # the first trained iteration is the reference, not a plateau
        if significant(spec, o):
            break
        stale += 1
    if stale >= spec.patience:
        return "plateau"
    if last.actions == 0 and not forgets(spec, last):
        return "nothing_to_fix"
    return None


REASONS = {
    "target": ("the target was reached", "已达到目标"),
    "forgetting": (
        "general ability dropped beyond the tolerance even with replay data; the best model is kept",
        "即使混入回放数据，通用能力下降仍超出容忍度；保留最佳模型",
    ),
    "budget:cpu_hours": ("the CPU-hour budget is spent", "CPU 时长预算已用完"),
    "budget:gpu_hours": ("the GPU-hour budget is spent", "GPU 时长预算已用完"),
    "budget:tokens": ("the token budget is spent", "训练 token 预算已用完"),
    "budget:generated_items": ("the generated-item budget is spent", "生成条目预算已用完"),
    "max_iterations": ("the iteration limit was reached", "已达到最大迭代次数"),
    "plateau": ("no significant gain for the patience's iterations", "连续多轮没有显著提升"),
    "nothing_to_fix": ("the feedback found nothing the data could fix", "反馈未发现可通过数据修复的问题"),
    "refused": ("the analysis refused the data for the intent", "数据分析判定数据不符合目标"),
}


def reason_text(reason: str | None, lang: str = "en") -> str:
    if not reason:
        return ""
    en, zh = REASONS.get(reason, (reason, reason))
    return zh if lang.startswith("zh") else en
