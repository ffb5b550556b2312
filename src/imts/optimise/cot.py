"""Chain-of-thought rewriting: answer-only rows become question -> rationale -> answer.

A teacher writes the rationale; the verifier (:func:`imts.optimise.verify.verify`) re-executes its steps
in the sandbox and keeps it only if they reach the recorded answer. Two teachers:

* ``embedded`` (no model): for arithmetic items it searches the expressions over the numbers of the
  question (every ordered pair, then a third number, with + - * /, exact fractions) for one that equals
  the recorded answer, preferring expressions that use every number, and writes each operation as a
  step. It cannot rewrite items whose answer is not an arithmetic combination of at most three of the
  question's numbers (units to convert, constants the question does not state, non-numeric answers):
  those stay as they were and are listed with the reason.
* ``chat``: any configured :class:`~imts.agents.chat.ChatBackend` (an OpenAI-compatible endpoint for a
  strong teacher, or the local model) is asked for a step-by-step solution ending in the answer sentence;
  it can rewrite whatever the model can solve, and its rewrite is verified the same way.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

from imts.agents.chat import ChatBackend
from imts.core.answers import to_fraction

_NUMBER = re.compile(r"(?<![\d.])\d{1,6}(?:\.\d+)?(?!\.?\d)")
OPS = ("+", "-", "*", "/")


def user_text(row: dict[str, Any]) -> str:
    return next((m["content"] for m in row.get("messages") or [] if m["role"] == "user"), "")


def assistant_text(row: dict[str, Any]) -> str:
    return next((m["content"] for m in reversed(row.get("messages") or []) if m["role"] == "assistant"), "")


def with_response(row: dict[str, Any], response: str) -> dict[str, Any]:
    """``row`` with its (last) assistant message replaced."""
    messages = [dict(m) for m in row["messages"]]
    for m in reversed(messages):
        if m["role"] == "assistant":
            m["content"] = response
            break
    return {**row, "messages": messages}


def recorded_answer(row: dict[str, Any]) -> str:
    """The row's answer field, or its response when it has none (an answer-only row is its answer)."""
    return (row.get("answer") or assistant_text(row)).strip()


def is_answer_only(row: dict[str, Any]) -> bool:
    """The response is the bare answer (a number, perhaps with a unit word), no rationale."""
    response = assistant_text(row).strip()
    return (
        bool(response)
        and len(response) <= 24
        and not re.search(r"[=+*/×÷]|\s-\s", response)
        and bool(re.search(r"\d", response))
    )


def prompt_numbers(text: str) -> list[Fraction]:
    """The distinct numbers of a question, in order (long digit runs, like phone numbers, are not
    quantities and are skipped)."""
    seen: list[Fraction] = []
    for m in _NUMBER.finditer(text):
        value = Fraction(m.group(0))
        if value not in seen:
            seen.append(value)
    return seen


@dataclass(frozen=True)
class Step:
    left: Fraction
    op: str
    right: Fraction
    value: Fraction


def _apply(a: Fraction, op: str, b: Fraction) -> Fraction | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b if a > b else None
    if op == "*":
        return a * b if 1 not in (a, b) else None
    if b in (0, 1):
        return None
    q = a / b
    return q if q.denominator == 1 else None  # the rationale shows whole-number steps only


def search(numbers: Sequence[Fraction], answer: Fraction) -> list[Step] | None:
    """Steps over ``numbers`` whose last value is ``answer``: every number used first, then fewer."""
    nums = list(numbers)[:6]
    two = [
        [Step(a, op, b, v)]
        for a, b in itertools.permutations(nums, 2)
        for op in OPS
        if (v := _apply(a, op, b)) is not None
    ]
    three = []
    for first in two:
        s = first[0]
        rest = [c for c in nums if c not in (s.left, s.right)]
        for c in rest:
            for op in OPS:
                for left, right in ((s.value, c), (c, s.value)):
                    v = _apply(left, op, right)
                    if v is not None:
                        three.append([s, Step(left, op, right, v)])
    by_uses = sorted([(3, t) for t in three] + [(2, t) for t in two], key=lambda x: -x[0])
    prefer_all = min(len(nums), 3)
    for uses in (prefer_all, *[u for u in (3, 2) if u != prefer_all]):
        for n, steps in by_uses:
            if n == uses and steps[-1].value == answer:
                return steps
    return None


def _num(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


def render(steps: list[Step], answer: str, lang: str) -> str:
    lines = [f"{_num(s.left)} {s.op} {_num(s.right)} = {_num(s.value)}" for s in steps]
    if lang == "zh":
        return "，".join(lines) + f"。答案是{answer}。"
    return ". ".join(lines) + f". The answer is {answer}."


class Teacher(Protocol):
    name: str

    def rationale(self, row: dict[str, Any]) -> tuple[str | None, str]:
        """A rewritten response, or None and why not."""
        ...


class EmbeddedTeacher:
    """Expression search over the question's numbers (see the module docstring)."""

    name = "embedded"

    def rationale(self, row: dict[str, Any]) -> tuple[str | None, str]:
        answer = recorded_answer(row)
        target = to_fraction(answer)
        if target is None:
            return None, "the answer is not a number / 答案不是数字"
        numbers = prompt_numbers(user_text(row))
        if len(numbers) < 2:
            return None, "the question has fewer than two numbers / 题目中的数字少于两个"
        steps = search(numbers, target)
        if steps is None:
            return None, (
                "no expression over the question's numbers reaches the answer / "
                "题目中的数字无法通过运算得到答案"
            )
        return render(steps, answer, row.get("lang") or "en"), "expression search / 表达式搜索"


class ChatTeacher:
    """A configured chat model writes the rationale; the verifier decides."""

    def __init__(self, backend: ChatBackend, max_tokens: int = 256) -> None:
        self.backend, self.max_tokens = backend, max_tokens
        self.name = f"chat:{getattr(backend, 'name', 'backend')}"

    def rationale(self, row: dict[str, Any]) -> tuple[str | None, str]:
        answer = recorded_answer(row)
        zh = row.get("lang") == "zh"
        ask = (
            f"请一步一步地解答下面的题目，每一步写成算式（如 12 + 3 = 15），最后一句写“答案是{answer}。”\n\n"
            if zh
            else "Solve the problem step by step, writing every step as an expression (like 12 + 3 = 15), "
            f"and end with the sentence 'The answer is {answer}.'\n\n"
        )
        reply = self.backend.chat(
            [{"role": "user", "content": ask + user_text(row)}], max_tokens=self.max_tokens
        )
        text = reply.text.strip()
        return (text, "chat teacher / 对话模型教师") if text else (None, "empty reply / 回复为空")
