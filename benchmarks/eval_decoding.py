"""Greedy evaluation decoding: IMTS's loop (ended rows leave the batch) against transformers' ``generate``.

    PYTHONPATH=src .venv/bin/python benchmarks/eval_decoding.py examples/heldout/math_oot.jsonl \
        ~/.cache/imts/models/smollm2-135m-instruct [ADAPTER] [--items 96] [--max-new-tokens 64]

The same prompts (chat template, longest first, left-padded, batches of 32), the same model, in one
process: once through ``imts.inference.generate.generate`` (its ``greedy`` loop), once with each batch
decoded by ``model.generate`` (do_sample=False), with and without the calculator (a logits processor for
``generate``). Prints the seconds of each, the ratio, and how many texts are identical.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("items_file", type=Path)
    ap.add_argument("model", type=Path)
    ap.add_argument("adapter", type=Path, nargs="?")
    ap.add_argument("--items", type=int, default=96)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()

    from transformers import LogitsProcessorList

    from imts.inference import generate as gen
    from imts.inference.tools import logits_processor

    lines = args.items_file.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()][: args.items]
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in rows]
    tok, model = gen.load(args.model.expanduser(), args.adapter)
    imts_greedy = gen.greedy

    for tools in ((), ("calculator",)):

        def with_generate(
            model: Any, ids: Any, mask: Any, new: int, eos: int | None, rows: Any, tools: Any = tools
        ) -> Any:
            procs = logits_processor(tok, tools, ids.shape[0], ids.shape[1]) if tools else None
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=eos,
                                 logits_processor=LogitsProcessorList([procs] if procs else []))  # fmt: skip
            for mine, theirs in zip(rows or [], procs.rows if procs else [], strict=False):
                mine.calls = theirs.calls
            return [out[i, ids.shape[1] :].tolist() for i in range(ids.shape[0])]

        timings, texts = {}, {}
        for name, decode in (("imts", imts_greedy), ("transformers generate", with_generate)):
            gen.greedy = decode
            started = time.perf_counter()
            texts[name], _ = gen.generate(tok, model, prompts, args.max_new_tokens, 32, tools=tools)
            timings[name] = time.perf_counter() - started
        gen.greedy = imts_greedy
        ours, theirs = timings["imts"], timings["transformers generate"]
        same = sum(a == b for a, b in zip(texts["imts"], texts["transformers generate"], strict=True))
        print(f"tools={list(tools)}: imts {ours:.1f} s, transformers generate {theirs:.1f} s, ratio "
              f"{theirs / ours:.2f}x; identical texts {same}/{len(rows)}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
