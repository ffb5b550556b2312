"""Continuous batching over a KV cache, shared by evaluation (``generate``) and serving (``serve``).

Rows decode together in one ``Batch``: prompts join a running batch at any step (``merge``: both caches
left-padded to the longer, the padding masked) and every row leaves it when it ends (``without_done``),
so a forward pass carries as many live rows as there are prompts waiting (a decoding step costs mostly
the time of streaming the weights, whatever its rows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from transformers.cache_utils import DynamicLayer


class Row(Protocol):
    """One generation inside a batch."""

    done: bool

    def pick(self, logits: torch.Tensor, best: int) -> int:
        """The next token, from this row's ``logits`` (``best``: their argmax)."""

    def feed(self, token: int) -> None:
        """Take the chosen token (and set ``done`` when the row has ended)."""


# (input ids, attention mask, position ids, cache or None) -> (last position's logits, cache)
Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], tuple[torch.Tensor, Any]]


def left_padded(
    prompts: Sequence[Sequence[int]], pad_id: int, device: Any = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids, attention mask and position ids of ``prompts`` left-padded to the longest, so every row
    continues at the right edge."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
        mask[i, width - len(p) :] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), pos.to(device)


class GrowingLayer(DynamicLayer):
    """``transformers``' plain growing cache layer, with room to grow: a step writes its column into a
    buffer instead of concatenating (``torch.cat`` copies the whole cache, every layer, every step:
    measured at 44% of a 32-row decoding step of SmolLM2-135M on a 2-core CPU)."""

    room = 64  # columns allocated ahead
    _own: torch.Tensor | None = None  # the view this layer last handed out as ``keys``
    _buf: tuple[torch.Tensor, torch.Tensor]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = self.keys.shape[-2] if self.keys.numel() else 0
        end = n + key_states.shape[-2]
        # the first update, a full buffer, or keys put in place by ``Batch.merge`` / ``without_done``
        if self._own is not self.keys or end > self._buf[0].shape[-2]:
            self._buf = (
                self._with_room(self.keys, key_states, n),
                self._with_room(self.values, value_states, n),
            )
        keys, values = self._buf
        keys[:, :, n:end], values[:, :, n:end] = key_states, value_states
        self.keys, self.values = keys[:, :, :end], values[:, :, :end]
        self._own = self.keys
        return self.keys, self.values

    def _with_room(self, old: torch.Tensor, new: torch.Tensor, n: int) -> torch.Tensor:
        out = new.new_empty((*new.shape[:2], n + new.shape[-2] + self.room, new.shape[-1]))
        if n:
            out[:, :, :n] = old
        return out


def new_cache(model: Any) -> Any:
    """An empty cache for ``model`` whose plain growing layers are ``GrowingLayer``s (a sliding or other
    layer stays as the model has it)."""
    from transformers.cache_utils import DynamicCache

    cache = DynamicCache(config=model.config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


class Batch:
    """Rows decoding together: their KV cache and attention mask (left-padded, one column per cached
    position), the position and the token each feeds next.

    ``open`` is False for a model whose cache is not the plain growing one (sliding or static): such a
    batch decodes the rows it started with to their end, and waiting prompts form the next one.
    """

    def __init__(
        self, rows: list[Any], cache: Any, mask: torch.Tensor, pos: torch.Tensor, nxt: torch.Tensor
    ) -> None:
        self.rows, self.cache, self.mask, self.pos, self.nxt = rows, cache, mask, pos, nxt
        self.open = all(type(layer) in (DynamicLayer, GrowingLayer) for layer in cache.layers)

    @classmethod
    def prefill(cls, rows: list[Any], prompts: Sequence[Sequence[int]], pad_id: int, forward: Forward,
                cache: Any, device: Any = None) -> Batch:  # fmt: skip
        """``rows`` with their ``prompts`` in one pass into ``cache`` (empty: ``new_cache``): their cache
        and first tokens."""
        ids, mask, pos = left_padded(prompts, pad_id, device)
        logits, cache = forward(ids, mask, pos, cache)
        batch = cls(rows, cache, mask, pos[:, -1:] + 1, torch.zeros_like(pos[:, -1:]))
        batch.pick(logits, pad_id)
        return batch

    def step(self, forward: Forward, pad_id: int) -> None:
        """One token more for every row."""
        mask = torch.cat([self.mask, torch.ones_like(self.nxt)], dim=1)
        logits, self.cache = forward(self.nxt, mask, self.pos, self.cache)
        self.mask, self.pos = mask, self.pos + 1
        self.pick(logits, pad_id)

    def pick(self, logits: torch.Tensor, pad: int) -> None:
        """Each live row's next token from its ``logits`` (an ended row feeds padding)."""
        best = logits.argmax(-1).tolist()
        nxt = []
        for i, row in enumerate(self.rows):
            token = pad
            if not row.done:
                token = row.pick(logits[i], best[i])
                row.feed(token)
            nxt.append(token)
        self.nxt = torch.tensor(nxt, device=self.mask.device).unsqueeze(1)

    def merge(self, other: Batch) -> Batch:
        """This batch and ``other`` as one: the shorter cache is left-padded (masked) to the longer."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, width, 2), _pad_left(theirs.keys, width, 2)])
            mine.values = torch.cat([_pad_left(mine.values, width, 2), _pad_left(theirs.values, width, 2)])
        mask = torch.cat([_pad_left(self.mask, width, 1), _pad_left(other.mask, width, 1)])
        return Batch(self.rows + other.rows, self.cache, mask, torch.cat([self.pos, other.pos]),
                     torch.cat([self.nxt, other.nxt]))  # fmt: skip

    def without_done(self) -> Batch | None:
        """The rows still generating (None: none), and the cache columns no longer any row's."""
        keep = [i for i, r in enumerate(self.rows) if not r.done]
        if not keep:
            return None
        if len(keep) == len(self.rows):
            return self
        idx = torch.tensor(keep, device=self.mask.device)
        mask = self.mask[idx]
        start = int(mask.any(0).long().argmax())  # the first column a remaining row attends to
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[idx, :, start:], layer.values[idx, :, start:]
        return Batch([self.rows[i] for i in keep], self.cache, mask[:, start:], self.pos[idx], self.nxt[idx])


def _pad_left(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """``t`` with zeros before its entries along ``dim`` up to ``width``."""
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)
