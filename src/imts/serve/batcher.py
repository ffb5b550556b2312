"""Many models over shared bases: each base model is loaded once, its LoRA adapters are loaded into it
by name, and a scheduler thread per base batches requests continuously — requests for different
adapters and for the bare base in one batch (``StackedLoRA``, or PEFT's ``adapter_names`` for adapters
it does not cover: every row of a forward pass goes through its own adapter). An idle scheduler waits a
few milliseconds after the first request for more; while a batch runs, requests that arrive join it at
its next step and every request leaves it when it ends. Tokens stream out per request as they are
decoded.

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

from imts.inference.generate import Sampling, load, pad_rows, render_prompt
from imts.inference.tools import RowTools
from imts.serve.engine import StopFilter
from imts.serve.lora import StackedLoRA, stackable

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
    tools: tuple[str, ...] = ()  # decoding tools (``imts.inference.tools``)
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
        self.tools = RowTools(tokenizer, job.tools) if job.tools else None

    def pick(self, logits: torch.Tensor) -> int:
        if self.tools is not None and (forced := self.tools.forced(self.gen)) is not None:
            return forced
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
        window_s: how long an idle scheduler waits for more requests after the first.
        max_batch: the most generations decoding together.
        on_batch: called with the number of generations decoding together each time requests are
            admitted (a new batch, or requests joining a running one; metrics).
        stack_lora: mix adapters in a batch through ``StackedLoRA`` (two products per layer); False
            keeps PEFT's ``adapter_names`` (one adapter at a time), the reference it is measured against.
    """

    def __init__(
        self,
        path: Path,
        window_s: float = 0.005,
        max_batch: int = 32,
        on_batch: Callable[[int], None] | None = None,
        stack_lora: bool = True,
    ) -> None:
        self.path = Path(path)
        self.tokenizer, self.model = load(self.path)
        self.adapters: dict[str, Path] = {}  # loaded now
        self._folders: dict[str, Path] = {}  # every adapter ever asked for (a retired one reloads)
        self._retiring: set[str] = set()
        self.stack_lora = stack_lora
        self._stacked: StackedLoRA | None = None  # rebuilt whenever an adapter comes or goes
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
        self._unstack()  # PEFT changes its layers with its own switched on
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(folder), adapter_name=name)
        else:  # the first adapter wraps the base in place; the bare base stays reachable as BASE
            self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name)
        self.model.eval()
        self.adapters[name] = folder
        self._restack()
        log.info("loaded adapter %s into %s", name, self.path)

    def retire(self, name: str) -> None:
        """Unload adapter ``name`` when the scheduler is next idle (an alias moved off its version); a
        request still naming it reloads it."""
        if name in self._folders:
            self._retiring.add(name)

    def _unload_retired(self) -> None:
        with self._lock:
            self._unstack()
            for name in sorted(self._retiring & set(self.adapters)):
                if len(self.adapters) > 1:  # PEFT keeps one adapter active
                    self.model.delete_adapter(name)
                    del self.adapters[name]
                    log.info("unloaded adapter %s from %s", name, self.path)
            self._retiring.clear()
            self._restack()

    def _restack(self) -> None:
        if self.stack_lora and self.adapters and stackable(self.model):
            self._stacked = StackedLoRA(self.model)

    def _unstack(self) -> None:
        if self._stacked is not None:
            self._stacked.close()
            self._stacked = None

    def submit(self, job: Job) -> Iterator[str | Finished]:
        """Queue ``job`` now; its text pieces as they are decoded, then its ``Finished``."""
        # Queued here, not on the first read of the events: the n choices of a request are all
        # submitted before any is read, so they share a batch.
        self._queue.put(job)
        return self._events(job)

    @staticmethod
    def _events(job: Job) -> Iterator[str | Finished]:
        while True:
            event = job.events.get()
            if isinstance(event, BaseException):
                raise event
            yield event
            if isinstance(event, Finished):
                return

    def close(self) -> None:
        """Stop the scheduler once the generations under way have ended."""
        self._queue.put(None)

    def _loop(self) -> None:
        batch: _Batch | None = None
        closing = False
        while batch is not None or not closing:
            jobs: list[Job] = []
            if batch is None:  # idle: wait for a request, then the window for more
                if self._retiring and self._queue.empty():
                    self._unload_retired()
                first = self._queue.get()
                if first is None:
                    return
                jobs, closing = self._take([first], time.perf_counter() + self.window_s)
            elif batch.open and not closing:  # running: whoever is waiting joins at this step
                jobs, closing = self._take([], 0.0, self.max_batch - len(batch.rows))
            try:
                with self._lock, torch.inference_mode():
                    if jobs:
                        joined = self._prefill(jobs)
                        batch = joined if batch is None else batch.merge(joined)
                        if self.on_batch is not None:
                            self.on_batch(len(batch.rows))
                    batch = batch.without_done() if batch is not None else None
                    if batch is not None:
                        self._step(batch)
            except Exception as exc:  # the requests get the error; the scheduler keeps serving
                log.exception("a batch failed")
                failed = {id(j): j for j in jobs}
                failed.update({id(r.job): r.job for r in (batch.rows if batch else []) if not r.done})
                for job in failed.values():
                    job.events.put(exc)
                batch = None

    def _take(self, jobs: list[Job], deadline: float, room: int | None = None) -> tuple[list[Job], bool]:
        """``jobs`` and what else is queued, waiting until ``deadline``, up to ``room`` (or ``max_batch``)
        in all; and whether the scheduler was closed."""
        room = self.max_batch if room is None else room
        while len(jobs) < room:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any,
                 rows: list[_Row]) -> tuple[torch.Tensor, Any]:  # fmt: skip
        """Next-token logits of every row, and the cache grown by ``ids``."""
        extra: dict[str, Any] = {}
        names = [r.job.adapter or BASE for r in rows]
        if self._stacked is not None:
            self._stacked.route(names)
        elif self.adapters:  # adapters StackedLoRA does not cover: PEFT, one adapter at a time
            extra["adapter_names"] = names
        # logits of the last position only: the prompt's other positions need no vocabulary projection
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True,
                         logits_to_keep=1, **extra)  # fmt: skip
        return out.logits[:, -1, :], out.cache

    def _prefill(self, jobs: list[Job]) -> _Batch:
        """The prompts of ``jobs`` in one pass (left-padded): their cache and first tokens."""
        for name in {j.adapter for j in jobs if j.adapter is not None}:
            self._load(name)  # retired between its request's resolve and now
        tok = self.tokenizer
        ids, mask = pad_rows([j.ids for j in jobs], tok.pad_token_id)  # every row continues at the right edge
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        rows = [_Row(j, tok) for j in jobs]
        logits, cache = self._forward(ids, mask, pos, None, rows)
        batch = _Batch(rows, cache, mask, pos[:, -1:] + 1, torch.zeros((len(rows), 1), dtype=torch.long))
        batch.pick(logits, tok.pad_token_id)
        return batch

    def _step(self, batch: _Batch) -> None:
        """One token more for every row of ``batch``."""
        mask = torch.cat([batch.mask, torch.ones((len(batch.rows), 1), dtype=torch.long)], dim=1)
        logits, batch.cache = self._forward(batch.nxt, mask, batch.pos, batch.cache, batch.rows)
        batch.mask, batch.pos = mask, batch.pos + 1
        batch.pick(logits, self.tokenizer.pad_token_id)


