"""Direct Preference Optimization on (prompt, chosen, rejected) pairs, read top to bottom:
setup -> reference log-probs -> loop -> validate -> save.

The loss is DPO's sigmoid loss (Rafailov et al. 2023), with optional label smoothing (conservative
DPO): ``-log σ(β·((π_c − ref_c) − (π_r − ref_r)))``, where π and ref are the summed log-probabilities
of the response tokens under the policy and under the starting model. The reference log-probs are
computed once, before the loop, with the starting weights (LoRA: adapters disabled, or, with
``init_from``, the adapters the run starts from: the reference is the model being improved), and kept
per pair: no second model lives in memory. LoRA by default; ``dpo.full=true`` trains every weight.
Schedule, watchdog, checkpoints, early stopping (on validation DPO loss) and data parallelism are the
shared ones of ``train/loop.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from imts.core.errors import InputError
from imts.core.hardware import resolve_precision
from imts.core.progress import NullProgress, Progress
from imts.store.tracking import Sink
from imts.train import distributed, loop, mfu
from imts.train.data import IGNORE, BatchStream, Example, collate, encode
from imts.train.distributed import Dist
from imts.train.loop import TrainResult
from imts.train.spec import RunSpec

FIELDS = ("prompt", "chosen", "rejected")


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
    """Train on preference pairs; ``should_stop`` makes the run checkpoint and raise ``Interrupted``."""
    progress = progress or NullProgress()
    started = time.perf_counter()

    # --- setup -----------------------------------------------------------------------------------
    dist = distributed.current()
    loop.seed_all(spec.seed)
    model, tokenizer, pad_id = loop.load_model(spec, base_path, dist.device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    train = [encode_pair(tokenizer, r, spec.max_seq_len) for r in train_rows]
    truncated = sum(1 for c, r in train if c.truncated or r.truncated)
    train = [p for p in train if all(any(lab != IGNORE for lab in e.labels) for e in p)]
    val = [encode_pair(tokenizer, r, spec.max_seq_len) for r in val_rows[: spec.val_max_items]]
    precision = resolve_precision(spec.precision)
    autocast = loop.autocast(precision, dist.device)

    # --- reference log-probs: once, with the starting weights, before any update ------------------
    own = spec.init_from is None  # from zero, the adapters are the identity: the base alone is faster
    ref_train = reference_logps(model, train, pad_id, autocast, dist, adapters_off=own)
    ref_val = reference_logps(model, val, pad_id, autocast, dist, adapters_off=own)

    micro = max(1, spec.batch_size // spec.grad_accum)
    stream = BatchStream(
        [max(len(c.input_ids), len(r.input_ids)) for c, r in train],
        micro,
        spec.seed,
        spec.batching == "length_grouped",
        lambda idx: collate_pairs(train, idx, pad_id),
        dist.rank,
        dist.world,
    )
    lp = loop.start(spec, model, stream, out_dir, sink, dist, precision, started)
    if dist.main:
        sink.event(
            "started",
            f"{len(train)} preference pairs ({truncated} truncated to {spec.max_seq_len} tokens), "
            f"{trainable:,} trainable parameters, beta {spec.dpo.beta}, precision {precision}, "
            f"{dist.world} process(es)",
            lp.step,
            {"train_pairs": len(train), "val_pairs": len(val), "trainable_params": trainable},
        )
    validate = (lambda: validation(model, val, ref_val, pad_id, autocast, spec, dist)) if val else None

    # --- loop ------------------------------------------------------------------------------------
    model.train()
    batches = iter(stream)
    with progress.task("training (DPO)", total=spec.max_steps) as bar:
        bar.advance(lp.step)
        while lp.step < spec.max_steps:
            t0 = time.perf_counter()
            micro_batches, positions = loop.next_batches(lp, batches)
            (n_pairs,) = dist.sum([sum(len(b["pair_index"]) for b in micro_batches)])
            sums = torch.zeros(5, dtype=torch.float64)  # loss, correct, margin, chosen, rejected
            tokens, flops = 0, 0.0
            for batch in micro_batches:
                with autocast:
                    policy = sequence_logps(model, batch)
                losses, chosen, rejected = dpo_terms(
                    policy, ref_train[batch["pair_index"].cpu()], spec, loop.response_tokens(batch)
                )
                (losses.sum() / n_pairs).backward()
                sums += pair_sums(losses, chosen, rejected)
                real, head, sq = mfu.batch_counts(batch, loop.loss_positions(batch))
                tokens += real
                flops += lp.flops.step_flops(real, head, sq)
            dist.sync_grads(lp.params)
            loss, correct, margin, chosen_r, rejected_r, tokens, flops = dist.sum(
                [*sums.tolist(), tokens, flops]
            )

            # --- watchdog: judge the update before it reaches the weights ----------------------------
            if not loop.check_update(lp, loss / n_pairs, positions, bar):
                continue
            loop.apply_update(lp)
            values = {
                "loss": loss / n_pairs,
                "reward_accuracy": correct / n_pairs,
                "reward_margin": margin / n_pairs,
                "rewards_chosen": chosen_r / n_pairs,
                "rewards_rejected": rejected_r / n_pairs,
            }
            loop.report(lp, values, int(tokens), flops, time.perf_counter() - t0, bar)

            # --- validate, checkpoint, early stopping ----------------------------------------------
            if loop.after_step(lp, validate, should_stop):
                break
    loop.restore_best(lp)

    # --- save ------------------------------------------------------------------------------------
    adapter_dir, merged_dir = None, None
    if dist.main:
        if spec.uses_lora:
            adapter_dir, merged_dir = loop.save_adapter(lp, tokenizer, base_path)
        else:
            merged_dir = loop.save_full_model(model, tokenizer, out_dir / "model", lp.spec_yaml)
    return loop.result(lp, adapter_dir, merged_dir, truncated)


def encode_pair(tokenizer: Any, row: dict[str, Any], max_len: int) -> tuple[Example, Example]:
    """(chosen, rejected) as chat examples: the prompt as the user's turn, each answer as the assistant's."""
    for name in FIELDS:
        if not isinstance(row.get(name), str) or not row[name]:
            raise InputError(
                f"row {row.get('id', '?')} has no '{name}' text: DPO needs preference rows "
                "(prompt, chosen, rejected)",
                field=name,
            )
    prompt = [{"role": "user", "content": row["prompt"]}]
    return (
        encode(tokenizer, [*prompt, {"role": "assistant", "content": row["chosen"]}], max_len),
        encode(tokenizer, [*prompt, {"role": "assistant", "content": row["rejected"]}], max_len),
    )


def collate_pairs(
    pairs: list[tuple[Example, Example]], idx: list[int], pad_id: int
) -> dict[str, torch.Tensor]:
    """One batch of 2k rows: the k chosen answers, then the k rejected ones (one forward for both)."""
    batch = collate([pairs[i][0] for i in idx] + [pairs[i][1] for i in idx], pad_id)
    batch["pair_index"] = torch.tensor(idx, dtype=torch.long)
    return batch


def sequence_logps(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed log-probability of each row's response tokens (LM head only at those positions)."""
    body, head = loop.backbone_and_head(model)
    hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    logits = head(hidden[:, :-1][keep]).float()
    token_logps = -F.cross_entropy(logits, targets[keep], reduction="none")
    rows = torch.arange(targets.shape[0], device=targets.device).unsqueeze(1).expand_as(targets)[keep]
    return torch.zeros(targets.shape[0], device=logits.device).index_add(0, rows, token_logps)


