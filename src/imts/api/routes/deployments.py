"""Deployments: the model aliases (and base models) a project serves on ``imts serve``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from imts.api.deps import project_ctx
from imts.core.permissions import Permission
from imts.registry import service
from imts.registry.deployments import DeploymentView
from imts.store.context import Context

router = APIRouter(tags=["deployments"])
PATH = "/tenants/{tenant}/projects/{project}/deployments"
Viewer = Annotated[Context, Depends(project_ctx(Permission.METRICS_VIEW))]
Deployer = Annotated[Context, Depends(project_ctx(Permission.MODEL_DEPLOY))]


class DeploymentAdd(BaseModel):
    """Serve ``model@alias`` (followed as the alias moves), or the base model ``model`` when ``alias`` is
    null, under ``name`` (default: ``model``, or ``model@alias`` for aliases other than production)."""

    model: str = Field(..., min_length=1, max_length=200)
    alias: str | None = Field("production", max_length=100)
    name: str | None = Field(None, min_length=1, max_length=128)


@router.get(PATH, response_model=list[DeploymentView])
def list_deployments(ctx: Viewer) -> list[DeploymentView]:
    """The project's deployments, by name."""
    return service.list_deployments(ctx)


@router.post(PATH, response_model=DeploymentView, status_code=201)
def add_deployment(body: DeploymentAdd, ctx: Deployer) -> DeploymentView:
    """Deploy a model's alias (running servers serve it from their next request on)."""
    return service.add_deployment(ctx, body.model, body.alias, body.name)


@router.delete(PATH + "/{deployment}", response_model=DeploymentView)
def remove_deployment(deployment: str, ctx: Deployer) -> DeploymentView:
    """Stop serving a deployment."""
    return service.remove_deployment(ctx, deployment)
