"""Batched generation with a KV cache, longest prompts first, left-padded; greedy or sampled."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imts.core.progress import NullProgress, Progress


def load(path: Path, adapter: Path | None = None) -> tuple[Any, Any]:
    """(tokenizer, model) from a model folder; with ``adapter``, that LoRA adapter merged into the
    fp32 base in memory (the same weights a saved ``merged/`` copy would hold, without the disk)."""
    # torch and transformers load with the model, not with this module: the API server imports the
    # evaluation service to answer reports and must stay small.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter or path)
    tokenizer.padding_side = "left"  # generation continues at the right edge of every row
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if adapter is not None:
        import warnings

        from peft import PeftModel

        with warnings.catch_warnings():  # PEFT reads a property transformers deprecates
            warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing", category=FutureWarning)
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.eval()
    return tokenizer, model


def render_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    if tokenizer.chat_template:
        out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(out if isinstance(out, list) else out["input_ids"])
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; ``temperature == 0`` is greedy. Sampling is seeded per batch, so the same
    items with the same settings give the same texts."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0

    def kwargs(self) -> dict[str, Any]:
        if self.temperature <= 0:
            return {"do_sample": False}
        out: dict[str, Any] = {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
        if self.top_k > 0:
            out["top_k"] = self.top_k
        return out


def generate(
    tokenizer: Any,
    model: Any,
    prompts: list[list[dict[str, str]]],
    max_new_tokens: int = 96,
    batch_size: int = 32,
    progress: Progress | None = None,
    label: str = "generating",
    sampling: Sampling | None = None,
    on_batch: Callable[[list[int], list[str]], None] | None = None,
) -> tuple[list[str], dict[str, float]]:
    """Completions for chat prompts, in input order, plus throughput figures. ``on_batch`` gets the
    prompt indices and texts of every finished batch (the cache stores them as they come, so an
    interrupted evaluation keeps what it generated)."""
    import torch

    progress = progress or NullProgress()
    sampling = sampling or Sampling()
    encoded = [render_prompt(tokenizer, p) for p in prompts]
    # Longest first: similar lengths share a batch (little padding) and memory peaks early.
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    outputs: list[str] = [""] * len(prompts)
    new_tokens = 0
    started = time.perf_counter()
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    device = next(model.parameters()).device  # a model on a GPU gets its inputs there
    with progress.task(label, total=len(prompts)) as bar, torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[row, width - len(encoded[i]) :] = 1
            torch.manual_seed(sampling.seed + s)
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                **sampling.kwargs(),
                pad_token_id=pad_id,
                eos_token_id=eos_id,
            )
            for row, i in enumerate(idx):
                gen = out[row, width:].tolist()
                if eos_id in gen:  # the rest of the row is padding
                    gen = gen[: gen.index(eos_id)]
                new_tokens += len(gen)
                outputs[i] = tokenizer.decode(gen, skip_special_tokens=True).strip()
            if on_batch is not None:
                on_batch(idx, [outputs[i] for i in idx])
            elapsed = time.perf_counter() - started
            bar.advance(len(idx), tok_s=round(new_tokens / elapsed))
    elapsed = time.perf_counter() - started
    return outputs, {
        "seconds": elapsed,
        "new_tokens": new_tokens,
        "tokens_per_s": new_tokens / max(elapsed, 1e-9),
    }
