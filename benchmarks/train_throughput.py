"""Training throughput: IMTS's recipes against the Hugging Face ``Trainer`` and TRL, in one process.

Three methods, each against the tool a user would pick instead (``--methods``, default all three):

* ``lora``: LoRA SFT, ``imts`` (``recipes/sft_lora.py``) vs ``peer_default`` and ``peer_best`` (below);
* ``full``: full fine-tuning, ``imts_full`` (``recipes/sft_full.py``) vs ``peer_full`` (the ``Trainer``
  on the whole model, length-grouped sampler, as ``peer_best``);
* ``dpo``: LoRA DPO, ``imts_dpo`` (``recipes/dpo.py``) vs ``trl_dpo`` (TRL's ``DPOTrainer``, reference
  log-probs precomputed like IMTS's, conversational pairs through the same chat template, the same
  ``max_length``). Pairs: the row's answer chosen, the previous row's answer rejected.

The same workload on every side: same base model, same tokenised examples (built with
``imts.train.data.encode``: chat template, labels on the assistant tokens only), same batch size,
same sequence budget (``max_seq_len``), same number of optimizer steps, same LoRA config, same
learning-rate schedule (linear warm-up, cosine to ``lr * min_lr_ratio``), the same precision
(``--precision``: fp32 everywhere, or bf16: ``bf16=True`` on the Trainer/TRL side and, for LoRA, the
frozen base loaded in bf16 on every side, as IMTS does).

Sides:

* ``imts``          -- ``imts.train.recipes.sft_lora.run`` called directly (its defaults: length-grouped
  batches, loss computed on the response positions only).
* ``peer_default``  -- ``transformers.Trainer`` as a user would write it: random sampler, a collator that
  pads to the longest sequence of each batch (``DataCollatorForSeq2Seq``, ``label_pad_token_id=-100``),
  the standard full-sequence causal-LM loss, the default optimizer.
* ``peer_best``     -- the same with the length-grouped sampler
  (``train_sampling_strategy="group_by_length"``; ``group_by_length=True`` in transformers 4.x).

What is timed, identically on every side: the wall time between the end of one optimizer step and
the end of the next (so each step's interval holds fetching and collating its batch, forward,
backward, clipping, the optimizer and scheduler step, and the framework's per-step bookkeeping).
Model loading, tokenisation, and everything before the first step or after the last is excluded.
The first ``--skip`` steps (default 2) are warm-up and are left out on every side: the figure is
real (non-pad) tokens of steps ``skip+1..steps`` divided by the time from the end of step ``skip``
to the end of the last step. On the IMTS side the step ends are timestamped when the recipe reports
the step's metrics to the sink; on the Trainer side by a ``TrainerCallback.on_step_end``.

A second, "in-step" figure is also reported: for IMTS the recipe's own per-step timer (batch fetch
to ``zero_grad``, from its ``tokens_per_s`` metric); for the Trainer ``on_step_begin`` ->
``on_step_end`` (which, in transformers 5.x, starts *after* the batch has been fetched and collated).

Run from the repository root::

    .venv/bin/python benchmarks/train_throughput.py                  # SmolLM2-135M, 4 steps per side
    .venv/bin/python benchmarks/train_throughput.py --steps 30 --batch-size 8 --rows 2000  # publishable
    .venv/bin/python benchmarks/train_throughput.py --tiny --steps 4  # smoke run, seconds
    .venv/bin/python benchmarks/train_throughput.py --methods lora --sides imts,peer_best --json out.json
    python benchmarks/train_throughput.py --random-init --rows-file rows.jsonl --precision bf16  # GPU box

``--random-init`` keeps ``--model``'s architecture and tokenizer but initialises the weights (for a
machine the weights cannot reach: the same shapes cost the same FLOPs and memory). ``--rows-file``
reads the rows from a JSON-lines file that ``--write-rows FILE`` wrote, for a machine without the
data generator's dependencies.

Take figures to publish on a quiet machine: other processes on the CPU skew every side.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = Path.home() / ".cache" / "imts" / "models" / "smollm2-135m-instruct"
METHOD_SIDES = {
    "lora": ("imts", "peer_default", "peer_best"),
    "full": ("imts_full", "peer_full"),
    "dpo": ("imts_dpo", "trl_dpo"),
}
SIDES = tuple(side for sides in METHOD_SIDES.values() for side in sides)
PAIRS = {"peer_default": "imts", "peer_best": "imts", "peer_full": "imts_full", "trl_dpo": "imts_dpo"}


# --------------------------------------------------------------------------------------------------
# Workload
# --------------------------------------------------------------------------------------------------


def build_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` canonical rows of mixed length: half one math problem, half 2-6 problems concatenated."""
    from imts.flywheel.demo import example_generator

    pool, _ = example_generator().generate(3 * n + 6, seed)
    rng = random.Random(seed + 1)
    rows, cursor = [], 0
    for i in range(n):
        k = 1 if rng.random() < 0.5 else rng.randint(2, 6)
        items = [pool[(cursor + j) % len(pool)] for j in range(k)]
        cursor += k
        if k == 1:
            prompt, response = items[0]["prompt"], items[0]["response"]
        else:
            prompt = "Solve each problem.\n" + "\n".join(
                f"{j}. {r['prompt']}" for j, r in enumerate(items, 1)
            )
            response = "\n".join(f"{j}. {r['response']}" for j, r in enumerate(items, 1))
        rows.append(
            {
                "id": f"bench-{i:06d}",
                "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                "problems": k,
            }
        )
    return rows


