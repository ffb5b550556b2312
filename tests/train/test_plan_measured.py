"""The memory estimate against a real CPU run: LoRA steps of SmolLM2-135M in fp32, batch 4."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imts.registry import base_models
from imts.store.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_measured_peak_memory_within_25_percent_of_estimate(ws: Workspace) -> None:
    model = base_models.pull(ws, "smollm2-135m-instruct").path  # converted once into the model cache
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "plan_memory.py"),
            "--model",
            model,
            "--json",
            "--steps",
            "2",
            "--rows",
            "32",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["params"] == 134_515_008 and result["trainable"] == 4_884_480
    assert result["micro_batch"] == 4 and result["seq_len"] > 64
    # Activations and logits are a large share of the estimate here, so the check is not weights only.
    est = result["estimate"]
    assert est["activations"] + est["logits"] > 0.4 * est["total"]
    assert 0.75 <= result["ratio_measured_to_estimate"] <= 1.25, result
