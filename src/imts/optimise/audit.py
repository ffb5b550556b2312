"""An independent audit of generated items: recomputed from the question alone, by another method.

The verifier re-executes the item's own steps in the sandbox. The audit ignores the steps: it reads the
question's numbers with its own scanner (``str.isdigit`` runs, not the verifier's regular expression),
solves the question from its category alone (addition: the sum of its two numbers; subtraction: the
larger minus the smaller; multiplication: the product; division: the larger divided by the smaller;
multi-step: some ``(a o b) o c`` over its three numbers, evaluated by Python's ``ast`` on exact
fractions in this process) and compares with the recorded answer and the last number of the response.
"""

from __future__ import annotations

import ast
import itertools
import operator
from fractions import Fraction
from typing import Any

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _numbers(text: str) -> list[Fraction]:
    out, run = [], ""
    for ch in text + " ":
        if ch.isdigit() and ch.isascii():
            run += ch
        else:
            if run:
                out.append(Fraction(int(run)))
            run = ""
    return out


def _eval(expr: str) -> Fraction:
    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        raise ValueError(ast.dump(node))

    return walk(ast.parse(expr, mode="eval").body)


def solutions(category: str, question: str) -> set[Fraction]:
    nums = _numbers(question)
    if category in ("addition", "subtraction", "multiplication", "division") and len(nums) == 2:
        a, b = max(nums), min(nums)
        op = {"addition": "+", "subtraction": "-", "multiplication": "*", "division": "/"}[category]
        return {_eval(f"{a} {op} {b}")}
    found = set()
    for a, b, c in itertools.permutations(nums, 3) if len(nums) == 3 else []:
        for o1, o2 in itertools.product("+-*/", repeat=2):
            for expr in (f"({a} {o1} {b}) {o2} {c}", f"{c} {o2} ({a} {o1} {b})"):
                try:
                    found.add(_eval(expr))
                except (ZeroDivisionError, ValueError):
                    continue
    return found


def audit(row: dict[str, Any]) -> tuple[bool, str]:
    """Whether the item's recorded answer is what its question asks for, and how that was decided."""
    question = next(m["content"] for m in row["messages"] if m["role"] == "user")
    response = next(m["content"] for m in reversed(row["messages"]) if m["role"] == "assistant")
    answer = Fraction(row["answer"])
    last = _numbers(response)[-1] if _numbers(response) else None
    solved = solutions(row.get("category") or "", question)
    if not solved:
        return False, "the question could not be solved from its numbers"
    if answer not in solved:
        return False, f"answer {row['answer']} is not among {sorted(map(str, solved))[:5]}"
    if last != answer:
        return False, f"the response ends with {last}, not {row['answer']}"
    return True, "recomputed from the question"
