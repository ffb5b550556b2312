"""Training runs: resolve inputs, record the run, call the recipe, record the resulting model."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imts.core.errors import InputError, Interrupted
from imts.core.ids import new_id
from imts.core.progress import NullProgress, Progress
from imts.data.versions import DataRef, load_rows, resolve
from imts.registry import base_models, models
from imts.store.context import Context
from imts.store.models import Metric, Run, RunEvent
from imts.train import distributed
from imts.train.recipes import RECIPES
from imts.train.spec import RunSpec, check_format, check_runnable
from imts.train.tracking import Sink, TeeSink, exporters


class DbSink:
    """Stores metrics and events of a run; metrics are written in small batches."""

    def __init__(self, ctx: Context, run_id: str, flush_every: int = 10) -> None:
        self.ctx, self.run_id, self.flush_every = ctx, run_id, flush_every
        self._pending: list[Metric] = []

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self._pending += [
            Metric(run_id=self.run_id, key=k, step=step, value=float(v)) for k, v in values.items()
        ]
        if len(self._pending) >= self.flush_every * 5 or "val_loss" in values:
            self.flush()  # val_loss at once: an HPO driver prunes trial jobs on the stored values

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.flush()
        with self.ctx.session() as s:
            s.add(RunEvent(run_id=self.run_id, step=step, kind=kind, message=message, data=data or {}))

    def flush(self) -> None:
        if self._pending:
            with self.ctx.session() as s:
                s.add_all(self._pending)
            self._pending = []


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
    run_id = run_id or new_id("run")
    out_dir = ctx.artifacts.path(f"runs/{run_id}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with ctx.session() as s:
        existing = s.get(Run, run_id)
        if existing is not None:  # resume: the recipe continues from the latest checkpoint in out_dir
            existing.status, existing.error, existing.finished_at = "running", None, None
        else:
            s.add(
                Run(
                    id=run_id,
                    project_id=ctx.project_id,
                    kind="train",
                    status="running",
                    spec=spec.model_dump(mode="json"),
                    base_model_id=base.id,
                    dataset_version_id=version.id,
                    split=spec.train_split,
                    output_dir=str(out_dir),
                    started_at=datetime.now(UTC),
                )
            )
    db_sink = DbSink(ctx, run_id)
    tee = TeeSink(db_sink, exporters(ctx.settings, run_id, out_dir, spec.model_dump(mode="json")))
    sink: Sink = wrap_sink(tee, run_id) if wrap_sink else tee
    try:
        recipe = RECIPES[spec.method]
        result = distributed.launch(
            recipe, spec, Path(base.path), train_rows, val_rows, out_dir, sink, progress, should_stop
        )
        db_sink.flush()
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
            run_id,
            version.id,
            result.adapter_dir,
            result.merged_dir,
            spec.model_dump(mode="json"),
            summary,
        )
        with ctx.session() as s:
            run = s.get(Run, run_id)
            assert run is not None
            run.status, run.finished_at = "succeeded", datetime.now(UTC)
            run.summary = {**summary, "model_version": f"{mv.name}:{mv.version}", "model_version_id": mv.id}
            run.model_version_id = mv.id
        tee.close("succeeded")
    except BaseException as exc:
        db_sink.flush()
        status = "preempted" if isinstance(exc, Interrupted) else str(getattr(exc, "run_status", "failed"))
        tee.close(status)
        with ctx.session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                run.status, run.error, run.finished_at = (
                    status,
                    f"{type(exc).__name__}: {exc}",
                    datetime.now(UTC),
                )
        raise
    return run_id
