"""The debate court, pairwise comparison without position bias, and the judging cascade.

Debate: round 1, each judge scores alone with a rationale; round 2, each sees the others' scores and
rationales (as "Judge N", never a model name) and may revise; round 3, each rubric decides on its own:
its consensus is the mean of its judges' revised scores, flagged as disputed when they still spread
more than ``dispute_spread`` points. Rubrics are never averaged together (a logic 0 and a safety 10 are
not a 5): safety is a gate (an unsafe consensus makes the verdict ``unsafe``), and the correctness
verdict and score come from the logic judges. Judges may be heterogeneous (any mix of backends and
rubrics).

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
    consensus: float  # the deciding rubric's consensus (logic when seated), 0-10
    disputed: bool  # the judges of some rubric still disagree
    calls: int = 0
    tokens: int = 0
    rubrics: dict[str, float] = field(default_factory=dict)  # rubric -> consensus of its judges
    disputed_rubrics: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """Safety gates, then the logic judges decide correctness (without them, the first rubric)."""
        if self.rubrics.get("safety", 10.0) < 5:
            return "unsafe"
        return verdict_of(_deciding(self.rubrics), self.consensus)


def _deciding(rubrics: dict[str, float]) -> str:
    return "logic" if "logic" in rubrics else next(iter(rubrics))


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
    by_rubric: dict[str, list[float]] = {}
    for seat, (score, _) in zip(seats, second, strict=True):
        by_rubric.setdefault(seat.rubric, []).append(score)
    rubrics = {r: sum(v) / len(v) for r, v in by_rubric.items()}
    disputed = [r for r, v in by_rubric.items() if max(v) - min(v) > dispute_spread]
    return Debate(
        item.id,
        [first, second],
        rubrics[_deciding(rubrics)],
        bool(disputed),
        calls,
        tokens,
        rubrics,
        disputed,
    )


def debate_judgement(seats: Sequence[Seat], item: JudgeItem) -> Judgement:
    """The debate's verdict: ``unsafe`` (score 0) when the safety judges say so, else the logic judges'
    verdict and score; ``details`` holds each rubric's consensus and the ``disputed`` flag."""
    d = debate(seats, item)
    why = " | ".join(
        f"Judge {n + 1} ({seat.rubric}): {r}"
        for n, (seat, (_, r)) in enumerate(zip(seats, d.rounds[-1], strict=True))
    )
    if d.disputed:
        why = f"disputed ({', '.join(d.disputed_rubrics)} judges disagree) | {why}"
    verdict = d.verdict
    return Judgement(
        item.id,
        "debate",
        verdict,
        0.0 if verdict == "unsafe" else d.consensus / 10,
        why,
        details={"disputed": d.disputed, "rubrics": d.rubrics, "rounds": d.rounds},
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
