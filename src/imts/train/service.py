"""Training runs: resolve inputs, record the run, call the recipe, record the resulting model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from imts.core.errors import ConflictError, InputError, Interrupted, NotFoundError
from imts.core.progress import NullProgress, Progress
from imts.data.versions import DataRef, load_rows, resolve
from imts.evals.card import model_card
from imts.registry import base_models, models
from imts.store import runs
from imts.store.context import Context
from imts.store.tracking import Sink
from imts.train import checkpoint, distributed
from imts.train.recipes import RECIPES
from imts.train.spec import RunSpec, check_format, check_runnable, check_splits


def train(
    ctx: Context,
    spec: RunSpec,
    progress: Progress | None = None,
    model_name: str | None = None,
    wrap_sink: Callable[[Sink, str], Sink] | None = None,
    run_id: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    stopped_status: Callable[[], str] | None = None,
) -> str:
    """Run one training run to completion; returns the run id. The trained model is recorded as a
    new version of ``model_name`` (default: ``<dataset>-<base model>``).

    Args:
        wrap_sink: sees every metric and event after they are stored (hyper-parameter search uses it
            to prune). An exception with a ``run_status`` attribute ends the run with that status (e.g.
            "pruned") instead of "failed".
        run_id: the run to create, or to continue from its latest checkpoint if it exists (a requeued
            job passes its own run id).
        should_stop: checked once per step; when true the run checkpoints, is marked ``preempted``
            (or what ``stopped_status`` says: ``cancelled`` for a cancelled job) and ``Interrupted``
            is raised.
    """
    progress = progress or NullProgress()
    base, version, train_rows, val_rows = _inputs(ctx, spec)
    spec_json = spec.model_dump(mode="json")  # init_from as the user named it; the recipe gets its folder
    launch_spec = _with_init_adapter(ctx, spec, base.id)
    with runs.run_lifecycle(
        ctx,
        "train",
        spec_json,
        run_id=run_id,
        base_model_id=base.id,
        dataset_version_id=version.id,
        split=spec.train_split,
    ) as run:
        out_dir = ctx.artifacts.path(f"runs/{run.id}")
        name = model_name or runs.get(ctx, run.id).summary.get("model_name")
        name = name or f"{version.dataset}-{base.name}"
        runs.update_summary(ctx, run.id, {"model_name": name})  # a resumed run records the same model
        sink: Sink = wrap_sink(run.sink, run.id) if wrap_sink else run.sink
        recipe = RECIPES[spec.method]
        try:
            result = distributed.launch(
                recipe,
                launch_spec,
                Path(base.path),
                train_rows,
                val_rows,
                out_dir,
                sink,
                progress,
                should_stop,
            )
        except Interrupted as exc:
            exc.status = stopped_status() if stopped_status is not None else exc.status
            raise
        run.store.flush()
        summary = {
            "steps": result.steps,
            "final_loss": result.final_loss,
            "final_val_loss": result.final_val_loss,
            "tokens": result.tokens,
            "seconds": result.seconds,
            # What the live bar shows: tokens over the optimizer steps' time only ...
            "tokens_per_s": result.tokens / max(result.step_seconds, 1e-9),
            # ... and over the whole run, loading the model and saving it included.
            "tokens_per_s_overall": result.tokens / result.seconds,
            "train_examples": len(train_rows),
            "truncated": result.truncated,
        }
        mv = models.create_version(
            ctx,
            name,
            base.id,
            run.id,
            version.id,
            result.adapter_dir,
            result.merged_dir,
            spec_json,
            summary,
        )
        run.summary = {**summary, "model_version": f"{mv.name}:{mv.version}", "model_version_id": mv.id}
        run.model_version_id = mv.id
        model_card(ctx, mv.id)  # README.md beside the weights; `imts models card` refreshes it later
    if not spec.keep_checkpoints:  # succeeded: nothing will resume it, the model is saved
        freed = checkpoint.drop_all(out_dir / "checkpoints")
        if freed:
            runs.log_event(ctx, run.id, "checkpoints_removed", f"checkpoints removed ({freed / 1e6:.1f} MB)")
    return run.id


def check_resumable(ctx: Context, run_id: str) -> RunSpec:
    """The spec of training run ``run_id`` if it can be resumed: a training run that did not succeed
    and that no live process runs.

    Raises:
        NotFoundError: no such run in this project.
        InputError: not a training run, or it already succeeded.
        ConflictError: a process runs it now.
    """
    run = runs.get(ctx, run_id)
    if run.kind != "train":
        raise InputError(f"run {run_id} is an {run.kind} run: only training runs resume", field="resume")
    if run.status == "succeeded":
        raise InputError(f"run {run_id} already succeeded: nothing to resume", field="resume")
    if run.status == "running" and runs.abandoned_reason(run.output_dir) is None:
        raise ConflictError(f"run {run_id} is running now: follow it instead (imts runs show {run_id})")
    return RunSpec.model_validate(run.spec)


def resume(
    ctx: Context,
    run_id: str,
    progress: Progress | None = None,
    model_name: str | None = None,
) -> str:
    """Continue training run ``run_id`` from its latest checkpoint, with the spec it was started with:
    the result is bit-identical to a run that was never interrupted. Returns the run id."""
    spec = check_resumable(ctx, run_id)
    return train(ctx, spec, progress, model_name=model_name, run_id=run_id)


class Reproduction(BaseModel):
    """A training run re-run from its record, and how its per-step losses compare with the original's.

    Attributes:
        original, reproduced: the two run ids.
        steps: the steps both runs logged a loss at.
        identical: every loss equal bit for bit (and the same steps).
        max_abs_diff: the largest loss difference over ``steps``.
        first_difference: the first step whose losses differ (None: none).
        environment_differences: what differs between the two runs' records (code version, packages,
            hardware): a reason, when the losses differ.
    """

    original: str
    reproduced: str
    model_version: str | None = None
    steps: int
    identical: bool
    max_abs_diff: float
    first_difference: int | None = None
    environment_differences: dict[str, list[Any]] = {}


def reproduce(ctx: Context, run_id: str, progress: Progress | None = None) -> Reproduction:
    """Re-run training run ``run_id`` from its record (its resolved spec, the same dataset version and
    base model) and compare its per-step losses with the original's.

    Raises:
        NotFoundError: no such run, or it is not a training run.
        ConflictError: the base model recorded for the run is no longer the one under its name.
    """
    rec = runs.record(ctx, run_id)
    run = rec.run
    if run.kind != "train":
        raise NotFoundError(f"run {run_id} is a {run.kind} run: only training runs are reproduced")
    spec = RunSpec.model_validate(run.spec)
    base = base_models.get(ctx, spec.base_model)
    if run.base_model_id and base.id != run.base_model_id:
        raise ConflictError(
            f"base model '{spec.base_model}' is now {base.id}, the run used {run.base_model_id}: "
            "register the original weights again to reproduce it"
        )
    if run.dataset_version_id and resolve(ctx, spec.data).version.id != run.dataset_version_id:
        spec = spec.model_copy(update={"data": run.dataset_version_id})  # pin the version it trained on
    name = (run.summary.get("model_version") or "").split(":")[0] or None
    new_id = train(ctx, spec, progress, model_name=f"{name}-reproduced" if name else None)
    a = dict(runs.history(ctx, run_id, ["loss"]).get("loss", []))
    b = dict(runs.history(ctx, new_id, ["loss"]).get("loss", []))
    steps = sorted(set(a) & set(b))
    diffs = {st: abs(a[st] - b[st]) for st in steps}
    first = next((st for st in steps if diffs[st] != 0.0), None)
    cmp = runs.compare(ctx, [run_id, new_id])
    env_diff = {k: cmp.environment[k] for k in cmp.environment_differing}
    return Reproduction(
        original=run_id,
        reproduced=new_id,
        model_version=runs.get(ctx, new_id).summary.get("model_version"),
        steps=len(steps),
        identical=bool(steps) and set(a) == set(b) and first is None,
        max_abs_diff=max(diffs.values(), default=0.0),
        first_difference=first,
        environment_differences=env_diff,
    )


def train_rank(ctx: Context, spec: RunSpec, run_id: str) -> None:
    """One non-zero rank of run ``run_id`` whose ranks an executor placed apart (Ray): the same inputs
    and recipe as rank 0, which alone records the run, its metrics, checkpoints and model."""
    base, _version, train_rows, val_rows = _inputs(ctx, spec)
    out_dir = ctx.artifacts.path(f"runs/{run_id}")
    recipe = RECIPES[spec.method]
    launch_spec = _with_init_adapter(ctx, spec, base.id)
    distributed.launch(
        recipe, launch_spec, Path(base.path), train_rows, val_rows, out_dir, distributed.NullSink()
    )


def _with_init_adapter(ctx: Context, spec: RunSpec, base_model_id: str) -> RunSpec:
    """``spec`` with ``init_from`` (a model reference) replaced by that model's adapter folder, checked:
    a LoRA version of the same base model whose adapter has this run's rank and target layers."""
    if not spec.init_from:
        return spec
    import json

    mv = models.get_version(ctx, spec.init_from)
    where = f"init_from '{spec.init_from}' ({mv.name}:{mv.version})"
    if not mv.adapter_path or not (Path(mv.adapter_path) / "adapter_model.safetensors").is_file():
        raise InputError(f"{where} has no LoRA adapter to start from", field="init_from")
    if mv.base_model_id != base_model_id:
        raise InputError(
            f"{where} was trained on another base model than {spec.base_model}", field="init_from"
        )
    saved = json.loads((Path(mv.adapter_path) / "adapter_config.json").read_text(encoding="utf-8"))
    theirs = (saved.get("r"), sorted(saved.get("target_modules") or []))
    ours = (spec.lora.r, sorted(spec.lora.target_modules))
    their_layers = saved.get("layers_to_transform")
    their_top = len(their_layers) if their_layers else None
    if their_top != spec.lora.top_layers:
        raise InputError(
            f"{where} has adapters in {f'its last {their_top}' if their_top else 'every'} decoder layers; "
            f"this run's lora.top_layers is {spec.lora.top_layers}: they must match",
            field="init_from",
        )
    if theirs != ours:
        raise InputError(
            f"{where} has adapters of rank {theirs[0]} on {', '.join(theirs[1])}; this run's lora has rank "
            f"{ours[0]} on {', '.join(ours[1])}: they must match",
            field="init_from",
        )
    return spec.model_copy(update={"init_from": mv.adapter_path})


