"""An experiment for #16: the out-of-template set with a calculator at decoding, against plain decoding.

    PYTHONPATH=src .venv/bin/python benchmarks/calculator_decoding.py examples/heldout/math_oot.jsonl \
        ~/.cache/imts/models/smollm2-135m-instruct base= it1=RUN_DIR/adapter it2=RUN_DIR/adapter

Each ``NAME=ADAPTER`` (empty: the base model) is evaluated on every item of the JSONL file (``prompt``,
``answer``, ``category``, ``lang``), greedy, 96 new tokens, once as IMTS evaluates today and once with a
calculator in the decoding loop: when a row's text ends with an arithmetic expression followed by ``=``,
the digits of its value are forced as the next tokens (a logits processor), as GSM8K's calculator
annotations were used at sampling time. The model still has to choose the expression. Not part of the
product: it measures whether the direction is worth building (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import ast
import json
import re
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

OPS = {
    ast.Add: Fraction.__add__,
    ast.Sub: Fraction.__sub__,
    ast.Mult: Fraction.__mul__,
    ast.Div: Fraction.__truediv__,
}
TAIL = re.compile(r"([0-9.\s+\-*/×÷()]+)=\s*$")


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _value(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return Fraction(str(node.value))
    if isinstance(node, ast.BinOp) and type(node.op) in OPS:
        return OPS[type(node.op)](_value(node.left), _value(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand)
    raise ValueError("not arithmetic")


def compute(text: str) -> str | None:
    """The value of the arithmetic expression ``text`` ends with before its ``=``; None if there is none."""
    m = TAIL.search(text)
    if not m:
        return None
    expr = re.sub(r"^[^0-9(]+", "", m.group(1).replace("×", "*").replace("÷", "/").strip())
    if not re.search(r"\d\s*[-+*/]\s*[\d(]", expr):
        return None
    try:
        v = _value(ast.parse(expr, mode="eval"))
    except (ValueError, SyntaxError, ZeroDivisionError):
        return None
    return str(v.numerator) if v.denominator == 1 else f"{float(v):.2f}".rstrip("0").rstrip(".")


def _calculator(tokenizer: Any, start: int) -> Any:
    from transformers import LogitsProcessor

    class Calculator(LogitsProcessor):
        def __init__(self) -> None:
            self.pending: dict[int, list[int]] = {}
            self.done: dict[int, int] = {}

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            for r in range(input_ids.shape[0]):
                queue = self.pending.get(r)
                n = input_ids.shape[1] - start
                if not queue and n and self.done.get(r) != n:
                    text = tokenizer.decode(input_ids[r, start:][-40:].tolist(), skip_special_tokens=True)
                    value = compute(text) if text.endswith("=") else None
                    if value is not None:
                        queue = self.pending[r] = tokenizer.encode(" " + value, add_special_tokens=False)
                        self.done[r] = n
                if queue:
                    token = queue.pop(0)
                    scores[r, :] = -float("inf")
                    scores[r, token] = 0.0
            return scores

    return Calculator()


def evaluate(base: Path, adapter: Path | None, rows: list[dict[str, Any]], calculator: bool) -> list[bool]:
    import torch
    from transformers import LogitsProcessorList

    from imts.core.answers import extract_number, to_fraction
    from imts.inference.generate import load, render_prompt

    tok, model = load(base, adapter)
    enc = [render_prompt(tok, [{"role": "user", "content": r["prompt"]}]) for r in rows]
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))
    outs = [""] * len(rows)
    with torch.inference_mode():
        for s in range(0, len(order), 16):
            idx = order[s : s + 16]
            width = max(len(enc[i]) for i in idx)
            ids = torch.full((len(idx), width), tok.pad_token_id)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for k, i in enumerate(idx):
                ids[k, width - len(enc[i]) :] = torch.tensor(enc[i])
                mask[k, width - len(enc[i]) :] = 1
            procs = LogitsProcessorList([_calculator(tok, width)]) if calculator else None
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=96, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                 logits_processor=procs)  # fmt: skip
            for k, i in enumerate(idx):
                gen = out[k, width:].tolist()
                gen = gen[: gen.index(tok.eos_token_id)] if tok.eos_token_id in gen else gen
                outs[i] = tok.decode(gen, skip_special_tokens=True).strip()
    return [
        (got := extract_number(o)) is not None and to_fraction(got) == to_fraction(r["answer"])
        for r, o in zip(rows, outs, strict=True)
    ]


def main() -> None:
    rows = [json.loads(line) for line in Path(sys.argv[1]).read_text(encoding="utf-8").splitlines() if line]
    base = Path(sys.argv[2]).expanduser()
    for name, adapter in (arg.split("=", 1) for arg in sys.argv[3:]):
        for calculator in (False, True):
            started = time.time()
            right = evaluate(base, Path(adapter) if adapter else None, rows, calculator)
            cats: dict[str, list[int]] = {}
            for r, ok in zip(rows, right, strict=True):
                cats.setdefault(r["category"], [0, 0])[0] += ok
                cats[r["category"]][1] += 1
            by_lang = {
                lang: 100
                * sum(ok for r, ok in zip(rows, right, strict=True) if r["lang"] == lang)
                / max(1, sum(r["lang"] == lang for r in rows))
                for lang in ("en", "zh")
            }
            share = 100 * sum(right) / len(right)
            print(f"{name} calculator={calculator}: {sum(right)}/{len(right)} = {share:.1f}% "
                  f"(en {by_lang['en']:.0f}%, zh {by_lang['zh']:.0f}%) "
                  f"{ {k: f'{a}/{b}' for k, (a, b) in cats.items()} } {time.time() - started:.0f} s",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
