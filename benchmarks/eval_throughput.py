"""Evaluation throughput: the IMTS generation runner against one-by-one ``model.generate``, in one run.

Same model (SmolLM2-135M-Instruct from the model cache), same 200 prompts (the example math task's
chat prompts), same greedy decoding, same ``max_new_tokens``, fp32, both sides stop a row at EOS.

* ``imts``      -- ``imts.inference.generate.generate``: longest-first batches (batch 32), left-padded,
                   KV cache.
* ``one_by_one``-- what an evaluation loop usually does: ``model.generate`` on one prompt at a time.

Figure: generated tokens (up to and excluding EOS) per second of wall time, model loading excluded;
the ratio is imts / one_by_one. The two sides alternate chunk by chunk (one IMTS batch, then the
same prompts one by one), so a shared machine's changing load hits both alike. ``--one-by-one-items N``
times the one-by-one side on N items only, spread evenly over the chunks (its rate is per token, so
it stays comparable), when the machine is too slow for all of them.
Also reported: how many answers are identical on both sides (batched fp32 matmuls with padding can
change a near-tie argmax, so a few may differ).

Run from the repository root::

    .venv/bin/python benchmarks/eval_throughput.py                     # 200 items
    .venv/bin/python benchmarks/eval_throughput.py --items 32 --max-new-tokens 16   # smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from imts.core.settings import get_settings  # noqa: E402
from imts.flywheel.demo import example_generator  # noqa: E402
from imts.inference.generate import generate, load, render_prompt  # noqa: E402


def one_by_one(tokenizer, model, prompts, max_new_tokens):  # type: ignore[no-untyped-def]
    outputs, tokens = [], 0
    started = time.perf_counter()
    with torch.inference_mode():
        for p in prompts:
            ids = torch.tensor([render_prompt(tokenizer, p)])
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            gen = out[0, ids.shape[1] :].tolist()
            if tokenizer.eos_token_id in gen:
                gen = gen[: gen.index(tokenizer.eos_token_id)]
            tokens += len(gen)
            outputs.append(tokenizer.decode(gen, skip_special_tokens=True).strip())
    return outputs, {"seconds": time.perf_counter() - started, "new_tokens": tokens}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--one-by-one-items",
        type=int,
        default=None,
        help="time the one-by-one side on N items spread over the chunks (its rate; for a slow machine)",
    )
    ap.add_argument("--model", type=Path, default=None, help="HF folder (default: SmolLM2 in the cache)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    path = args.model or get_settings().model_cache / "smollm2-135m-instruct"
    rows, _ = example_generator().generate(max(args.items * 2, 400), seed=7)
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in rows[: args.items]]
    tokenizer, model = load(path)
    torch.manual_seed(0)

    # Interleaved in time: each chunk of prompts goes through the IMTS runner, then one by one, so a
    # load change on a shared machine hits both sides alike. A chunk is one IMTS batch (sorted within).
    imts = {"seconds": 0.0, "new_tokens": 0}
    base = {"seconds": 0.0, "new_tokens": 0}
    imts_texts: list[str] = []
    base_texts: list[str] = []
    chunks = -(-len(prompts) // args.batch_size)
    per_chunk = (  # all of each chunk, or the budget spread over the chunks
        -(-args.one_by_one_items // chunks) if args.one_by_one_items else args.batch_size
    )
    base_prompts: list[list[dict[str, str]]] = []
    for s in range(0, len(prompts), args.batch_size):
        chunk = prompts[s : s + args.batch_size]
        texts, speed = generate(tokenizer, model, chunk, args.max_new_tokens, args.batch_size)
        imts_texts += texts
        imts["seconds"] += speed["seconds"]
        imts["new_tokens"] += int(speed["new_tokens"])
        sample = chunk[:per_chunk]
        if sample:
            texts, speed = one_by_one(tokenizer, model, sample, args.max_new_tokens)
            base_prompts += sample
            base_texts += texts
            base["seconds"] += speed["seconds"]
            base["new_tokens"] += int(speed["new_tokens"])
        print(
            f"{len(imts_texts)}/{len(prompts)} items: imts {imts['new_tokens'] / imts['seconds']:.1f} tok/s, "
            f"one-by-one {base['new_tokens'] / max(base['seconds'], 1e-9):.1f} tok/s",
            flush=True,
        )
    imts_tps = imts["new_tokens"] / imts["seconds"]
    base_tps = base["new_tokens"] / base["seconds"]
    by_prompt = {id(p): t for p, t in zip(prompts, imts_texts, strict=True)}
    same = sum(by_prompt[id(p)] == t for p, t in zip(base_prompts, base_texts, strict=True))
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
        "model": str(path.name),
        "items": len(prompts),
        "one_by_one_items": len(base_prompts),
        "max_new_tokens": args.max_new_tokens,
        "imts": {
            "seconds": round(imts["seconds"], 1),
            "new_tokens": imts["new_tokens"],
            "tokens_per_s": round(imts_tps, 1),
        },
        "one_by_one": {
            "seconds": round(base["seconds"], 1),
            "new_tokens": base["new_tokens"],
            "tokens_per_s": round(base_tps, 1),
        },
        "ratio": round(imts_tps / base_tps, 2),
        "identical_answers": f"{same}/{len(base_texts)}",
    }
    print(json.dumps(result, indent=2))
    print(f"IMTS runner {imts_tps:.1f} tok/s vs one-by-one {base_tps:.1f} tok/s: {imts_tps / base_tps:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
