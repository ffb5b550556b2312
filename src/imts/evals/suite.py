"""An evaluation suite: which data, which task, which metrics and judges, how to generate.

Metrics, judges and tasks are names from their registries (``textmetrics.METRICS``,
``agents.judges.registry.JUDGES``, ``tasks.TASKS``); by default a dataset's format names its task.

YAML example::

    name: math-core
    datasets: ["math:test", "math-hard:test"]
    system_prompt: "Solve the problem step by step and end with 'The answer is N.'"
    metrics: [exact_match, rouge_l, bleu, distinct_2]
    judges: [math, safety]
    task: text              # optional: score these SFT rows as free text (ROUGE-L), not numbers
    text_threshold: 0.5
    max_new_tokens: 96
    max_items: 200          # optional: at most this many items of each set, spread evenly over it
    items: {"math-hard:test": null}   # optional: per set, in place of max_items (null: every item)
    sampling: {temperature: 0.0}
    tools: [calculator]     # optional: decoding tools, the same for every model scored (inference.tools)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from imts.core.errors import InputError

if TYPE_CHECKING:  # generate imports torch; a suite is also parsed where no model runs (job scheduling)
    from imts.inference.generate import Sampling

# The registries are read when a suite is validated, not when this module is imported: every job
# worker imports the eval kind's spec, and the metric, task and judge modules cost it ~40 ms.


def suite_judges() -> tuple[str, ...]:
    """A suite runs without a chat backend: the judges that need none."""
    from imts.agents.judges.registry import JUDGES

    return tuple(name for name, kind in JUDGES.items() if not kind.needs_backend)


class SamplingSpec(BaseModel):
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    seed: int = 0

    def to_sampling(self) -> Sampling:
        from imts.inference.generate import Sampling

        return Sampling(self.temperature, self.top_p, self.top_k, self.seed)


class SuiteSpec(BaseModel):
    """One evaluation suite (see the module docstring)."""

    name: str = "default"
    datasets: list[str] = Field(default_factory=list, description="Dataset references NAME[@N][:SPLIT].")
    prompt_format: Literal["chat"] = "chat"  # the model's chat template, user turn = the row's prompt
    system_prompt: str | None = None
    metrics: list[str] = Field(default_factory=lambda: ["exact_match"])
    judges: list[str] = Field(default_factory=list)
    task: str | None = Field(None, description="Evaluation task by name; default: the dataset's format.")
    text_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="ROUGE-L at which a text answer is correct."
    )
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    batch_size: int = Field(32, ge=1)
    max_items: int | None = Field(
        None, ge=1, description="Evaluate at most this many items of each set, spread evenly over it."
    )
    items: dict[str, int | None] = Field(
        default_factory=dict,
        description="Items of particular sets (keyed by their reference in datasets), in place of "
        "max_items; null: every item.",
    )
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    tools: list[str] = Field(
        default_factory=list, description="Decoding tools every model runs with: calculator."
    )
    cache: bool = True

    @field_validator("tools")
    @classmethod
    def _tools(cls, value: list[str]) -> list[str]:
        from imts.inference.tools import check

        return check(value)

    @model_validator(mode="after")
    def _items(self) -> SuiteSpec:
        unknown = [d for d in self.items if d not in self.datasets]
        if unknown:
            raise ValueError(f"items names set(s) {unknown} that are not in datasets")
        bad = [d for d, n in self.items.items() if n is not None and n < 1]
        if bad:
            raise ValueError(f"items of {bad} must be at least 1 (or null for every item)")
        return self

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str]) -> list[str]:
        from imts.evals.textmetrics import METRICS

        unknown = [m for m in value if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
        return value

    @field_validator("judges")
    @classmethod
    def _judges(cls, value: list[str]) -> list[str]:
        known = suite_judges()
        unknown = [j for j in value if j not in known]
        if unknown:
            raise ValueError(f"unknown judge(s) {unknown}; choose from {list(known)}")
        return value

    @field_validator("task")
    @classmethod
    def _task(cls, value: str | None) -> str | None:
        from imts.evals.tasks import TASKS

        if value is not None and value not in TASKS:
            raise ValueError(f"unknown task '{value}'; choose from {list(TASKS)}")
        return value

    @classmethod
    def from_yaml(cls, path: Path) -> SuiteSpec:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read the suite: {exc}", file=str(path)) from None
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: dict[str, Any], file: str | None = None) -> SuiteSpec:
        """Validate a suite; a bad value becomes an :class:`InputError` naming the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise InputError(err["msg"], file=file, field=field) from None
