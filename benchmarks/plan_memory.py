"""Plan check: the memory estimator (``imts.train.plan``) against the measured peak memory of a real
CPU run, in one process.

A few LoRA steps of a real model (default: SmolLM2-135M-Instruct from the model cache) run through
``imts.train.recipes.sft_lora.run`` in fp32 (the estimator's CPU mode). Measured: the process's peak
resident set size during training (VmHWM, reset through ``/proc/self/clear_refs`` once the model is
loaded, when the recipe reports ``started``) minus the resident size before the model was loaded (the
baseline: interpreter, torch, transformers, peft). Estimated:
``imts.train.plan.memory.estimate`` for the same architecture, LoRA rank and targets, micro-batch,
longest sequence and share of positions that get logits (the recipe computes logits on response
tokens only). Prints both and their ratio; ``--json`` prints them as JSON (used by the test).

glibc's malloc raises its mmap threshold as large blocks are freed, after which freed activation
tensors stay in the heap as holes: the process's peak RSS then holds 10-35% of allocator slack that
varies from run to run (measured 1.21x and 1.35x the estimate in two identical runs). The script
re-executes itself with ``MALLOC_MMAP_THRESHOLD_=131072`` (a fixed threshold: tensors above 128 KiB
are mapped and unmapped, so RSS follows the live tensors), which is what the estimate models; pass
``--glibc-default`` to measure with the default allocator behaviour instead.

    PYTHONPATH=src python benchmarks/plan_memory.py --steps 3 --batch 4
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = Path.home() / ".cache" / "imts" / "models" / "smollm2-135m-instruct"


def _status(key: str) -> int:
    """A /proc/self/status size in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


class _Sink:
    def __init__(self) -> None:
        self.rss: dict[str, int] = {}

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.rss[f"step{step}_peak"] = _status("VmHWM")

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        if kind == "started":
            self.rss["started"] = _status("VmRSS")
            # Model loaded, adapters attached, data encoded: from here on the training steps set the
            # peak. Loading itself briefly holds the checkpoint file's pages and the tensors (2x the
            # weights); that transient belongs to the loader, not to the training configuration.
            Path("/proc/self/clear_refs").write_text("5")


def _rows(n: int) -> list[dict[str, Any]]:
    from imts.flywheel.demo import example_generator

    rows, _ = example_generator().generate(n=n, seed=3, zh_share=0.0)
    return [
        {
            "messages": [
                {"role": "user", "content": r["prompt"]},
                {"role": "assistant", "content": r["response"]},
            ]
        }
        for r in rows
    ]


def measure(model: Path, steps: int, batch: int, rows: int, threads: int) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from imts.train.data import IGNORE, encode
    from imts.train.plan.arch import from_config
    from imts.train.plan.memory import Strategy, Workload, estimate, parse_hardware
    from imts.train.recipes import sft_lora
    from imts.train.spec import RunSpec

    torch.set_num_threads(threads)
    train_rows = _rows(rows)
    spec = RunSpec(
        base_model="m",
        data="d",
        max_steps=steps,
        batch_size=batch,
        precision="fp32",
        merge=False,
        val_split=None,
        save_every=10_000,
        warmup_steps=0,
    )
    # The workload as the recipe will see it: the longest example sets the sequence length of the
    # batch that peaks; logits are computed on the response positions only.
    tok = AutoTokenizer.from_pretrained(model)
    encoded = [encode(tok, r["messages"], spec.max_seq_len) for r in train_rows]
    seq = max(len(e.input_ids) for e in encoded)
    longest = sorted(encoded, key=lambda e: len(e.input_ids))[-batch:]
    loss_fraction = sum(sum(lab != IGNORE for lab in e.labels) for e in longest) / (batch * seq)
    del tok, encoded
    arch = from_config(model)
    work = Workload.of_run(spec, arch, batch, seq, loss_fraction)
    est = estimate(work, Strategy("single"), parse_hardware("cpu"))

    gc.collect()
    baseline = _status("VmRSS")
    with tempfile.TemporaryDirectory() as out:
        sink = _Sink()
        sft_lora.run(spec, model, train_rows, [], Path(out), sink)
    peak = _status("VmHWM")
    measured = peak - baseline
    return {
        "model": arch.name,
        "params": arch.params(),
        "trainable": work.trainable,
        "micro_batch": batch,
        "seq_len": seq,
        "loss_fraction": round(loss_fraction, 4),
        "steps": steps,
        "estimate": {
            "weights": est.weights,
            "gradients": est.gradients,
            "optimizer": est.optimizer,
            "activations": est.activations,
            "logits": est.logits,
            "total": est.total,
        },
        "baseline_rss": baseline,
        "rss_over_baseline": {k: v - baseline for k, v in sink.rss.items()},
        "measured_peak_increase": measured,
        "ratio_measured_to_estimate": measured / est.total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--glibc-default", action="store_true", help="Keep glibc's dynamic mmap threshold.")
    args = ap.parse_args()
    if not args.glibc_default and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}  # read by glibc at process start
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    result = measure(args.model, args.steps, args.batch, args.rows, args.threads)
    if args.json:
        print(json.dumps(result))
        return
    mib = 1024**2
    e = result["estimate"]
    print(
        f"{result['model']}: {result['params']:,} params, LoRA {result['trainable']:,} trainable, fp32 on CPU"
    )
    print(f"micro-batch {result['micro_batch']} x {result['seq_len']} tokens, {result['steps']} steps")
    print("estimate MiB: " + ", ".join(f"{k} {v / mib:.0f}" for k, v in e.items()))
    over = result["rss_over_baseline"]
    print("RSS over baseline MiB: " + ", ".join(f"{k} {v / mib:.0f}" for k, v in over.items()))
    print(f"measured peak RSS increase: {result['measured_peak_increase'] / mib:.0f} MiB")
    print(f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'glibc default')}")
    print(f"measured / estimate: {result['ratio_measured_to_estimate']:.3f}")


if __name__ == "__main__":
    main()
