"""What every judge takes and returns, and how judges are scored against labelled verdicts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

VERDICTS = ("correct", "wrong_answer", "wrong_step", "unsafe")


@dataclass(frozen=True)
class JudgeItem:
    """One answer to judge: the question, the model's answer and the expected final answer."""

    id: str
    question: str
    answer: str
    reference: str
    category: str = ""


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict on one item with its reasons.

    ``score`` is 1.0 for an acceptable answer and 0.0 for a rejected one (LLM judges may grade between).
    """

    item_id: str
    judge: str
    verdict: str
    score: float
    rationale: str
    first_wrong_step: int | None = None  # 1-based, for judges that check steps
    details: dict[str, object] = field(default_factory=dict)
    calls: int = 0  # backend calls spent on this item
    tokens: int = 0  # backend tokens spent on this item


class Judge(Protocol):
    """A judge is just another evaluation function, chosen by name."""

    name: str

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgement]: ...


@dataclass(frozen=True)
class Agreement:
    """A judge's agreement with labelled verdicts."""

    n: int
    accuracy: float
    kappa: float
    confusion: dict[str, dict[str, int]]


def cohen_kappa(predicted: Sequence[str], expected: Sequence[str]) -> float:
    """Cohen's kappa: agreement beyond what the two label distributions give by chance."""
    n = len(expected)
    if n == 0 or len(predicted) != n:
        raise ValueError("need the same, non-zero number of predicted and expected labels")
    observed = sum(p == e for p, e in zip(predicted, expected, strict=True)) / n
    pc, ec = Counter(predicted), Counter(expected)
    chance = sum(pc[k] * ec[k] for k in set(pc) | set(ec)) / (n * n)
    return 1.0 if chance == 1 else (observed - chance) / (1 - chance)


def agreement(predicted: Sequence[str], expected: Sequence[str]) -> Agreement:
    confusion: dict[str, dict[str, int]] = {}
    for p, e in zip(predicted, expected, strict=True):
        row = confusion.setdefault(e, {})
        row[p] = row.get(p, 0) + 1
    accuracy = sum(p == e for p, e in zip(predicted, expected, strict=True)) / len(expected)
    return Agreement(len(expected), accuracy, cohen_kappa(predicted, expected), confusion)
