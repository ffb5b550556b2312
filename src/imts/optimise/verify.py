"""The verifier every generated or rewritten item passes before it may enter a version.

For arithmetic items it is the math judge: each ``expression = value`` step of the response is
re-executed in the sandbox (:mod:`imts.agents.sandbox`, exact fractions, never in this process), and the
item is accepted only if every step is right, there is at least one step, and the final answer is the
one recorded. Anything else is rejected with the judge's reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from imts.agents.judges.base import JudgeItem
from imts.agents.judges.math import MathJudge


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


def verify(items: list[tuple[str, str, str, str]]) -> list[Verdict]:
    """``(id, question, response, answer)`` per item -> accepted or not, with the reason."""
    if not items:
        return []
    judged = MathJudge().judge([JudgeItem(i, q, r, a) for i, q, r, a in items])
    out = []
    for j in judged:
        steps = j.details.get("steps") or []
        if j.verdict == "correct" and steps:
            out.append(Verdict(True, f"{len(steps)} step(s) re-executed in the sandbox / 沙箱复算通过"))
        elif j.verdict == "correct":
            out.append(Verdict(False, "no computation steps to check / 没有可复算的步骤"))
        else:
            out.append(Verdict(False, f"{j.verdict}: {j.rationale}"))
    return out
