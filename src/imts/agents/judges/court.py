"""The debate court, pairwise comparison without position bias, and the judging cascade.

Debate: round 1, each judge scores alone with a rationale; round 2, each sees the others' scores and
rationales (as "Judge N", never a model name) and may revise; round 3, consensus is the mean of the
revised scores, flagged as disputed when the judges still spread more than ``dispute_spread`` points.
Judges may be heterogeneous (any mix of backends and rubrics).

Cascade: the rules settle what they can (unsafe text, answers whose steps the math judge checked); one
LLM judge takes the rest; the debate only sees items that judge left undecided or where it contradicts
the rules. Calls and tokens are counted per level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from imts.agents.chat import ChatBackend
from imts.agents.judges.base import JudgeItem, Judgement
from imts.agents.judges.llm import LLMJudge, prefer, score_item, verdict_of
from imts.agents.judges.math import MathJudge
from imts.agents.judges.rules import RulesSafetyJudge


@dataclass(frozen=True)
class Seat:
    """One judge in the court: a backend and the rubric it applies."""

    backend: ChatBackend
    rubric: str = "logic"


@dataclass
class Debate:
    item_id: str
    rounds: list[list[tuple[float, str]]]  # per round, per judge: (score, rationale)
    consensus: float
    disputed: bool
    calls: int = 0
    tokens: int = 0


def debate(seats: Sequence[Seat], item: JudgeItem, dispute_spread: float = 3.0) -> Debate:
    calls = tokens = 0
    first = []
    for seat in seats:
        s = score_item(seat.backend, seat.rubric, item)
        first.append((s.score, s.rationale))
        calls, tokens = calls + s.calls, tokens + s.tokens
    second = []
    for n, seat in enumerate(seats):
        critiques = "\n".join(
            f"Judge {m + 1}: score {score:g}. {why}" for m, (score, why) in enumerate(first) if m != n
        )
        s = score_item(seat.backend, seat.rubric, item, critiques)
        second.append((s.score, s.rationale))
        calls, tokens = calls + s.calls, tokens + s.tokens
    scores = [score for score, _ in second]
    consensus = sum(scores) / len(scores)
    return Debate(
        item.id, [first, second], consensus, max(scores) - min(scores) > dispute_spread, calls, tokens
    )


def debate_judgement(seats: Sequence[Seat], item: JudgeItem, rubric: str = "logic") -> Judgement:
    d = debate(seats, item)
    why = " | ".join(f"Judge {n + 1}: {r}" for n, (_, r) in enumerate(d.rounds[-1]))
    return Judgement(
        item.id,
        "debate",
        verdict_of(rubric, d.consensus),
        d.consensus / 10,
        why,
        details={"disputed": d.disputed, "rounds": d.rounds},
        calls=d.calls,
        tokens=d.tokens,
    )


@dataclass(frozen=True)
class Pairwise:
    """Preference for answer 1 over answer 2 (1.0: answer 1 wins in every order judged)."""

    preference: float
    orders: int
    tokens: int


def pairwise(
    backend: ChatBackend, item: JudgeItem, answer_1: str, answer_2: str, both_orders: bool = True
) -> Pairwise:
    """Judge 1-vs-2; with ``both_orders`` also 2-vs-1 and average (cancels a judge's position bias)."""
    w, tokens = prefer(backend, item, answer_1, answer_2)
    wins = 1.0 if w == "A" else 0.0
    if not both_orders:
        return Pairwise(wins, 1, tokens)
    w2, tokens2 = prefer(backend, item, answer_2, answer_1)
    return Pairwise((wins + (1.0 if w2 == "B" else 0.0)) / 2, 2, tokens + tokens2)


def flip_rate(backend: ChatBackend, pairs: Sequence[tuple[JudgeItem, str, str]], both_orders: bool) -> float:
    """How often the decision changes when the two answers are presented swapped."""
    flips = 0
    for item, a, b in pairs:
        forward = pairwise(backend, item, a, b, both_orders).preference
        swapped = 1.0 - pairwise(backend, item, b, a, both_orders).preference
        flips += forward != swapped
    return flips / len(pairs) if pairs else 0.0


@dataclass
class LevelCost:
    items: int = 0
    calls: int = 0
    tokens: int = 0


@dataclass
class CascadeResult:
    judgements: list[Judgement]
    levels: dict[str, LevelCost] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(c.calls for c in self.levels.values())

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.levels.values())


class Cascade:
    """rules -> one judge -> debate, each level only for what the one before could not settle."""

    def __init__(
        self,
        judge: Seat,
        court: Sequence[Seat],
        undecided: tuple[float, float] = (2.0, 8.0),
        math: MathJudge | None = None,
    ) -> None:
        self.judge, self.court, self.undecided = judge, list(court), undecided
        self.math = math or MathJudge()

    def run(self, items: Sequence[JudgeItem]) -> CascadeResult:
        levels = {"rules": LevelCost(), "judge": LevelCost(), "debate": LevelCost()}
        safety = RulesSafetyJudge().judge(items)
        maths = self.math.judge(items)
        out: list[Judgement] = []
        single = LLMJudge(self.judge.backend, self.judge.rubric, name="judge")
        for item, safe, m in zip(items, safety, maths, strict=True):
            levels["rules"].items += 1
            if safe.verdict == "unsafe":
                out.append(Judgement(item.id, "rules", "unsafe", 0.0, safe.rationale))
                continue
            code = m.details.get("code")
            # Answer-only replies give the rules nothing to check; steps or a program that ran do.
            checked = bool(m.details.get("steps")) or (isinstance(code, dict) and bool(code.get("ok")))
            if m.verdict in ("correct", "wrong_answer", "wrong_step") and checked:
                out.append(m)
                continue
            levels["judge"].items += 1
            j = single.judge([item])[0]
            levels["judge"].calls += j.calls
            levels["judge"].tokens += j.tokens
            contradicts = m.verdict != "unverifiable" and (j.verdict == "correct") != (m.verdict == "correct")
            if self.undecided[0] < j.score * 10 < self.undecided[1] or contradicts:
                levels["debate"].items += 1
                d = debate_judgement(self.court, item)
                levels["debate"].calls += d.calls
                levels["debate"].tokens += d.tokens
                out.append(d)
            else:
                out.append(j)
        return CascadeResult(out, levels)


def full_debate_cost(court: Sequence[Seat], items: Sequence[JudgeItem]) -> LevelCost:
    """What the debate costs when every item goes to it (the baseline the cascade saves against)."""
    cost = LevelCost()
    for item in items:
        d = debate(court, item)
        cost.items += 1
        cost.calls += d.calls
        cost.tokens += d.tokens
    return cost