class _Batch:
    """Rows decoding together: their KV cache and attention mask (left-padded, one column per cached
    position), the position and the token each feeds next.

    Requests join a running batch (``merge``: both caches left-padded to the longer) and leave it as
    they end (``without_done``), so a batch runs as long as there are requests (continuous batching).
    """

    def __init__(
        self, rows: list[_Row], cache: Any, mask: torch.Tensor, pos: torch.Tensor, nxt: torch.Tensor
    ) -> None:
        from transformers.cache_utils import DynamicLayer

        self.rows, self.cache, self.mask, self.pos, self.nxt = rows, cache, mask, pos, nxt
        # Joining needs the plain growing cache; a model whose cache slides (or is static) decodes the
        # batch it started with to its end, and waiting requests form the next one.
        self.open = all(type(layer) is DynamicLayer for layer in cache.layers)

    def pick(self, logits: torch.Tensor, pad: int) -> None:
        """Each live row's next token from its ``logits`` (an ended row feeds padding)."""
        nxt = []
        for i, row in enumerate(self.rows):
            token = pad
            if not row.done:
                token = row.pick(logits[i])
                row.feed(token)
            nxt.append(token)
        self.nxt = torch.tensor(nxt).unsqueeze(1)

    def merge(self, other: _Batch) -> _Batch:
        """This batch and ``other`` as one: the shorter cache is left-padded (masked) to the longer."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, width, 2), _pad_left(theirs.keys, width, 2)])
            mine.values = torch.cat([_pad_left(mine.values, width, 2), _pad_left(theirs.values, width, 2)])
        mask = torch.cat([_pad_left(self.mask, width, 1), _pad_left(other.mask, width, 1)])
        return _Batch(self.rows + other.rows, self.cache, mask, torch.cat([self.pos, other.pos]),
                      torch.cat([self.nxt, other.nxt]))  # fmt: skip

    def without_done(self) -> _Batch | None:
        """The rows still generating (None: none), and the cache columns no longer any row's."""
        keep = [i for i, r in enumerate(self.rows) if not r.done]
        if not keep:
            return None
        if len(keep) == len(self.rows):
            return self
        idx = torch.tensor(keep)
        mask = self.mask[idx]
        start = int(mask.any(0).long().argmax())  # the first column a remaining row attends to
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[idx, :, start:], layer.values[idx, :, start:]
        return _Batch([self.rows[i] for i in keep], self.cache, mask[:, start:], self.pos[idx], self.nxt[idx])


def _pad_left(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """``t`` with zeros before its entries along ``dim`` up to ``width``."""
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)
