"""An experiment for #16: the out-of-template set with a calculator at decoding, against plain decoding.

    PYTHONPATH=src .venv/bin/python benchmarks/calculator_decoding.py examples/heldout/math_oot.jsonl \
        ~/.cache/imts/models/smollm2-135m-instruct base= it1=RUN_DIR/adapter it2=RUN_DIR/adapter

Each ``NAME=ADAPTER`` (empty: the base model) is evaluated on every item of the JSONL file (``prompt``,
``answer``, ``category``, ``lang``), greedy, 96 new tokens, once with plain decoding and once with the
calculator in the decoding loop (``imts.inference.tools``, ``imts eval --tools calculator``): when a
row's text ends with an arithmetic expression followed by ``=``, the digits of its value are forced as the
next tokens, as GSM8K's calculator annotations were used at sampling time. The model still has to choose
the expression. First written as an experiment for #16 with its own copy of the calculator; the product's
is now measured here (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def evaluate(base: Path, adapter: Path | None, rows: list[dict[str, Any]], calculator: bool) -> list[bool]:
    """Whether each row's answer is right, decoded greedily as ``imts eval`` does (96 new tokens)."""
    from imts.core.answers import extract_number, to_fraction
    from imts.inference.generate import generate, load

    tok, model = load(base, adapter)
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in rows]
    outs, _ = generate(tok, model, prompts, 96, 16, tools=("calculator",) if calculator else ())
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
