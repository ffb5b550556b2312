"""Trained model versions and the one function that turns any model reference into weights on disk.

References users type: a base model name (``smollm2-135m-instruct``), a model version
(``NAME`` for the newest, ``NAME:3``, or its id ``mv_...``), the training run that made it
(``run_...``), or a local model folder path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from imts.core.errors import NotFoundError
from imts.core.ids import new_id
from imts.registry import base_models
from imts.store.context import Context
from imts.store.models import BaseModelRecord, ModelVersion


@dataclass(frozen=True)
class ResolvedModel:
    ref: str
    label: str
    path: Path
    base_model_id: str | None = None
    model_version_id: str | None = None


def create_version(
    ctx: Context,
    name: str,
    base_model_id: str,
    train_run_id: str,
    dataset_version_id: str,
    adapter_path: Path | None,
    merged_path: Path | None,
    spec: dict[str, Any],
    metrics: dict[str, Any],
) -> ModelVersion:
    with ctx.session() as s:
        number = (
            s.scalar(
                select(func.max(ModelVersion.version)).where(
                    ModelVersion.project_id == ctx.project_id, ModelVersion.name == name
                )
            )
            or 0
        ) + 1
        mv = ModelVersion(
            id=new_id("mv"),
            name=name,
            version=number,
            project_id=ctx.project_id,
            base_model_id=base_model_id,
            train_run_id=train_run_id,
            dataset_version_id=dataset_version_id,
            adapter_path=str(adapter_path) if adapter_path else None,
            merged_path=str(merged_path) if merged_path else None,
            spec=spec,
            metrics=metrics,
        )
        s.add(mv)
    return mv


def list_versions(ctx: Context) -> list[ModelVersion]:
    with ctx.session() as s:
        return list(
            s.scalars(
                select(ModelVersion)
                .where(ModelVersion.project_id == ctx.project_id)
                .order_by(ModelVersion.created_at)
            )
        )


def resolve(ctx: Context, ref: str) -> ResolvedModel:
    """Any model reference to a loadable folder (merged weights for trained versions)."""
    with ctx.session() as s:
        name, _, number = ref.partition(":")
        q = select(ModelVersion).where(ModelVersion.project_id == ctx.project_id)
        if ref.startswith("mv_"):
            q = q.where(ModelVersion.id == ref)
        elif ref.startswith("run_"):
            q = q.where(ModelVersion.train_run_id == ref)
        elif number.isdigit():
            q = q.where(ModelVersion.name == name, ModelVersion.version == int(number))
        else:
            q = q.where(ModelVersion.name == ref)
        mv = s.scalar(q.order_by(ModelVersion.version.desc()).limit(1))
        if mv is not None:
            if not mv.merged_path:
                raise NotFoundError(f"model {mv.name}:{mv.version} was saved without merged weights")
            return ResolvedModel(
                ref, f"{mv.name}:{mv.version}", Path(mv.merged_path), mv.base_model_id, mv.id
            )
        bm = s.scalar(
            select(BaseModelRecord).where((BaseModelRecord.name == ref) | (BaseModelRecord.id == ref))
        )
        if bm is not None:
            return ResolvedModel(ref, bm.name, Path(bm.path), bm.id, None)
    path = Path(ref).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return ResolvedModel(ref, path.name, path.resolve())
    if ref in base_models.CATALOGUE:
        raise NotFoundError(f"base model '{ref}' is not pulled yet: run `imts models pull {ref}`")
    raise NotFoundError(f"no model '{ref}': not a base model, a model version, a run id or a model folder")
