"""The math judge: re-executes an answer's computation steps in the sandbox and checks every one.

Steps are arithmetic written in the answer (``92 + 99 = 191``, chained ``2 + 3 = 5 * 4 = 20``,
``(12 - 4) / 2 = 4``, with ``×``/``÷``/``x``) and Python code blocks (program-of-thought answers). All of
it runs in :mod:`imts.agents.sandbox` with exact fractions, never in this process. Verdicts:

* ``wrong_answer``: the final answer differs from the reference (the first wrong step, if any, is named);
* ``wrong_step``: the final answer is right but a step's arithmetic is wrong (a lucky or copied answer);
* ``correct``: the final answer is right and every step checks out;
* ``unverifiable``: the answer's code was stopped by the sandbox (the violation is reported).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from imts.agents.judges.base import JudgeItem, Judgement
from imts.agents.sandbox import SandboxResult, run_batch, run_python
from imts.core.answers import extract_number, numeric_match

_NUM = r"\d[\d,]*(?:\.\d+)?"
_OPERAND = rf"[(\s]*-?{_NUM}[)\s]*"
_OP = r"(?:[-+*/×÷^]|\s[xX]\s)"
_EXPR = rf"{_OPERAND}(?:{_OP}{_OPERAND})*"
_CHAIN = re.compile(rf"(?<![0-9A-Za-z.]){_EXPR}(?:={_EXPR})+")
_CODE = re.compile(r"```(?:python|py)?\s*\n(?P<code>.*?)```", re.DOTALL | re.IGNORECASE)
_LEAD = re.compile(rf"^[(\s]*-?{_NUM}")


@dataclass(frozen=True)
class Step:
    """``expression`` should equal ``claimed``; ``text`` is how the answer wrote it."""

    text: str
    expression: str
    claimed: str


def _balanced(expr: str) -> str:
    expr = expr.strip()
    while expr.count("(") > expr.count(")") and expr.startswith("("):
        expr = expr[1:].strip()
    while expr.count(")") > expr.count("(") and expr.endswith(")"):
        expr = expr[:-1].strip()
    return expr


def extract_steps(answer: str) -> list[Step]:
    """Every ``expression = value`` in order; in a chain each segment is checked against the next."""
    steps = []
    for chain in _CHAIN.finditer(_CODE.sub(" ", answer)):
        segments = [_balanced(s) for s in chain.group(0).split("=")]
        for left, right in itertools.pairwise(segments):
            # "2 + 3 = 5 * 4 = 20": the 5 that opens the next segment is what "2 + 3" is claimed to be.
            lead = _LEAD.match(right)
            if lead is None or not re.search(_OP, left.lstrip("-")):
                continue
            claimed = lead.group(0).strip("( ").rstrip(",")
            steps.append(Step(f"{left} = {claimed}", left, claimed))
    return steps


def _to_python(expr: str) -> str:
    expr = re.sub(r"\s[xX]\s", " * ", expr).replace("×", "*").replace("÷", "/").replace("^", "**")
    return re.sub(_NUM, lambda m: f"F('{m.group(0).replace(',', '')}')", expr)


_EVAL = """
from fractions import Fraction as F
import json
out = []
for e in EXPRS:
    try:
        out.append(str(eval(e, {"__builtins__": {}, "F": F})))
    except Exception as x:
        out.append("error: " + type(x).__name__)
print(json.dumps(out))
"""


class MathJudge:
    """Checks every computation step and the final answer; names the first wrong step."""

    name = "math"

    def __init__(self, timeout_s: float = 5.0, cpu_s: int = 3) -> None:
        self.timeout_s, self.cpu_s = timeout_s, cpu_s

    def _evaluate(self, expressions: list[str]) -> list[str] | None:
        if not expressions:
            return []
        code = f"EXPRS = {json.dumps([_to_python(e) for e in expressions])}\n{_EVAL}"
        res = run_python(code, self.timeout_s, self.cpu_s)
        if not res.ok:
            return None
        return list(json.loads(res.stdout.strip().splitlines()[-1]))

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        steps = [extract_steps(i.answer) for i in items]
        flat = [s.expression for per in steps for s in per]
        # One sandbox run for all the arithmetic; if something in it blows a limit (2^9^9^9), per item.
        values = self._evaluate(flat)
        per_item: list[list[str] | None] = []
        if values is not None:
            at = 0
            for per in steps:
                per_item.append(values[at : at + len(per)])
                at += len(per)
        else:
            per_item = [self._evaluate([s.expression for s in per]) for per in steps]
        # Every answer's code block in one confined process too (each in its own worker and limits).
        blocks = {n: m.group("code") for n, i in enumerate(items) if (m := _CODE.search(i.answer))}
        ran = dict(zip(blocks, run_batch(list(blocks.values()), self.timeout_s, self.cpu_s), strict=True))
        return [
            self._verdict(i, s, v, ran.get(n))
            for n, (i, s, v) in enumerate(zip(items, steps, per_item, strict=True))
        ]

    def _verdict(
        self, item: JudgeItem, steps: list[Step], values: list[str] | None, ran: SandboxResult | None
    ) -> Judgement:
        final = extract_number(_CODE.sub(" ", item.answer))
        details: dict[str, object] = {"steps": [s.text for s in steps], "final": final}
        if values is None:
            return Judgement(
                item.id, self.name, "unverifiable", 0.0, "the steps could not be evaluated", details=details
            )
        first_wrong, wrong_text = None, ""
        for n, (step, value) in enumerate(zip(steps, values, strict=True), start=1):
            if value.startswith("error") or Fraction(value) != Fraction(step.claimed.replace(",", "")):
                first_wrong = n
                wrong_text = f"step {n} `{step.text}` is wrong: {step.expression.strip()} = {_show(value)}"
                break
        if ran is not None and first_wrong is None:
            details["code"] = {"ok": ran.ok, "violation": ran.violation, "stdout": ran.stdout[-500:]}
            if not ran.ok:
                return Judgement(
                    item.id,
                    self.name,
                    "unverifiable",
                    0.0,
                    f"the answer's code was stopped: {ran.violation}",
                    details=details,
                )
            printed = extract_number(ran.stdout)
            if final is not None and (printed is None or not numeric_match(printed, final)):
                first_wrong = len(steps) + 1
                wrong_text = f"the code prints {printed}, the answer claims {final}"
        right = numeric_match(final, item.reference)
        if not right:
            why = f"final answer {final} != expected {item.reference}"
            rationale = f"{why}; {wrong_text}" if wrong_text else why
            return Judgement(item.id, self.name, "wrong_answer", 0.0, rationale, first_wrong, details)
        if first_wrong is not None:
            return Judgement(
                item.id, self.name, "wrong_step", 0.0, f"right answer, {wrong_text}", first_wrong, details
            )
        checked = f"{len(steps)} step(s) re-executed" if steps else "no steps shown"
        return Judgement(
            item.id, self.name, "correct", 1.0, f"final answer {final} is right; {checked}", None, details
        )


def _show(value: str) -> str:
    if value.startswith("error"):
        return value
    f = Fraction(value)
    return str(f.numerator) if f.denominator == 1 else f"{value} ({float(f):g})"
