"""A loop on the tiny model: a workspace whose pool is the machine's two cores, the example data split by
the loop itself, the tiny Llama as the base model."""

from __future__ import annotations

from pathlib import Path

from tests.jobs.conftest import jobs_ws

from imts.data.ingest import import_file
from imts.flywheel.spec import LoopSpec
from imts.registry import base_models
from imts.store.context import Context

TINY_TRAIN = ["max_steps=6", "batch_size=4", "save_every=3", "eval_every=1000", "merge=false", "lora.r=4"]
INTENT = "Teach the model to solve grade-school math word problems step by step in English and Chinese"


def loop_ws(root: Path, tiny_model: Path, math_file: Path) -> Context:
    ws = jobs_ws(root, cpus=2)
    ws.settings.heartbeat_timeout_s = 60.0  # torch start-up on a busy machine is not a lost worker
    base_models.add(ws, tiny_model, name="tiny")
    import_file(ws, math_file, name="math")
    return ws


def tiny_spec(**kw: object) -> LoopSpec:
    fields: dict[str, object] = {
        "intent": INTENT, "data": "math", "base_model": "tiny", "train": TINY_TRAIN, "eval_items": 12,
        "max_iterations": 2, "patience": 5,
    }  # fmt: skip
    return LoopSpec.model_validate(fields | kw)
