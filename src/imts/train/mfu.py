"""Model FLOPs utilisation: the FLOP/s a recipe achieves against what this device's matmuls attain.

Achieved FLOPs follow the usual accounting (Kaplan et al.; PaLM appendix B): a token costs 2N FLOPs
forward and 4N backward for a full fine-tune (6N), but only 2N backward through frozen weights with
LoRA (activation gradients, no weight gradients: 4N). Attention adds 12 · layers · hidden · s per token
of a length-s sequence (QK^T and AV, forward and backward, without the causal half-saving). The LM
head counts only where the recipe computes it (the response positions). The peak is measured, not
taken from a datasheet: a short matmul microbenchmark at each run's start, the process's best kept.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class FlopModel:
    body: int  # parameters used at every token (all but the input embedding and the LM head)
    head: int  # LM head parameters (used at loss positions only)
    layers: int
    hidden: int
    factor: int  # 6 for a full fine-tune, 4 with frozen base weights (LoRA)

    def step_flops(self, tokens: int, head_positions: int, sq_len_sum: int) -> float:
        """FLOPs of one forward+backward over sequences with ``tokens`` real tokens in all."""
        attention = 12 * self.layers * self.hidden * sq_len_sum
        return float(self.factor * (self.body * tokens + self.head * head_positions) + attention)


def flop_model(model: Any, full: bool) -> FlopModel:
    """The FLOP accounting of a causal LM (a PEFT wrapper is looked through)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    embed = inner.get_input_embeddings().weight
    head = inner.get_output_embeddings().weight
    seen = {id(embed), id(head)}
    body = sum(p.numel() for p in inner.parameters() if id(p) not in seen)
    cfg = inner.config
    return FlopModel(body, head.numel(), cfg.num_hidden_layers, cfg.hidden_size, 6 if full else 4)


def batch_counts(batch: dict[str, torch.Tensor], loss_positions: int) -> tuple[int, int, int]:
    """(real tokens, LM-head positions, sum of squared sequence lengths) of a collated batch."""
    lengths = batch["attention_mask"].sum(dim=1)
    return int(lengths.sum()), loss_positions, int((lengths * lengths).sum())


_best: dict[tuple[str, torch.dtype, int], float] = {}


def _measure(device_type: str, dtype: torch.dtype) -> float:
    # A CPU is near its rate at 1024; rounds of ~40 ms (not a few ms) keep one descheduling from
    # deciding the figure, which read low and put a run's MFU above 100% on a shared machine.
    n = 4096 if device_type == "cuda" else 1024
    # Its own generator: measuring must not move the training run's RNG stream.
    gen = torch.Generator(device=device_type).manual_seed(0)
    a = torch.randn(n, n, device=device_type, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device_type, dtype=dtype, generator=gen)
    a @ b  # warm-up: thread pool, kernels
    reps = 10 if device_type == "cuda" else 2
    best = float("inf")
    for _ in range(3):  # the best of three rounds: other load on the machine only slows a round down
        _sync(device_type)
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device_type)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 * reps / best


def peak_flops(device: torch.device, dtype: torch.dtype = torch.float32) -> float:
    """Attainable matmul FLOP/s of ``device`` in ``dtype`` with this process's threads.

    Measured at each call (a run's start, ~0.2 s on a CPU) and the best figure of the process kept: a
    measurement taken while other processes share the CPU is too low, and would inflate the MFU of
    every later run if it were cached as it is.
    """
    key = (device.type, dtype, torch.get_num_threads())
    _best[key] = max(_best.get(key, 0.0), _measure(device.type, dtype))
    return _best[key]


def last_peak(device: torch.device, dtype: torch.dtype = torch.float32) -> float | None:
    """The peak the latest ``peak_flops`` call returned (what a finished run's ``mfu`` was divided by)."""
    return _best.get((device.type, dtype, torch.get_num_threads()))


def peak_mem_mb(device: torch.device) -> float:
    """Peak memory so far: allocated CUDA memory on a GPU, the process's peak resident set on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def _sync(device_type: str) -> None:
    if device_type == "cuda":
        torch.cuda.synchronize()
