"""Batched generation with a KV cache, longest prompts first, left-padded; greedy or sampled."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
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


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, left: bool = True) -> tuple[Any, Any]:
    """(ids, attention mask) of token rows padded to the longest: on the left, every row ends at the right
    edge (a prompt that generation or a continuation goes on from); on the right, every row starts at
    column 0."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, cols] = torch.tensor(row)
        mask[i, cols] = 1
    return ids, mask


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
    tools: Sequence[str] = (),
) -> tuple[list[str], dict[str, float]]:
    """Completions for chat prompts, in input order, plus throughput figures. ``on_batch`` gets the
    prompt indices and texts of every finished batch (the cache stores them as they come, so an
    interrupted evaluation keeps what it generated). ``tools`` run in the decoding loop
    (``imts.inference.tools``); ``tool_calls`` in the figures counts the values they filled in."""
    import torch
    from transformers import LogitsProcessorList

    from imts.inference.tools import RowTools, logits_processor

    progress = progress or NullProgress()
    sampling = sampling or Sampling()
    encoded = [render_prompt(tokenizer, p) for p in prompts]
    # Longest first: similar lengths share a batch (little padding) and memory peaks early.
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    outputs: list[str] = [""] * len(prompts)
    new_tokens = tool_calls = 0
    started = time.perf_counter()
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    device = next(model.parameters()).device  # a model on a GPU gets its inputs there
    # Batches of even size, up to half a batch over ``batch_size``: 100 prompts in batches of 32 would
    # leave a last batch of 4 that decodes as long as a full one; as 34 + 33 + 33 they do not.
    count = max(1, round(len(order) / batch_size))
    bounds = [len(order) * b // count for b in range(count + 1)]
    with progress.task(label, total=len(prompts)) as bar, torch.inference_mode():
        for s, end in itertools.pairwise(bounds):
            idx = order[s:end]
            ids, mask = pad_rows([encoded[i] for i in idx], pad_id)
            width = ids.shape[1]
            ids, mask = ids.to(device), mask.to(device)
            if sampling.temperature <= 0:
                rows = [RowTools(tokenizer, tools) for _ in idx] if tools else None
                gens = greedy(model, ids, mask, max_new_tokens, eos_id, rows)
                tool_calls += sum(r.calls for r in rows) if rows else 0
            else:
                torch.manual_seed(sampling.seed + s)
                procs = logits_processor(tokenizer, tools, len(idx), width) if tools else None
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=max_new_tokens,
                    **sampling.kwargs(),
                    pad_token_id=pad_id,
                    eos_token_id=eos_id,
                    logits_processor=LogitsProcessorList([procs] if procs else []),
                )
                tool_calls += sum(r.calls for r in procs.rows) if procs else 0
                gens = [out[row, width:].tolist() for row in range(len(idx))]
            for row, i in enumerate(idx):
                gen = gens[row]
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
        **({"tool_calls": tool_calls} if tools else {}),
    }


def greedy(
    model: Any, ids: Any, mask: Any, max_new_tokens: int, eos_id: int | None, tools: list[Any] | None = None
) -> list[list[int]]:
    """Greedy continuations of a left-padded batch, each up to its EOS (included) or ``max_new_tokens``.

    A row leaves the batch when it ends (its KV cache rows are dropped), so the rows still writing never
    wait on compute for the finished ones: on a CPU, where a forward pass costs in proportion to its
    rows, a batch whose answers differ in length decodes in about the time of its tokens, not of its
    longest row times its size (``generate`` decodes every row to the longest). ``tools``: one
    ``RowTools`` per row; a token they force replaces the argmax.
    """
    import torch
    from transformers.cache_utils import DynamicLayer

    pos = (mask.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    cache, logits = out.cache, out.logits[:, -1, :]
    # Dropping rows needs the plain growing cache; any other keeps every row to the end.
    droppable = all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None]))
    live = list(range(ids.shape[0]))  # batch row -> input row
    gens: list[list[int]] = [[] for _ in live]
    nxt_pos = pos[:, -1:] + 1
    for _ in range(max_new_tokens):
        picked = logits.argmax(-1).tolist()
        ended = []
        for b, r in enumerate(live):
            token = picked[b]
            if tools is not None and (forced := tools[r].forced(gens[r])) is not None:
                token = forced
            picked[b] = token
            if not gens[r] or gens[r][-1] != eos_id:
                gens[r].append(token)
            ended.append(gens[r][-1] == eos_id or len(gens[r]) >= max_new_tokens)
        if all(ended):
            break
        step = torch.tensor(picked, device=ids.device)[:, None]
        mask = torch.cat([mask, torch.ones_like(step)], dim=1)
        if droppable and any(ended):
            keep = torch.tensor([b for b, e in enumerate(ended) if not e], device=ids.device)
            live = [r for r, e in zip(live, ended, strict=True) if not e]
            step, mask, nxt_pos = step[keep], mask[keep], nxt_pos[keep]
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys[keep], layer.values[keep]
        out = model(input_ids=step, attention_mask=mask, position_ids=nxt_pos, cache=cache, use_cache=True)
        cache, logits, nxt_pos = out.cache, out.logits[:, -1, :], nxt_pos + 1
    return gens