def make_random_model(model_dir: Path, out: Path, seed: int) -> Path:
    """``model_dir``'s architecture with randomly initialised weights, saved to ``out`` with its tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir)).save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def read_rows(path: Path, n: int) -> list[dict[str, Any]]:
    """The first ``n`` rows of a JSON-lines file written by ``--write-rows``."""
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(n), f, strict=False)]
    if len(rows) < n:
        raise SystemExit(f"{path} holds {len(rows)} rows, {n} asked for")
    return rows


def make_tiny_model(tokenizer_dir: Path, out: Path, seed: int) -> Path:
    """A randomly initialised 2-layer Llama (hidden 64) with the SmolLM2 tokenizer, saved to ``out``."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class SideResult:
    side: str
    steps: int  # optimizer steps run
    measured_steps: int  # steps counted (after the warm-up skip)
    tokens: int  # real (non-pad) tokens of the measured steps
    processed: int  # all positions of the measured steps, padding included
    seconds: float  # step-end to step-end wall time over the measured steps
    in_step_seconds: float  # the narrower per-step timer (see the module docstring)
    cpu_seconds: float  # process CPU time over the same interval as ``seconds`` (all threads)
    final_loss: float
    mean_loss: float  # mean step loss over the measured steps
    step_seconds: list[float] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")

    @property
    def in_step_tokens_per_s(self) -> float:
        return self.tokens / self.in_step_seconds if self.in_step_seconds > 0 else float("nan")

    @property
    def tokens_per_cpu_s(self) -> float:
        return self.tokens / self.cpu_seconds if self.cpu_seconds > 0 else float("nan")

    @property
    def pad_share(self) -> float:
        return 1 - self.tokens / self.processed if self.processed else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "tokens_per_s": self.tokens_per_s,
            "in_step_tokens_per_s": self.in_step_tokens_per_s,
            "tokens_per_cpu_s": self.tokens_per_cpu_s,
            "pad_share": self.pad_share,
        }


