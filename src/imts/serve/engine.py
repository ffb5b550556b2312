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


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` up to the first stop sequence (excluded, as OpenAI does), and whether one was found."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


class StopFilter:
    """Streams text pieces until a stop sequence, holding back a tail that could begin one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops, self.held, self.stopped = stops, "", False
        self.keep = max((len(s) for s in stops), default=1) - 1

    def feed(self, piece: str) -> str:
        """The part of ``piece`` (with what was held) that can be sent now."""
        if self.stopped:
            return ""
        text, self.stopped = cut_at_stop(self.held + piece, self.stops)
        if self.stopped or not self.keep:
            self.held = ""
            return text
        self.held = text[-self.keep :]
        return text[: -self.keep]

    def flush(self) -> str:
        out, self.held = ("" if self.stopped else self.held), ""
        return out


class Engine:
    """A model and its tokenizer; generation is serialised (one CPU model, no batching across requests)."""

    def __init__(self, path: Path, name: str, adapter: Path | None = None) -> None:
        self.path, self.name = Path(path), name
        self.tokenizer, self.model = load(self.path, adapter)
        self._lock = threading.Lock()

    def _inputs(self, messages: list[dict[str, str]]) -> torch.Tensor:
        return torch.tensor([render_prompt(self.tokenizer, messages)])

    def _kwargs(
        self, ids: torch.Tensor, max_tokens: int, sampling: Sampling, stops: list[str]
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if stops:  # ends generation early; the text is still cut exactly at the sequence below
            extra = {"stop_strings": stops, "tokenizer": self.tokenizer}
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "max_new_tokens": max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
            **sampling.kwargs(),
            **extra,
        }

    def complete(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        sampling: Sampling,
        stops: list[str] | None = None,
    ) -> Completion:
        stops = stops or []
        ids = self._inputs(messages)
        with self._lock, torch.inference_mode():
            torch.manual_seed(sampling.seed)
            out = self.model.generate(**self._kwargs(ids, max_tokens, sampling, stops))
        gen = out[0, ids.shape[1] :].tolist()
        eos = self.tokenizer.eos_token_id
        stopped = eos in gen
        if stopped:
            gen = gen[: gen.index(eos)]
        text, hit = cut_at_stop(self.tokenizer.decode(gen, skip_special_tokens=True), stops)
        finish = "stop" if stopped or hit or len(gen) < max_tokens else "length"
        return Completion(text.strip(), ids.shape[1], len(gen), finish)

    def stream(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        sampling: Sampling,
        stops: list[str] | None = None,
    ) -> Iterator[str]:
        """Text pieces as they are decoded (generation runs in a worker thread), up to a stop sequence."""
        stops = stops or []
        ids = self._inputs(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cut = StopFilter(stops)
        with self._lock:
            worker = threading.Thread(
                target=self._generate_into,
                args=(self._kwargs(ids, max_tokens, sampling, stops), sampling.seed, streamer),
            )
            worker.start()
            try:
                for piece in streamer:
                    if sent := cut.feed(piece):
                        yield sent
                if rest := cut.flush():
                    yield rest
            finally:
                worker.join()

    def _generate_into(self, kwargs: dict[str, Any], seed: int, streamer: TextIteratorStreamer) -> None:
        with torch.inference_mode():
            torch.manual_seed(seed)
            self.model.generate(**kwargs, streamer=streamer)
