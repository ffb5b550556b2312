"""Training runs: resolve inputs, record the run, call the recipe, record the resulting model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from imts.core.errors import ConflictError, InputError, Interrupted
from imts.core.progress import NullProgress, Progress
from imts.data.versions import DataRef, load_rows, resolve
from imts.registry import base_models, models
from imts.store import runs
from imts.store.context import Context
from imts.store.tracking import Sink
from imts.train import checkpoint, distributed
from imts.train.recipes import RECIPES
from imts.train.spec import RunSpec, check_format, check_runnable


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
    check_runnable(spec)
    base = base_models.get(ctx, spec.base_model)
    data = resolve(ctx, spec.data)
    version = data.version
    check_format(spec, version.ref, version.format)
    train_rows = (
        load_rows(ctx, DataRef(version, spec.train_split)) if spec.train_split else load_rows(ctx, data)
    )
    splits = version.stats.get("split", {})
    val_rows = (
        load_rows(ctx, DataRef(version, spec.val_split))
        if spec.val_split and spec.val_split in splits
        else []
    )
    if not train_rows:
        raise InputError(f"no training rows in {data} (split '{spec.train_split}')")
    if spec.train_split and spec.train_split not in splits:
        raise InputError(
            f"{version.ref} has no '{spec.train_split}' split: run `imts data split {version.ref}` first"
            " or set train_split=null to train on all rows"
        )
    spec_json = spec.model_dump(mode="json")
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
                recipe, spec, Path(base.path), train_rows, val_rows, out_dir, sink, progress, should_stop
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
