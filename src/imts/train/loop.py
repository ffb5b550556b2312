"""What every recipe's loop shares, as plain functions over one ``Loop`` record.

A recipe (``recipes/sft_lora.py``, ``sft_full.py``, ``dpo.py``) keeps its own story — what a batch
is, what the loss is, what is saved — and calls these for the parts that must behave the same in all
of them: model loading, the LR schedule, resume, the watchdog's rollback, metrics, validation and
checkpoint bookkeeping, early stopping. Data parallelism is threaded through ``Loop.dist``.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imts.core.errors import ImtsError, Interrupted
from imts.core.files import share_like_siblings
from imts.core.hardware import resolve_precision
from imts.core.progress import Task
from imts.store.tracking import Sink
from imts.train import checkpoint, mfu
from imts.train.data import IGNORE, BatchStream, Example, collate, encode
from imts.train.distributed import Dist
from imts.train.spec import GENERATION_METRICS, RunSpec
from imts.train.watchdog import Verdict, Watchdog


class TrainingDiverged(ImtsError):
    """The watchdog intervened more often than allowed: the run cannot be saved by rollbacks."""


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path | None  # LoRA runs: the adapter folder
    merged_dir: Path | None  # a loadable full model: base + merged adapter, or the fully tuned model
    steps: int
    final_loss: float
    final_val_loss: float | None
    tokens: int
    seconds: float  # the whole run: loading, steps, validation and saving
    truncated: int
    step_seconds: float = 0.0  # the optimizer steps only (what the live bar's tokens/s is over)


# --- setup ------------------------------------------------------------------------------------------


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def base_dtype(spec: RunSpec) -> torch.dtype:
    """The dtype the (unquantised) base is loaded in. A LoRA base is only read: in a bf16 run it is stored
    in bf16 (half the memory, and autocast has no fp32 copy to cast every step). Trained weights stay fp32
    master copies: PEFT keeps adapters in fp32, and a full fine-tune loads fp32."""
    bf16_base = spec.uses_lora and resolve_precision(spec.precision) == "bf16"
    return torch.bfloat16 if bf16_base else torch.float32


def load_model(spec: RunSpec, base_path: Path, device: torch.device) -> tuple[Any, Any, int]:
    """(model, tokenizer, pad id): the base in fp32 (bf16 for LoRA in a bf16 run, 4-bit NF4 for QLoRA),
    with LoRA adapters when the method trains adapters."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if spec.quantization == "nf4":
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,  # the quantisation constants quantised too: ~0.4 bit/param less
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = AutoModelForCausalLM.from_pretrained(
            base_path, quantization_config=quant, dtype=torch.bfloat16, device_map={"": device}
        )
        # Norms and the head back in fp32, inputs that require grad: what training on a k-bit base needs.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = AutoModelForCausalLM.from_pretrained(base_path, dtype=base_dtype(spec)).to(device)
    model.config.use_cache = False  # no KV cache while training: it only costs memory
    if spec.uses_lora:
        from peft import LoraConfig, get_peft_model

        layers, top = model.config.num_hidden_layers, spec.lora.top_layers  # checked by the service
        lora = LoraConfig(
            layers_to_transform=list(range(layers - top, layers)) if top else None,
            r=spec.lora.r,
            lora_alpha=spec.lora.alpha,
            lora_dropout=spec.lora.dropout,
            target_modules=spec.lora.target_modules,
            task_type="CAUSAL_LM",
        )
        with quiet_peft():
            model = get_peft_model(model, lora)
        if spec.init_from:  # the service resolved it to the adapter folder and checked its settings
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(model, load_file(Path(spec.init_from) / "adapter_model.safetensors"))
    return model, tokenizer, pad_id


