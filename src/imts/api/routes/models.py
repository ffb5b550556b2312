"""Models: the base models every tenant may fine-tune, and a project's trained model versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from imts.api.deps import CurrentUser, WorkspaceDep, platform_ctx, project_ctx
from imts.core.permissions import Permission
from imts.registry import service
from imts.registry.views import BaseModelView, ModelVersionView
from imts.store.context import Context

router = APIRouter(tags=["models"])
PROJECT = "/tenants/{tenant}/projects/{project}/models"
Viewer = Annotated[Context, Depends(project_ctx(Permission.METRICS_VIEW))]
PlatformCtx = Annotated[Context, Depends(platform_ctx)]


class BaseModelAdd(BaseModel):
    """A Hugging Face model folder on the server's disk (checked to load and generate)."""

    path: str = Field(..., min_length=1, max_length=4096)
    name: str | None = Field(None, min_length=1, max_length=200, description="Default: the folder name.")
    license: str | None = Field(None, max_length=200)


class BaseModelPull(BaseModel):
    name: str = Field(
        ..., min_length=1, max_length=200, description="A catalogued model, e.g. smollm2-135m-instruct."
    )


@router.get("/base-models", response_model=list[BaseModelView])
def list_base_models(who: CurrentUser, ws: WorkspaceDep) -> list[BaseModelView]:
    """The base models recorded on this installation (shared by every tenant), oldest first."""
    return service.list_base_models(Context(ws, "", "", "", "", who.username, "viewer"))


@router.post("/base-models", response_model=BaseModelView, status_code=201)
def add_base_model(body: BaseModelAdd, ctx: PlatformCtx) -> BaseModelView:
    """Register a model folder on the server as a base model (platform administrators)."""
    return service.add_base_model(ctx, Path(body.path), body.name, body.license)


@router.post("/base-models/pull", response_model=BaseModelView, status_code=201)
def pull_base_model(body: BaseModelPull, ctx: PlatformCtx) -> BaseModelView:
    """Obtain a catalogued base model, convert it once to safetensors, verify and record it."""
    return service.pull_base_model(ctx, body.name)


@router.get(PROJECT, response_model=list[ModelVersionView])
def list_versions(ctx: Viewer) -> list[ModelVersionView]:
    """The project's trained model versions, oldest first."""
    return service.list_model_versions(ctx)


@router.get(PROJECT + "/{model}", response_model=ModelVersionView)
def show_version(model: str, ctx: Viewer) -> ModelVersionView:
    """One model version: ``NAME`` (the newest), ``NAME:N``, its id, or its training run's id."""
    return service.get_model_version(ctx, model)


@router.get(PROJECT + "/{model}/versions", response_model=list[ModelVersionView])
def versions(model: str, ctx: Viewer) -> list[ModelVersionView]:
    """Every version of the model that ``model`` names (any of its references), oldest first."""
    name = service.get_model_version(ctx, model).name
    return [m for m in service.list_model_versions(ctx) if m.name == name]
