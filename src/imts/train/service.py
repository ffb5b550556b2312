"""Training runs: resolve inputs, record the run, call the recipe, record the resulting model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from imts.core.errors import InputError
from imts.core.progress import NullProgress, Progress
from imts.data.versions import DataRef, load_rows, resolve
from imts.registry import base_models, models
from imts.store import runs
from imts.store.context import Context
from imts.store.tracking import Sink
from imts.train import distributed
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
            and ``Interrupted`` is raised.
    """
    progress = progress or NullProgress()
    base, version, train_rows, val_rows = _inputs(ctx, spec)
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
        sink: Sink = wrap_sink(run.sink, run.id) if wrap_sink else run.sink
        recipe = RECIPES[spec.method]
        result = distributed.launch(
            recipe, spec, Path(base.path), train_rows, val_rows, out_dir, sink, progress, should_stop
        )
        run.store.flush()
        summary = {
            "steps": result.steps,
            "final_loss": result.final_loss,
            "final_val_loss": result.final_val_loss,
            "tokens": result.tokens,
            "seconds": result.seconds,
            "tokens_per_s": result.tokens / result.seconds,
            "train_examples": len(train_rows),
            "truncated": result.truncated,
        }
        mv = models.create_version(
            ctx,
            model_name or f"{version.dataset}-{base.name}",
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
    return run.id


def train_rank(ctx: Context, spec: RunSpec, run_id: str) -> None:
    """One non-zero rank of run ``run_id`` whose ranks an executor placed apart (Ray): the same inputs
    and recipe as rank 0, which alone records the run, its metrics, checkpoints and model."""
    base, _version, train_rows, val_rows = _inputs(ctx, spec)
    out_dir = ctx.artifacts.path(f"runs/{run_id}")
    recipe = RECIPES[spec.method]
    distributed.launch(recipe, spec, Path(base.path), train_rows, val_rows, out_dir, distributed.NullSink())


def _inputs(ctx: Context, spec: RunSpec) -> tuple[Any, Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """The base model, the data version, and its train and validation rows (checked)."""
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
    return base, version, train_rows, val_rows
