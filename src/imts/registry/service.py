"""The registry's service functions: base models and this project's model versions, as read models.

Each takes the caller's ``Context`` and returns views (``registry.views``); no ORM row leaves
``registry/``. Base models are shared by every tenant; model versions belong to a project.
"""

from __future__ import annotations

from pathlib import Path

from imts.core.progress import Progress
from imts.registry import base_models, models
from imts.registry.views import BaseModelView, ModelVersionView, ResolvedModel
from imts.store.context import Context

__all__ = [
    "BaseModelView",
    "ModelVersionView",
    "ResolvedModel",
    "add_base_model",
    "get_base_model",
    "get_model_version",
    "list_base_models",
    "list_model_versions",
    "pull_base_model",
    "resolve_model",
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


def list_model_versions(ctx: Context) -> list[ModelVersionView]:
    """This project's trained model versions, oldest first."""
    return models.list_versions(ctx)


def get_model_version(ctx: Context, ref: str) -> ModelVersionView:
    """One of this project's model versions (``NAME``, ``NAME:N``, ``mv_...``, ``run_...``)."""
    return models.get_version(ctx, ref)


def resolve_model(ctx: Context, ref: str) -> ResolvedModel:
    """Any model reference (base model, model version, run id, folder) to a loadable folder."""
    return models.resolve(ctx, ref)
