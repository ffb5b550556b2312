"""The typed spec of a closed loop (``imts loop start``): what to learn, from which data, when to stop."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from imts.core.errors import InputError

BASE_MODEL = "smollm2-135m-instruct"
# The general-ability probe shipped with IMTS (``flywheel/data/general_probe.jsonl``), imported into a
# project under this name the first time a loop there needs it.
PROBE_DATASET = "imts-general-probe"


class Budget(BaseModel):
    """What the loop may spend in all (None: no limit). Counted from its jobs' records, never added up
    as it goes, so a resumed loop never counts anything twice."""

    model_config = ConfigDict(extra="forbid")

    cpu_hours: float | None = Field(None, gt=0, description="Worker CPU-hours over all the loop's jobs.")
    gpu_hours: float | None = Field(None, gt=0, description="Worker GPU-hours over all the loop's jobs.")
    tokens: int | None = Field(None, gt=0, description="Training tokens over all iterations.")
    generated_items: int | None = Field(None, gt=0, description="Rows generated or rewritten by repairs.")


class LoopSpec(BaseModel):
    """One closed loop: analyse -> repair -> split -> baseline -> train -> evaluate -> feedback -> ..."""

    model_config = ConfigDict(extra="forbid")

    intent: str = Field(min_length=1, max_length=2000, description="What the model should learn.")
    data: str = Field(description="Dataset to start from (NAME[@N]).")
    name: str = Field("", max_length=80, description="The loop's name (default: the dataset's).")
    base_model: str = BASE_MODEL
    target: float | None = Field(None, gt=0, le=1, description="Stop once the test accuracy reaches it.")
    target_on: Literal["test", "heldout"] = Field(
        "test", description="Which score the target is on: the test split, or the first held-out set."
    )
    max_iterations: int = Field(3, ge=1, le=50, description="Training iterations at most.")
    patience: int = Field(2, ge=1, description="Stop after this many iterations without a significant gain.")
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of the paired test (McNemar).")
    forgetting_tolerance: float = Field(
        0.02, ge=0, le=1, description="Largest drop of the general probe's accuracy against the base model."
    )
    budget: Budget = Field(default_factory=Budget)
    policy: Literal["auto", "approve"] = Field(
        "auto", description="auto: apply data actions at once; approve: wait for `imts loop approve`."
    )
    heldout: list[str] = Field(
        default_factory=list, description="Extra evaluation sets (NAME[@N]) reported every iteration."
    )
    probe: str | None = Field(
        PROBE_DATASET, description="General-ability probe (preference rows); '' for none."
    )
    replay: list[str] = Field(
        default_factory=list,
        description="Datasets to draw replay rows from when forgetting shows (default: every other "
        "dataset of the project that is not an evaluation set).",
    )
    train: list[str] = Field(
        default_factory=lambda: ["max_steps=80", "save_every=40", "eval_every=40"],
        description="Training overrides (`imts train --keys`), the same every iteration.",
    )
    eval_items: int | None = Field(None, ge=1, description="Evaluate at most this many items per set.")
    augment_share: float = Field(
        0.15, gt=0, lt=1, description="Target share a weak category is augmented to."
    )
    seed: int = 0

    @field_validator("intent")
    @classmethod
    def _intent(cls, v: str) -> str:
        if not v.strip():
            raise InputError("the intent is empty: say what the model should learn", field="intent")
        return v.strip()

    def loop_name(self) -> str:
        return self.name or self.data.split("@")[0].split(":")[0]
