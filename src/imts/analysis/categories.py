"""Where a row's category comes from when the data has no category field: for arithmetic word
problems, the operations the problem needs; otherwise the semantic map's clusters.

The operations are read from the worked steps of the response (``23 - 7 = 16``: one step, one
operation; two steps or more: ``multi_step``). An answer-only row shows no steps: then the numbers of
the prompt are searched for the one operation (or the two, for three numbers) that gives its answer.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from fractions import Fraction

from imts.core.answers import extract_number, to_fraction

ADD, SUB, MUL, DIV, MULTI = "addition", "subtraction", "multiplication", "division", "multi_step"
_OPS = {"+": ADD, "-": SUB, "−": SUB, "*": MUL, "×": MUL, "x": MUL, "/": DIV, "÷": DIV}
_STEP = re.compile(r"(\d+(?:\.\d+)?)\s*([-−+*×x/÷])\s*(\d+(?:\.\d+)?)\s*=\s*(\d+(?:\.\d+)?)")
# Numbers a problem computes with; long digit strings (phone numbers, ids) and years are not operands.
_NUMBER = re.compile(r"(?<![\d-])\d{1,5}(?:\.\d+)?(?![\d-])")


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction | None:
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MUL:
        return a * b
    return a / b if b else None


def operations_from_steps(response: str) -> list[str]:
    """The operation of each worked step ``a op b = c`` of ``response``, in order."""
    return [_OPS[m.group(2)] for m in _STEP.finditer(response)]


def operation_from_numbers(prompt: str, answer: str) -> str | None:
    """The category whose operation(s) on the prompt's numbers give ``answer``: one operation on two
    numbers, else ``multi_step`` for two operations on three; None when nothing reaches it."""
    target = to_fraction(answer)
    if target is None:
        return None
    nums = [Fraction(n) for n in _NUMBER.findall(prompt)][:6]
    for a, b in itertools.permutations(nums, 2):
        for op in (ADD, SUB, MUL, DIV):
            if _apply(op, a, b) == target:
                return op
    for a, b, c in itertools.permutations(nums, 3):
        for op1, op2 in itertools.product((ADD, SUB, MUL, DIV), repeat=2):
            first = _apply(op1, a, b)
            if first is not None and _apply(op2, first, c) == target:
                return MULTI
    return None


def arithmetic_category(prompt: str, response: str, answer: str | None) -> str | None:
    """The operation category of an arithmetic word problem, or None if it is not recognisably one."""
    steps = operations_from_steps(response)
    if len(steps) >= 2:
        return MULTI
    if len(steps) == 1:
        return steps[0]
    final = answer or extract_number(response)
    return operation_from_numbers(prompt, final) if final else None


def infer_categories(
    prompts: Sequence[str], responses: Sequence[str], answers: Sequence[str | None], min_share: float = 0.8
) -> list[str | None] | None:
    """Each row's operation category, if at least ``min_share`` of the rows are recognisably arithmetic
    word problems (the rest: None); else None (the data is something else: use the clusters)."""
    found = [arithmetic_category(p, r, a) for p, r, a in zip(prompts, responses, answers, strict=True)]
    if not found or sum(c is not None for c in found) < min_share * len(found):
        return None
    return found
