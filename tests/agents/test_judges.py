from __future__ import annotations

from types import ModuleType

import pytest

from imts.agents.backends import RulesBackend
from imts.agents.chat import ChatReply
from imts.agents.judges import fixture
from imts.agents.judges.base import JudgeItem, agreement, cohen_kappa
from imts.agents.judges.court import (
    Cascade,
    Seat,
    debate,
    debate_judgement,
    flip_rate,
    full_debate_cost,
    pairwise,
)
from imts.agents.judges.llm import LLMJudge
from imts.agents.judges.math import MathJudge, extract_steps
from imts.agents.judges.rules import RulesSafetyJudge, exact_value


@pytest.fixture(scope="module")
def labelled(mathgen: ModuleType) -> list[fixture.Labelled]:
    rows, _ = mathgen.generate(400, 0)
    return fixture.build(rows)


def test_fixture_has_all_four_kinds(labelled: list[fixture.Labelled]) -> None:
    counts = {
        k: sum(x.expected == k for x in labelled) for k in ("correct", "wrong_answer", "wrong_step", "unsafe")
    }
    assert counts == {"correct": 45, "wrong_answer": 45, "wrong_step": 45, "unsafe": 20}
    assert len({x.item.id for x in labelled}) == len(labelled) >= 150


def test_extract_steps_chains_and_symbols() -> None:
    steps = extract_steps("2 + 3 = 5 * 4 = 20，(12 - 4) / 2 = 4, 85 x 7 = 595, 6 × 7 = 42. 坐25 * 3 = 75人")
    assert [(s.expression.strip(), s.claimed) for s in steps] == [
        ("2 + 3", "5"), ("5 * 4", "20"), ("(12 - 4) / 2", "4"), ("85 x 7", "595"), ("6 × 7", "42"),
        ("25 * 3", "75"),
    ]  # fmt: skip
    assert exact_value("(12 - 4) / 3") == pytest.approx(8 / 3) and exact_value("__import__('os')") is None


def test_math_judge_agrees_with_labels(labelled: list[fixture.Labelled]) -> None:
    maths = [x for x in labelled if x.expected != "unsafe"]
    got = MathJudge().judge([x.item for x in maths])
    a = agreement([j.verdict for j in got], [x.expected for x in maths])
    assert a.n == 135 and a.accuracy >= 0.95 and a.kappa >= 0.9
    wrong_step = next(j for j, x in zip(got, maths, strict=True) if x.expected == "wrong_step")
    assert wrong_step.first_wrong_step == 1 and "is wrong" in wrong_step.rationale


def test_safety_rules_and_rubric_judges_agree(labelled: list[fixture.Labelled]) -> None:
    items = [x.item for x in labelled]
    expected_safety = ["unsafe" if x.expected == "unsafe" else "safe" for x in labelled]
    rules = agreement([j.verdict for j in RulesSafetyJudge().judge(items)], expected_safety)
    rubric = agreement([j.verdict for j in LLMJudge(RulesBackend(), "safety").judge(items)], expected_safety)
    assert rules.accuracy >= 0.95 and rubric.accuracy >= 0.95 and rules.kappa > 0.8
    logic = [x for x in labelled if x.expected != "unsafe"]
    judged = LLMJudge(RulesBackend(), "logic").judge([x.item for x in logic])
    assert agreement([j.verdict for j in judged], [x.expected for x in logic]).accuracy >= 0.95
    assert all(j.calls == 1 and j.tokens > 0 for j in judged)


def test_cohen_kappa_values() -> None:
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == 1.0
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == 0.0


class Stubborn:
    """A backend that always gives the same score and always prefers the first answer shown."""

    def __init__(self, score: float) -> None:
        self.name, self.score, self.seen = f"stubborn-{score}", score, []

    def chat(self, messages, max_tokens=256, temperature=0.0):  # type: ignore[no-untyped-def]
        text = messages[-1]["content"]
        self.seen.append(text)
        if "ANSWER A" in text:
            return ChatReply('{"winner": "A", "rationale": "first looks fine"}', 10, 5)
        return ChatReply(f'{{"score": {self.score}, "rationale": "I say {self.score}"}}', 10, 5)


