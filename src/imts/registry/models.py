"""Trained model versions and the one function that turns any model reference into weights on disk.

References users type: a base model name (``smollm2-135m-instruct``), a model version
(``NAME`` for the newest, ``NAME:3``, ``NAME@production`` for what an alias points to now, or its id
``mv_...``), the training run that made it (``run_...``), or a local model folder path.

A version's life besides aliases (``aliases.py``): tags, archiving (hidden from lists, never aliased),
and deletion, refused while anything depends on the version: an alias, a serving deployment or a
lineage child. Dependents are a registry by name (``DEPENDENTS``): the package that owns a kind of
dependent (serving owns deployments) registers its check.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from imts.core.errors import ConflictError, InputError, NotFoundError
from imts.core.ids import new_id
from imts.core.permissions import Permission
from imts.registry import base_models
from imts.registry.views import ModelVersionView, ResolvedModel
from imts.store import audit
from imts.store.context import Context
from imts.store.models import BaseModelRecord, ModelAlias, ModelVersion, Run

__all__ = [
    "DEPENDENTS",
    "ResolvedModel",
    "archive",
    "create_version",
    "delete",
    "get_version",
    "list_versions",
    "resolve",
    "tag",
]

# name -> check(session, ctx, version row) -> one line per thing that depends on the version.
Dependent = Callable[[Session, Context, ModelVersion], list[str]]
DEPENDENTS: dict[str, Dependent] = {}


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
            tags=[],
        )
        s.add(mv)
        s.flush()
        return ModelVersionView.of(mv)


def list_versions(ctx: Context, include_archived: bool = True) -> list[ModelVersionView]:
    """This project's model versions, oldest first, with the aliases pointing at each now."""
    with ctx.session() as s:
        q = select(ModelVersion).where(ModelVersion.project_id == ctx.project_id)
        if not include_archived:
            q = q.where(ModelVersion.archived_at.is_(None))
        rows = list(s.scalars(q.order_by(ModelVersion.created_at, ModelVersion.version)))
        aliases = current_aliases(s, ctx, [r.id for r in rows])
        return [ModelVersionView.of(mv, aliases.get(mv.id)) for mv in rows]


def get_version(ctx: Context, ref: str) -> ModelVersionView:
    """One of this project's model versions: ``NAME`` (newest), ``NAME:N``, ``NAME@ALIAS``, ``mv_...``
    or ``run_...``."""
    view = find_version(ctx, ref)
    if view is None:
        raise NotFoundError(f"no model version '{ref}' in this project")
    return view


def find_version(ctx: Context, ref: str) -> ModelVersionView | None:
    """Like ``get_version``, None when there is no such version."""
    with ctx.session() as s:
        mv = _find_version(s, ctx, ref)
        if mv is None:
            return None
        return ModelVersionView.of(mv, current_aliases(s, ctx, [mv.id]).get(mv.id))


def owned_version(s: Session, ctx: Context, ref: str) -> ModelVersion:
    """The version row ``ref`` names in this project (inside the caller's session)."""
    mv = _find_version(s, ctx, ref)
    if mv is None:
        raise NotFoundError(f"no model version '{ref}' in this project")
    return mv


def current_aliases(s: Session, ctx: Context, version_ids: list[str]) -> dict[str, list[str]]:
    """version id -> the aliases pointing at it now."""
    out: dict[str, list[str]] = {}
    if not version_ids:
        return out
    q = select(ModelAlias.version_id, ModelAlias.alias).where(
        ModelAlias.project_id == ctx.project_id,
        ModelAlias.unset_at.is_(None),
        ModelAlias.version_id.in_(version_ids),
    )
    for vid, alias in s.execute(q):
        out.setdefault(vid, []).append(alias)
    return out


def tag(ctx: Context, ref: str, add: list[str], remove: list[str]) -> ModelVersionView:
    """Add and remove free-form tags (``reviewed``, ``zh``...) of a version."""
    ctx.require(Permission.MODEL_TRAIN)
    for t in [*add, *remove]:
        if not t.strip() or len(t) > 64:
            raise InputError(f"tag '{t}' must be 1 to 64 characters", field="tags")
    with ctx.session() as s:
        mv = owned_version(s, ctx, ref)
        before = list(mv.tags or [])
        tags = [t for t in before if t not in remove]
        tags += [t for t in dict.fromkeys(add) if t not in tags]
        mv.tags = tags
        s.flush()
        audit.record(ctx, s, "model.tag", ("model_version", mv.id), {"tags": before}, {"tags": tags})
        return ModelVersionView.of(mv, current_aliases(s, ctx, [mv.id]).get(mv.id))