def dpo_terms(
    policy: torch.Tensor, ref: torch.Tensor, spec: RunSpec, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair sigmoid DPO losses, and the implicit rewards β·(π − ref) of the chosen and rejected answers.

    ``policy`` holds the k chosen then the k rejected log-probs; ``ref`` is (k, 2). With ``dpo.rpo_alpha``
    each pair's loss also holds the chosen answer's negative log-likelihood per token (``tokens``: the
    response tokens of every row).
    """
    k = policy.shape[0] // 2
    beta, smooth = spec.dpo.beta, spec.dpo.label_smoothing
    ref = ref.to(policy.device)
    chosen = policy[:k] - ref[:, 0]
    rejected = policy[k:] - ref[:, 1]
    logits = beta * (chosen - rejected)
    losses = -(1 - smooth) * F.logsigmoid(logits) - smooth * F.logsigmoid(-logits)
    if spec.dpo.rpo_alpha > 0:
        losses = losses - spec.dpo.rpo_alpha * policy[:k] / tokens[:k].clamp(min=1).to(policy.device)
    return losses, beta * chosen.detach(), beta * rejected.detach()


def pair_sums(losses: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Sums over pairs of: loss, chosen-beats-rejected, margin, chosen reward, rejected reward."""
    return (
        torch.stack(
            [
                losses.detach().sum(),
                (chosen > rejected).float().sum(),
                (chosen - rejected).sum(),
                chosen.sum(),
                rejected.sum(),
            ]
        )
        .double()
        .cpu()
    )


def reference_logps(
    model: Any,
    pairs: list[tuple[Example, Example]],
    pad_id: int,
    autocast: Any,
    dist: Dist,
    batch: int = 8,
    adapters_off: bool = True,
) -> torch.Tensor:
    """(n, 2) log-probs of chosen and rejected under the starting weights; each rank computes a share.
    ``adapters_off``: score with the base model alone (LoRA adapters that start from zero add nothing)."""
    out = torch.zeros(len(pairs), 2, dtype=torch.float64)
    if not pairs:
        return out
    off = adapters_off and hasattr(model, "disable_adapter")
    no_adapters = model.disable_adapter() if off else nullcontext()
    model.eval()
    mine = list(range(dist.rank, len(pairs), dist.world))
    with torch.inference_mode(), no_adapters:
        for s in range(0, len(mine), batch):
            idx = mine[s : s + batch]
            b = {k: v.to(dist.device) for k, v in collate_pairs(pairs, idx, pad_id).items()}
            with autocast:
                logps = sequence_logps(model, b).double().cpu()
            out[idx, 0], out[idx, 1] = logps[: len(idx)], logps[len(idx) :]
    model.train()
    if dist.world > 1:
        out = torch.tensor(dist.sum(out.flatten().tolist()), dtype=torch.float64).view(-1, 2)
    return out.float()


def validation(
    model: Any,
    val: list[tuple[Example, Example]],
    ref: torch.Tensor,
    pad_id: int,
    autocast: Any,
    spec: RunSpec,
    dist: Dist,
    batch: int = 8,
) -> dict[str, float]:
    """DPO loss, reward accuracy and margin on the validation pairs (each rank takes a share)."""
    model.eval()
    sums = torch.zeros(5, dtype=torch.float64)
    mine = list(range(dist.rank, len(val), dist.world))
    with torch.inference_mode():
        for s in range(0, len(mine), batch):
            idx = mine[s : s + batch]
            b = {k: v.to(dist.device) for k, v in collate_pairs(val, idx, pad_id).items()}
            with autocast:
                policy = sequence_logps(model, b)
            sums += pair_sums(*dpo_terms(policy, ref[b["pair_index"].cpu()], spec, loop.response_tokens(b)))
    loss, correct, margin, _, _ = dist.sum(sums.tolist())
    n = max(1, len(val))
    return {"val_loss": loss / n, "val_reward_accuracy": correct / n, "val_reward_margin": margin / n}