@contextmanager
def quiet_peft() -> Iterator[None]:
    """PEFT reads ``model.is_gradient_checkpointing``, which transformers deprecates with a
    FutureWarning: one in every training log that the user can do nothing about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing", category=FutureWarning)
        yield


def sft_examples(
    tokenizer: Any, train_rows: list[dict[str, Any]], val_rows: list[dict[str, Any]], spec: RunSpec
) -> tuple[list[Example], list[Example], int]:
    """Chat rows encoded for SFT: (train, val, how many train rows were truncated to max_seq_len).

    Train rows left with no response token after truncation are dropped: nothing to learn from them.
    """
    train = [encode(tokenizer, r["messages"], spec.max_seq_len) for r in train_rows]
    truncated = sum(1 for e in train if e.truncated)
    train = [e for e in train if any(lab != IGNORE for lab in e.labels)]
    val = [encode(tokenizer, r["messages"], spec.max_seq_len) for r in val_rows[: spec.val_max_items]]
    return train, val, truncated


def adamw(params: list[torch.nn.Parameter], spec: RunSpec) -> torch.optim.Optimizer:
    """AdamW, fused into one kernel per step where torch has it (CPU and CUDA): the default per-tensor
    loop costs ~2.9 s per step for SmolLM2's 135M weights on a 2-core CPU, the fused one ~0.3 s."""
    try:
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
    except (RuntimeError, TypeError):  # a device or dtype without a fused kernel
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)


def autocast(precision: str, device: torch.device) -> Any:
    """bf16 autocast where chosen; fp32 otherwise (QLoRA computes in bf16 whatever this says)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def cosine_schedule(optimizer: torch.optim.Optimizer, spec: RunSpec) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay from ``lr`` to ``lr * min_lr_ratio`` at ``max_steps``."""
    warm, total, floor = spec.warmup_steps, spec.max_steps, spec.min_lr_ratio

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        progress = (step - warm) / max(1, total - warm)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def set_lr_scale(optimizer: torch.optim.Optimizer, scheduler: Any, peak_lr: float) -> None:
    """Change the schedule's peak LR (the watchdog lowers it) and apply it to the current step."""
    scheduler.base_lrs = [peak_lr for _ in optimizer.param_groups]
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
    for group in optimizer.param_groups:
        group["lr"] = peak_lr * factor


@dataclass
class Loop:
    """The objects one training loop works on and what it carries from step to step."""

    spec: RunSpec
    model: Any
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    stream: BatchStream
    out_dir: Path
    sink: Sink
    dist: Dist
    flops: mfu.FlopModel
    peak_flops: float
    spec_yaml: str = ""
    step: int = 0
    lr_scale: float = 1.0
    grad_norm: float = float("nan")
    loss: float = float("nan")
    val_loss: float | None = None
    tokens: int = 0
    step_seconds: float = 0.0
    best_val: float = math.inf  # the best early_stopping_metric so far (-inf to start when higher is better)
    stale_evals: int = 0
    best_step: int | None = None
    started: float = field(default_factory=time.perf_counter)
    watchdog: Watchdog | None = None

    @property
    def ckpt_root(self) -> Path:
        return self.out_dir / "checkpoints"


def start(
    spec: RunSpec,
    model: Any,
    stream: BatchStream,
    out_dir: Path,
    sink: Sink,
    dist: Dist,
    precision: str,
    started: float,
) -> Loop:
    """Optimizer and schedule over the trainable weights, ``run_config.yaml``, and a resume from the
    newest checkpoint in ``out_dir`` if there is one."""
    params = [p for p in model.parameters() if p.requires_grad]  # a tied embedding/head is listed once
    optimizer = adamw(params, spec)
    scheduler = cosine_schedule(optimizer, spec)
    dtype = torch.bfloat16 if precision == "bf16" or spec.quantization == "nf4" else torch.float32
    lp = Loop(
        spec,
        model,
        params,
        optimizer,
        scheduler,
        stream,
        out_dir,
        sink,
        dist,
        mfu.flop_model(model, full=not spec.uses_lora),
        mfu.peak_flops(dist.device, dtype) * dist.world,
        spec.to_yaml(),
        started=started,
        watchdog=Watchdog(spec.watchdog),
    )
    if dist.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "run_config.yaml").write_text(lp.spec_yaml, encoding="utf-8")
    lp.best_val = math.inf if spec.early_stopping_minimizes else -math.inf
    resume_from = checkpoint.latest(lp.ckpt_root)
    if resume_from is not None:  # every rank restores the same checkpoint
        restore(lp, resume_from)
        if dist.main:
            sink.event("resumed", f"resumed from {resume_from.name}", lp.step)
    return lp