def archive(ctx: Context, ref: str, archived: bool = True) -> ModelVersionView:
    """Archive a version (hidden from `models list`, never aliased) or bring it back.

    Raises:
        ConflictError: an alias points at the version (move it first).
    """
    ctx.require(Permission.MODEL_DELETE)
    with ctx.session() as s:
        mv = owned_version(s, ctx, ref)
        aliases = current_aliases(s, ctx, [mv.id]).get(mv.id, [])
        if archived and aliases:
            raise ConflictError(
                f"model {mv.name}:{mv.version} is aliased ({', '.join(sorted(aliases))}): "
                "move or remove the alias before archiving it"
            )
        before = {"archived_at": mv.archived_at}
        mv.archived_at = datetime.now(UTC) if archived else None
        s.flush()
        action = "model.archive" if archived else "model.unarchive"
        audit.record(ctx, s, action, ("model_version", mv.id), before, {"archived_at": mv.archived_at})
        return ModelVersionView.of(mv, aliases)


def dependents(s: Session, ctx: Context, mv: ModelVersion) -> list[str]:
    """Everything that depends on ``mv``: one line each (empty: it may be deleted)."""
    return [reason for check in DEPENDENTS.values() for reason in check(s, ctx, mv)]


def delete(ctx: Context, ref: str) -> ModelVersionView:
    """Delete a version's record and its weights (aliases' history keeps its id and number).

    Runs that made or evaluated it stay, without the link. The weights are removed after the commit,
    and only those under the artifact store.

    Raises:
        ConflictError: something depends on the version (listed in the message).
    """
    ctx.require(Permission.MODEL_DELETE)
    with ctx.session() as s:
        mv = owned_version(s, ctx, ref)
        reasons = dependents(s, ctx, mv)
        if reasons:
            raise ConflictError(f"model {mv.name}:{mv.version} is in use: " + "; ".join(reasons))
        view = ModelVersionView.of(mv)
        s.execute(update(Run).where(Run.model_version_id == mv.id).values(model_version_id=None))
        s.delete(mv)
        s.flush()
        before = {"name": mv.name, "version": mv.version, "train_run_id": mv.train_run_id}
        audit.record(ctx, s, "model.delete", ("model_version", view.id), before, None)
    root = ctx.artifacts.root.resolve()
    for folder in (view.adapter_path, view.merged_path):
        if folder and Path(folder).resolve().is_relative_to(root) and Path(folder).is_dir():
            shutil.rmtree(folder, ignore_errors=True)
    return view


def _alias_dependents(s: Session, ctx: Context, mv: ModelVersion) -> list[str]:
    aliases = current_aliases(s, ctx, [mv.id]).get(mv.id, [])
    return [f"alias '{a}' points to it" for a in sorted(aliases)]


def _lineage_dependents(s: Session, ctx: Context, mv: ModelVersion) -> list[str]:
    """Base models registered from the version's weights (``imts models add`` of its folder)."""
    out = []
    folders = [Path(p).resolve() for p in (mv.merged_path, mv.adapter_path) if p]
    for bm in s.scalars(select(BaseModelRecord)):
        where = Path(bm.path).resolve()
        if any(where == f or where.is_relative_to(f) for f in folders):
            children = s.scalar(
                select(func.count()).select_from(ModelVersion).where(ModelVersion.base_model_id == bm.id)
            )
            out.append(
                f"base model '{bm.name}' was registered from its weights ({children} versions trained on it)"
            )
    return out


DEPENDENTS["alias"] = _alias_dependents
DEPENDENTS["lineage"] = _lineage_dependents


def _find_version(s: Session, ctx: Context, ref: str) -> ModelVersion | None:
    q: Select[tuple[ModelVersion]] = select(ModelVersion).where(ModelVersion.project_id == ctx.project_id)
    name, at, alias = ref.partition("@")
    if at:
        q = q.join(
            ModelAlias,
            (ModelAlias.version_id == ModelVersion.id)
            & (ModelAlias.project_id == ctx.project_id)
            & (ModelAlias.model == name)
            & (ModelAlias.alias == alias)
            & ModelAlias.unset_at.is_(None),
        )
        return s.scalar(q.limit(1))
    name, _, number = ref.partition(":")
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
