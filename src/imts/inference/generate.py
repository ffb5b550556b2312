"""Batched generation with a KV cache, longest prompts first, left-padded: greedy with continuous
batching (``imts.inference.batch``), or sampled through ``transformers``' ``generate``."""

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

    from imts.inference.batch import left_padded
    from imts.inference.tools import RowTools, logits_processor

    progress = progress or NullProgress()
    sampling = sampling or Sampling()
    encoded = [render_prompt(tokenizer, p) for p in prompts]
    outputs: list[str] = [""] * len(prompts)
    new_tokens = tool_calls = 0
    started = time.perf_counter()
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    device = next(model.parameters()).device  # a model on a GPU gets its inputs there

    with progress.task(label, total=len(prompts)) as bar, torch.inference_mode():

        def finished(idx: list[int], gens: list[list[int]]) -> None:
            nonlocal new_tokens
            for i, gen in zip(idx, gens, strict=True):
                if eos_id in gen:  # the rest of the row is padding
                    gen = gen[: gen.index(eos_id)]
                new_tokens += len(gen)
                outputs[i] = tokenizer.decode(gen, skip_special_tokens=True).strip()
            if on_batch is not None:
                on_batch(idx, [outputs[i] for i in idx])
            bar.advance(len(idx), tok_s=round(new_tokens / (time.perf_counter() - started)))

        if sampling.temperature <= 0:
            rows = [RowTools(tokenizer, tools) for _ in prompts] if tools else None
            greedy(model, encoded, max_new_tokens, eos_id, pad_id, batch_size, rows, finished)
            tool_calls = sum(r.calls for r in rows) if rows else 0
        else:
            # Longest first: similar lengths share a batch (little padding) and memory peaks early.
            order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
            # Batches of even size, up to half a batch over ``batch_size``: 100 prompts in batches of 32
            # would leave a last batch of 4 that decodes as long as a full one; as 34 + 33 + 33 not.
            count = max(1, round(len(order) / batch_size))
            bounds = [len(order) * b // count for b in range(count + 1)]
            for s, end in itertools.pairwise(bounds):
                idx = order[s:end]
                ids, mask, _ = left_padded([encoded[i] for i in idx], pad_id, device)
                width = ids.shape[1]
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
                finished(idx, [out[row, width:].tolist() for row in range(len(idx))])
    elapsed = time.perf_counter() - started
    return outputs, {
        "seconds": elapsed,
        "new_tokens": new_tokens,
        "tokens_per_s": new_tokens / max(elapsed, 1e-9),
        **({"tool_calls": tool_calls} if tools else {}),
    }


class _Greedy:
    """One prompt's greedy continuation inside a ``Batch``: the argmax, or the token its tools force."""

    def __init__(self, index: int, eos_id: int | None, max_new_tokens: int, tools: Any) -> None:
        self.index, self.eos_id, self.max_new_tokens, self.tools = index, eos_id, max_new_tokens, tools
        self.gen: list[int] = []
        self.done = False

    def pick(self, logits: Any, best: int) -> int:
        if self.tools is not None and (forced := self.tools.forced(self.gen)) is not None:
            return int(forced)
        return best

    def feed(self, token: int) -> None:
        self.gen.append(token)
        self.done = token == self.eos_id or len(self.gen) >= self.max_new_tokens


def greedy(
    model: Any,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    eos_id: int | None,
    pad_id: int,
    batch_size: int = 32,
    tools: Sequence[Any] | None = None,
    on_finished: Callable[[list[int], list[list[int]]], None] | None = None,
    prefill_rows: int = 32,
) -> list[list[int]]:
    """Greedy continuations of ``prompts`` (token ids), each up to its EOS (included) or
    ``max_new_tokens``, decoded with continuous batching (``imts.inference.batch``).

    Up to ``batch_size`` rows decode together; a row leaves the batch when it ends and waiting prompts
    (longest first) join it as soon as a quarter of it is free, at most ``prefill_rows`` per prompt
    pass, so a forward pass carries a full batch until the last prompts. On a CPU a decoding step costs
    mostly the time of streaming the weights (SmolLM2-135M, 2 cores: 158 ms for 8 rows, 239 for 32, 262
    for 64), so a batch whose rows end one by one wastes most of its steps; a prompt pass of 128 prompts
    ran at 2.9 ms a token against 2.1 for 32. ``tools``: one ``RowTools`` per prompt; a token they force
    replaces the argmax. ``on_finished`` gets the prompt indices and token lists of rows as they end (in
    groups of about a quarter batch).
    """
    from collections import deque

    from imts.inference.batch import Batch, new_cache

    device = next(model.parameters()).device

    def forward(ids: Any, mask: Any, pos: Any, cache: Any) -> tuple[Any, Any]:
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True,
                    logits_to_keep=1)  # fmt: skip
        return out.logits[:, -1, :], out.cache

    # Longest first: prompts of similar length join together (little padding), memory peaks early.
    waiting = deque(sorted(range(len(prompts)), key=lambda i: -len(prompts[i])))
    results: list[list[int]] = [[] for _ in prompts]
    ended: list[_Greedy] = []
    quarter = max(1, batch_size // 4)
    batch: Batch | None = None
    while waiting or batch is not None:
        room = batch_size - (len(batch.rows) if batch is not None else 0)
        if waiting and (batch is None or (batch.open and room >= min(quarter, len(waiting)))):
            take = [waiting.popleft() for _ in range(min(room, prefill_rows, len(waiting)))]
            rows = [_Greedy(i, eos_id, max_new_tokens, tools[i] if tools else None) for i in take]
            joined = Batch.prefill(
                rows, [prompts[i] for i in take], pad_id, forward, new_cache(model), device
            )
            batch = joined if batch is None else batch.merge(joined)
        assert batch is not None
        ended += [r for r in batch.rows if r.done]
        batch = batch.without_done()
        if batch is not None:
            batch.step(forward, pad_id)
        if ended and (len(ended) >= quarter or (batch is None and not waiting)):
            for r in ended:
                results[r.index] = r.gen
            if on_finished is not None:
                on_finished([r.index for r in ended], [r.gen for r in ended])
            ended = []
    return results
