"""Model FLOPs utilisation: this machine's attainable matmul FLOP/s and the recipes' achieved FLOP/s.

In one run:

1. **Attainable**: square matmuls (``--sizes``, default 512/1024/2048) in fp32, and in bf16 where the
   hardware computes it natively (CUDA, AVX512-BF16/AMX CPUs); best of 3 rounds per size; the best size
   is the machine's attainable rate.
2. **Achieved**: a few steps of ``sft_lora`` and ``sft_full`` on the base model (default SmolLM2-135M).
   Each step's FLOPs follow ``imts.train.mfu`` (6N per token for full fine-tuning, 4N for LoRA — frozen
   weights get no weight gradients — plus attention, with the LM head counted at response positions
   only, as the recipes compute it); achieved = FLOPs / step time, the median over the steps after
   ``--skip``. The recipe reports the same figure as its ``mfu`` metric against its own quick peak.
3. **Ratio**: achieved / attainable in the precision the recipe trained in.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/mfu.py                     # 4 steps each, a few minutes
    PYTHONPATH=src .venv/bin/python benchmarks/mfu.py --steps 20 --batch-size 8 --json mfu.json

Take figures on a quiet machine: other processes lower both rates, the training steps more.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import DEFAULT_MODEL, build_rows, load_avg, machine


def matmul_rate(n: int, dtype: torch.dtype, device: str, rounds: int = 3) -> float:
    """FLOP/s of an n x n @ n x n matmul: the best of ``rounds`` timed batches."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b  # warm-up: thread pool, kernels
    flop = 2 * n**3
    reps = max(1, int(2e9 // flop)) if device == "cpu" else 50
    best = float("inf")
    for _ in range(rounds):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return flop * reps / best


class Sink:
    def __init__(self, label: str) -> None:
        self.label = label
        self.values: list[dict[str, float]] = []

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if "mfu" in values:
            self.values.append(dict(values))
            print(f"  {self.label}: step {step} loss {values['loss']:.4f}", file=sys.stderr, flush=True)

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        pass


def achieved(method: str, spec: Any, model: Path, rows: list[dict[str, Any]], skip: int) -> dict[str, Any]:
    """Run the recipe; per-step achieved FLOP/s = its mfu metric x the peak it measured (same process)."""
    from imts.core.hardware import resolve_precision
    from imts.train import mfu
    from imts.train.recipes import RECIPES

    sink = Sink(method)
    with tempfile.TemporaryDirectory(prefix="imts-mfu-") as out:
        RECIPES[spec.method](spec, model, rows, [], Path(out), sink)
    precision = resolve_precision(spec.precision)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    recipe_peak = mfu.last_peak(device, dtype)  # what the run's mfu metric was divided by
    assert recipe_peak is not None
    rates = [v["mfu"] * recipe_peak for v in sink.values[skip:]]
    return {
        "method": method,
        "precision": precision,
        "achieved_flops": statistics.median(rates),
        "tokens_per_s": statistics.median(v["tokens_per_s"] for v in sink.values[skip:]),
        "recipe_peak_flops": recipe_peak,
        "recipe_mfu": statistics.median(v["mfu"] for v in sink.values[skip:]),
        "peak_mem_mb": sink.values[-1]["peak_mem_mb"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--skip", type=int, default=1, help="warm-up steps left out (default 1)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--max-seq-len", type=int, default=256)
    p.add_argument("--methods", default="sft_lora,sft_full")
    p.add_argument("--precision", default="auto", help="the recipes' precision: auto | fp32 | bf16")
    p.add_argument("--sizes", default="512,1024,2048", help="matmul sizes n (n x n @ n x n)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    from imts.core.hardware import native_bf16
    from imts.train.spec import RunSpec

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    load_start = load_avg()

    # 1. attainable matmul FLOP/s
    dtypes = {"fp32": torch.float32, **({"bf16": torch.bfloat16} if native_bf16() else {})}
    matmul = {
        name: {n: matmul_rate(n, dtype, device) for n in (int(x) for x in args.sizes.split(","))}
        for name, dtype in dtypes.items()
    }
    for name, by_size in matmul.items():
        sizes = ", ".join(f"n={n}: {r / 1e9:.1f}" for n, r in by_size.items())
        print(f"matmul {name}: {sizes} GFLOP/s", file=sys.stderr)

    # 2. achieved FLOP/s of the recipes
    rows = build_rows(args.rows, 0)
    results = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        spec = RunSpec.from_sources(
            overrides=[
                f"method={method}",
                f"max_steps={args.steps}",
                f"batch_size={args.batch_size}",
                f"max_seq_len={args.max_seq_len}",
                f"lr={1e-4 if method == 'sft_full' else 1e-3}",
                "merge=false",
                f"precision={args.precision}",
                f"save_every={args.steps}",
                f"eval_every={args.steps}",
            ],
            base_model="x",
            data="x",
        )
        print(f"running {method} ...", file=sys.stderr, flush=True)
        results.append(achieved(method, spec, args.model, rows, args.skip))

    # 3. report
    command = shlex.join(["python", "benchmarks/mfu.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        f"- command: `{command}`",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {machine()['cpu']}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), device {device}",
        f"- load average at start: {load_start}, at end: {load_avg()}",
        f"- workload: {args.model.name}, batch {args.batch_size}, {args.steps} steps ({args.skip} skipped), "
        f"max_seq_len {args.max_seq_len}",
        "",
        "| what | precision | GFLOP/s | share of attainable |",
        "|---|---|---:|---:|",
    ]
    attainable = {name: max(by_size.values()) for name, by_size in matmul.items()}
    for name, by_size in matmul.items():
        for n, rate in by_size.items():
            lines.append(f"| matmul {n}x{n} | {name} | {rate / 1e9:.1f} | {rate / attainable[name]:.0%} |")
    for r in results:
        peak = attainable.get(r["precision"], attainable["fp32"])
        r["ratio"] = r["achieved_flops"] / peak
        lines.append(
            f"| {r['method']} ({r['tokens_per_s']:.0f} tokens/s, peak mem {r['peak_mem_mb']:,.0f} MiB) "
            f"| {r['precision']} | {r['achieved_flops'] / 1e9:.1f} | **{r['ratio']:.0%}** |"
        )
    print("\n".join(lines))
    if args.json:
        payload = {
            "matmul": {k: {str(n): v for n, v in d.items()} for k, d in matmul.items()},
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