def restore(lp: Loop, ckpt: Path) -> None:
    """Weights, optimizer, scheduler, RNG, data position and bookkeeping from ``ckpt``."""
    checkpoint.load_weights(lp.model, ckpt)
    torch_state, state = checkpoint.load_trainer_state(ckpt)
    lp.optimizer.load_state_dict(torch_state["optimizer"])
    lp.scheduler.load_state_dict(torch_state["scheduler"])
    checkpoint.set_rng_state(torch_state["rng"])
    skip = lp.stream.skip
    lp.stream.load_state(state["data"])
    lp.stream.skip |= skip  # batches rejected since that checkpoint stay rejected
    lp.lr_scale = min(lp.lr_scale, state.get("lr_scale", 1.0))
    set_lr_scale(lp.optimizer, lp.scheduler, lp.spec.lr * lp.lr_scale)
    lp.step = int(state["step"])
    lp.best_val = float(state.get("best_val", lp.best_val))
    lp.stale_evals = int(state.get("stale_evals", 0))
    lp.best_step = state.get("best_step")


# --- loop -------------------------------------------------------------------------------------------


def next_batches(lp: Loop, it: Any) -> tuple[list[dict[str, torch.Tensor]], list[tuple[int, int]]]:
    """This rank's share of the ``grad_accum`` micro-batches of one step, and their positions."""
    batches, positions = [], []
    for _ in range(lp.spec.grad_accum):
        batch = next(it)
        positions.append(lp.stream.last)
        batches.append({k: v.to(lp.dist.device) for k, v in batch.items()})
    return batches, positions


def check_update(lp: Loop, loss: float, positions: list[tuple[int, int]], bar: Task) -> bool:
    """Clip the gradients and let the watchdog judge the update; on a verdict roll back and return False.

    Gradients and loss are already global (summed over ranks), so every rank reaches the same verdict.
    """
    grad_norm = float(torch.nn.utils.clip_grad_norm_(lp.params, lp.spec.max_grad_norm))
    lp.grad_norm = grad_norm
    assert lp.watchdog is not None
    verdict = lp.watchdog.check(loss, grad_norm)
    if verdict is None:
        return True
    rollback(lp, verdict, positions, bar)
    return False


def rollback(lp: Loop, verdict: Verdict, positions: list[tuple[int, int]], bar: Task) -> None:
    """The watchdog's answer: drop the update, restore the last good checkpoint, lower the LR, skip the
    offending batch, and record why."""
    assert lp.watchdog is not None
    spec, sink = lp.spec, lp.sink
    lp.optimizer.zero_grad(set_to_none=True)
    lp.watchdog.interventions += 1
    if lp.watchdog.interventions > spec.watchdog.max_interventions:
        if lp.dist.main:
            sink.event(
                "watchdog", f"giving up after {spec.watchdog.max_interventions} interventions", lp.step
            )
        raise TrainingDiverged(f"training diverged: {verdict.detail} (step {lp.step + 1})")
    lp.stream.skip.update(positions)
    good = checkpoint.latest(lp.ckpt_root)
    bad_step = lp.step + 1
    if good is not None:
        restore(lp, good)
        bar.advance(lp.step - (bad_step - 1))  # the bar goes back with the rollback
    lp.lr_scale *= spec.watchdog.lr_decay
    set_lr_scale(lp.optimizer, lp.scheduler, spec.lr * lp.lr_scale)
    lp.watchdog.losses.clear()
    lp.watchdog.grads.clear()
    if lp.dist.main:
        sink.event(
            "watchdog",
            f"{verdict.reason} at step {bad_step}: {verdict.detail}; "
            + (f"rolled back to {good.name}, " if good is not None else "update skipped, ")
            + f"learning rate x{spec.watchdog.lr_decay}, offending batch skipped",
            bad_step,
            {
                "reason": verdict.reason,
                "rolled_back_to": lp.step,
                "lr_scale": lp.lr_scale,
                "skipped": positions,
            },
        )


def apply_update(lp: Loop) -> None:
    lp.optimizer.step()
    lp.scheduler.step()
    lp.optimizer.zero_grad(set_to_none=True)
    lp.step += 1


def report(lp: Loop, values: dict[str, float], tokens: int, flops: float, seconds: float, bar: Task) -> None:
    """Per-step metrics (rank 0): the recipe's ``values`` plus LR, grad norm, tokens/s, MFU, memory."""
    lp.tokens += tokens
    lp.step_seconds += seconds
    lp.loss = values["loss"]
    values = {
        **values,
        "lr": lp.scheduler.get_last_lr()[0],
        "grad_norm": lp.grad_norm,
        "tokens_per_s": tokens / seconds,
        "mfu": flops / seconds / lp.peak_flops,
        "peak_mem_mb": mfu.peak_mem_mb(lp.dist.device),
        "epoch": lp.stream.epoch_progress,
    }
    if lp.dist.main:
        lp.sink.metrics(lp.step, values)
    bar.advance(
        1,
        loss=values["loss"],
        lr=values["lr"],
        gnorm=values["grad_norm"],
        tok_s=round(values["tokens_per_s"]),
        mfu=f"{values['mfu']:.0%}",
    )