def check_top_layers(spec: RunSpec, base_path: Path) -> None:
    """``lora.top_layers`` no larger than the base model's number of decoder layers."""
    import json

    top = spec.lora.top_layers
    if not spec.uses_lora or top is None:
        return
    layers = json.loads((base_path / "config.json").read_text(encoding="utf-8")).get("num_hidden_layers")
    if isinstance(layers, int) and top > layers:
        raise InputError(
            f"lora.top_layers is {top}, but {spec.base_model} has {layers} decoder layers",
            field="lora.top_layers",
        )


def _inputs(ctx: Context, spec: RunSpec) -> tuple[Any, Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """The base model, the data version, and its train and validation rows (checked)."""
    check_runnable(spec)
    base = base_models.get(ctx, spec.base_model)
    check_top_layers(spec, Path(base.path))
    data = resolve(ctx, spec.data)
    version = data.version
    check_format(spec, version.ref, version.format)
    splits = version.stats.get("split", {})
    check_splits(spec, version.ref, splits)
    from imts.analysis.service import fit_gate

    fit_gate(ctx, spec.data)  # data the analysis refused for its intent trains only when forced
    train_rows = (
        load_rows(ctx, DataRef(version, spec.train_split)) if spec.train_split else load_rows(ctx, data)
    )
    val_rows = (
        load_rows(ctx, DataRef(version, spec.val_split))
        if spec.val_split and spec.val_split in splits
        else []
    )
    if not train_rows:
        raise InputError(f"no training rows in {data} (split '{spec.train_split}')")
    return base, version, train_rows, val_rows
