"""GPU paths: every recipe on a CUDA device, with the memory planner's estimate next to the measured peak.

Cases (``--cases``, default all): ``lora`` (LoRA SFT, ``precision=auto``, which resolves to bf16 on a
GPU with bf16), ``qlora`` (the same on a 4-bit NF4 base through bitsandbytes), ``full`` (full
fine-tuning, bf16 autocast over fp32 master weights), ``dpo`` (LoRA DPO) and ``ddp`` (LoRA SFT on two
processes, NCCL, one GPU each; skipped with the reason when fewer than two GPUs are visible). Each runs
``--steps`` optimizer steps of the recipe (``imts.train.recipes``) on the throughput benchmark's rows,
then saves its model (LoRA and QLoRA also merge the adapter into an fp32 copy of the base; the
merged model's tensor dtypes are reported).

Reported per case: resolved precision, tokens/s and MFU (medians over the steps after the first two),
peak CUDA memory allocated while training (``torch.cuda.max_memory_allocated``, its counter reset
once the model is loaded, when the recipe reports ``started``), the planner's estimate for the
largest batch trained (``imts.train.plan.memory.estimate``, without the CUDA context, which the
allocator does not see; DPO is not modelled by the planner), first and last loss, and the files saved.

    python benchmarks/gpu_paths.py --json gpu.json
    # where the weights cannot reach (a lent GPU box): the model's config and tokenizer, random weights,
    # and the rows written beforehand by `train_throughput.py --write-rows rows.jsonl --rows 512`
    python benchmarks/gpu_paths.py --model cfgdir --random-init --rows-file rows.jsonl --json gpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import (
    DEFAULT_MODEL,
    build_rows,
    make_random_model,
    preference_pairs,
    read_rows,
)

CASES = ("lora", "qlora", "full", "dpo", "ddp")
MiB = 2**20


class PeakSink:
    """Keeps the recipe's metrics and events; resets the CUDA peak counter once training starts."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.events: list[dict[str, Any]] = []

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if "tokens_per_s" in values:
            self.steps.append({"step": step, **values})

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.events.append({"kind": kind, "message": message, "data": data or {}})
        if kind == "started" and torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()


def saved_dtypes(folder: Path) -> list[str]:
    """The dtypes of the tensors in a saved model (a 4-bit merge would show uint8, not float32)."""
    from safetensors import safe_open

    dtypes = set()
    for f in folder.glob("*.safetensors"):
        with safe_open(f, framework="pt") as st:
            dtypes |= {st.get_slice(k).get_dtype() for k in st.keys()}  # noqa: SIM118
    return sorted(dtypes)


def case_spec(case: str, args: argparse.Namespace) -> Any:
    from imts.train.spec import RunSpec

    fields: dict[str, Any] = {
        "method": "sft_lora",
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "max_seq_len": args.max_seq_len,
        "precision": "auto",
        "warmup_steps": 2,
        "val_split": None,
        "save_every": args.steps,
        "eval_every": args.steps,
        "merge": case in ("lora", "qlora"),
    }
    if case == "qlora":
        fields["quantization"] = "nf4"
    elif case == "full":
        fields.update(method="sft_full", lr=1e-4, merge=True)
    elif case == "dpo":
        fields.update(method="dpo", lr=1e-4)
    elif case == "ddp":
        fields["nproc"] = 2
    return RunSpec(base_model="m", data="d", **fields)


