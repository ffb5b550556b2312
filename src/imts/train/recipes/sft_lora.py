"""Supervised fine-tuning with LoRA, read top to bottom: setup -> loop -> validate -> save.

The recipe knows nothing about databases or terminals: it reads examples, writes files under
``out_dir`` and reports through ``sink`` (metrics, events) and ``progress`` (bars).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from imts.core.errors import ImtsError, Interrupted
from imts.core.hardware import resolve_precision
from imts.core.progress import NullProgress, Progress
from imts.train import checkpoint
from imts.train.data import IGNORE, BatchStream, Example, collate, encode
from imts.train.spec import RunSpec
from imts.train.watchdog import Watchdog


class TrainingDiverged(ImtsError):
    """The watchdog intervened more often than allowed: the run cannot be saved by rollbacks."""


class Sink(Protocol):
    def metrics(self, step: int, values: dict[str, float]) -> None: ...
    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None: ...


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    merged_dir: Path | None
    steps: int
    final_loss: float
    final_val_loss: float | None
    tokens: int
    seconds: float
    truncated: int


def run(
    spec: RunSpec,
    base_path: Path,
    train_rows: list[dict[str, Any]],
    val_rows: list[dict[str, Any]],
    out_dir: Path,
    sink: Sink,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train; ``should_stop`` (checked once per step) makes the run checkpoint and raise ``Interrupted``."""
    progress = progress or NullProgress()
    started = time.perf_counter()

    # --- setup -----------------------------------------------------------------------------------
    random.seed(spec.seed)
    np.random.seed(spec.seed)
    torch.manual_seed(spec.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    model.config.use_cache = False  # no KV cache while training: it only costs memory

    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    lora = LoraConfig(
        r=spec.lora.r,
        lora_alpha=spec.lora.alpha,
        lora_dropout=spec.lora.dropout,
        target_modules=spec.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    train = [encode(tokenizer, r["messages"], spec.max_seq_len) for r in train_rows]
    truncated = sum(1 for e in train if e.truncated)
    train = [
        e for e in train if any(lab != IGNORE for lab in e.labels)
    ]  # nothing to learn if fully truncated
    val = [encode(tokenizer, r["messages"], spec.max_seq_len) for r in val_rows[: spec.val_max_items]]
    micro = max(1, spec.batch_size // spec.grad_accum)
    stream = BatchStream(train, micro, spec.seed, spec.batching == "length_grouped", pad_id)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    scheduler = cosine_schedule(optimizer, spec)
    precision = resolve_precision(spec.precision)
    autocast = (
        torch.autocast(device_type="cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    )
    ckpt_root = out_dir / "checkpoints"
    out_dir.mkdir(parents=True, exist_ok=True)
    spec_yaml = spec.to_yaml()
    (out_dir / "run_config.yaml").write_text(spec_yaml, encoding="utf-8")

    step, lr_scale = 0, 1.0

    def restore(ckpt: Path) -> int:
        """Load weights, optimizer, scheduler, RNG and data position from ``ckpt``; return its step."""
        nonlocal lr_scale
        set_peft_model_state_dict(model, load_file(ckpt / "adapter" / "adapter_model.safetensors"))
        torch_state, state = checkpoint.load_trainer_state(ckpt)
        optimizer.load_state_dict(torch_state["optimizer"])
        scheduler.load_state_dict(torch_state["scheduler"])
        checkpoint.set_rng_state(torch_state["rng"])
        skip = stream.skip
        stream.load_state(state["data"])
        stream.skip |= skip  # batches rejected since that checkpoint stay rejected
        lr_scale = min(lr_scale, state.get("lr_scale", 1.0))
        set_lr_scale(optimizer, scheduler, spec.lr * lr_scale)
        return int(state["step"])

    resume_from = checkpoint.latest(ckpt_root)
    if resume_from is not None:
        step = restore(resume_from)
        sink.event("resumed", f"resumed from {resume_from.name}", step)
    sink.event(
        "started",
        f"{len(train)} training examples ({truncated} truncated to {spec.max_seq_len} tokens), "
        f"{trainable:,} trainable parameters, precision {precision}",
        step,
        {
            "train_examples": len(train),
            "val_examples": len(val),
            "trainable_params": trainable,
            "precision": precision,
        },
    )

    # --- loop ------------------------------------------------------------------------------------
    model.train()
    watchdog = Watchdog(spec.watchdog)
    batches = iter(stream)
    tokens_total, loss_value, val_loss = 0, float("nan"), None
    best_val, stale_evals, best_step = math.inf, 0, None
    with progress.task("training (LoRA)", total=spec.max_steps) as bar:
        bar.advance(step)
        while step < spec.max_steps:
            t0 = time.perf_counter()
            step_tokens, step_loss, positions = 0, 0.0, []
            for _ in range(spec.grad_accum):
                batch = next(batches)
                positions.append(stream.last)
                with autocast:
                    loss = response_loss(model, batch)
                (loss / spec.grad_accum).backward()
                step_loss += loss.item() / spec.grad_accum
                step_tokens += int(batch["attention_mask"].sum())
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm))

            # --- watchdog: judge the update before it reaches the weights ----------------------------
            verdict = watchdog.check(step_loss, grad_norm)
            if verdict is not None:
                optimizer.zero_grad(set_to_none=True)
                watchdog.interventions += 1
                if watchdog.interventions > spec.watchdog.max_interventions:
                    sink.event(
                        "watchdog", f"giving up after {spec.watchdog.max_interventions} interventions", step
                    )
                    raise TrainingDiverged(f"training diverged: {verdict.detail} (step {step + 1})")
                stream.skip.update(positions)
                good = checkpoint.latest(ckpt_root)
                bad_step = step + 1
                if good is not None:
                    step = restore(good)
                    bar.advance(step - (bad_step - 1))  # the bar goes back with the rollback
                lr_scale *= spec.watchdog.lr_decay
                set_lr_scale(optimizer, scheduler, spec.lr * lr_scale)
                watchdog.losses.clear()
                watchdog.grads.clear()
                sink.event(
                    "watchdog",
                    f"{verdict.reason} at step {bad_step}: {verdict.detail}; "
                    + (f"rolled back to {good.name}, " if good is not None else "update skipped, ")
                    + f"learning rate x{spec.watchdog.lr_decay}, offending batch skipped",
                    bad_step,
                    {
                        "reason": verdict.reason,
                        "rolled_back_to": step,
                        "lr_scale": lr_scale,
                        "skipped": positions,
                    },
                )
                continue

            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            dt = time.perf_counter() - t0
            tokens_total += step_tokens
            loss_value = step_loss
            values = {
                "loss": step_loss,
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": grad_norm,
                "tokens_per_s": step_tokens / dt,
                "epoch": stream.epoch_progress,
            }
            sink.metrics(step, values)
            bar.advance(
                1, loss=step_loss, lr=values["lr"], gnorm=grad_norm, tok_s=round(values["tokens_per_s"])
            )

            # --- validate, checkpoint, early stopping ----------------------------------------------
            improved, stop = False, False
            if val and (step % spec.eval_every == 0 or step == spec.max_steps):
                val_loss = validation_loss(model, val, pad_id, autocast)
                sink.metrics(step, {"val_loss": val_loss})
                model.train()
                improved = val_loss < best_val - spec.early_stopping_min_delta
                best_val, stale_evals = (val_loss, 0) if improved else (best_val, stale_evals + 1)
                stop = (
                    spec.early_stopping_patience is not None and stale_evals >= spec.early_stopping_patience
                )
            preempted = should_stop is not None and should_stop()  # e.g. preemption: save, then stop
            if step % spec.save_every == 0 or step == spec.max_steps or improved or stop or preempted:
                path = checkpoint.save(
                    ckpt_root,
                    step,
                    model,
                    optimizer,
                    scheduler,
                    stream.state(),
                    spec_yaml,
                    {"loss": loss_value, "val_loss": val_loss, "lr_scale": lr_scale},
                    spec.keep_last,
                )
                sink.event("checkpoint", f"saved {path.name}", step)
                if improved:
                    checkpoint.keep_best(path, ckpt_root)
                    best_step = step
            if preempted and step < spec.max_steps:
                sink.event("stopped", f"stopped on request at step {step}", step)
                raise Interrupted(step)
            if stop:
                sink.event(
                    "early_stop",
                    f"val_loss has not improved for {stale_evals} validations; "
                    f"best {best_val:.4f} at step {best_step}",
                    step,
                )
                break

    if spec.early_stopping_patience is not None and best_step is not None and best_step != step:
        set_peft_model_state_dict(
            model, load_file(ckpt_root / "best" / "adapter" / "adapter_model.safetensors")
        )
        sink.event("best_restored", f"final weights are the best checkpoint (step {best_step})", best_step)

    # --- save ------------------------------------------------------------------------------------
    model.eval()
    adapter_dir = out_dir / "adapter"
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    (adapter_dir / "run_config.yaml").write_text(spec_yaml, encoding="utf-8")
    merged_dir = None
    if spec.merge:
        merged_dir = out_dir / "merged"
        merged = model.merge_and_unload()
        merged.config.use_cache = True
        merged.save_pretrained(merged_dir, safe_serialization=True)
        tokenizer.save_pretrained(merged_dir)
        (merged_dir / "run_config.yaml").write_text(spec_yaml, encoding="utf-8")
    seconds = time.perf_counter() - started
    sink.event("finished", f"{step} steps in {seconds:.0f}s", step)
    return TrainResult(adapter_dir, merged_dir, step, loss_value, val_loss, tokens_total, seconds, truncated)


def response_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token loss on the response tokens, computing the vocabulary projection only there.

    The LM head (49k x 576 for SmolLM2) is a fifth of the model; prompts are most of each sequence, and
    their logits would be computed only to be ignored. Same value as the Hugging Face loss.
    """
    inner = model.get_base_model()
    hidden = inner.model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    logits = inner.lm_head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


def validation_loss(
    model: Any, val: list[Example], pad_id: int, autocast: Any, batch_size: int = 16
) -> float:
    """Mean loss per response token over the validation examples."""
    model.eval()
    total, count = 0.0, 0
    ordered = sorted(val, key=lambda e: len(e.input_ids))
    with torch.inference_mode():
        for s in range(0, len(ordered), batch_size):
            batch = collate(ordered[s : s + batch_size], pad_id)
            n = int((batch["labels"][:, 1:] != IGNORE).sum())
            with autocast:
                total += float(response_loss(model, batch)) * n
            count += n
    return total / max(1, count)


def set_lr_scale(optimizer: torch.optim.Optimizer, scheduler: Any, peak_lr: float) -> None:
    """Change the schedule's peak LR (the watchdog lowers it) and apply it to the current step."""
    scheduler.base_lrs = [peak_lr for _ in optimizer.param_groups]
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
    for group in optimizer.param_groups:
        group["lr"] = peak_lr * factor


def cosine_schedule(optimizer: torch.optim.Optimizer, spec: RunSpec) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay from ``lr`` to ``lr * min_lr_ratio`` at ``max_steps``."""
    warm, total, floor = spec.warmup_steps, spec.max_steps, spec.min_lr_ratio

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        progress = (step - warm) / max(1, total - warm)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
