"""Hyper-parameter search with Optuna: each trial is a real training run recorded in the store.

The search space is a YAML mapping from run-spec fields (dotted for nesting) to a range or choices::

    lr: {low: 1.0e-4, high: 1.0e-2, log: true}
    lora.r: {choices: [4, 8, 16]}
    warmup_steps: {low: 0, high: 20, step: 5}

Samplers: ``grid`` (choices, or ranges with a ``step``), ``random``, ``tpe``. The objective is the
run's final validation loss (lower is better). Median pruning: the recipe reports ``val_loss`` every
``eval_every`` steps; a trial whose intermediate value is worse than the median of earlier trials at
the same step is stopped, and its run ends with status "pruned".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from imts.core.errors import InputError
from imts.core.ids import new_id
from imts.core.progress import NullProgress, Progress
from imts.store import runs
from imts.store.context import Context
from imts.store.tracking import Sink
from imts.train.hpo_report import HpoResult
from imts.train.service import train
from imts.train.spec import RunSpec

SamplerName = Literal["grid", "random", "tpe"]


class ParamSpace(BaseModel):
    """One searched field: ``choices``, or ``low``/``high`` (``log`` scale, integer ``step``)."""

    model_config = ConfigDict(extra="forbid")

    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpace:
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("give either non-empty choices or low/high")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError("a range needs low < high")
        return self

    @property
    def is_int(self) -> bool:
        return (
            self.choices is None
            and all(float(v).is_integer() for v in (self.low, self.high))
            and (self.step is None or float(self.step).is_integer())
            and not self.log
        )

    def grid(self) -> list[Any]:
        if self.choices is not None:
            return list(self.choices)
        if self.step is None:
            raise InputError("the grid sampler needs choices or a range with a step")
        assert self.low is not None and self.high is not None
        n = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        values = [self.low + i * self.step for i in range(n)]
        return [int(v) for v in values] if self.is_int else values


def load_space(path: Path) -> dict[str, ParamSpace]:
    """Read and check a search space: every key must be a run-spec field the value can be set to."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read search space: {exc}", file=str(path)) from exc
    if not isinstance(raw, dict) or not raw:
        raise InputError("a search space is a non-empty YAML mapping of field: range", file=str(path))
    space: dict[str, ParamSpace] = {}
    for key, value in raw.items():
        try:
            space[str(key)] = ParamSpace.model_validate(value)
        except ValidationError as exc:
            raise InputError(exc.errors()[0]["msg"], file=str(path), field=str(key)) from exc
    return space


class PruningSink:
    """Passes everything on, reports ``val_loss`` to the trial, and stops the run when it is pruned."""

    def __init__(self, inner: Sink, trial: Any) -> None:
        self.inner, self.trial = inner, trial

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.inner.metrics(step, values)
        if "val_loss" in values:
            self.trial.report(float(values["val_loss"]), step)
            if self.trial.should_prune():
                raise Pruned(f"trial {self.trial.number} pruned at step {step}")

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.inner.event(kind, message, step, data)


def _pruned_class() -> type[Exception]:
    import optuna

    class _Pruned(optuna.TrialPruned):
        run_status = "pruned"  # the training service records this status instead of "failed"

    return _Pruned


Pruned = _pruned_class()


def make_sampler(name: SamplerName, space: dict[str, ParamSpace], seed: int, ask_tell: bool = False) -> Any:
    """The sampler ``name``; ``ask_tell`` for a driver that asks and tells trials itself (jobs)."""
    import optuna

    if name == "grid":
        grid = {k: v.grid() for k, v in space.items()}
        if ask_tell:
            return _ask_tell_grid(grid, seed=seed)
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, 2 * len(space)))
    raise InputError(f"unknown sampler '{name}': grid, random or tpe", field="sampler")


def _ask_tell_grid(grid: dict[str, list[Any]], seed: int) -> Any:
    """Optuna's grid sampler without its ``Study.stop()`` once the grid is used up: that only works
    inside ``study.optimize`` and raises under ask-and-tell; the job driver stops by its trial count."""
    import optuna

    class AskTellGrid(optuna.samplers.GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGrid(grid, seed=seed)


def suggest(trial: Any, key: str, p: ParamSpace) -> Any:
    if p.choices is not None:
        return trial.suggest_categorical(key, p.choices)
    assert p.low is not None and p.high is not None
    if p.is_int:
        return trial.suggest_int(key, int(p.low), int(p.high), step=int(p.step or 1))
    return trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)


def search(
    ctx: Context,
    base_spec: RunSpec,
    space: dict[str, ParamSpace],
    sampler: SamplerName = "tpe",
    trials: int = 10,
    seed: int = 0,
    progress: Progress | None = None,
) -> HpoResult:
    """Run ``trials`` training runs chosen by ``sampler``; returns the best one and writes a report."""
    import optuna

    progress = progress or NullProgress()
    if base_spec.val_split is None:
        raise InputError("hyper-parameter search minimises validation loss: set val_split")
    for key in space:  # fail before any training if a key is not a run-spec field
        RunSpec.from_sources(overrides=[f"{key}={_probe(space[key])}"], **base_spec.model_dump())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_id = new_id("hpo")
    study = optuna.create_study(
        study_name=study_id,
        direction="minimize",
        sampler=make_sampler(sampler, space, seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
    )

    def objective(trial: optuna.Trial) -> float:
        values = {k: suggest(trial, k, p) for k, p in space.items()}
        overrides = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}" for k, v in values.items()]
        overrides = [o.removesuffix("\n...") for o in overrides]
        spec = RunSpec.from_sources(overrides=overrides, **base_spec.model_dump())

        def wrap(inner: Sink, run_id: str) -> Sink:
            trial.set_user_attr("run_id", run_id)  # pruned and failed trials keep their run too
            return PruningSink(inner, trial)

        run_id = train(ctx, spec, model_name=f"{study_id}-t{trial.number}", wrap_sink=wrap)
        val = runs.get(ctx, run_id).summary.get("final_val_loss")
        if val is None:
            raise InputError("the run reported no validation loss (is the val split empty?)")
        return float(val)

    with progress.task(f"hyper-parameter search ({sampler})", total=trials) as bar:
        study.optimize(objective, n_trials=trials, callbacks=[lambda st, tr: bar.advance(1)])

    from imts.train.hpo_report import write_report

    return write_report(ctx, study, study_id, sampler)


def _probe(p: ParamSpace) -> str:
    value = p.choices[0] if p.choices is not None else (int(p.low) if p.is_int else p.low)  # type: ignore[arg-type]
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
