"""Score the model's answers to a task's examples: per item, the suite's metrics, and its judges."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from imts.agents.judges.base import JudgeItem
from imts.agents.judges.registry import make_judge
from imts.evals import textmetrics as tm
from imts.evals.report import ItemOutcome
from imts.evals.tasks import Example, ItemScore, SftTask, Task, examples


@dataclass
class Scored:
    items: list[ItemOutcome]
    extra: dict[str, dict[str, tuple[float, str | None, str | None]]] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)  # each item's 0-1 score (``EvalItem.score``)


def score_task(
    task: Task,
    items: Sequence[Example],
    texts: Sequence[str],
    metrics: Sequence[str],
    judges: Sequence[str],
    model_loader: Callable[[], tuple[Any, Any]] | None = None,
) -> Scored:
    """Per-item outcomes and scores (``extra[item_id][name] = (value, verdict, rationale)``).

    Args:
        items: the task's examples, in the order of ``texts``.
        texts: the model's prediction for each example.
        metrics: names from ``textmetrics.METRICS``; one that needs the model is skipped without a loader.
        judges: names from ``agents.judges.base.JUDGES`` (those without a chat backend).
    """
    per: list[ItemScore] = [task.score(e, t) for e, t in zip(items, texts, strict=True)]
    outcomes = [
        ItemOutcome(
            item_id=e.id,
            category=e.category,
            lang=e.lang,
            prompt=e.prompt[-1]["content"],
            reference=e.reference,
            prediction=t,
            extracted=s.extracted,
            correct=s.correct,
        )
        for e, t, s in zip(items, texts, per, strict=True)
    ]
    out = Scored(outcomes, {i.item_id: {} for i in outcomes}, scores=[s.score for s in per])
    out.summary["exact_match"] = tm.accuracy([i.correct for i in outcomes])
    data = tm.MetricInput(
        predictions=list(texts),
        references=[e.reference_text for e in items],
        answers=[e.reference for e in items],
        extracted=[s.extracted for s in per],
        correct=[s.correct for s in per],
        prompts=[e.prompt for e in items],
        model_loader=model_loader,
    )
    for name in metrics:
        m = tm.metric(name)
        if m.needs == "model" and model_loader is None:
            continue
        result = m.compute(data)
        out.summary.update(result.summary)
        for i, v in zip(outcomes, result.per_item or [], strict=False):
            out.extra[i.item_id][name] = (v, None, None)
    out.summary.update(task.summarise(items, per))
    judge_items = [JudgeItem(i.item_id, i.prompt, i.prediction, i.reference, i.category) for i in outcomes]
    for name in judges:
        verdicts = make_judge(name).judge(judge_items)
        for j in verdicts:
            out.extra[j.item_id][f"judge:{name}"] = (j.score, j.verdict, j.rationale)
        out.summary[f"judge_{name}"] = sum(j.score for j in verdicts) / len(verdicts)
    return out


def score(
    rows: Sequence[dict[str, Any]],
    texts: Sequence[str],
    metrics: Sequence[str],
    judges: Sequence[str],
    model_loader: Callable[[], tuple[Any, Any]] | None = None,
) -> Scored:
    """:func:`score_task` for SFT rows (training's validation scores its generations with it)."""
    task = SftTask(rows)
    return score_task(task, examples(task), texts, metrics, judges, model_loader)