def test_debate_rounds_hide_names_and_flag_disputes() -> None:
    item = JudgeItem("i1", "What is 2 + 2?", "2 + 2 = 4. The answer is 4.", "4")
    low, high = Stubborn(1), Stubborn(9)
    d = debate([Seat(low), Seat(high), Seat(RulesBackend())], item)
    assert len(d.rounds) == 2 and d.calls == 6 and d.disputed
    assert d.consensus == pytest.approx((1 + 9 + 10) / 3)
    critiques = low.seen[-1].split("CRITIQUES:\n", 1)[1]
    assert (
        critiques.startswith("Judge 2: score 9.") and "stubborn" not in critiques and "rules" not in critiques
    )
    agree = debate([Seat(RulesBackend()), Seat(Stubborn(9))], item)
    assert not agree.disputed


def test_pairwise_both_orders_removes_position_bias() -> None:
    item = JudgeItem("p", "What is 2 + 2?", "", "4")
    biased = Stubborn(5)
    assert pairwise(biased, item, "4", "5", both_orders=False).preference == 1.0
    assert pairwise(biased, item, "4", "5").preference == 0.5
    pairs = [(item, "The answer is 4.", "The answer is 4!"), (item, "4", "3")]
    assert flip_rate(RulesBackend(), pairs, both_orders=False) == 0.5  # the tie flips with the order
    assert flip_rate(RulesBackend(), pairs, both_orders=True) == 0.0


def test_cascade_costs_less_than_full_debate(labelled: list[fixture.Labelled]) -> None:
    items = [x.item for x in labelled]
    court = [Seat(RulesBackend(), "logic"), Seat(Stubborn(4))]
    result = Cascade(Seat(RulesBackend()), court, math=MathJudge(timeout_s=1.5, cpu_s=1)).run(items)
    assert len(result.judgements) == len(items)
    levels = result.levels
    assert levels["rules"].items == len(items) and levels["rules"].calls == 0
    assert 0 < levels["judge"].items < len(items) // 4 and levels["judge"].calls == levels["judge"].items
    by_id = {j.item_id: j for j in result.judgements}
    assert all(by_id[x.item.id].verdict == "unsafe" for x in labelled if x.expected == "unsafe")
    full = full_debate_cost(court, items[:20])
    assert full.calls == 20 * 4 and result.calls < full.calls * len(items) / 20 / 10


def test_cascade_sends_undecided_items_to_the_debate(labelled: list[fixture.Labelled]) -> None:
    items = [x.item for x in labelled]
    court = [Seat(RulesBackend(), "logic"), Seat(Stubborn(9))]
    # The single judge never decides.
    result = Cascade(Seat(Stubborn(5)), court, math=MathJudge(timeout_s=1.5, cpu_s=1)).run(items)
    levels = result.levels
    assert levels["debate"].items == levels["judge"].items > 0
    assert levels["debate"].calls == 4 * levels["debate"].items
    debated = [j for j in result.judgements if j.judge == "debate"]
    assert all(j.verdict == "correct" and not j.details["disputed"] for j in debated)  # 10 and 9 agree


def test_debate_decides_per_rubric_and_never_averages_them() -> None:
    wrong = JudgeItem("w", "What is 2 + 2?", "2 + 2 = 5. The answer is 5.", "4")
    # A logic and a safety judge: the wrong answer is harmless (safety 10) and wrong (logic 0).
    j = debate_judgement([Seat(RulesBackend(), "logic"), Seat(RulesBackend(), "safety")], wrong)
    assert j.verdict == "wrong_answer" and j.score == 0.0, (j.verdict, j.score)
    assert j.details["rubrics"] == {"logic": 0.0, "safety": 10.0} and j.details["disputed"] is False
    right = JudgeItem("r", "What is 2 + 2?", "2 + 2 = 4. The answer is 4.", "4")
    assert (
        debate_judgement([Seat(RulesBackend(), "logic"), Seat(RulesBackend(), "safety")], right).score == 1.0
    )
    # Safety is a gate: an unsafe consensus makes the verdict unsafe whatever the logic judges say.
    gated = debate_judgement([Seat(RulesBackend(), "logic"), Seat(Stubborn(1), "safety")], right)
    assert gated.verdict == "unsafe" and gated.score == 0.0
    # Disputed means judges of one rubric disagree; a logic 10 beside a safety 0 is no dispute.
    d = debate([Seat(Stubborn(1)), Seat(Stubborn(9)), Seat(RulesBackend(), "safety")], right)
    assert d.disputed and d.disputed_rubrics == ["logic"] and d.rubrics["logic"] == 5.0
    split = debate_judgement([Seat(Stubborn(1)), Seat(Stubborn(9))], right)
    assert split.details["disputed"] is True and split.rationale.startswith("disputed (logic judges")
