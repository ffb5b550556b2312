"""The one way to load a model version's weights: its merged folder when it was saved, else its base
model with the adapter applied (training may keep only the adapter)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imts.core.errors import ModelLoadError
from imts.registry import base_models
from imts.registry.views import ModelVersionView
from imts.store.context import Context


def load_version(ctx: Context, mv: ModelVersionView, merge: bool = False) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a version in float32, in eval mode.

    Args:
        merge: return a plain transformers model (the adapter merged in) even when the version has only
            an adapter; otherwise an adapter-only version comes back as a ``PeftModel``.

    Raises:
        ModelLoadError: the version's files are gone or do not load.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        if mv.merged_path and (Path(mv.merged_path) / "config.json").is_file():
            folder = Path(mv.merged_path)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(folder)
        elif mv.adapter_path and Path(mv.adapter_path).is_dir():
            from peft import PeftModel

            base = base_models.get(ctx, mv.base_model_id)
            model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
            model = PeftModel.from_pretrained(model, mv.adapter_path)
            if merge:
                model = model.merge_and_unload()
            tokenizer = AutoTokenizer.from_pretrained(mv.adapter_path)
        else:
            raise ModelLoadError(f"model {mv.label}: neither merged weights nor an adapter are on disk")
    except ModelLoadError:
        raise
    except Exception as exc:  # transformers and peft raise many kinds; the user needs one message
        raise ModelLoadError(f"model {mv.label} does not load: {exc}") from exc
    model.eval()
    return model, tokenizer
