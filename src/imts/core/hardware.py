"""What the hardware can do, asked once: used to pick defaults that are fast on this machine."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16() -> bool:
    """True where bf16 matmuls are faster than fp32: CUDA GPUs with bf16, CPUs with AVX512-BF16 or AMX."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return cpu_native_bf16()


def cpu_native_bf16() -> bool:
    """True where this CPU computes bf16 matmuls natively (AVX512-BF16 or AMX)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for this machine; explicit choices are kept."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16() else "fp32"
