"""Deployments: what ``imts serve`` serves — an alias of a model (the server follows it as it moves) or
a base model — under the id its clients name.

Adding or removing a deployment bumps the project's alias-change sequence number (``aliases.seq``), the
one number a running server polls before each request: a new deployment, a removed one and a moved
alias all reach it on the next request. A version an active deployment serves cannot be deleted
(``models.DEPENDENTS["deployment"]``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from imts.core.errors import ConflictError, InputError, NotFoundError
from imts.core.ids import new_id
from imts.core.permissions import Permission
from imts.registry import base_models
from imts.registry.aliases import _tick, check_alias, current_version_id
from imts.registry.models import DEPENDENTS
from imts.store import audit
from imts.store.context import Context
from imts.store.models import Deployment, ModelVersion

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


class DeploymentView(BaseModel):
    """A deployment: ``name`` is the ``model`` id clients send; ``alias`` None serves a base model."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: str
    project_id: str
    name: str
    model: str
    alias: str | None
    created_by: str
    created_at: datetime


def add(
    ctx: Context, model: str, alias: str | None = "production", name: str | None = None
) -> DeploymentView:
    """Serve ``model@alias`` (or, with ``alias`` None, the base model ``model``) under ``name``.

    Raises:
        InputError: a bad name or alias.
        NotFoundError: no such model (or base model) in this project.
        ConflictError: ``name`` is already deployed in this project.
    """
    ctx.require(Permission.MODEL_DEPLOY)
    if alias is not None:
        check_alias(alias)
    name = name or (model if alias in (None, "production") else f"{model}@{alias}")
    if not NAME.match(name):
        raise InputError(
            f"'{name}' is not a deployment name: letters, digits and . _ : @ -, at most 128 characters",
            field="name",
        )
    if alias is None:
        base_models.get(ctx, model)  # raises NotFoundError naming it
    try:
        with ctx.session() as s:
            if alias is not None and not _has_model(s, ctx, model):
                raise NotFoundError(f"no model '{model}' in this project")
            if s.scalar(select(Deployment.id).where(Deployment.project_id == ctx.project_id,
                                                    Deployment.name == name)):  # fmt: skip
                raise ConflictError(f"'{name}' is already deployed in project '{ctx.project}'")
            _tick(s, ctx)  # a running server sees the new deployment on its next request
            row = Deployment(id=new_id("dep"), project_id=ctx.project_id, name=name, model=model, alias=alias,
                             created_by=ctx.principal, created_at=datetime.now(UTC))  # fmt: skip
            s.add(row)
            s.flush()
            audit.record(ctx, s, "deployment.add", ("deployment", name), None,
                         {"model": model, "alias": alias})  # fmt: skip
            return DeploymentView.model_validate(row)
    except IntegrityError as exc:  # a concurrent add of the same name
        raise ConflictError(f"'{name}' is already deployed in project '{ctx.project}'") from exc


def list_all(ctx: Context) -> list[DeploymentView]:
    """This project's deployments, by name."""
    with ctx.session() as s:
        q = select(Deployment).where(Deployment.project_id == ctx.project_id).order_by(Deployment.name)
        return [DeploymentView.model_validate(r) for r in s.scalars(q)]


def remove(ctx: Context, name: str) -> DeploymentView:
    """Stop serving ``name`` (running servers stop on their next request).

    Raises:
        NotFoundError: nothing is deployed under ``name`` here.
    """
    ctx.require(Permission.MODEL_DEPLOY)
    with ctx.session() as s:
        row = s.scalar(
            select(Deployment).where(Deployment.project_id == ctx.project_id, Deployment.name == name)
        )
        if row is None:
            raise NotFoundError(f"nothing is deployed as '{name}' in project '{ctx.project}'")
        view = DeploymentView.model_validate(row)
        _tick(s, ctx)
        s.delete(row)
        s.flush()
        audit.record(ctx, s, "deployment.remove", ("deployment", name),
                     {"model": view.model, "alias": view.alias}, None)  # fmt: skip
        return view


def _has_model(s: Session, ctx: Context, model: str) -> bool:
    q = select(ModelVersion.id).where(ModelVersion.project_id == ctx.project_id, ModelVersion.name == model)
    return s.scalar(q.limit(1)) is not None


def _deployment_dependents(s: Session, ctx: Context, mv: ModelVersion) -> list[str]:
    q = select(Deployment).where(
        Deployment.project_id == ctx.project_id, Deployment.model == mv.name, Deployment.alias.is_not(None)
    )
    return [
        f"deployment '{d.name}' serves it ({d.model}@{d.alias})"
        for d in s.scalars(q.order_by(Deployment.name))
        if current_version_id(s, ctx, d.model, str(d.alias)) == mv.id
    ]


DEPENDENTS["deployment"] = _deployment_dependents
