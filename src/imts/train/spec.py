"""The run spec: one typed object per training run, from YAML, CLI ``key=value`` or an API body.

It is stored with the run and written as ``run_config.yaml`` next to every checkpoint, so any
checkpoint says exactly how it was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from imts.core.errors import InputError
from imts.core.specs import apply_overrides, read_yaml_mapping
from imts.train.watchdog import WatchdogSpec

# Generation metrics an SFT validation computes (the evaluation court's scoring), by the key they report.
GENERATION_METRICS = {
    "exact_match": "exact_match",
    "f1": "answer_f1",
    "rouge_l": "rouge_l",
    "bleu": "bleu",
    "distinct_2": "distinct_2",
}
DPO_VALIDATION = ("val_loss", "val_reward_accuracy", "val_reward_margin")


class LoraSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: float = Field(32, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Linear layers that get adapters (all attention and MLP projections by default).",
    )
    top_layers: int | None = Field(
        None,
        ge=1,
        description="Adapters only in the last N decoder layers (None: in every layer). The backward pass "
        "stops at the lowest adapted layer, so a step costs less (measured in benchmarks/RESULTS.md).",
    )


class DpoSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    beta: float = Field(0.1, gt=0, description="Strength of the pull towards the reference model.")
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="Assumed fraction of flipped preference labels (conservative DPO)."
    )
    full: bool = Field(False, description="Train every weight instead of LoRA adapters.")
    rpo_alpha: float = Field(
        0.0,
        ge=0,
        description="Weight of the chosen answers' negative log-likelihood (per token) added to the DPO "
        "loss (RPO, Pang et al. 2024): the margin may not grow by making the chosen answers unlikely too.",
    )


class RunSpec(BaseModel):
    """Hyper-parameters and inputs of one fine-tuning run."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["sft_lora", "sft_full", "dpo"] = Field(
        "sft_lora",
        description="sft_lora: LoRA adapters; sft_full: every weight; dpo: preference pairs (see dpo.*).",
    )
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
    quantization: Literal["none", "nf4"] = Field(
        "none",
        description="nf4: QLoRA, the frozen base in 4-bit NF4 (bitsandbytes, CUDA only; sft_lora and "
        "LoRA dpo).",
    )
    nproc: int = Field(1, ge=1, description="Data-parallel processes on this machine (one per GPU on CUDA).")
    dist_timeout_s: int = Field(
        300, ge=10, description="A rank that waits longer than this on the others fails the run."
    )
    seed: int = 0
    save_every: int = Field(50, ge=1, description="Checkpoint every N steps (and at the end).")
    keep_last: int = Field(2, ge=1, description="Checkpoints kept (older ones are deleted).")
    eval_every: int = Field(50, ge=1, description="Validation loss every N steps (and at the end).")
    val_max_items: int = Field(64, ge=1, description="Validation examples used for the loss.")
    val_generation_metrics: list[str] = Field(
        default_factory=list,
        description="SFT: at each validation also generate greedy answers for up to "
        "val_generation_items validation rows and score them with these evaluation metrics "
        f"({', '.join(GENERATION_METRICS)}), reported as val_<key> "
        f"({', '.join(GENERATION_METRICS.values())}).",
    )
    val_generation_items: int = Field(32, ge=1, description="Validation rows answered per validation.")
    val_generation_max_new_tokens: int = Field(64, ge=1, description="Answer length cap when validating.")
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="Stop after this many validations without a better early_stopping_metric; the "
        "best checkpoint is kept.",
    )
    early_stopping_metric: str = Field(
        "val_loss",
        description="The validation figure early stopping and the best checkpoint follow: val_loss, "
        "DPO's val_reward_accuracy or val_reward_margin, or val_<key> of val_generation_metrics.",
    )
    early_stopping_mode: Literal["auto", "min", "max"] = Field(
        "auto", description="auto: lower is better for a loss, higher for any other figure."
    )
    early_stopping_min_delta: float = Field(
        0.0, ge=0, description="Improvement smaller than this does not count."
    )
    keep_checkpoints: bool = Field(
        False,
        description="Keep checkpoints/ (weights and optimizer state) after the run succeeded; by default "
        "they are removed then: the model is saved outside them, and only an unfinished run resumes.",
    )
    merge: bool = Field(
        False,
        description="Also save a full copy of the base with the adapter merged in (merged/, the base's "
        "size in fp32); without it, evaluation and serving merge the adapter on load.",
    )
    init_from: str | None = Field(
        None,
        description="Start the adapters from this model's instead of from zero: a run id or a model "
        "version (NAME:N, NAME@ALIAS) of the same base model with the same lora settings; training goes "
        "on from it on this run's data (the closed loop's next iteration does this).",
    )
    lora: LoraSpec = Field(default_factory=LoraSpec)
    dpo: DpoSpec = Field(default_factory=DpoSpec)
    watchdog: WatchdogSpec = Field(default_factory=WatchdogSpec)

    @model_validator(mode="after")
    def _consistent(self) -> RunSpec:
        full = self.method == "sft_full" or (self.method == "dpo" and self.dpo.full)
        if self.quantization == "nf4" and full:
            raise ValueError(
                "quantization=nf4 (QLoRA) trains adapters: use sft_lora or dpo with dpo.full=false"
            )
        unknown = [m for m in self.val_generation_metrics if m not in GENERATION_METRICS]
        if unknown:
            raise ValueError(
                f"val_generation_metrics: unknown {unknown}; choose from {', '.join(GENERATION_METRICS)}"
            )
        if self.val_generation_metrics and self.method == "dpo":
            raise ValueError(
                "val_generation_metrics is for SFT runs; a dpo validation reports "
                + ", ".join(DPO_VALIDATION)
            )
        if self.early_stopping_metric not in self.validation_metrics:
            raise ValueError(
                f"early_stopping_metric '{self.early_stopping_metric}' is not reported by a "
                f"{self.method} validation: choose from {', '.join(self.validation_metrics)}"
                + ("" if self.method == "dpo" else " (or add a metric to val_generation_metrics)")
            )
        if self.init_from and not self.uses_lora:
            raise ValueError("init_from continues LoRA adapters: use sft_lora, or dpo with dpo.full=false")
        if max(1, self.batch_size // self.grad_accum) < self.nproc:
            raise ValueError(
                f"each of the {self.nproc} processes needs a share of every micro-batch: "
                "batch_size / grad_accum must be at least nproc"
            )
        return self

    @property
    def validation_metrics(self) -> tuple[str, ...]:
        """The figures a validation of this run reports."""
        if self.method == "dpo":
            return DPO_VALIDATION
        return ("val_loss", *(f"val_{GENERATION_METRICS[m]}" for m in self.val_generation_metrics))

    @property
    def early_stopping_minimizes(self) -> bool:
        if self.early_stopping_mode != "auto":
            return self.early_stopping_mode == "min"
        return "loss" in self.early_stopping_metric

    @property
    def uses_lora(self) -> bool:
        return self.method == "sft_lora" or (self.method == "dpo" and not self.dpo.full)

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


# The dataset format each method reads.
FORMATS = {"sft_lora": "sft", "sft_full": "sft", "dpo": "preference"}


def check_format(spec: RunSpec, ref: str, fmt: str) -> None:
    """The dataset must hold what the method reads: conversations for SFT, pairs for DPO."""
    wanted = FORMATS[spec.method]
    if fmt == wanted:
        return
    if wanted == "preference":
        raise InputError(
            f"{ref} holds {fmt} rows, without the 'chosen' and 'rejected' fields that dpo needs: "
            "import a preference dataset (fields prompt, chosen, rejected)",
            field="chosen",
        )
    raise InputError(f"{ref} holds {fmt} rows; {spec.method} needs an sft dataset (conversations)")


def check_splits(spec: RunSpec, ref: str, splits: dict[str, int]) -> None:
    """Training reads the version's ``train_split``: refuse, before any run is recorded, a version that
    has none (straight after an import, or a rollback to a version before the split).

    Args:
        ref: the version (``NAME@N``), named in the message.
        splits: the version's rows per split (``stats["split"]``; empty for an unsplit version).
    """
    if spec.train_split is None or splits.get(spec.train_split):
        return
    if splits:
        have = f"its splits are {', '.join(f'{k} ({n} rows)' for k, n in splits.items())}"
        fix = f"name one with train_split=NAME, or split it again with `imts data split {ref}`"
    else:
        have = "it has no splits"
        fix = (
            f"split it first with `imts data split {ref}` and train on the version that makes "
            "(the command prints it)"
        )
    raise InputError(
        f"{ref} has no '{spec.train_split}' split to train on: {have}; {fix}, "
        "or train on every row with train_split=null",
        field="train_split",
    )


def check_runnable(spec: RunSpec) -> None:
    """Refuse what this machine cannot run, before any run is recorded (QLoRA needs CUDA and bitsandbytes)."""
    if spec.quantization == "nf4":
        import importlib.util

        import torch

        if not torch.cuda.is_available():
            raise InputError(
                "quantization=nf4 (QLoRA) needs a CUDA GPU and this machine has none: "
                "use quantization=none (LoRA on the full-precision base)",
                field="quantization",
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise InputError(
                "quantization=nf4 (QLoRA) needs bitsandbytes: pip install bitsandbytes",
                field="quantization",
            )
    if spec.nproc > 1:
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() < spec.nproc:
            raise InputError(
                f"nproc={spec.nproc} but only {torch.cuda.device_count()} CUDA devices are visible",
                field="nproc",
            )
