"""Full supervised fine-tuning, every weight trained, read top to bottom: setup -> loop -> validate -> save.

The same data, loss (response tokens only, LM head computed only there) and bookkeeping as
``sft_lora``; what differs is what trains and what is saved: the whole model (safetensors, tokenizer,
``run_config.yaml``) instead of an adapter. Checkpoints hold every weight (``model.safetensors``) and
AdamW's two moments for each, so they weigh about 3x the model in fp32. With tied embeddings (SmolLM2)
the embedding matrix is also the LM head: it is one parameter, updated once, saved once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imts.core.hardware import resolve_precision
from imts.core.progress import NullProgress, Progress
from imts.store.tracking import Sink
from imts.train import distributed, loop, mfu
from imts.train.data import example_stream
from imts.train.loop import TrainingDiverged, TrainResult
from imts.train.spec import RunSpec

__all__ = ["TrainResult", "TrainingDiverged", "run"]


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
    dist = distributed.current()
    loop.seed_all(spec.seed)
    model, tokenizer, pad_id = loop.load_model(spec, base_path, dist.device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    train, val, truncated = loop.sft_examples(tokenizer, train_rows, val_rows, spec)
    micro = max(1, spec.batch_size // spec.grad_accum)
    grouped = spec.batching == "length_grouped"
    stream = example_stream(train, micro, spec.seed, grouped, pad_id, dist.rank, dist.world)
    precision = resolve_precision(spec.precision)
    autocast = loop.autocast(precision, dist.device)
    lp = loop.start(spec, model, stream, out_dir, sink, dist, precision, started)
    if dist.main:
        sink.event(
            "started",
            f"{len(train)} training examples ({truncated} truncated to {spec.max_seq_len} tokens), "
            f"{trainable:,} trainable parameters, precision {precision}, {dist.world} process(es)",
            lp.step,
            {
                "train_examples": len(train),
                "val_examples": len(val),
                "trainable_params": trainable,
                "precision": precision,
                "nproc": dist.world,
            },
        )
    validate = (
        (lambda: loop.sft_validation(model, tokenizer, val, val_rows, pad_id, autocast, spec, dist))
        if val
        else None
    )

    # --- loop ------------------------------------------------------------------------------------
    model.train()
    batches = iter(stream)
    with progress.task("training (full)", total=spec.max_steps) as bar:
        bar.advance(lp.step)
        while lp.step < spec.max_steps:
            t0 = time.perf_counter()
            micro_batches, positions = loop.next_batches(lp, batches)
            counts = [loop.loss_positions(b) for b in micro_batches]
            (n_loss,) = dist.sum([sum(counts)])  # the step's loss tokens over all ranks
            step_loss, tokens, flops = 0.0, 0, 0.0
            for batch, n in zip(micro_batches, counts, strict=True):
                with autocast:
                    loss = loop.response_loss_sum(model, batch)
                (loss / n_loss).backward()
                step_loss += loss.item()
                real, head, sq = mfu.batch_counts(batch, n)
                tokens += real
                flops += lp.flops.step_flops(real, head, sq)
            dist.sync_grads(lp.params)
            step_loss, tokens, flops = dist.sum([step_loss, tokens, flops])
            step_loss /= n_loss

            # --- watchdog: judge the update before it reaches the weights ----------------------------
            if not loop.check_update(lp, step_loss, positions, bar):
                continue
            loop.apply_update(lp)
            loop.report(lp, {"loss": step_loss}, int(tokens), flops, time.perf_counter() - t0, bar)

            # --- validate, checkpoint, early stopping ----------------------------------------------
            if loop.after_step(lp, validate, should_stop):
                break
    loop.restore_best(lp)

    # --- save ------------------------------------------------------------------------------------
    model_dir = None
    if dist.main:
        model_dir = loop.save_full_model(model, tokenizer, out_dir / "model", lp.spec_yaml)
    return loop.result(lp, None, model_dir, truncated)
