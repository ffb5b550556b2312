"""One loaded model answering chat requests, whole or token by token; one request at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TextIteratorStreamer

from imts.inference.generate import Sampling, load, render_prompt


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"


class Engine:
    """A model and its tokenizer; generation is serialised (one CPU model, no batching across requests)."""

    def __init__(self, path: Path, name: str, adapter: Path | None = None) -> None:
        self.path, self.name = Path(path), name
        self.tokenizer, self.model = load(self.path, adapter)
        self._lock = threading.Lock()

    def _inputs(self, messages: list[dict[str, str]]) -> torch.Tensor:
        return torch.tensor([render_prompt(self.tokenizer, messages)])

    def _kwargs(self, ids: torch.Tensor, max_tokens: int, sampling: Sampling) -> dict[str, Any]:
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "max_new_tokens": max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
            **sampling.kwargs(),
        }

    def complete(self, messages: list[dict[str, str]], max_tokens: int, sampling: Sampling) -> Completion:
        ids = self._inputs(messages)
        with self._lock, torch.inference_mode():
            torch.manual_seed(sampling.seed)
            out = self.model.generate(**self._kwargs(ids, max_tokens, sampling))
        gen = out[0, ids.shape[1] :].tolist()
        eos = self.tokenizer.eos_token_id
        stopped = eos in gen
        if stopped:
            gen = gen[: gen.index(eos)]
        text = self.tokenizer.decode(gen, skip_special_tokens=True).strip()
        return Completion(
            text, ids.shape[1], len(gen), "stop" if stopped or len(gen) < max_tokens else "length"
        )

    def stream(self, messages: list[dict[str, str]], max_tokens: int, sampling: Sampling) -> Iterator[str]:
        """Text pieces as they are decoded (generation runs in a worker thread)."""
        ids = self._inputs(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        with self._lock:
            worker = threading.Thread(
                target=self._generate_into,
                args=(self._kwargs(ids, max_tokens, sampling), sampling.seed, streamer),
            )
            worker.start()
            try:
                yield from (piece for piece in streamer if piece)
            finally:
                worker.join()

    def _generate_into(self, kwargs: dict[str, Any], seed: int, streamer: TextIteratorStreamer) -> None:
        with torch.inference_mode():
            torch.manual_seed(seed)
            self.model.generate(**kwargs, streamer=streamer)