def largest_batch(spec: Any, model_path: Path, rows: list[dict[str, Any]]) -> tuple[int, int, float]:
    """(sequences, padded length, share of positions with a loss) of the largest micro-batch the run
    trains on: the batch stream is deterministic, so it is replayed here."""
    from transformers import AutoTokenizer

    from imts.train.data import IGNORE, example_stream
    from imts.train.loop import sft_examples

    tok = AutoTokenizer.from_pretrained(model_path)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    train, _, _ = sft_examples(tok, rows, [], spec)
    micro = max(1, spec.batch_size // spec.grad_accum)
    stream = iter(example_stream(train, micro, spec.seed, spec.batching == "length_grouped", pad))
    batches = [next(stream) for _ in range(spec.max_steps * spec.grad_accum)]
    big = max(batches, key=lambda b: b["input_ids"].numel())
    n, s = big["input_ids"].shape
    return n, s, float((big["labels"][:, 1:] != IGNORE).sum()) / (n * s)


def planner_estimate(spec: Any, model_path: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from imts.train.plan.arch import from_config
    from imts.train.plan.memory import Strategy, Workload, estimate, parse_hardware

    if spec.method == "dpo":
        return {"note": "the planner does not model DPO (two sequences per pair, a reference pass)"}
    n, seq, loss_fraction = largest_batch(spec, model_path, rows)
    work = Workload.of_run(spec, from_config(model_path), n, seq, loss_fraction)
    est = estimate(work, Strategy("single"), parse_hardware("1xh100"))
    parts = {k: getattr(est, k) / MiB for k in ("weights", "gradients", "optimizer", "activations", "logits")}
    return {
        "micro_batch": n,
        "seq_len": seq,
        "loss_fraction": round(loss_fraction, 4),
        "mib": {k: round(v, 1) for k, v in parts.items()},
        "total_mib_without_cuda_context": round(sum(parts.values()), 1),
    }


def run_case(
    case: str, args: argparse.Namespace, model_path: Path, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    from imts.core.hardware import resolve_precision
    from imts.train import distributed
    from imts.train.recipes import RECIPES
    from imts.train.spec import check_runnable

    spec = case_spec(case, args)
    if spec.nproc > 1 and spec.nproc > torch.cuda.device_count():
        return {
            "case": case,
            "skipped": f"needs {spec.nproc} GPUs (NCCL: one rank per GPU), "
            f"{torch.cuda.device_count()} visible",
        }
    check_runnable(spec)
    train_rows = preference_pairs(rows) if spec.method == "dpo" else rows
    sink = PeakSink()
    torch.cuda.empty_cache()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"gpu-{case}-") as out:
        result = distributed.launch(RECIPES[spec.method], spec, model_path, train_rows, [], Path(out), sink)
        saved = sorted(
            str(p.relative_to(out))
            for p in Path(out).rglob("*")
            if p.name in ("run_config.yaml", "adapter_config.json")
        )
        merged_dtypes = saved_dtypes(result.merged_dir) if result.merged_dir is not None else None
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / MiB
    timed = sink.steps[2:] or sink.steps
    started = next((e["data"] for e in sink.events if e["kind"] == "started"), {})
    out_case = {
        "case": case,
        "method": spec.method,
        "quantization": spec.quantization,
        "nproc": spec.nproc,
        "precision": resolve_precision(spec.precision),
        "trainable_params": started.get("trainable_params"),
        "steps": result.steps,
        "first_loss": sink.steps[0]["loss"],
        "last_loss": sink.steps[-1]["loss"],
        "tokens": result.tokens,
        "tokens_per_s": statistics.median(s["tokens_per_s"] for s in timed),
        "mfu": statistics.median(s["mfu"] for s in timed),
        "peak_allocated_mib": round(peak, 1),
        "seconds_incl_setup_and_save": round(seconds, 1),
        "saved": saved,
        "merged_dtypes": merged_dtypes,
        "watchdog_events": [
            e["message"] for e in sink.events if e["kind"] not in ("started", "finished", "checkpoint")
        ],
    }
    if spec.nproc == 1:
        est = planner_estimate(spec, model_path, rows)
        out_case["estimate"] = est
        if "total_mib_without_cuda_context" in est:
            out_case["measured_over_estimate"] = round(peak / est["total_mib_without_cuda_context"], 3)
    return out_case


def environment() -> dict[str, Any]:
    import peft
    import transformers

    env: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }
    try:
        import bitsandbytes

        env["bitsandbytes"] = bitsandbytes.__version__
    except ImportError as exc:
        env["bitsandbytes"] = f"not importable: {exc}"
    if torch.cuda.is_available():
        from imts.train import mfu

        env["bf16_matmul_tflops"] = round(mfu.peak_flops(torch.device("cuda"), torch.bfloat16) / 1e12, 1)
    return env


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument(
        "--random-init", action="store_true", help="--model's config and tokenizer, random weights"
    )
    p.add_argument("--rows-file", type=Path, default=None)
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark checks the GPU paths")
    cases = [c for c in args.cases.split(",") if c]
    if set(cases) - set(CASES):
        p.error(f"--cases: choose from {', '.join(CASES)}")
    rows = read_rows(args.rows_file, args.rows) if args.rows_file else build_rows(args.rows, 0)
    report: dict[str, Any] = {
        "environment": environment(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    print(json.dumps(report["environment"]), flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-model-") as tmp:
        model_path = make_random_model(args.model, Path(tmp), 0) if args.random_init else args.model
        report["cases"] = []
        for case in cases:
            try:
                r = run_case(case, args, model_path, rows)
            except Exception as exc:  # one broken path must not hide the others' figures
                r = {
                    "case": case,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                }
            report["cases"].append(r)
            print(json.dumps(r), flush=True)
            if args.json:
                args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
