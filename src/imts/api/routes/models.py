"""Models: the base models every tenant may fine-tune, and a project's trained model versions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from imts.api.deps import CurrentUser, WorkspaceDep, platform_ctx, project_ctx
from imts.core.permissions import Permission, Role
from imts.evals.card import ModelCardView, model_card
from imts.evals.versions import VersionComparison, compare_versions
from imts.registry import service
from imts.registry.export import ExportResult
from imts.registry.views import (
    AliasProtectionView,
    AliasState,
    AliasView,
    BaseModelView,
    ModelVersionView,
)
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
def list_versions(
    ctx: Viewer, archived: Annotated[bool, Query(description="Also list archived versions.")] = True
) -> list[ModelVersionView]:
    """The project's trained model versions, oldest first."""
    return service.list_model_versions(ctx, include_archived=archived)


@router.get(PROJECT + "/{model}", response_model=ModelVersionView)
def show_version(model: str, ctx: Viewer) -> ModelVersionView:
    """One model version: ``NAME`` (the newest), ``NAME:N``, its id, or its training run's id."""
    return service.get_model_version(ctx, model)


@router.get(PROJECT + "/{model}/versions", response_model=list[ModelVersionView])
def versions(model: str, ctx: Viewer) -> list[ModelVersionView]:
    """Every version of the model that ``model`` names (any of its references), oldest first."""
    name = service.get_model_version(ctx, model).name
    return [m for m in service.list_model_versions(ctx) if m.name == name]


# --- aliases, tags, archive, delete (issue 18) ------------------------------------------------------
Deployer = Annotated[Context, Depends(project_ctx(Permission.MODEL_DEPLOY))]
Trainer = Annotated[Context, Depends(project_ctx(Permission.MODEL_TRAIN))]
Deleter = Annotated[Context, Depends(project_ctx(Permission.MODEL_DELETE))]
ALIASES = "/tenants/{tenant}/projects/{project}/aliases"


class ProtectionBody(BaseModel):
    """Who may move the alias from now on."""

    min_role: Role = Field(..., description="The lowest role that moves the alias (admin by default).")


class TagsBody(BaseModel):
    add: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list)
    remove: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list)


class ExportBody(BaseModel):
    """What to export (into the server's ``exports/NAME-N/FORMAT``)."""

    format: Literal["adapter", "merged", "gguf"]
    gguf_type: Literal["f32", "f16"] = "f32"


@router.get(ALIASES, response_model=AliasState)
def alias_state(ctx: Viewer) -> AliasState:
    """Every alias of the project now, with the alias-change sequence number (poll it: it grows)."""
    return service.alias_state(ctx)


@router.get(ALIASES + "/protections", response_model=list[AliasProtectionView])
def protections(ctx: Viewer) -> list[AliasProtectionView]:
    """The project's protected aliases and the role each needs."""
    return service.list_protections(ctx)


@router.get(PROJECT + "/{model}/aliases", response_model=list[AliasView])
def alias_history(
    model: str, ctx: Viewer,
    alias: Annotated[str | None, Query(max_length=100)] = None,
    at: Annotated[datetime | None, Query(description="Only what each alias pointed to then.")] = None,
) -> list[AliasView]:  # fmt: skip
    """The history of the model's aliases, oldest first (``?at=`` for what they pointed to then)."""
    return service.alias_history(ctx, service.get_model_version(ctx, model).name, alias, at)


@router.put(PROJECT + "/{model}/aliases/{alias}", response_model=AliasView)
def set_alias(model: str, alias: str, ctx: Deployer) -> AliasView:
    """Point the alias at this version (moving it from where it was); protected aliases need their role."""
    return service.set_alias(ctx, model, alias)


@router.delete(PROJECT + "/{model}/aliases/{alias}", response_model=AliasView)
def remove_alias(model: str, alias: str, ctx: Deployer) -> AliasView:
    """Remove the alias from the model (its history stays)."""
    return service.remove_alias(ctx, service.get_model_version(ctx, model).name, alias)


@router.put(PROJECT + "/{model}/aliases/{alias}/protection", response_model=AliasProtectionView)
def protect(model: str, alias: str, body: ProtectionBody, ctx: Deployer) -> AliasProtectionView:
    """Protect the alias: only ``min_role`` or higher moves it."""
    return service.protect_alias(ctx, service.get_model_version(ctx, model).name, alias, body.min_role)


@router.delete(PROJECT + "/{model}/aliases/{alias}/protection", response_model=AliasProtectionView)
def unprotect(model: str, alias: str, ctx: Deployer) -> AliasProtectionView:
    """Lift the alias's protection (a role the protection admits)."""
    return service.unprotect_alias(ctx, service.get_model_version(ctx, model).name, alias)


@router.patch(PROJECT + "/{model}/tags", response_model=ModelVersionView)
def tag(model: str, body: TagsBody, ctx: Trainer) -> ModelVersionView:
    """Add and remove tags of the version."""
    return service.tag_model_version(ctx, model, body.add, body.remove)


@router.post(PROJECT + "/{model}/archive", response_model=ModelVersionView)
def archive(model: str, ctx: Deleter) -> ModelVersionView:
    """Archive the version: hidden from lists, never aliased (refused while aliased)."""
    return service.archive_model_version(ctx, model)


@router.post(PROJECT + "/{model}/unarchive", response_model=ModelVersionView)
def unarchive(model: str, ctx: Deleter) -> ModelVersionView:
    """Bring an archived version back."""
    return service.archive_model_version(ctx, model, archived=False)


@router.delete(PROJECT + "/{model}", response_model=ModelVersionView)
def delete(model: str, ctx: Deleter) -> ModelVersionView:
    """Delete the version and its weights (409 while an alias, deployment or lineage child needs it)."""
    return service.delete_model_version(ctx, model)


@router.post(PROJECT + "/{model}/exports", response_model=ExportResult, status_code=201)
def export(model: str, body: ExportBody, ctx: Deployer) -> ExportResult:
    """Export the version as adapter, merged safetensors or GGUF, checked by loading it back."""
    return service.export_model_version(ctx, model, body.format, None, body.gguf_type)


TAR = {200: {"content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
             "description": "the export's files in one tar, streamed"}}  # fmt: skip


@router.get(PROJECT + "/{model}/exports/{format}", response_class=StreamingResponse, responses=TAR)  # type: ignore[arg-type]
def download_export(
    model: str, format: Literal["adapter", "merged", "gguf"], ctx: Deployer
) -> StreamingResponse:
    """Download the version's export (made by ``POST …/exports``) as one tar, streamed."""
    out = service.download_export(ctx, model, format)
    headers = {
        "Content-Disposition": f'attachment; filename="{out.file_name}"',
        "Content-Length": str(out.size),
    }
    return StreamingResponse(out.blocks, media_type="application/x-tar", headers=headers)


@router.get(PROJECT + "/{model}/compare", response_model=VersionComparison)
def compare(
    model: str, ctx: Viewer,
    other: Annotated[str, Query(min_length=1, max_length=300, description="The version compared with it.")],
    lang: Literal["en", "zh"] = "en",
) -> VersionComparison:  # fmt: skip
    """This version against ``other``: spec diff, data diff, evaluations side by side and a verdict."""
    return compare_versions(ctx, model, other, lang)


@router.get(PROJECT + "/{model}/card", response_model=ModelCardView)
def card(model: str, ctx: Viewer) -> ModelCardView:
    """The version's model card (Hugging Face format, English and Chinese)."""
    return model_card(ctx, model)
