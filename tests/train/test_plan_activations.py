"""The planner's activation formula against what autograd really saves, on an architecture it was not
calibrated on (the tiny test Llama: hidden 64, MLP 128, 4 heads, 2 layers), through the same counter
as ``benchmarks/saved_activations.py``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import saved_activations


@pytest.mark.parametrize("regime", saved_activations.REGIMES[:4], ids=lambda r: f"{r[0]}-{r[1]}")
def test_formula_matches_the_counted_saved_tensors(
    regime: tuple[str, str, str], tiny_model: Path, mathgen: Any
) -> None:
    rows, _ = mathgen.generate(n=64, seed=5)
    rows = [
        {
            "id": r["id"],
            "messages": [
                {"role": "user", "content": r["prompt"]},
                {"role": "assistant", "content": r["response"]},
            ],
        }
        for r in rows
    ]
    got = saved_activations.count(*regime, tiny_model, rows, batch=8)
    assert got["measured_bytes_per_token_layer"] > 0
    assert 0.9 <= got["formula_over_measured"] <= 1.1, got
