"""Judges on the labelled fixture: agreement, position bias, and the cascade's cost vs the full debate.

The fixture (``imts.agents.judges.fixture``): 155 answers built from the example math task -- 45
correct (with steps, as a program, or the bare answer), 45 with a wrong final answer, 45 with the right
answer but a wrong step, 20 unsafe (harmful text or code trying to escape the sandbox).

Reported:

* each judge's agreement with the labels (accuracy, Cohen's kappa): the math judge on the 135 math
  answers (4 classes), the safety rules and the rubric safety judge on all 155 (safe/unsafe);
* the position-bias flip rate of a pairwise judge, judging one order vs both orders averaged, on pairs
  of (correct, flawed) and (correct, equally correct) answers;
* calls and tokens of the cascade (rules -> one judge -> debate for undecided items) against running
  the debate (2 judges x 2 rounds) on every item.

Run from the repository root::

    .venv/bin/python benchmarks/judge_cost.py                       # rules backend everywhere
    .venv/bin/python benchmarks/judge_cost.py --local-pairs 10      # + SmolLM2 as a pairwise judge
    .venv/bin/python benchmarks/judge_cost.py --local-items 40      # + SmolLM2 as logic/safety judge
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from imts.agents.backends import LocalBackend, RulesBackend  # noqa: E402
from imts.agents.judges import fixture  # noqa: E402
from imts.agents.judges.base import agreement  # noqa: E402
from imts.agents.judges.court import Cascade, Seat, flip_rate, full_debate_cost  # noqa: E402
from imts.agents.judges.llm import LLMJudge  # noqa: E402
from imts.agents.judges.math import MathJudge  # noqa: E402
from imts.agents.judges.rules import RulesSafetyJudge  # noqa: E402
from imts.core.settings import get_settings  # noqa: E402
from imts.flywheel.demo import example_generator  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--local-pairs", type=int, default=0, help="pairs judged by SmolLM2 (slow on a CPU)")
    ap.add_argument(
        "--local-items",
        type=int,
        default=0,
        help="fixture items (spread over the labels) graded by SmolLM2 as the logic and safety judge",
    )
    args = ap.parse_args()
    rows, _ = example_generator().generate(400, 0)
    labelled = fixture.build(rows)
    items = [x.item for x in labelled]
    maths = [x for x in labelled if x.expected != "unsafe"]
    safety_labels = ["unsafe" if x.expected == "unsafe" else "safe" for x in labelled]
    out: dict[str, object] = {"fixture": len(labelled)}

    started = time.perf_counter()
    m = MathJudge().judge([x.item for x in maths])
    a = agreement([j.verdict for j in m], [x.expected for x in maths])
    seconds = round(time.perf_counter() - started, 1)
    out["math_judge"] = {
        "n": a.n,
        "accuracy": round(a.accuracy, 4),
        "kappa": round(a.kappa, 4),
        "seconds": seconds,
    }
    for name, judge in (
        ("safety_rules", RulesSafetyJudge()),
        ("safety_rubric@rules", LLMJudge(RulesBackend(), "safety")),
    ):
        got = judge.judge(items)
        a = agreement([j.verdict for j in got], safety_labels)
        out[name] = {"n": a.n, "accuracy": round(a.accuracy, 4), "kappa": round(a.kappa, 4)}

    by_label: dict[str, list[fixture.Labelled]] = {}
    for x in labelled:
        by_label.setdefault(x.expected, []).append(x)
    correct = by_label["correct"]
    pairs = [
        (c.item, c.item.answer, w.item.answer) for c, w in zip(correct, by_label["wrong_step"], strict=False)
    ]
    pairs += [
        (c.item, c.item.answer, c.item.answer.replace("The answer is", "So the answer is")) for c in correct
    ]
    rules = RulesBackend()
    out["flip_rate@rules"] = {
        "pairs": len(pairs),
        "one_order": round(flip_rate(rules, pairs, both_orders=False), 4),
        "both_orders": round(flip_rate(rules, pairs, both_orders=True), 4),
    }
    local = (
        LocalBackend(get_settings().model_cache / "smollm2-135m-instruct")
        if args.local_pairs or args.local_items
        else None
    )
    if local is not None and args.local_items:
        # An even spread over the four labels, so a judge that always says "correct" scores 1/4.
        per = max(1, args.local_items // len(by_label))
        sub_items = [x for group in by_label.values() for x in group[:per]]
        started = time.perf_counter()
        logic = LLMJudge(local, "logic").judge([x.item for x in sub_items if x.expected != "unsafe"])
        a = agreement([j.verdict for j in logic], [x.expected for x in sub_items if x.expected != "unsafe"])
        out["logic@smollm2"] = {"n": a.n, "accuracy": round(a.accuracy, 4), "kappa": round(a.kappa, 4)}
        safety = LLMJudge(local, "safety").judge([x.item for x in sub_items])
        labels = ["unsafe" if x.expected == "unsafe" else "safe" for x in sub_items]
        a = agreement([j.verdict for j in safety], labels)
        out["safety@smollm2"] = {"n": a.n, "accuracy": round(a.accuracy, 4), "kappa": round(a.kappa, 4)}
        unparsed = sum("unparsed reply" in j.rationale for j in logic + safety)
        out["smollm2_judge"] = {
            "calls": len(logic) + len(safety),
            "unparsed_replies": unparsed,
            "seconds": round(time.perf_counter() - started, 1),
        }
    if local is not None and args.local_pairs:
        sub = (
            pairs[: args.local_pairs // 2] + pairs[len(pairs) // 2 : len(pairs) // 2 + args.local_pairs // 2]
        )
        out["flip_rate@smollm2"] = {
            "pairs": len(sub),
            "one_order": round(flip_rate(local, sub, both_orders=False), 4),
            "both_orders": round(flip_rate(local, sub, both_orders=True), 4),
        }

    court = [Seat(rules, "logic"), Seat(rules, "safety")]
    cascade = Cascade(Seat(rules, "logic"), court).run(items)
    full = full_debate_cost(court, items)
    verdicts = [j.verdict for j in cascade.judgements]
    out["cascade"] = {k: vars(v) for k, v in cascade.levels.items()}
    out["cascade_total"] = {"calls": cascade.calls, "tokens": cascade.tokens}
    out["cascade_agreement"] = round(agreement(verdicts, [x.expected for x in labelled]).accuracy, 4)
    out["full_debate"] = vars(full)
    out["cascade_share_of_debate_calls"] = round(cascade.calls / full.calls, 4)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
