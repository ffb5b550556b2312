"""Tools in the decoding loop: the model writes, a tool fills in what it computes exactly.

``calculator``: when a row's text ends with an arithmetic expression and ``=`` (``12 × 4 =``), the
digits of its exact value are the row's next tokens, forced; the model still chooses the expression, and
every other token. This is how GSM8K's calculator annotations are used at sampling time (Cobbe et al.,
2021): a 135M model writes the right expression far more often than it multiplies correctly.

A tool is decoding, not weights: an evaluation records the tools it ran with (they are part of its
generation cache key and of its run's settings), every model a comparison or a loop scores gets the same
ones, and ``imts serve --tools`` gives a served model the tools it was evaluated with.

Each generated row has its own :class:`RowTools` (``forced(generated)`` -> a token id or None); the
batched generation takes them as a ``transformers`` logits processor (:func:`logits_processor`), the
serving batcher asks them before it picks a row's token.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

TOOLS = ("calculator",)

_OPS = {
    ast.Add: Fraction.__add__,
    ast.Sub: Fraction.__sub__,
    ast.Mult: Fraction.__mul__,
    ast.Div: Fraction.__truediv__,
}
# The expression before a trailing "=": digits, operators (ASCII, × ÷ and their full-width forms),
# brackets and spaces. Its start is wherever the row's prose ends.
_TAIL = re.compile(r"([0-9.,\s+\-*/×÷xX()（）＋－＊／]+)[=＝]$")
_SYMBOLS = str.maketrans({"×": "*", "÷": "/", "x": "*", "X": "*", "（": "(", "）": ")", "＋": "+",
                          "－": "-", "＊": "*", "／": "/"})  # fmt: skip
_BINARY = re.compile(r"[\d)]\s*[-+*/]\s*[\d(]")
_LOOKBACK = 40  # tokens decoded to find the expression: longer than any one a row writes
_MAX_DIGITS = 30  # a value with more digits is no arithmetic step; the model writes on unaided


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _value(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(str(node.value))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_value(node.left), _value(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _value(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    raise ValueError("not arithmetic")


def compute(text: str) -> str | None:
    """The value of the arithmetic expression ``text`` ends with before its ``=`` (``"3 × 4 ="`` ->
    ``"12"``), as an integer or with at most two decimals; None when the text ends otherwise, or the
    expression has no operator (``"x = 5 ="``), divides by zero or is no arithmetic."""
    m = _TAIL.search(text)
    if not m:
        return None
    # Thousands separators go; the expression starts at its first digit or bracket.
    expr = re.sub(r"(?<=\d),(?=\d{3}\b)", "", m.group(1).translate(_SYMBOLS))
    expr = re.sub(r"^[^0-9(]+", "", expr).strip()
    if "," in expr or not _BINARY.search(expr):
        return None
    try:
        value = _value(ast.parse(expr, mode="eval"))
    except (ValueError, SyntaxError, ZeroDivisionError, RecursionError):
        return None
    exact = value.denominator == 1
    out = str(value.numerator) if exact else f"{float(value):.2f}".rstrip("0").rstrip(".")
    return out if len(out) <= _MAX_DIGITS else None


def check(names: Sequence[str]) -> list[str]:
    """``names`` validated (unknown ones raise ``ValueError`` naming the known), duplicates dropped."""
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise ValueError(f"unknown decoding tool(s) {unknown}; choose from {list(TOOLS)}")
    return list(dict.fromkeys(names))


def parse(text: str, field: str = "--tools") -> list[str]:
    """A comma list of tool names as a command line gives it (``""``: none), checked.

    Raises:
        InputError: an unknown name, naming ``field`` and the known tools.
    """
    from imts.core.errors import InputError

    try:
        return check([t.strip() for t in text.split(",") if t.strip()])
    except ValueError as exc:
        raise InputError(str(exc), field=field) from None


class RowTools:
    """One generated row's tools: the tokens they force next, given the tokens generated so far."""

    def __init__(self, tokenizer: Any, names: Sequence[str]) -> None:
        self.tok = tokenizer
        self.calculator = "calculator" in names
        self.queue: list[int] = []
        self.calls = 0  # values filled in

    def forced(self, generated: Sequence[int]) -> int | None:
        """The token this row must take next, or None (the model chooses)."""
        if self.queue:
            return self.queue.pop(0)
        if not self.calculator or not generated:
            return None
        # Cheap test first: only a token that ends in "=" can close an expression.
        if not self.tok.decode(generated[-1:], skip_special_tokens=True).endswith(("=", "＝")):
            return None
        value = compute(self.tok.decode(list(generated[-_LOOKBACK:]), skip_special_tokens=True))
        if value is None:
            return None
        self.calls += 1
        self.queue = list(self.tok.encode(" " + value, add_special_tokens=False))
        return self.queue.pop(0) if self.queue else None


def logits_processor(tokenizer: Any, names: Sequence[str], rows: int, prompt_width: int) -> Any:
    """A ``transformers`` logits processor running ``names`` for a batch of ``rows`` left-padded prompts
    ``prompt_width`` tokens wide: a forced token gets all the probability mass (greedy or sampled)."""
    from transformers import LogitsProcessor

    class ToolsProcessor(LogitsProcessor):
        def __init__(self) -> None:
            self.rows = [RowTools(tokenizer, names) for _ in range(rows)]

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            for r, tools in enumerate(self.rows):
                token = tools.forced(input_ids[r, prompt_width:].tolist())
                if token is not None:
                    scores[r, :] = -float("inf")
                    scores[r, token] = 0.0
            return scores

    return ToolsProcessor()