def after_step(
    lp: Loop, validate: Callable[[], dict[str, float]] | None, should_stop: Callable[[], bool] | None
) -> bool:
    """Validation, checkpoints and early stopping after a step; True when the run should end now.

    Raises ``Interrupted`` after saving a checkpoint when ``should_stop`` (rank 0's) says so.
    """
    spec, step, dist = lp.spec, lp.step, lp.dist
    improved, stop = False, False
    if validate is not None and (step % spec.eval_every == 0 or step == spec.max_steps):
        values = validate()
        lp.val_loss = values["val_loss"]
        if dist.main:
            lp.sink.metrics(step, values)
        lp.model.train()
        value, delta = values[spec.early_stopping_metric], spec.early_stopping_min_delta
        improved = (
            value < lp.best_val - delta if spec.early_stopping_minimizes else value > lp.best_val + delta
        )
        lp.best_val, lp.stale_evals = (value, 0) if improved else (lp.best_val, lp.stale_evals + 1)
        if improved:
            lp.best_step = step
        stop = spec.early_stopping_patience is not None and lp.stale_evals >= spec.early_stopping_patience
    preempted = dist.flag(should_stop is not None and should_stop())  # e.g. preemption: save, then stop
    if step % spec.save_every == 0 or step == spec.max_steps or improved or stop or preempted:
        if dist.main:
            path = checkpoint.save(
                lp.ckpt_root,
                step,
                lp.model,
                lp.optimizer,
                lp.scheduler,
                lp.stream.state(),
                lp.spec_yaml,
                {
                    "loss": lp.loss,
                    "val_loss": lp.val_loss,
                    "lr_scale": lp.lr_scale,
                    "best_val": lp.best_val,
                    "stale_evals": lp.stale_evals,
                    "best_step": lp.best_step,
                },
                spec.keep_last,
            )
            lp.sink.event("checkpoint", f"saved {path.name}", step)
            if improved:
                checkpoint.keep_best(path, lp.ckpt_root)
        dist.barrier()  # no rank may roll back to a checkpoint before it is complete
    if preempted and step < spec.max_steps:
        if dist.main:
            lp.sink.event("stopped", f"stopped on request at step {step}", step)
        raise Interrupted(step)
    if stop:
        if dist.main:
            lp.sink.event(
                "early_stop",
                f"{spec.early_stopping_metric} has not improved for {lp.stale_evals} validations; "
                f"best {lp.best_val:.4f} at step {lp.best_step}",
                step,
            )
        return True
    return False


def restore_best(lp: Loop) -> None:
    """After early stopping, the final weights are the best checkpoint's."""
    if lp.spec.early_stopping_patience is not None and lp.best_step is not None and lp.best_step != lp.step:
        checkpoint.load_weights(lp.model, lp.ckpt_root / "best")
        if lp.dist.main:
            lp.sink.event(
                "best_restored", f"final weights are the best checkpoint (step {lp.best_step})", lp.best_step
            )


# --- the SFT loss (sft_lora, sft_full) ---------------------------------------------------------------


def backbone_and_head(model: Any) -> tuple[Any, Any]:
    """The transformer body and the LM head of a causal LM (through a PEFT wrapper)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.model, inner.get_output_embeddings()


def response_loss_sum(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed next-token loss over the response tokens, computing the vocabulary projection only there.

    The LM head (49k x 576 for SmolLM2) is a fifth of the model; prompts are most of each sequence, and
    their logits would be computed only to be ignored. A sum, not a mean: the caller divides by the
    loss-token count of the whole step (all micro-batches, all ranks), so the update does not depend
    on how the step was split. With tied embeddings the head's gradient reaches the embedding matrix.
    """
    body, head = backbone_and_head(model)
    hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    logits = head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum")


