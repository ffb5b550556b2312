"""Exports of a tiny trained model: adapter, merged safetensors, GGUF (f32 and f16), each loaded back
and compared with the source; a failed check leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imts.core.errors import InputError
from imts.data.ingest import import_file
from imts.registry import base_models, export, models
from imts.store.context import Context
from imts.train.service import train
from imts.train.spec import RunSpec

TINY = ["max_steps=3", "batch_size=4", "eval_every=100", "save_every=100", "warmup_steps=1", "lora.r=4"]
TINY += ["precision=fp32", "lr=0.02", "train_split=null", "val_split=null"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, math_file: Path) -> Context:
    from tests.conftest import make_ws

    ctx = make_ws(tmp_path_factory.mktemp("export"))
    base_models.add(ctx, tiny_model, name="tiny")
    ref = import_file(ctx, math_file, name="math").ref
    # Only the adapter is kept: every export goes through base + adapter.
    train(
        ctx,
        RunSpec.from_sources(overrides=[*TINY, "merge=false"], base_model="tiny", data=ref),
        model_name="m",
    )
    return ctx


def test_adapter_and_merged_exports_give_the_source_logits(trained: Context, tmp_path: Path) -> None:
    mv = models.get_version(trained, "m:1")
    assert mv.merged_path is None and mv.adapter_path
    got = export.export(trained, "m:1", "adapter", tmp_path / "adapter")
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= set(got.files)
    assert got.check.max_logit_diff is not None and got.check.max_logit_diff <= 1e-4
    got = export.export(trained, "m:1", "merged")
    assert got.path == trained.artifacts.path("exports/m-1/merged").resolve()
    assert {"model.safetensors", "config.json", "tokenizer.json", "generation_config.json",
            "inference_config.yaml"} <= set(got.files)  # fmt: skip
    assert (
        "chat_template" in (got.path / "tokenizer_config.json").read_text()
        or (got.path / "chat_template.jinja").is_file()
    )
    config = yaml.safe_load((got.path / "inference_config.yaml").read_text())
    assert (
        config["model"] == "m:1"
        and config["base_model"] == "tiny"
        and config["prompt_format"] == "chat_template"
    )
    assert got.check.max_logit_diff is not None and got.check.max_logit_diff <= 1e-4
    with pytest.raises(InputError, match="exists and is not empty"):
        export.export(trained, "m:1", "merged")


@pytest.mark.parametrize("kind", ["f32", "f16"])
def test_gguf_export_loads_back_with_equal_tensors_and_decode(
    trained: Context, tmp_path: Path, kind: str
) -> None:
    got = export.export(trained, "m:1", "gguf", tmp_path / kind, gguf_type=kind)
    assert got.files == [f"m-1.{kind}.gguf"]
    assert got.check.decode_equal and got.check.tensors > 10
    assert got.check.max_tensor_diff == 0.0 if kind == "f32" else got.check.max_tensor_diff <= 1e-2
    import gguf

    reader = gguf.GGUFReader(got.path / got.files[0])
    assert reader.fields["general.architecture"].contents() == "llama"
    assert "tokenizer.chat_template" in reader.fields


def test_bad_requests_leave_nothing(trained: Context, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown export format 'onnx'"):
        export.export(trained, "m:1", "onnx", tmp_path / "x")
    with pytest.raises(InputError, match="GGUF type"):
        export.export(trained, "m:1", "gguf", tmp_path / "x", gguf_type="q4")
    assert not (tmp_path / "x").exists() and list(tmp_path.iterdir()) == []


def test_the_check_tells_a_different_model_apart(trained: Context) -> None:
    from imts.inference.generate import load
    from imts.registry.weights import load_version

    tuned, tokenizer = load_version(trained, models.get_version(trained, "m:1"), merge=True)
    _, base = load(Path(base_models.get(trained, "tiny").path))
    with pytest.raises(export.ExportError, match="logits differ from the source"):
        export._logit_check(tuned, base, tokenizer, tolerance=1e-4, what="base as tuned")