def summarise(
    side: str,
    ends: list[float],
    cpu_ends: list[float],
    in_step: list[float],
    batches: list[tuple[int, int]],
    losses: list[float],
    skip: int,
    notes: dict[str, Any],
) -> SideResult:
    """``ends[i]`` / ``cpu_ends[i]``: wall / CPU clock at the end of step i+1; ``batches[i]``: (real,
    processed) tokens of step i+1."""
    steps = len(ends)
    if len(batches) < steps or len(in_step) < steps or len(losses) < steps:
        raise RuntimeError(f"{side}: incomplete per-step records")
    measured = range(skip, steps)
    return SideResult(
        side=side,
        steps=steps,
        measured_steps=len(measured),
        tokens=sum(batches[i][0] for i in measured),
        processed=sum(batches[i][1] for i in measured),
        seconds=ends[-1] - ends[skip - 1] if skip > 0 else float("nan"),
        in_step_seconds=sum(in_step[i] for i in measured),
        cpu_seconds=cpu_ends[-1] - cpu_ends[skip - 1],
        final_loss=losses[steps - 1],
        mean_loss=statistics.fmean(losses[i] for i in measured),
        step_seconds=[ends[i] - ends[i - 1] for i in range(max(1, skip), steps)],
        notes=notes,
    )


# --------------------------------------------------------------------------------------------------
# IMTS side
# --------------------------------------------------------------------------------------------------


