"""The run spec: one typed object per training run, from YAML, CLI ``key=value`` or an API body.

It is stored with the run and written as ``run_config.yaml`` next to every checkpoint, so any
checkpoint says exactly how it was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imts.core.errors import InputError
from imts.core.specs import apply_overrides, read_yaml_mapping
from imts.train.watchdog import WatchdogSpec


class LoraSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: float = Field(32, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Linear layers that get adapters (all attention and MLP projections by default).",
    )


class RunSpec(BaseModel):
    """Hyper-parameters and inputs of one fine-tuning run."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["sft_lora"] = "sft_lora"
    base_model: str = Field(..., description="Registered base model name (see `imts models list`).")
    data: str = Field(..., description="Dataset reference, e.g. mydata@2 (its 'train' split is used).")
    train_split: str | None = Field("train", description="Split to train on; None uses all rows.")
    val_split: str | None = Field("val", description="Split for validation loss; None to skip.")
    max_steps: int = Field(120, ge=1, description="Optimizer steps.")
    batch_size: int = Field(
        8, ge=1, description="Sequences per optimizer step (per micro-batch x grad_accum)."
    )
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate.")
    warmup_steps: int = Field(10, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Cosine decays to lr * min_lr_ratio.")
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_seq_len: int = Field(512, ge=16, description="Longer examples are truncated (counted in the log).")
    batching: Literal["length_grouped", "random"] = Field(
        "length_grouped",
        description="length_grouped: batches of similar lengths, so little compute is padding.",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="auto: bf16 autocast where the hardware computes bf16 natively (CUDA, CPUs with "
        "AVX512-BF16/AMX), else fp32. On an AVX2-only CPU bf16 matmuls are several times slower.",
    )
    seed: int = 0
    save_every: int = Field(50, ge=1, description="Checkpoint every N steps (and at the end).")
    keep_last: int = Field(2, ge=1, description="Checkpoints kept (older ones are deleted).")
    eval_every: int = Field(50, ge=1, description="Validation loss every N steps (and at the end).")
    val_max_items: int = Field(64, ge=1, description="Validation examples used for the loss.")
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="Stop after this many validations without a better val_loss; the best is kept.",
    )
    early_stopping_min_delta: float = Field(
        0.0, ge=0, description="Improvement smaller than this does not count."
    )
    merge: bool = Field(True, description="Also save the base model with the adapter merged in.")
    lora: LoraSpec = Field(default_factory=LoraSpec)
    watchdog: WatchdogSpec = Field(default_factory=WatchdogSpec)

    @classmethod
    def from_sources(
        cls, yaml_file: Path | None = None, overrides: list[str] | None = None, **fields: Any
    ) -> RunSpec:
        """Defaults < YAML file < keyword fields < ``key=value`` overrides (dotted keys for nesting)."""
        data = read_yaml_mapping(yaml_file, "run spec") if yaml_file is not None else {}
        data.update({k: v for k, v in fields.items() if v is not None})
        apply_overrides(data, overrides or [])
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(
                first["msg"],
                field=".".join(str(p) for p in first["loc"]),
                file=str(yaml_file) if yaml_file else None,
            ) from exc

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
