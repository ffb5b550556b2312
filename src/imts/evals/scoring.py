"""Score generated answers: exact match per item, the suite's text metrics, and its judges."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from imts.agents.judges.base import JudgeItem
from imts.evals import textmetrics as tm
from imts.evals.metrics import extract_number, numeric_match, reference_answer
from imts.evals.report import ItemOutcome


@dataclass
class Scored:
    items: list[ItemOutcome]
    extra: dict[str, dict[str, tuple[float, str | None, str | None]]] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)


def score(
    rows: Sequence[dict[str, Any]],
    texts: Sequence[str],
    metrics: Sequence[str],
    judges: Sequence[str],
    model_loader: Callable[[], tuple[Any, Any]] | None = None,
) -> Scored:
    """Per-item outcomes and scores (``extra[item_id][name] = (value, verdict, rationale)``)."""
    items = []
    for r, text in zip(rows, texts, strict=True):
        reference = reference_answer(r.get("answer"), r["messages"][-1]["content"])
        extracted = extract_number(text)
        items.append(
            ItemOutcome(
                item_id=r["id"],
                category=r.get("category") or "uncategorised",
                lang=r.get("lang") or "",
                prompt=r["messages"][-2]["content"],
                reference=reference,
                prediction=text,
                extracted=extracted,
                correct=numeric_match(extracted, reference),
            )
        )
    out = Scored(items, {i.item_id: {} for i in items})
    out.summary["exact_match"] = tm.accuracy([i.correct for i in items])
    full_refs = [r["messages"][-1]["content"] for r in rows]
    if "rouge_l" in metrics:
        values = [tm.rouge_l(t, ref) for t, ref in zip(texts, full_refs, strict=True)]
        for i, v in zip(items, values, strict=True):
            out.extra[i.item_id]["rouge_l"] = (v, None, None)
        out.summary["rouge_l"] = sum(values) / len(values)
    if "bleu" in metrics:
        out.summary["bleu"] = tm.bleu(list(texts), full_refs)
    if "distinct_2" in metrics:
        out.summary["distinct_2"] = tm.distinct_n(list(texts), 2)
    if "f1" in metrics:  # the extracted answer as a label against the reference label
        prf = tm.precision_recall_f1([i.extracted or "" for i in items], [i.reference for i in items])
        out.summary.update({f"answer_{k}": v for k, v in prf.items()})
    if "perplexity" in metrics and model_loader is not None:
        tokenizer, model = model_loader()
        out.summary["perplexity"] = tm.perplexity(
            tokenizer, model, [r["messages"][:-1] for r in rows], full_refs
        )
    judge_items = [JudgeItem(i.item_id, i.prompt, i.prediction, i.reference, i.category) for i in items]
    for name in judges:
        judge = _judge(name)
        verdicts = judge.judge(judge_items)
        for j in verdicts:
            out.extra[j.item_id][f"judge:{name}"] = (j.score, j.verdict, j.rationale)
        out.summary[f"judge_{name}"] = sum(j.score for j in verdicts) / len(verdicts)
    return out


def _judge(name: str) -> Any:
    if name == "math":
        from imts.agents.judges.math import MathJudge

        return MathJudge()
    from imts.agents.judges.rules import RulesSafetyJudge

    return RulesSafetyJudge()
