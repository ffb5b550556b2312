"""The serving scheduler's batches in process, without HTTP: where ``benchmarks/serve.py``'s ratio comes from.

Same base (SmolLM2-135M-Instruct from the model cache, or ``--base``), same 8 random LoRA adapters and
prompts as ``benchmarks/serve.py``, greedy, ``--requests`` requests over the adapters round-robin, each
path timed on the same requests in every round, the paths taking turns round by round so that a shared
machine's changing load hits them alike:

* ``alone``: today's path, each request alone through ``model.generate`` (``set_adapter`` per request);
* ``batched``: ``imts.serve.batcher.BaseModel`` — one batch of all the requests, adapters mixed through
  ``StackedLoRA`` (two matrix products per layer for all the adapters);
* ``batched-peft``: the same scheduler mixing adapters with PEFT's ``adapter_names`` (one adapter at a
  time: the path before ``StackedLoRA``);
* ``bare``: the same scheduler and batch, every request to the bare base (what adapters cost);
* ``generate``: with ``--hf``, ``model.generate(adapter_names=…)`` on the same left-padded batch.

Prints the median completion tokens/s of each path, the ratios, and whether every batched answer
equals the request's answer alone. ``--profile`` prints torch.profiler's busiest operations for one
batch of each scheduler path.

    PYTHONPATH=src .venv/bin/python benchmarks/serve_batch.py --requests 32 --tokens 16 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from imts.inference.generate import Sampling, load, render_prompt
from imts.serve.batcher import BaseModel, Finished, Job
from serve import ADAPTERS, PROMPTS, make_adapters


def alone(tok: Any, model: Any, prompts: list[list[int]], names: list[str], tokens: int) -> list[str]:
    """Today's path: each request by itself through ``generate``."""
    texts = []
    with torch.inference_mode():
        for ids, name in zip(prompts, names, strict=True):
            model.set_adapter(name)
            x = torch.tensor([ids])
            out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
                                 max_new_tokens=tokens, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)  # fmt: skip
            texts.append(_text(tok, out[0, x.shape[1] :].tolist()))
    return texts


def batched(base: BaseModel, prompts: list[list[int]], names: list[str | None], tokens: int) -> list[str]:
    """All the requests queued at once: the scheduler takes them as one batch."""
    streams = [
        base.submit(Job(ids, n, tokens, Sampling(), [])) for ids, n in zip(prompts, names, strict=True)
    ]
    return ["".join(e for e in events if not isinstance(e, Finished)).strip() for events in streams]


def hf_batch(tok: Any, model: Any, prompts: list[list[int]], names: list[str], tokens: int) -> list[str]:
    """``model.generate`` on the same left-padded batch, adapters mixed by PEFT's ``adapter_names``."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :], mask[i, width - len(p) :] = torch.tensor(p), 1
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, adapter_names=names, do_sample=False,
                             max_new_tokens=tokens, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)  # fmt: skip
    return [_text(tok, row[width:].tolist()) for row in out]


def _text(tok: Any, gen: list[int]) -> str:
    gen = gen[: gen.index(tok.eos_token_id)] if tok.eos_token_id in gen else gen
    return str(tok.decode(gen, skip_special_tokens=True)).strip()


def profile(
    label: str, base: BaseModel, prompts: list[list[int]], names: list[str | None], tokens: int
) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    jobs = [Job(ids, n, tokens, Sampling(), []) for ids, n in zip(prompts, names, strict=True)]
    # The scheduler's own steps, run in this thread: the profiler records the thread it starts in.
    with base._lock, torch.inference_mode(), torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        running = base._prefill(jobs).without_done()
        while running is not None:
            base._step(running)
            running = running.without_done()
    print(f"\n{label}: torch.profiler, one batch", flush=True)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12), flush=True)


def main() -> None:
    cache = Path(os.environ.get("IMTS_MODEL_CACHE", Path.home() / ".cache" / "imts" / "models"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, default=cache / "smollm2-135m-instruct")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--hf", action="store_true", help="also time model.generate(adapter_names=...)")
    parser.add_argument("--profile", action="store_true", help="torch.profiler table of one batch per path")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    tmp = Path(tempfile.mkdtemp(prefix="imts-serve-batch-"))
    folders = make_adapters(args.base, tmp)
    adapters = [f"tuned-{i}" for i in range(ADAPTERS)]
    stacked = BaseModel(args.base, window_s=0.05, max_batch=args.requests)
    peft = BaseModel(args.base, window_s=0.05, max_batch=args.requests, stack_lora=False)
    for name, folder in zip(adapters, folders, strict=True):
        stacked.ensure_adapter(name, folder)
        peft.ensure_adapter(name, folder)
    tok, today = load(args.base)
    from peft import PeftModel

    today = PeftModel.from_pretrained(today, str(folders[0]), adapter_name=adapters[0])
    for name, folder in zip(adapters[1:], folders[1:], strict=True):
        today.load_adapter(str(folder), adapter_name=name)
    today.eval()

    prompts = [render_prompt(tok, [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}])
               for i in range(args.requests)]  # fmt: skip
    names = [adapters[i % ADAPTERS] for i in range(args.requests)]
    n, t = args.requests, args.tokens
    paths: dict[str, Callable[[], list[str]]] = {
        "alone": lambda: alone(tok, today, prompts, names, t),
        "batched": lambda: batched(stacked, prompts, list(names), t),
        "batched-peft": lambda: batched(peft, prompts, list(names), t),
        "bare": lambda: batched(stacked, prompts, [None] * n, t),
    }
    if args.hf:
        paths["generate"] = lambda: hf_batch(tok, today, prompts, names, t)
    print(f"{n} requests over {ADAPTERS} adapters, {t} new tokens, prompts {min(map(len, prompts))}-"
          f"{max(map(len, prompts))} tokens, torch threads {torch.get_num_threads()} "
          f"(OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}), "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    rates: dict[str, list[float]] = {p: [] for p in paths}
    answers: dict[str, list[str]] = {}
    for r in range(args.rounds):
        line = []
        for label, run in paths.items():
            started = time.perf_counter()
            texts = run()
            wall = time.perf_counter() - started
            answers[label] = texts
            # completion tokens: what each path generated, counted the same way for all
            count = sum(len(tok(x, add_special_tokens=False)["input_ids"]) for x in texts)
            rates[label].append(count / wall)
            line.append(f"{label} {wall:6.2f} s")
        print(f"round {r + 1}: " + ", ".join(line) + f"  (load {os.getloadavg()[0]:.1f})", flush=True)
    med = {p: statistics.median(v) for p, v in rates.items()}
    for label, rate in med.items():
        print(f"{label:14s} {rate:7.1f} tok/s (median of {args.rounds})")
    print(f"batched / alone: {med['batched'] / med['alone']:.2f}x; "
          f"batched-peft / alone: {med['batched-peft'] / med['alone']:.2f}x")  # fmt: skip
    print(f"8 adapters / bare base: {med['batched'] / med['bare']:.2f}x (PEFT adapter_names: "
          f"{med['batched-peft'] / med['bare']:.2f}x)")  # fmt: skip
    for label in ("batched", "batched-peft"):
        same = sum(a == b for a, b in zip(answers[label], answers["alone"], strict=True))
        print(f"{label}: {same}/{n} answers equal to the request alone (greedy)")
    if args.profile:
        profile("batched", stacked, prompts, list(names), t)
        profile("bare", stacked, prompts, [None] * n, t)
        profile("batched-peft", peft, prompts, list(names), t)


if __name__ == "__main__":
    main()
