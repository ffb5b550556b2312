"""Turning conversations into training tensors: chat template, response-only labels, batching."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

IGNORE = -100


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt tokens: the loss is on the assistant's tokens only
    truncated: bool = False


def encode(tokenizer: Any, messages: list[dict[str, str]], max_len: int) -> Example:
    """Tokenise with the model's chat template; label only the assistant turns.

    The prefix up to each assistant turn is rendered with ``add_generation_prompt=True``, so the
    label span starts exactly where generation would start at inference time.
    """
    ids: list[int] = _render(tokenizer, messages, add_generation_prompt=False)
    labels = [IGNORE] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(_render(tokenizer, messages[:i], add_generation_prompt=True))
        end = len(_render(tokenizer, messages[: i + 1], add_generation_prompt=False))
        labels[start:end] = ids[start:end]
    return Example(ids[:max_len], labels[:max_len], truncated=len(ids) > max_len)


def _render(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> list[int]:
    if tokenizer.chat_template:
        out = tokenizer.apply_chat_template(
            messages, add_generation_prompt=add_generation_prompt, tokenize=True
        )
        ids = out["input_ids"] if not isinstance(out, list) else out
        return list(ids)
    # A model without a chat template: plain "role: text" turns, response followed by EOS.
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + (
        "assistant: " if add_generation_prompt else ""
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if messages and messages[-1]["role"] == "assistant" and not add_generation_prompt:
        ids = [*ids, tokenizer.eos_token_id]
    return list(ids)


def batch_order(lengths: list[int], batch_size: int, seed: int, epoch: int, grouped: bool) -> list[list[int]]:
    """Indices of each batch for one epoch, deterministic for (seed, epoch).

    Length grouping: shuffle, cut into mega-batches of 64 batches, sort each by length, cut into
    batches, shuffle the batches. Batches hold similar lengths (little padding) yet stay random.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if grouped:
        mega = batch_size * 64
        order = [
            i
            for s in range(0, len(order), mega)
            for i in sorted(order[s : s + mega], key=lambda j: -lengths[j])
        ]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    batches = [b for b in batches if len(b) == batch_size] or batches  # drop a ragged tail
    if grouped:
        rng.shuffle(batches)
    return batches


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example in the batch."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class BatchStream:
    """Endless, resumable stream of batches: position is (epoch, index within the epoch).

    It orders *items* (examples, or preference pairs) by their ``lengths`` and hands each batch's
    indices to ``collate_fn``. With data parallelism every rank walks the same global order and
    collates only its own slice (``rank::world``) of each batch, so N processes see exactly the
    batches one process would.
    """

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        seed: int,
        grouped: bool,
        collate_fn: Callable[[list[int]], dict[str, torch.Tensor]],
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.lengths = lengths
        self.batch_size = min(batch_size, len(lengths))
        self.seed, self.grouped, self.collate_fn = seed, grouped, collate_fn
        self.rank, self.world = rank, world
        self.epoch, self.index = 0, 0
        self.skip: set[tuple[int, int]] = set()  # (epoch, index) of batches the watchdog rejected
        self.last: tuple[int, int] = (0, -1)  # position of the batch yielded last
        self._batches = batch_order(self.lengths, self.batch_size, seed, 0, grouped)

    @property
    def epoch_progress(self) -> float:
        return self.epoch + self.index / max(1, len(self._batches))

    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "index": self.index, "skip": sorted(self.skip)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.epoch, self.index = state["epoch"], state["index"]
        self.skip = {(int(e), int(i)) for e, i in state.get("skip", [])}
        self._batches = batch_order(self.lengths, self.batch_size, self.seed, self.epoch, self.grouped)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            if self.index >= len(self._batches):
                self.epoch, self.index = self.epoch + 1, 0
                self._batches = batch_order(
                    self.lengths, self.batch_size, self.seed, self.epoch, self.grouped
                )
            position = (self.epoch, self.index)
            batch = self._batches[self.index]
            self.index += 1
            if position in self.skip:
                continue
            self.last = position
            yield self.collate_fn(batch[self.rank :: self.world])


def example_stream(
    examples: list[Example],
    batch_size: int,
    seed: int,
    grouped: bool,
    pad_id: int,
    rank: int = 0,
    world: int = 1,
) -> BatchStream:
    """A ``BatchStream`` of SFT examples, collated with right padding."""
    return BatchStream(
        [len(e.input_ids) for e in examples],
        batch_size,
        seed,
        grouped,
        lambda idx: collate([examples[i] for i in idx], pad_id),
        rank,
        world,
    )