def response_tokens(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The positions each row's loss is taken at (its response tokens), per row."""
    return (batch["labels"][:, 1:] != IGNORE).sum(1)


def loss_positions(batch: dict[str, torch.Tensor]) -> int:
    return int(response_tokens(batch).sum())


def validation_loss(
    model: Any, val: list[Example], pad_id: int, autocast_ctx: Any, dist: Dist, batch_size: int = 16
) -> float:
    """Mean loss per response token over the validation examples (each rank takes a share)."""
    model.eval()
    total, count = 0.0, 0
    ordered = sorted(val, key=lambda e: len(e.input_ids))[dist.rank :: dist.world]
    with torch.inference_mode():
        for s in range(0, len(ordered), batch_size):
            batch = {k: v.to(dist.device) for k, v in collate(ordered[s : s + batch_size], pad_id).items()}
            with autocast_ctx:
                total += float(response_loss_sum(model, batch))
            count += loss_positions(batch)
    total, count = dist.sum([total, count])
    return total / max(1, count)


def sft_validation(
    model: Any,
    tokenizer: Any,
    val: list[Example],
    val_rows: list[dict[str, Any]],
    pad_id: int,
    autocast_ctx: Any,
    spec: RunSpec,
    dist: Dist,
) -> dict[str, float]:
    """``val_loss``, and with ``val_generation_metrics`` the evaluation court's scores of greedy answers
    to the first ``val_generation_items`` validation rows (rank 0 generates; every rank gets the figures)."""
    values = {"val_loss": validation_loss(model, val, pad_id, autocast_ctx, dist)}
    if not spec.val_generation_metrics:
        return values
    from imts.evals.scoring import score
    from imts.inference.generate import generate

    keys = [GENERATION_METRICS[m] for m in spec.val_generation_metrics]
    scores = [0.0] * len(keys)
    if dist.main:
        rows = val_rows[: spec.val_generation_items]
        config = (model.get_base_model() if hasattr(model, "get_base_model") else model).config
        use_cache, config.use_cache = config.use_cache, True  # off for training; generation needs it
        model.eval()
        try:
            with autocast_ctx:
                texts, _ = generate(
                    tokenizer, model, [r["messages"][:-1] for r in rows], spec.val_generation_max_new_tokens
                )
        finally:
            config.use_cache = use_cache
        summary = score(rows, texts, spec.val_generation_metrics, []).summary
        scores = [summary[k] for k in keys]
    return {**values, **{f"val_{k}": v for k, v in zip(keys, dist.sum(scores), strict=True)}}


# --- save -------------------------------------------------------------------------------------------


def save_adapter(lp: Loop, tokenizer: Any, base_path: Path) -> tuple[Path, Path | None]:
    """The adapter folder, and with ``merge`` a full model with the adapter merged into the base."""
    model, spec, out_dir = lp.model, lp.spec, lp.out_dir
    model.eval()
    adapter_dir = out_dir / "adapter"
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    (adapter_dir / "run_config.yaml").write_text(lp.spec_yaml, encoding="utf-8")
    share_like_siblings(adapter_dir)  # safetensors writes its file 0600
    if not spec.merge:
        return adapter_dir, None
    if any(p.dtype != torch.float32 for p in model.parameters() if not p.requires_grad):
        # Merging into 4-bit (QLoRA) or bf16 weights would round the adapter away: merge into the base
        # in full precision.
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        with quiet_peft():
            merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    else:
        merged = model.merge_and_unload()
    return adapter_dir, save_full_model(merged, tokenizer, out_dir / "merged", lp.spec_yaml)


def save_full_model(model: Any, tokenizer: Any, folder: Path, spec_yaml: str) -> Path:
    """A loadable model folder: safetensors weights, config, tokenizer and ``run_config.yaml``."""
    model.eval()
    model.config.use_cache = True
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "run_config.yaml").write_text(spec_yaml, encoding="utf-8")
    share_like_siblings(folder)  # safetensors writes its file 0600
    return folder


def result(lp: Loop, adapter_dir: Path | None, merged_dir: Path | None, truncated: int) -> TrainResult:
    seconds = time.perf_counter() - lp.started
    if lp.dist.main:
        lp.sink.event("finished", f"{lp.step} steps in {seconds:.0f}s", lp.step)
    return TrainResult(
        adapter_dir, merged_dir, lp.step, lp.loss, lp.val_loss, lp.tokens, seconds, truncated, lp.step_seconds
    )
