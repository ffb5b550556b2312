"""The registry's service functions: base models and this project's model versions, as read models.

Each takes the caller's ``Context`` and returns views (``registry.views``); no ORM row leaves
``registry/``. Base models are shared by every tenant; model versions belong to a project.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from imts.core.permissions import Permission
from imts.core.progress import Progress
from imts.registry import aliases, base_models, deployments, export, models
from imts.registry.deployments import DeploymentView
from imts.registry.export import ExportResult
from imts.registry.views import (
    AliasProtectionView,
    AliasState,
    AliasView,
    BaseModelView,
    ModelVersionView,
    ResolvedModel,
)
from imts.store.context import Context

__all__ = [
    "AliasProtectionView",
    "AliasState",
    "AliasView",
    "BaseModelView",
    "DeploymentView",
    "ModelVersionView",
    "ResolvedModel",
    "add_base_model",
    "add_deployment",
    "alias_history",
    "alias_seq",
    "alias_state",
    "archive_model_version",
    "delete_model_version",
    "export_model_version",
    "get_base_model",
    "get_model_version",
    "list_base_models",
    "list_deployments",
    "list_model_versions",
    "list_protections",
    "protect_alias",
    "pull_base_model",
    "remove_alias",
    "remove_deployment",
    "resolve_alias",
    "resolve_model",
    "set_alias",
    "tag_model_version",
    "unprotect_alias",
]


def pull_base_model(ctx: Context, name: str, progress: Progress | None = None) -> BaseModelView:
    """Obtain a catalogued base model, convert it once to safetensors, verify and record it."""
    return base_models.pull(ctx, name, progress)


def add_base_model(
    ctx: Context, path: Path, name: str | None = None, license: str | None = None
) -> BaseModelView:
    """Register a local Hugging Face model folder (checked to load and generate)."""
    return base_models.add(ctx, path, name, license)


def get_base_model(ctx: Context, ref: str) -> BaseModelView:
    """A recorded base model by name or id."""
    return base_models.get(ctx, ref)


def list_base_models(ctx: Context) -> list[BaseModelView]:
    """All recorded base models, oldest first."""
    return base_models.list_all(ctx)


def list_model_versions(ctx: Context, include_archived: bool = True) -> list[ModelVersionView]:
    """This project's trained model versions, oldest first, with their current aliases."""
    return models.list_versions(ctx, include_archived)


def get_model_version(ctx: Context, ref: str) -> ModelVersionView:
    """One of this project's model versions (``NAME``, ``NAME:N``, ``NAME@ALIAS``, ``mv_...``,
    ``run_...``)."""
    return models.get_version(ctx, ref)


def set_alias(ctx: Context, ref: str, alias: str) -> AliasView:
    """Point ``alias`` of the version's model at the version ``ref`` names (moving it)."""
    return aliases.set_alias(ctx, ref, alias)


def remove_alias(ctx: Context, model: str, alias: str) -> AliasView:
    """Remove an alias of a model (its history stays)."""
    return aliases.remove_alias(ctx, model, alias)


def alias_history(
    ctx: Context, model: str, alias: str | None = None, at: datetime | None = None
) -> list[AliasView]:
    """The history of a model's aliases; with ``at``, what each pointed to at that instant."""
    return aliases.history(ctx, model, alias, at)


def alias_state(ctx: Context) -> AliasState:
    """The project's aliases now, with the alias-change sequence number."""
    return aliases.state(ctx)


def alias_seq(ctx: Context) -> int:
    """The project's alias-change sequence number (one row read; a server polls it)."""
    return aliases.seq(ctx)


def resolve_alias(ctx: Context, model: str, alias: str) -> ModelVersionView:
    """The version an alias points to now."""
    return aliases.resolve(ctx, model, alias)


def protect_alias(ctx: Context, model: str, alias: str, min_role: str = "admin") -> AliasProtectionView:
    """Protect an alias: only ``min_role`` or higher (with the deploy permission) moves it."""
    return aliases.protect(ctx, model, alias, min_role)


def unprotect_alias(ctx: Context, model: str, alias: str) -> AliasProtectionView:
    """Lift an alias's protection."""
    return aliases.unprotect(ctx, model, alias)


def list_protections(ctx: Context) -> list[AliasProtectionView]:
    """The project's protected aliases."""
    return aliases.protections(ctx)


def tag_model_version(
    ctx: Context, ref: str, add: list[str], remove: list[str] | None = None
) -> ModelVersionView:
    """Add and remove tags of a version."""
    return models.tag(ctx, ref, add, remove or [])


def archive_model_version(ctx: Context, ref: str, archived: bool = True) -> ModelVersionView:
    """Archive a version (or bring it back with ``archived=False``)."""
    return models.archive(ctx, ref, archived)


def delete_model_version(ctx: Context, ref: str) -> ModelVersionView:
    """Delete a version and its weights; refused while an alias, deployment or lineage child needs it."""
    return models.delete(ctx, ref)


def resolve_model(ctx: Context, ref: str) -> ResolvedModel:
    """Any model reference (base model, model version, run id, folder) to a loadable folder."""
    return models.resolve(ctx, ref)


def export_model_version(
    ctx: Context, ref: str, fmt: str, dest: Path | None = None, gguf_type: str = "f32"
) -> ExportResult:
    """Export a version as ``adapter``, ``merged`` or ``gguf``, checked by loading it back."""
    return export.export(ctx, ref, fmt, dest, gguf_type)


def download_export(ctx: Context, ref: str, fmt: str) -> export.Download:
    """A version's export (``adapter``, ``merged`` or ``gguf``) as one tar stream."""
    ctx.require(Permission.MODEL_DEPLOY)
    return export.download(ctx, ref, fmt)


def add_deployment(
    ctx: Context, model: str, alias: str | None = "production", name: str | None = None
) -> DeploymentView:
    """Serve ``model@alias`` (a base model when ``alias`` is None) under ``name`` on ``imts serve``."""
    return deployments.add(ctx, model, alias, name)


def list_deployments(ctx: Context) -> list[DeploymentView]:
    """This project's deployments."""
    return deployments.list_all(ctx)


def remove_deployment(ctx: Context, name: str) -> DeploymentView:
    """Stop serving a deployment."""
    return deployments.remove(ctx, name)
