"""Many models over shared bases: each base model is loaded once, its LoRA adapters are loaded into it
by name, and a scheduler thread per base batches the requests that arrive within a few milliseconds —
requests for different adapters and for the bare base in one batch (PEFT's ``adapter_names``: every
row of a forward pass goes through its own adapter). Tokens stream out per request as they are decoded.

Nothing is shared between requests but the weights: each carries its own prompt, adapter name, sampling
settings and random generator, so concurrent requests cannot change each other's adapter or output.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from imts.inference.generate import Sampling, load, render_prompt
from imts.serve.engine import StopFilter

log = logging.getLogger(__name__)
BASE = "__base__"  # PEFT's adapter name for "no adapter" in a mixed batch


@dataclass(frozen=True)
class Finished:
    """The last event of a request: why it ended and how many tokens it generated."""

    finish_reason: str  # "stop" | "length"
    completion_tokens: int


@dataclass
class Job:
    """One generation (one choice of one request)."""

    ids: list[int]
    adapter: str | None
    max_tokens: int
    sampling: Sampling
    stops: list[str]
    events: queue.SimpleQueue[str | Finished | BaseException] = field(default_factory=queue.SimpleQueue)


class _Row:
    """A job's decoding state inside a batch: its tokens, the text sent, its stop filter."""

    def __init__(self, job: Job, tokenizer: Any) -> None:
        self.job, self.tok = job, tokenizer
        self.gen: list[int] = []
        self.sent = 0
        self.cut = StopFilter(job.stops)
        self.done = False
        self.rng = torch.Generator().manual_seed(job.sampling.seed)

    def pick(self, logits: torch.Tensor) -> int:
        s = self.job.sampling
        if s.temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits.float() / s.temperature, dim=-1)
        if s.top_k > 0:
            kth = torch.topk(probs, min(s.top_k, probs.numel())).values[-1]
            probs = torch.where(probs < kth, 0.0, probs)
        if s.top_p < 1.0:
            ordered, order = torch.sort(probs, descending=True)
            # keep the smallest prefix whose mass reaches top_p (the first token always stays)
            drop = ordered.cumsum(0) - ordered > s.top_p
            ordered[drop] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, ordered)
        return int(torch.multinomial(probs / probs.sum(), 1, generator=self.rng))

    def feed(self, token: int) -> None:
        if token == self.tok.eos_token_id:
            self.finish("stop")
            return
        self.gen.append(token)
        text = self.tok.decode(self.gen, skip_special_tokens=True)
        if not text.endswith("\ufffd"):  # a character still incomplete waits for its next bytes
            piece = self.cut.feed(text[self.sent :])
            self.sent = len(text)
            if piece:
                self.job.events.put(piece)
            if self.cut.stopped:
                self.finish("stop")
                return
        if len(self.gen) >= self.job.max_tokens:
            self.finish("length")

    def finish(self, reason: str) -> None:
        if not self.cut.stopped:  # what an incomplete last character held back goes out as decoded
            text = self.tok.decode(self.gen, skip_special_tokens=True)
            if piece := self.cut.feed(text[self.sent :]):
                self.job.events.put(piece)
            self.sent = len(text)
        if rest := self.cut.flush():
            self.job.events.put(rest)
        self.job.events.put(Finished(reason, len(self.gen)))
        self.done = True


