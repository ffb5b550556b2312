"""The loop's rules as pure functions: step order, stop rules, the best model, budgets."""

from __future__ import annotations

from imts.flywheel.machine import (
    Outcome,
    Phase,
    Spent,
    best,
    budget_spent,
    following,
    phases,
    reason_text,
    stop_reason,
)
from imts.flywheel.spec import Budget, LoopSpec


def spec(**kw: object) -> LoopSpec:
    return LoopSpec.model_validate({"intent": "solve math word problems", "data": "math"} | kw)


def out(it: int, decision: float, p: float = 0.5, gain: float = 0.0, **kw: object) -> Outcome:
    fields = {"iteration": it, "run_id": f"r{it}", "decision": decision, "target_score": decision,
              "p_vs_best": p, "gain_vs_best": gain, "actions": 2} | kw  # fmt: skip
    return Outcome.model_validate(fields)


def test_the_first_iteration_analyses_splits_repairs_and_measures_the_base_model_once() -> None:
    order = [Phase.ANALYZE]
    it, ph = 1, Phase.ANALYZE
    while it == 1:
        it, ph = following(it, ph, "auto")
        order.append(ph)
    assert order == [*phases(1, "auto"), Phase.REPAIR]
    assert Phase.BASELINE in phases(1, "auto") and Phase.BASELINE not in phases(2, "auto")
    assert following(1, Phase.FEEDBACK, "auto") == (2, Phase.REPAIR)
    assert following(1, Phase.FEEDBACK, "approve") == (2, Phase.APPROVAL)
    assert following(2, Phase.APPROVAL, "approve") == (2, Phase.REPAIR)
    assert following(3, Phase.FEEDBACK, "auto") == (4, Phase.REPAIR)


def test_stop_rules_in_their_order() -> None:
    s = spec(target=0.6, max_iterations=5, patience=2)
    assert stop_reason(s, [], Spent()) is None
    assert stop_reason(s, [out(1, 0.7)], Spent()) == "target"
    # the target reached while forgetting beyond the tolerance is not a success
    assert stop_reason(s, [out(1, 0.7, probe_drop=0.1)], Spent()) is None
    # forgetting that replay did not cure ends the loop
    assert stop_reason(s, [out(1, 0.3, probe_drop=0.1, replayed=True)], Spent()) == "forgetting"
    assert stop_reason(spec(budget=Budget(tokens=100)), [out(1, 0.3)], Spent(tokens=100)) == "budget:tokens"
    assert stop_reason(spec(budget=Budget(tokens=100)), [out(1, 0.3)], Spent(tokens=99)) is None
    assert stop_reason(spec(max_iterations=1), [out(1, 0.3)], Spent()) == "max_iterations"
    gains = [out(1, 0.3), out(2, 0.4, p=0.01, gain=0.1), out(3, 0.41, p=0.6, gain=0.01)]
    assert stop_reason(s, gains, Spent()) is None  # one stale iteration, patience two
    assert stop_reason(s, [*gains, out(4, 0.40, p=0.9, gain=-0.01)], Spent()) == "plateau"
    assert (
        stop_reason(s, [out(1, 0.3), out(2, 0.5, p=0.01, gain=0.2, actions=0)], Spent()) == "nothing_to_fix"
    )
    assert reason_text("plateau", "zh") and reason_text("plateau", "en") != reason_text("plateau", "zh")


def test_the_best_model_keeps_general_ability() -> None:
    s = spec(forgetting_tolerance=0.02)
    outcomes = [
        out(1, 0.30, probe_drop=0.0),
        out(2, 0.50, p=0.001, gain=0.2, probe_drop=0.10),
        out(3, 0.40, p=0.01, gain=0.1, probe_drop=0.01),
    ]
    top = best(s, outcomes)
    assert top is not None and top.iteration == 3
    # when every model forgets, the one that forgets least
    top = best(s, [out(1, 0.5, probe_drop=0.2), out(2, 0.3, probe_drop=0.05)])
    assert top is not None and top.iteration == 2
    assert best(s, []) is None


def test_the_best_model_changes_only_on_a_significant_gain() -> None:
    s = spec(alpha=0.05)
    # iteration 2 scores higher on validation, but its paired test against iteration 1 is not significant
    top = best(s, [out(1, 0.87), out(2, 0.93, p=0.18, gain=0.06)])
    assert top is not None and top.iteration == 1
    top = best(s, [out(1, 0.87), out(2, 0.93, p=0.03, gain=0.06)])
    assert top is not None and top.iteration == 2
    # a significant loss is not a gain; a later significant gain over the incumbent is
    outcomes = [out(1, 0.87), out(2, 0.80, p=0.01, gain=-0.07), out(3, 0.95, p=0.01, gain=0.08)]
    assert [best(s, outcomes[:n]).iteration for n in (1, 2, 3)] == [1, 1, 3]  # type: ignore[union-attr]


def test_budgets_count_what_was_spent() -> None:
    s = spec(budget=Budget(cpu_hours=1.0, generated_items=10))
    assert budget_spent(s, Spent(cpu_hours=0.5, generated_items=9)) is None
    assert budget_spent(s, Spent(cpu_hours=1.0)) == "budget:cpu_hours"
    assert budget_spent(s, Spent(generated_items=12)) == "budget:generated_items"