class ClockSink:
    """The recipe's sink: timestamps each step's metrics; prints a short progress line."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total
        self.ends: list[float] = []
        self.cpu_ends: list[float] = []
        self.values: list[dict[str, float]] = []
        self.events: list[tuple[str, str]] = []

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if "tokens_per_s" not in values:
            return
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())
        self.values.append(dict(values))
        progress(self.label, step, self.total, values["loss"])

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.events.append((kind, message))


def progress(label: str, step: int, total: int, loss: float) -> None:
    every = max(1, total // 5)
    if step % every == 0 or step == total:
        print(f"  {label}: step {step}/{total} loss {loss:.4f}", file=sys.stderr, flush=True)


def run_imts(
    side: str,
    spec: Any,
    model_path: Path,
    rows: list[dict[str, Any]],
    examples: list[Any],
    pad_id: int,
    skip: int,
) -> SideResult:
    """``examples``: the recipe's SFT examples, or for DPO its encoded (chosen, rejected) pairs."""
    from imts.train.data import BatchStream, example_stream
    from imts.train.recipes import RECIPES, dpo

    # The recipe's batches, replayed: the batch stream is deterministic for (examples, seed, epoch), so
    # this yields exactly the batches the recipe will train on (checked against its token count).
    micro = max(1, spec.batch_size // spec.grad_accum)
    grouped = spec.batching == "length_grouped"
    if spec.method == "dpo":
        lengths = [max(len(c.input_ids), len(r.input_ids)) for c, r in examples]
        stream = iter(
            BatchStream(lengths, micro, spec.seed, grouped, lambda i: dpo.collate_pairs(examples, i, pad_id))
        )
    else:
        stream = iter(example_stream(examples, micro, spec.seed, grouped, pad_id))
    batches = []
    for _ in range(spec.max_steps):
        real = processed = 0
        for _ in range(spec.grad_accum):
            b = next(stream)
            real += int(b["attention_mask"].sum())
            processed += b["attention_mask"].numel()
        batches.append((real, processed))

    sink = ClockSink(side, spec.max_steps)
    with tempfile.TemporaryDirectory(prefix="imts-bench-") as out:
        result = RECIPES[spec.method](spec, model_path, rows, [], Path(out), sink)
    if sum(r for r, _ in batches) != result.tokens:
        raise RuntimeError(
            f"replayed IMTS batches hold {sum(r for r, _ in batches)} tokens, recipe {result.tokens}"
        )
    in_step = [b[0] / v["tokens_per_s"] for b, v in zip(batches, sink.values, strict=True)]
    notes = {
        "batching": spec.batching,
        "recipe_seconds_incl_setup": result.seconds,
        "mfu": statistics.median(v["mfu"] for v in sink.values[skip:]),
        "peak_mem_mb": sink.values[-1]["peak_mem_mb"],
        "events": [f"{k}: {m}" for k, m in sink.events],
    }
    losses = [v["loss"] for v in sink.values]
    return summarise(side, sink.ends, sink.cpu_ends, in_step, batches, losses, skip, notes)


# --------------------------------------------------------------------------------------------------
# Hugging Face Trainer side
# --------------------------------------------------------------------------------------------------


class ExampleDataset(torch.utils.data.Dataset):
    def __init__(self, examples: list[Any]) -> None:
        self.items = [
            {"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
            for e in examples
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.items[i]


class CountingCollator:
    """Wraps the user's collator; records (real, processed) tokens of each batch, in order."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[tuple[int, int]] = []

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(features)
        self.batches.append((int(batch["attention_mask"].sum()), batch["attention_mask"].numel()))
        return batch


def step_clock(side: str) -> Any:
    """A ``TrainerCallback`` that timestamps step begins/ends and records the logged loss per step."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.begins: list[float] = []
            self.ends: list[float] = []
            self.cpu_ends: list[float] = []
            self.losses: dict[int, float] = {}

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.begins.append(time.perf_counter())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.ends.append(time.perf_counter())
            self.cpu_ends.append(time.process_time())

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.losses[state.global_step] = float(logs["loss"])
                progress(side, state.global_step, state.max_steps, float(logs["loss"]))

        def per_step(self) -> tuple[int, list[float], list[float]]:
            """(steps, seconds inside each step, logged loss of each step)."""
            steps = len(self.ends)
            in_step = [e - b for b, e in zip(self.begins, self.ends, strict=True)]
            return steps, in_step, [self.losses.get(s, float("nan")) for s in range(1, steps + 1)]

    return StepClock()


def quiet_train(trainer: Any) -> float:
    """``trainer.train()`` without its own printing and progress bar; its wall time in seconds."""
    from transformers import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


def lora_config(spec: Any) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=spec.lora.r,
        lora_alpha=spec.lora.alpha,
        lora_dropout=spec.lora.dropout,
        target_modules=spec.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def schedule_args(spec: Any) -> dict[str, Any]:
    """The recipe's optimisation settings as ``TrainingArguments`` fields (shared by Trainer and TRL)."""
    return {
        "per_device_train_batch_size": max(1, spec.batch_size // spec.grad_accum),
        "gradient_accumulation_steps": spec.grad_accum,
        "max_steps": spec.max_steps,
        "learning_rate": spec.lr,
        # The recipe's schedule: linear warm-up, cosine decay to lr * min_lr_ratio ("cosine" decays to 0).
        "lr_scheduler_type": "cosine_with_min_lr",
        "lr_scheduler_kwargs": {"min_lr_rate": spec.min_lr_ratio},
        "warmup_steps": spec.warmup_steps,
        "weight_decay": spec.weight_decay,
        "max_grad_norm": spec.max_grad_norm,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": not torch.cuda.is_available(),
        "bf16": spec.precision == "bf16",
        "seed": spec.seed,
    }


def run_peer(side: str, spec: Any, model_path: Path, examples: list[Any], skip: int) -> SideResult:
    from peft import get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    from imts.train.loop import base_dtype

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    torch.manual_seed(spec.seed)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=base_dtype(spec))  # as the recipe
    model.config.use_cache = False
    if side != "peer_full":  # the full fine-tune trains the model as loaded
        model = get_peft_model(model, lora_config(spec))

    sampling = {}
    if side in ("peer_best", "peer_full"):
        fields = TrainingArguments.__dataclass_fields__
        sampling = (
            {"train_sampling_strategy": "group_by_length"}
            if "train_sampling_strategy" in fields
            else {"group_by_length": True}
        )
    collator = CountingCollator(DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    clock = step_clock(side)
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as out:
        args = TrainingArguments(output_dir=out, **schedule_args(spec), **sampling)
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=ExampleDataset(examples),
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=[clock],
        )
        train_seconds = quiet_train(trainer)
    steps, in_step, losses = clock.per_step()
    notes = {
        "sampling": sampling or {"train_sampling_strategy": "random"},
        "optim": str(args.optim),
        "trainer_train_seconds": train_seconds,
        "collated_batches": len(collator.batches),
    }
    # Batches are collated in step order (the dataloader may collate one batch ahead: ignored).
    return summarise(side, clock.ends, clock.cpu_ends, in_step, collator.batches[:steps], losses, skip, notes)


def run_trl_dpo(side: str, spec: Any, model_path: Path, pairs: list[dict[str, Any]], skip: int) -> SideResult:
    """TRL's ``DPOTrainer`` on the same pairs: LoRA (reference = adapters disabled), sigmoid loss, the
    same beta, reference log-probs precomputed before training as IMTS does."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from imts.train.loop import base_dtype

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    torch.manual_seed(spec.seed)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=base_dtype(spec))  # as the recipe
    model.config.use_cache = False
    data = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": p["prompt"]}],
                "chosen": [{"role": "assistant", "content": p["chosen"]}],
                "rejected": [{"role": "assistant", "content": p["rejected"]}],
            }
            for p in pairs
        ]
    )
    clock = step_clock(side)
    with tempfile.TemporaryDirectory(prefix="trl-bench-") as out:
        args = DPOConfig(
            output_dir=out,
            **schedule_args(spec),
            beta=spec.dpo.beta,
            loss_type=["sigmoid"],
            precompute_ref_log_probs=True,
            max_length=spec.max_seq_len,
        )
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=lora_config(spec),
            callbacks=[clock],
        )
        collator = CountingCollator(trainer.data_collator)  # after the reference pass: training batches only
        trainer.data_collator = collator
        train_seconds = quiet_train(trainer)
    steps, in_step, losses = clock.per_step()
    import trl

    notes = {
        "trl": trl.__version__,
        "trainer_train_seconds": train_seconds,
        "collated": len(collator.batches),
    }
    return summarise(side, clock.ends, clock.cpu_ends, in_step, collator.batches[:steps], losses, skip, notes)


def preference_pairs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The row's answer chosen, the previous row's answer (another problem) rejected."""
    return [
        {
            "id": r["id"],
            "prompt": r["messages"][0]["content"],
            "chosen": r["messages"][1]["content"],
            "rejected": rows[i - 1]["messages"][1]["content"],
        }
        for i, r in enumerate(rows)
    ]


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import peft
    import transformers

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "load_avg": load_avg(),
    }


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def fmt(x: float, spec: str) -> str:
    return "n/a" if x != x else format(x, spec)  # NaN check


def report(results: dict[str, SideResult], info: dict[str, Any]) -> str:
    lines = [
        f"### Training throughput, {info['workload']}",
        "",
        f"- command: `{info['command']}`",
        f"- date: {info['date']}",
        f"- machine: {info['machine']['cpu']}, {info['machine']['cores']} cores, "
        f"GPU {info['machine'].get('gpu', 'none')}, "
        f"torch {info['machine']['torch']} ({info['machine']['torch_threads']} threads), "
        f"transformers {info['machine']['transformers']}, peft {info['machine']['peft']}",
        f"- load average (1/5/15 min) at start: {info['machine']['load_avg']}, at end: {info['load_avg_end']}"
        + ("  **(busy machine: figures are not publishable)**" if info["busy"] else ""),
        f"- data: {info['data']}",
        f"- timed: step-end to step-end wall time of optimizer steps {info['skip'] + 1}..{info['steps']} "
        f"(first {info['skip']} skipped as warm-up on every side); tokens = real (non-pad) tokens",
        "",
        "| side | steps | tokens | seconds | tokens/s | in-step tokens/s | tokens/CPU-s | padding share "
        "| final loss |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.values():
        cells = [
            r.side,
            str(r.measured_steps),
            f"{r.tokens:,}",
            f"{r.seconds:.2f}",
            fmt(r.tokens_per_s, ",.0f"),
            fmt(r.in_step_tokens_per_s, ",.0f"),
            fmt(r.tokens_per_cpu_s, ",.1f"),
            fmt(r.pad_share, ".1%"),
            fmt(r.final_loss, ".4f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    cpu = ratios(results, "tokens_per_cpu_s")
    for peer, ratio in ratios(results).items():
        lines.append(
            f"- {PAIRS[peer]} / {peer}: **{fmt(ratio, '.2f')}x** tokens/s "
            f"({fmt(cpu[peer], '.2f')}x tokens per CPU-second)"
        )
    for r in results.values():
        if "mfu" in r.notes:
            mfu, mem = r.notes["mfu"], r.notes["peak_mem_mb"]
            lines.append(f"- {r.side}: MFU {mfu:.1%} (median), peak memory {mem:,.0f} MiB")
    return "\n".join(lines)


def ratios(results: dict[str, SideResult], metric: str = "tokens_per_s") -> dict[str, float]:
    """IMTS side / peer side, for each peer that ran next to its IMTS side."""
    return {
        peer: getattr(results[ours], metric) / getattr(results[peer], metric)
        for peer, ours in PAIRS.items()
        if peer in results and ours in results
    }


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="converted base model directory")
    p.add_argument("--steps", type=int, default=4, help="optimizer steps per side (default 4)")
    p.add_argument("--batch-size", type=int, default=4, help="sequences (pairs) per step (default 4)")
    p.add_argument("--rows", type=int, default=None, help="training rows (default 200)")
    p.add_argument("--max-seq-len", type=int, default=256, help="token budget per sequence (default 256)")
    p.add_argument(
        "--methods",
        default=",".join(METHOD_SIDES),
        help="comma-separated, from lora, full, dpo (default all)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=2,
        help="untimed IMTS LoRA steps before the first side, so no side pays the process's warm-up (0: none)",
    )
    p.add_argument("--skip", type=int, default=1, help="warm-up steps left out on every side (default 1)")
    p.add_argument(
        "--sides", default=None, help=f"comma-separated, from {', '.join(SIDES)} (default: all of --methods)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="every side (default fp32)")
    p.add_argument(
        "--random-init", action="store_true", help="--model's architecture and tokenizer, random weights"
    )
    p.add_argument("--rows-file", type=Path, default=None, help="read the rows from this JSON-lines file")
    p.add_argument("--write-rows", type=Path, default=None, help="write --rows rows to this file and exit")
    p.add_argument(
        "--tiny",
        action="store_true",
        help="smoke run: random 2-layer Llama (hidden 64), max_seq_len 128, 200 rows by default",
    )
    args = p.parse_args(argv)
    if args.rows is None:
        args.rows = 200
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods or set(methods) - set(METHOD_SIDES):
        p.error(f"--methods: choose from {', '.join(METHOD_SIDES)}")
    if args.sides is None:
        args.sides = ",".join(side for m in methods for side in METHOD_SIDES[m])
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = set(args.sides) - set(SIDES)
    if unknown or not args.sides:
        p.error(f"--sides: unknown {sorted(unknown)}; choose from {', '.join(SIDES)}")
    if not 1 <= args.skip < args.steps:
        p.error("need 1 <= --skip < --steps")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from imts.train.data import IGNORE, encode
    from imts.train.spec import RunSpec

    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    hf_logging.disable_progress_bar()
    if not (args.model / "config.json").exists():
        raise SystemExit(
            f"no model at {args.model}: run `imts models pull smollm2-135m-instruct` (or pass --model PATH)"
        )

    spec = RunSpec.from_sources(
        overrides=[
            f"max_steps={args.steps}",
            f"batch_size={args.batch_size}",
            f"precision={args.precision}",
            "merge=false",
            "val_split=null",
            "train_split=null",
            f"save_every={args.steps}",
            f"eval_every={args.steps}",
            f"seed={args.seed}",
            # --tiny: its cost is all in the 49k-vocabulary head, so keep sequences short.
            f"max_seq_len={128 if args.tiny else args.max_seq_len}",
        ],
        base_model="x",
        data="x",
    )
    argv_shown = [os.path.relpath(sys.argv[0], REPO) if argv is None else "benchmarks/train_throughput.py"]
    command = shlex.join(["python", *argv_shown, *(sys.argv[1:] if argv is None else argv)])

    if args.write_rows:
        with args.write_rows.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in build_rows(args.rows, args.seed))
        print(f"wrote {args.rows} rows to {args.write_rows}", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tiny_dir:
        if args.tiny:
            model_path = make_tiny_model(args.model, Path(tiny_dir), args.seed)
        elif args.random_init:
            model_path = make_random_model(args.model, Path(tiny_dir), args.seed)
        else:
            model_path = args.model
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        rows = read_rows(args.rows_file, args.rows) if args.rows_file else build_rows(args.rows, args.seed)
        # Exactly the recipe's examples: encoded with its max_seq_len, fully truncated ones dropped.
        examples = [encode(tokenizer, r["messages"], spec.max_seq_len) for r in rows]
        examples = [e for e in examples if any(lab != IGNORE for lab in e.labels)]
        lengths = sorted(len(e.input_ids) for e in examples)
        data = (
            f"{len(examples)} examples from {len(rows)} mathgen rows (seed {args.seed}; half 1 problem, "
            "half 2-6 concatenated; rows with no response token left after truncation dropped); "
            f"tokens min {lengths[0]} / median {lengths[len(lengths) // 2]} / mean "
            f"{statistics.fmean(lengths):.0f} / max {lengths[-1]} (max_seq_len {spec.max_seq_len})"
        )
        workload = (
            f"{'+'.join(dict.fromkeys(m for m, ss in METHOD_SIDES.items() for s in args.sides if s in ss))} "
            f"(LoRA r={spec.lora.r}, alpha={spec.lora.alpha:g}, all attention+MLP projections; "
            f"DPO beta {spec.dpo.beta:g}), "
            f"{'tiny random Llama' if args.tiny else args.model.name}"
            f"{' (random weights)' if args.random_init else ''}, batch {spec.batch_size}, "
            f"{spec.max_steps} steps, lr {spec.lr:g} cosine (warm-up {spec.warmup_steps}), {spec.precision}"
        )
        info: dict[str, Any] = {
            "command": command,
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine(),
            "workload": workload,
            "data": data,
            "steps": spec.max_steps,
            "skip": args.skip,
            "spec": spec.model_dump(mode="json"),
        }
        print(f"{workload}\n{data}", file=sys.stderr)

        from imts.train.recipes import dpo

        pairs = preference_pairs(rows)
        encoded_pairs = [dpo.encode_pair(tokenizer, p, spec.max_seq_len) for p in pairs]
        encoded_pairs = [p for p in encoded_pairs if all(any(x != IGNORE for x in e.labels) for e in p)]
        full_spec = spec.model_copy(update={"method": "sft_full", "lr": spec.lr / 10})
        dpo_spec = spec.model_copy(update={"method": "dpo"})
        results: dict[str, SideResult] = {}
        if args.warmup_steps:
            # Untimed: the process's first training steps pay for allocator growth, thread-pool start and
            # kernel selection, which would otherwise all land on whichever side runs first.
            print(f"warm-up ({args.warmup_steps} untimed IMTS LoRA steps) ...", file=sys.stderr, flush=True)
            warm = spec.model_copy(update={"max_steps": args.warmup_steps})
            run_imts("warm-up", warm, model_path, rows, examples, pad_id, 0)
            gc.collect()
        for side in args.sides:
            print(f"running {side} ...", file=sys.stderr, flush=True)
            if side == "imts":
                results[side] = run_imts(side, spec, model_path, rows, examples, pad_id, args.skip)
            elif side == "imts_full":
                results[side] = run_imts(side, full_spec, model_path, rows, examples, pad_id, args.skip)
            elif side == "imts_dpo":
                results[side] = run_imts(side, dpo_spec, model_path, pairs, encoded_pairs, pad_id, args.skip)
            elif side == "trl_dpo":
                results[side] = run_trl_dpo(side, dpo_spec, model_path, pairs, args.skip)
            else:
                side_spec = full_spec if side == "peer_full" else spec
                results[side] = run_peer(side, side_spec, model_path, examples, args.skip)
            gc.collect()

    info["load_avg_end"] = load_avg()
    info["busy"] = (
        max(os.getloadavg()[:2]) > 1.25 * (os.cpu_count() or 1) if hasattr(os, "getloadavg") else False
    )
    print(report(results, info))
    if args.json:
        payload = {
            **info,
            "results": {k: v.to_json() for k, v in results.items()},
            "ratios": ratios(results),
            "cpu_ratios": ratios(results, "tokens_per_cpu_s"),
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
