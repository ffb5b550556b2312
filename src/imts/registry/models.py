"""Trained model versions and the one function that turns any model reference into weights on disk.

References users type: a base model name (``smollm2-135m-instruct``), a model version
(``NAME`` for the newest, ``NAME:3``, or its id ``mv_...``), the training run that made it
(``run_...``), or a local model folder path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from imts.core.errors import NotFoundError
from imts.core.ids import new_id
from imts.registry import base_models
from imts.registry.views import ModelVersionView, ResolvedModel
from imts.store.context import Context
from imts.store.models import BaseModelRecord, ModelVersion

__all__ = ["ResolvedModel", "create_version", "get_version", "list_versions", "resolve"]


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
) -> ModelVersionView:
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
        s.flush()
        return ModelVersionView.of(mv)


def list_versions(ctx: Context) -> list[ModelVersionView]:
    """This project's model versions, oldest first."""
    with ctx.session() as s:
        q = select(ModelVersion).where(ModelVersion.project_id == ctx.project_id)
        return [ModelVersionView.of(mv) for mv in s.scalars(q.order_by(ModelVersion.created_at))]


def get_version(ctx: Context, ref: str) -> ModelVersionView:
    """One of this project's model versions: ``NAME`` (newest), ``NAME:N``, ``mv_...`` or ``run_...``."""
    with ctx.session() as s:
        mv = _find_version(s, ctx, ref)
        if mv is None:
            raise NotFoundError(f"no model version '{ref}' in this project")
        return ModelVersionView.of(mv)


def _find_version(s: Session, ctx: Context, ref: str) -> ModelVersion | None:
    name, _, number = ref.partition(":")
    q: Select[tuple[ModelVersion]] = select(ModelVersion).where(ModelVersion.project_id == ctx.project_id)
    if ref.startswith("mv_"):
        q = q.where(ModelVersion.id == ref)
    elif ref.startswith("run_"):
        q = q.where(ModelVersion.train_run_id == ref)
    elif number.isdigit():
        q = q.where(ModelVersion.name == name, ModelVersion.version == int(number))
    else:
        q = q.where(ModelVersion.name == ref)
    return s.scalar(q.order_by(ModelVersion.version.desc()).limit(1))


def resolve(ctx: Context, ref: str) -> ResolvedModel:
    """Any model reference to a loadable folder (merged weights for trained versions)."""
    with ctx.session() as s:
        mv = _find_version(s, ctx, ref)
        if mv is not None:
            label = f"{mv.name}:{mv.version}"
            if mv.merged_path:
                path, adapter = Path(mv.merged_path), None
            elif mv.adapter_path:  # no merged copy kept (the default): base + adapter, merged on load
                base = s.get(BaseModelRecord, mv.base_model_id)
                if base is None:
                    raise NotFoundError(f"model {label}: its base model is no longer registered")
                path, adapter = Path(base.path), Path(mv.adapter_path)
            else:
                raise NotFoundError(f"model {label} has neither merged weights nor an adapter")
            return ResolvedModel(
                ref=ref,
                label=label,
                path=path,
                base_model_id=mv.base_model_id,
                model_version_id=mv.id,
                adapter=adapter,
            )
        bm = s.scalar(
            select(BaseModelRecord).where((BaseModelRecord.name == ref) | (BaseModelRecord.id == ref))
        )
        if bm is not None:
            return ResolvedModel(ref=ref, label=bm.name, path=Path(bm.path), base_model_id=bm.id)
    path = Path(ref).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return ResolvedModel(ref=ref, label=path.name, path=path.resolve())
    if ref in base_models.CATALOGUE:
        raise NotFoundError(f"base model '{ref}' is not pulled yet: run `imts models pull {ref}`")
    raise NotFoundError(f"no model '{ref}': not a base model, a model version, a run id or a model folder")