class BaseModel:
    """One base model in memory with its adapters, and the thread that batches requests for it.

    Args:
        path: the model folder (a base model, or a version's merged weights).
        window_s: how long the scheduler waits for more requests after the first of a batch.
        max_batch: the most rows in one batch.
        on_batch: called with each batch's size (metrics).
    """

    def __init__(
        self,
        path: Path,
        window_s: float = 0.005,
        max_batch: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.tokenizer, self.model = load(self.path)
        self.adapters: dict[str, Path] = {}  # loaded now
        self._folders: dict[str, Path] = {}  # every adapter ever asked for (a retired one reloads)
        self._retiring: set[str] = set()
        self.window_s, self.max_batch, self.on_batch = window_s, max_batch, on_batch
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()  # adapter loads and forward passes never overlap
        self._thread = threading.Thread(target=self._loop, name=f"batcher:{self.path.name}", daemon=True)
        self._thread.start()

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        return render_prompt(self.tokenizer, messages)

    def ensure_adapter(self, name: str, folder: Path) -> None:
        """Load the adapter in ``folder`` under ``name`` (once); the base weights are not reloaded."""
        self._folders.setdefault(name, Path(folder))
        self._retiring.discard(name)
        if name not in self.adapters:
            with self._lock:
                self._load(name)

    def _load(self, name: str) -> None:
        from peft import PeftModel

        if name in self.adapters:
            return
        folder = self._folders[name]
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(folder), adapter_name=name)
        else:  # the first adapter wraps the base in place; the bare base stays reachable as BASE
            self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name)
        self.model.eval()
        self.adapters[name] = folder
        log.info("loaded adapter %s into %s", name, self.path)

    def retire(self, name: str) -> None:
        """Unload adapter ``name`` when the scheduler is next idle (an alias moved off its version); a
        request still naming it reloads it."""
        if name in self._folders:
            self._retiring.add(name)

    def _unload_retired(self) -> None:
        with self._lock:
            for name in sorted(self._retiring & set(self.adapters)):
                if len(self.adapters) > 1:  # PEFT keeps one adapter active
                    self.model.delete_adapter(name)
                    del self.adapters[name]
                    log.info("unloaded adapter %s from %s", name, self.path)
            self._retiring.clear()

    def submit(self, job: Job) -> Iterator[str | Finished]:
        """Queue ``job``; its text pieces as they are decoded, then its ``Finished``."""
        self._queue.put(job)
        while True:
            event = job.events.get()
            if isinstance(event, BaseException):
                raise event
            yield event
            if isinstance(event, Finished):
                return

    def close(self) -> None:
        self._queue.put(None)

    def _loop(self) -> None:
        while True:
            if self._retiring and self._queue.empty():
                self._unload_retired()
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.perf_counter() + self.window_s
            while len(batch) < self.max_batch:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.perf_counter()))
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)
                    break
                batch.append(job)
            try:
                self._run(batch)
            except Exception as exc:  # the requests get the error; the scheduler keeps serving
                log.exception("a batch of %d failed", len(batch))
                for job in batch:
                    job.events.put(exc)

    def _run(self, batch: list[Job]) -> None:
        if self.on_batch is not None:
            self.on_batch(len(batch))
        tok = self.tokenizer
        pad = tok.pad_token_id
        width = max(len(j.ids) for j in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, job in enumerate(batch):  # left-padded: every row continues at the right edge
            ids[i, width - len(job.ids) :] = torch.tensor(job.ids)
            mask[i, width - len(job.ids) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        rows = [_Row(j, tok) for j in batch]
        with self._lock, torch.inference_mode():
            for name in {j.adapter for j in batch if j.adapter is not None}:
                self._load(name)  # retired between its request's resolve and this batch
            extra: dict[str, Any] = {}
            if self.adapters:
                extra["adapter_names"] = [j.adapter or BASE for j in batch]
            cache = None
            for _ in range(max(j.max_tokens for j in batch)):
                # logits of the last position only: the prompt's other positions need no vocabulary projection
                out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache,
                                 use_cache=True, logits_to_keep=1, **extra)  # fmt: skip
                cache = out.cache
                logits = out.logits[:, -1, :]
                nxt = []
                for i, row in enumerate(rows):
                    token = pad
                    if not row.done:
                        token = row.pick(logits[i])
                        row.feed(token)
                    nxt.append(token)
                if all(r.done for r in rows):
                    return
                ids = torch.tensor(nxt).unsqueeze(1)
                mask = torch.cat([mask, torch.ones((len(batch), 1), dtype=torch.long)], dim=1)
                pos = pos[:, -1:] + 1
